"""One prior course on its own CT, mapped onto the new CT: open its folder (checks, registration
method, its dose on its own grid, its CT), then register and map its dose onto the case grid.

:mod:`.two_ct` runs these steps for every prior course of an import and assembles the case.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection

import numpy as np

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.plausibility import DEFAULT_BOUNDS, PlausibilityBounds

from .checks import check_prior
from .ct import CTVolume, read_ct_series
from .errors import DoseCoverageWarning, MissingDataError, MixedInputError, PriorCourseError
from .load import load_case
from .scan import DicomFolder

REGISTRATION_CHOICES = ("auto", "rigid", "deformable", "identity")
#: prior dose margin (mm) when the registration was computed from the images (rigid, deformable)
DEFAULT_AUTOMATIC_MARGIN_MM = 2.0
#: how far (mm) the default registration region reaches beyond the target and priority-1 organs
REGION_MARGIN_MM = 50.0


@dataclass(frozen=True)
class PriorSource:
    """One prior course to import: its folder and what its DICOM objects do not say.

    Attributes:
        folder: the course's CT, RTDOSE, optional RTSTRUCT and RTPLAN.
        interval_months: months from the end of this course to the start of the new one (required).
        registration: 'auto', 'rigid', 'deformable', 'identity' or the path of a REG file.
        prior_dose_margin_mm: maximum-filter radius (mm) of the mapped dose; None: the method's default.
        prior_fractions, prior_modality, prior_rbe, relative_dose_reference_gy: as for
            :func:`tps_adapters.dicom.load_case` (None: read from the folder, or its default).
    """

    folder: str | os.PathLike
    interval_months: float | None
    registration: str = "auto"
    prior_dose_margin_mm: float | None = None
    prior_fractions: int | None = None
    prior_modality: str | None = None
    prior_rbe: float | None = None
    relative_dose_reference_gy: float | None = None


@dataclass(frozen=True)
class OpenedPrior:
    """A prior folder read and checked, before registration: its dose on its own grid
    (``case``, Gy(RBE)), its CT (None without one), the registration method chosen
    ('identity', 'reg', 'rigid', 'deformable') and the REG object for 'reg'."""

    spec: PriorSource
    folder: DicomFolder
    case: Case
    prior_ct: CTVolume | None
    method: str
    reg_object: object
    prior_uid: str
    patient_id: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class MappedPrior:
    """A prior course mapped onto the new CT.

    Attributes:
        opened: the course as read (:class:`OpenedPrior`).
        course: its fractionation, interval, modality, dose type and RBE, with ``mapping`` set.
        dose_gy: its dose on the case grid (Gy(RBE), float32).
        registration: the mapping used (:class:`tps_adapters.registration.Registration`).
        covered: bool [z, y, x], True where the mapped point lies on the prior dose grid.
        record: the details for case.json (frames, method, transform, metric, margin, versions).
        notes: what was done and found (registration, mapping, coverage), unprefixed.
        overrides: plausibility overrides of the course's folder and mapped dose.
    """

    opened: OpenedPrior
    course: PriorCourse
    dose_gy: np.ndarray
    registration: object
    covered: np.ndarray
    record: dict
    notes: tuple[str, ...]
    overrides: tuple[dict, ...]


def reg_candidates(folder: DicomFolder) -> list[Path]:
    return [f for f, reason in folder.ignored if "Registration" in reason]


def region_box(case: Case, names: Collection[str] | None, margin_mm: float):
    """((x, y, z) low, (x, y, z) high) mm around the targets and the named organs, or None."""
    wanted = [s for s in case.structures.values()
              if s.role == "target" or (names is not None and s.name in names)]
    if not wanted:
        return None, []
    mask = np.zeros(case.grid.shape, dtype=bool)
    for s in wanted:
        mask |= s.mask
    idx = np.argwhere(mask)
    lo = case.grid.index_to_patient(idx.min(axis=0)) - margin_mm
    hi = case.grid.index_to_patient(idx.max(axis=0)) + margin_mm
    return (tuple(float(v) for v in lo), tuple(float(v) for v in hi)), [s.name for s in wanted]


def software_versions() -> dict:
    import importlib.metadata as md

    out = {}
    for dist in ("reirrad-opt", "SimpleITK", "pydicom", "numpy", "scipy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _resolve(registration: str, new_uid: str, prior_uid: str, found: list, notes: list[str]):
    """(method, REG object or None) for the requested registration."""
    from tps_adapters.registration import RegistrationError, read_registration

    if registration not in REGISTRATION_CHOICES:
        reg = read_registration(registration)
        reg.new_to_prior(new_uid, prior_uid)  # refuses a REG of other frames, and deformable REGs, by name
        return "reg", reg
    if registration != "auto":
        return registration, None
    linking = [r for r in found if r.links(new_uid, prior_uid)]
    for r in found:
        if r not in linking:
            notes.append(f"registration: {r.path.name} links other frames of reference "
                         f"({sorted(set(r.matrices) | {r.frame_uid})}); not used")
    rigid = [r for r in linking if not r.deformable]
    if rigid:
        if len(rigid) > 1:
            notes.append(f"registration: {len(rigid)} REG objects link the two frames; {rigid[0].path.name} used")
        return "reg", rigid[0]
    if linking:  # only deformable REGs: say so rather than silently registering again
        raise RegistrationError(f"{linking[0].path}: a Deformable Spatial Registration links the two CTs; its "
                                "deformation grid is not supported. Choose --registration rigid or deformable "
                                "(computed from the CTs), or export a rigid REG")
    return ("identity" if new_uid == prior_uid else "rigid"), None


def open_prior(new_folder: DicomFolder, prior_folder: DicomFolder, spec: PriorSource, *, end_caps: str,
               progress: Callable[[str], None] | None = None, accept: Collection[str] = (),
               bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> OpenedPrior:
    """Read and check one prior folder (``spec.folder``, scanned: ``prior_folder``) against the new
    folder (same patient, an RTDOSE, a REG that fits, a CT when the registration needs one) and read
    its dose on its own grid."""
    from tps_adapters.registration import RegistrationWarning, find_registrations

    say = progress or (lambda message: None)
    if new_folder.root == prior_folder.root:
        raise MixedInputError(f"{new_folder.root}: given both as the new CT folder and as the prior folder; for one "
                              "frame of reference import the folder alone (without --prior)")
    if not prior_folder.rtdose:
        raise MissingDataError(f"{prior_folder.root}: no RTDOSE; the prior folder must hold the prior course's dose")
    new_id, prior_id = new_folder.identity(), prior_folder.identity()
    if new_id["patient_id"] != prior_id["patient_id"]:
        raise MixedInputError(f"{prior_folder.root}: Patient ID {prior_id['patient_id']!r} is not the new CT's "
                              f"{new_id['patient_id']!r} ({new_folder.root}); the prior course must be the same patient's")
    new_uid = new_folder.ct[0].frame_of_reference_uid
    prior_uid = prior_id["frame_of_reference_uid"]
    notes: list[str] = []
    found = find_registrations(reg_candidates(new_folder) + reg_candidates(prior_folder))
    for r in found:
        if r.patient_id and r.patient_id != new_id["patient_id"]:
            raise MixedInputError(f"{r.path}: REG of Patient ID {r.patient_id!r}, not {new_id['patient_id']!r}")
    method, reg_object = _resolve(str(spec.registration), new_uid, prior_uid, found, notes)
    if method in ("rigid", "deformable") and not prior_folder.ct:
        raise PriorCourseError(f"{prior_folder.root}: the prior RTDOSE comes without its CT; a {method} registration "
                               "needs the prior planning CT (its Frame of Reference "
                               f"{prior_uid}). Add the prior CT series, or give a DICOM REG (--registration REG_FILE)")
    if method == "identity" and new_uid != prior_uid:
        msg = (f"--registration identity: the prior frame of reference {prior_uid} is taken as the new CT's {new_uid} "
               "without any registration; correct only if the two CTs share their coordinates")
        notes.append(f"registration: {msg}")
        warnings.warn(f"{prior_folder.root}: {msg}", RegistrationWarning, stacklevel=3)

    say(f"reading the prior course from {prior_folder.root}")
    prior_case = load_case(prior_folder.root, grid="dose", interval_months=spec.interval_months,
                           prior_fractions=spec.prior_fractions, prior_modality=spec.prior_modality,
                           prior_rbe=spec.prior_rbe, relative_dose_reference_gy=spec.relative_dose_reference_gy,
                           assume_hu=-1000.0, end_caps=end_caps, progress=progress, accept=accept, bounds=bounds)
    prior_ct = None
    if prior_folder.ct:
        say(f"reading the prior CT ({len(prior_folder.ct)} slices)")
        prior_ct = read_ct_series([e.path for e in prior_folder.ct], [e.ds for e in prior_folder.ct], bounds=bounds)
    return OpenedPrior(spec, prior_folder, prior_case, prior_ct, method, reg_object, prior_uid,
                       prior_id["patient_id"], tuple(notes))


def map_prior(opened: OpenedPrior, new_case: Case, new_folder: DicomFolder, box, box_names, *,
              rigid_settings=None, deformable_settings=None, progress: Callable[[str], None] | None = None,
              accept: Collection[str] = (), bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> MappedPrior:
    """Register the opened prior course onto the new CT and map its dose (trilinear, then the
    margin) onto the case grid; every structure partly outside the prior dose grid is named."""
    from tps_adapters.registration import (DEFORMABLE_WARNING, DeformableSettings, RegistrationWarning, RigidSettings,
                                           identity_registration, map_to_grid, max_within_margin, reg_registration,
                                           register_deformable, register_rigid, to_image)

    say = progress or (lambda message: None)
    spec, method, prior_folder, prior_case = opened.spec, opened.method, opened.folder, opened.case
    new_uid, prior_uid = new_folder.ct[0].frame_of_reference_uid, opened.prior_uid
    notes = list(opened.notes)
    if method == "identity":
        reg = identity_registration(new_uid, prior_uid)
    elif method == "reg":
        reg = reg_registration(opened.reg_object, new_uid, prior_uid)
    else:
        say("rigid registration of the prior CT onto the new CT")
        fixed, moving = to_image(new_case.ct_hu, new_case.grid), to_image(opened.prior_ct.hu, opened.prior_ct.grid)
        reg = register_rigid(fixed, moving, settings=rigid_settings or RigidSettings(), region_xyz_mm=box,
                             new_frame_uid=new_uid, prior_frame_uid=prior_uid)
        if method == "deformable":
            say("deformable registration (B-spline), initialised by the rigid one")
            reg = register_deformable(fixed, moving, reg, settings=deformable_settings or DeformableSettings(),
                                      region_xyz_mm=box)
            notes.append(f"registration: {DEFORMABLE_WARNING}")
            warnings.warn(f"{prior_folder.root}: {DEFORMABLE_WARNING}", RegistrationWarning, stacklevel=3)
        if box is not None:
            reg = dataclasses.replace(reg, details={**reg.details, "region_structures": box_names})

    margin = spec.prior_dose_margin_mm
    if margin is None:
        margin = DEFAULT_AUTOMATIC_MARGIN_MM if method in ("rigid", "deformable") else 0.0
        margin_how = "default for this registration method"
    else:
        margin_how = "as given"
    say("mapping the prior dose onto the new CT")
    mapped, covered = map_to_grid(prior_case.prior_dose_gy, prior_case.grid, reg, new_case.grid)
    if margin > 0:
        mapped = max_within_margin(mapped, new_case.grid, margin)

    prior_src = prior_case.source
    notes.append(f"registration: {reg.summary()}")
    notes.append(f"prior dose: mapped from {prior_folder.root} ({', '.join(prior_src['rtdose_files'])}) onto the new CT "
                 f"by trilinear interpolation; margin {margin:g} mm ({margin_how})"
                 + (": each voxel holds the largest prior dose within that distance" if margin > 0 else ""))
    outside = 1.0 - float(covered.mean())
    if outside > 0:
        notes.append(f"prior dose: {100 * outside:.1f} % of the case grid maps outside the prior dose grid; 0 Gy there")
    for s in new_case.structures.values():
        frac = float((s.mask & ~covered).sum()) / max(1, int(s.mask.sum()))
        if frac > 0:
            msg = (f"structure {s.name!r}: {100 * frac:.1f} % of its volume maps outside the prior dose grid, where "
                   "the prior dose is taken as 0 Gy")
            notes.append(f"prior dose: {msg}")
            warnings.warn(f"{prior_folder.root}: {msg}", DoseCoverageWarning, stacklevel=3)
    record = {
        "prior_dir": str(prior_folder.root), "prior_patient_id": opened.patient_id,
        "prior_frame_of_reference_uid": prior_uid, "new_frame_of_reference_uid": new_uid,
        "prior_rtdose_files": prior_src["rtdose_files"], "prior_rtplan_file": prior_src["rtplan_file"],
        "prior_ct_series_instance_uid": prior_src["ct_series_instance_uid"],
        "prior_dose_grid": prior_case.grid.to_dict(),
        "interpolation": "trilinear", "margin_mm": float(margin), "margin_source": margin_how,
        "fraction_outside_prior_dose_grid": round(outside, 6),
        "registration": reg.record(), "software": software_versions(),
    }
    targets = {n: s.mask for n, s in new_case.structures.items() if s.role == "target"}
    prior = prior_case.prior
    overrides = list(prior_src.get("input_overrides", []))
    overrides += check_prior(mapped, prior.n_fractions, prior.prescription_gy, targets,
                             f"{prior_folder.root} (mapped onto {new_folder.root})", bounds, accept)
    course = dataclasses.replace(prior, mapping=reg.summary() + f"; prior dose margin {margin:g} mm ({margin_how})")
    return MappedPrior(opened, course, mapped.astype(np.float32), reg, covered, record, tuple(notes), tuple(overrides))
