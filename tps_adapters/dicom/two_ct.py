"""The new course's CT and structures in one folder, the prior course (its own CT, RTDOSE,
optional RTSTRUCT and RTPLAN) in another -> one :class:`reirrad_opt.case.Case` on the new CT.

The prior dose is read on its own grid (Gy(RBE), with the prior folder's fractionation, dose type
and RBE as the one-folder import reads them), brought to the new CT by a registration
(:mod:`tps_adapters.registration`: identity, a DICOM REG, or a rigid / deformable SimpleITK
registration of the prior CT onto the new CT) and interpolated trilinearly onto the case grid.
Voxels whose mapped point falls outside the prior dose grid get 0 Gy and are flagged; every
structure partly there is named. ``prior_dose_margin_mm`` replaces each voxel's prior dose by the
maximum within that distance, a conservative allowance for the registration's uncertainty.

How the prior dose got there is recorded in ``case.source['prior_mapping']`` (frames, method,
transform, metric, margin, software versions) and, as one readable line, in
``case.source['registration']`` (shown in plan.json and report.html).
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

from reirrad_opt.case import Case
from reirrad_opt.plausibility import DEFAULT_BOUNDS, PlausibilityBounds, record_overrides

from .checks import check_prior
from .ct import CTVolume, read_ct_series
from .errors import DoseCoverageWarning, MissingDataError, MixedInputError, PriorCourseError
from .load import load_case
from .rasterize import DEFAULT_END_CAPS
from .scan import DicomFolder, scan_folder

REGISTRATION_CHOICES = ("auto", "rigid", "deformable", "identity")
#: prior dose margin (mm) when the registration was computed from the images (rigid, deformable)
DEFAULT_AUTOMATIC_MARGIN_MM = 2.0
#: how far (mm) the default registration region reaches beyond the target and priority-1 organs
REGION_MARGIN_MM = 50.0
#: notes of the new folder's own import that describe its (absent) prior dose; replaced by the prior folder's
_NEW_FOLDER_PRIOR_NOTES = ("prior course:", "prior dose:", "RTDOSE:")


@dataclass(frozen=True)
class TwoCtImport:
    """The result of :func:`load_two_ct_case`.

    Attributes:
        case: the case on the new CT, with the mapped prior dose (Gy(RBE)).
        registration: the mapping used (:class:`tps_adapters.registration.Registration`).
        prior_ct: the prior CT as read (for the QA figure), or None when the prior folder has none.
        covered: bool [z, y, x], True where the mapped point lies on the prior dose grid.
    """

    case: Case
    registration: object
    prior_ct: CTVolume | None
    covered: np.ndarray


def _reg_candidates(folder: DicomFolder) -> list[Path]:
    return [f for f, reason in folder.ignored if "Registration" in reason]


def _region_box(case: Case, names: Collection[str] | None, margin_mm: float):
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


def _software_versions() -> dict:
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


def load_two_ct_case(
    new_dir: str | os.PathLike,
    prior_dir: str | os.PathLike,
    *,
    interval_months: float | None,
    registration: str = "auto",
    prior_dose_margin_mm: float | None = None,
    region_names: Collection[str] | None = None,
    rigid_settings=None,
    deformable_settings=None,
    prior_fractions: int | None = None,
    prior_modality: str | None = None,
    prior_rbe: float | None = None,
    relative_dose_reference_gy: float | None = None,
    structure_map: dict[str, str] | None = None,
    voxel_mm: float | Sequence[float] | None = None,
    assume_hu: float | None = None,
    end_caps: str = DEFAULT_END_CAPS,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
    accept: Collection[str] = (),
    bounds: PlausibilityBounds = DEFAULT_BOUNDS,
) -> TwoCtImport:
    """Import the new CT + RTSTRUCT of ``new_dir`` with the prior course of ``prior_dir`` mapped onto it.

    Args:
        new_dir: folder with the new planning CT and its RTSTRUCT (rGTV, organs); no RTDOSE.
        prior_dir: folder with the prior course: CT, RTDOSE, optional RTSTRUCT and RTPLAN.
        registration: 'auto' (a REG linking the two frames, else identity for one shared frame,
            else rigid), 'rigid', 'deformable', 'identity', or the path of a REG file.
        prior_dose_margin_mm: replace each voxel's mapped prior dose by the maximum within this
            many mm; default 0 for identity / REG, ``DEFAULT_AUTOMATIC_MARGIN_MM`` for computed
            registrations.
        region_names: organs (TG-263 names) whose box, with the targets, restricts the registration
            metric (``REGION_MARGIN_MM`` around them); None: the targets only.
        rigid_settings, deformable_settings: :class:`tps_adapters.registration.RigidSettings` /
            ``DeformableSettings`` (defaults when None).
        Other arguments: as :func:`tps_adapters.dicom.load_case` (the fractionation, modality,
        RBE and relative-dose options apply to the prior folder; the grid options to the new CT).

    Raises:
        DicomImportError subclasses naming the folder, file or frame (another patient, a prior
        RTDOSE without its CT, a REG of other frames, a deformable REG, an RTDOSE in ``new_dir``).
    """
    from tps_adapters.registration import (DEFORMABLE_WARNING, DeformableSettings, RegistrationWarning, RigidSettings,
                                           find_registrations, identity_registration, map_to_grid, max_within_margin,
                                           reg_registration, register_deformable, register_rigid, to_image)

    say = progress or (lambda message: None)
    new_folder, prior_folder = scan_folder(new_dir), scan_folder(prior_dir)
    if new_folder.root == prior_folder.root:
        raise MixedInputError(f"{new_folder.root}: given both as the new CT folder and as the prior folder; for one "
                              "frame of reference import the folder alone (without --prior)")
    if new_folder.rtdose:
        raise MixedInputError(f"{new_folder.root}: holds RTDOSE {', '.join(e.path.name for e in new_folder.rtdose)}; "
                              "with a separate prior folder (--prior) the new folder holds the new CT and RTSTRUCT "
                              "only. Move the dose into the prior folder")
    if not new_folder.ct:
        raise MissingDataError(f"{new_folder.root}: no CT series; the new planning CT defines the case")
    if not prior_folder.rtdose:
        raise MissingDataError(f"{prior_folder.root}: no RTDOSE; the prior folder must hold the prior course's dose")
    new_id, prior_id = new_folder.identity(), prior_folder.identity()
    if new_id["patient_id"] != prior_id["patient_id"]:
        raise MixedInputError(f"{prior_folder.root}: Patient ID {prior_id['patient_id']!r} is not the new CT's "
                              f"{new_id['patient_id']!r} ({new_folder.root}); the prior course must be the same patient's")
    new_uid = new_folder.ct[0].frame_of_reference_uid
    prior_uid = prior_id["frame_of_reference_uid"]
    notes: list[str] = []
    found = find_registrations(_reg_candidates(new_folder) + _reg_candidates(prior_folder))
    for r in found:
        if r.patient_id and r.patient_id != new_id["patient_id"]:
            raise MixedInputError(f"{r.path}: REG of Patient ID {r.patient_id!r}, not {new_id['patient_id']!r}")
    method, reg_object = _resolve(str(registration), new_uid, prior_uid, found, notes)
    if method in ("rigid", "deformable") and not prior_folder.ct:
        raise PriorCourseError(f"{prior_folder.root}: the prior RTDOSE comes without its CT; a {method} registration "
                               "needs the prior planning CT (its Frame of Reference "
                               f"{prior_uid}). Add the prior CT series, or give a DICOM REG (--registration REG_FILE)")
    if method == "identity" and new_uid != prior_uid:
        msg = (f"--registration identity: the prior frame of reference {prior_uid} is taken as the new CT's {new_uid} "
               "without any registration; correct only if the two CTs share their coordinates")
        notes.append(f"registration: {msg}")
        warnings.warn(f"{prior_folder.root}: {msg}", RegistrationWarning, stacklevel=2)

    say(f"reading the prior course from {prior_folder.root}")
    prior_case = load_case(prior_folder.root, grid="dose", interval_months=interval_months,
                           prior_fractions=prior_fractions, prior_modality=prior_modality, prior_rbe=prior_rbe,
                           relative_dose_reference_gy=relative_dose_reference_gy, assume_hu=-1000.0,
                           end_caps=end_caps, progress=progress, accept=accept, bounds=bounds)
    prior = prior_case.prior
    say(f"reading the new CT and structures from {new_folder.root}")
    new_case = load_case(new_folder.root, grid="ct", voxel_mm=voxel_mm, interval_months=interval_months,
                         prior_fractions=prior.n_fractions, prior_modality=prior.modality, assume_hu=assume_hu,
                         allow_missing_dose=True, structure_map=structure_map, end_caps=end_caps, name=name,
                         progress=progress, accept=accept, bounds=bounds)
    prior_ct = None
    if prior_folder.ct:
        say(f"reading the prior CT ({len(prior_folder.ct)} slices)")
        prior_ct = read_ct_series([e.path for e in prior_folder.ct], [e.ds for e in prior_folder.ct], bounds=bounds)

    box, box_names = _region_box(new_case, region_names, REGION_MARGIN_MM)
    if method == "identity":
        reg = identity_registration(new_uid, prior_uid)
    elif method == "reg":
        reg = reg_registration(reg_object, new_uid, prior_uid)
    else:
        say("rigid registration of the prior CT onto the new CT")
        fixed, moving = to_image(new_case.ct_hu, new_case.grid), to_image(prior_ct.hu, prior_ct.grid)
        reg = register_rigid(fixed, moving, settings=rigid_settings or RigidSettings(), region_xyz_mm=box,
                             new_frame_uid=new_uid, prior_frame_uid=prior_uid)
        if method == "deformable":
            say("deformable registration (B-spline), initialised by the rigid one")
            reg = register_deformable(fixed, moving, reg, settings=deformable_settings or DeformableSettings(),
                                      region_xyz_mm=box)
            notes.append(f"registration: {DEFORMABLE_WARNING}")
            warnings.warn(f"{prior_folder.root}: {DEFORMABLE_WARNING}", RegistrationWarning, stacklevel=2)
        if box is not None:
            reg = dataclasses.replace(reg, details={**reg.details, "region_structures": box_names})

    margin = prior_dose_margin_mm
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
    rois = {r["name"]: r for r in new_case.source.get("rois", [])}
    for s in new_case.structures.values():
        frac = float((s.mask & ~covered).sum()) / max(1, int(s.mask.sum()))
        if s.name in rois:
            rois[s.name]["fraction_outside_dose_grid"] = round(frac, 6)
        if frac > 0:
            msg = (f"structure {s.name!r}: {100 * frac:.1f} % of its volume maps outside the prior dose grid, where "
                   "the prior dose is taken as 0 Gy")
            notes.append(f"prior dose: {msg}")
            warnings.warn(f"{prior_folder.root}: {msg}", DoseCoverageWarning, stacklevel=2)

    source = dict(new_case.source)
    kept = [n for n in source.get("notes", []) if not n.startswith(_NEW_FOLDER_PRIOR_NOTES)]
    prior_notes = [f"prior folder: {n}" for n in prior_src.get("notes", [])
                   if n.startswith(_NEW_FOLDER_PRIOR_NOTES) and "resampled" not in n]
    source["notes"] = kept + prior_notes + notes
    source.update({"rtdose_files": [], "dose_summation_type": prior_src["dose_summation_type"],
                   "dose_type": prior_src["dose_type"]})
    source["registration"] = reg.summary() + f"; prior dose margin {margin:g} mm ({margin_how})"
    source["prior_mapping"] = {
        "prior_dir": str(prior_folder.root), "prior_patient_id": prior_id["patient_id"],
        "prior_frame_of_reference_uid": prior_uid, "new_frame_of_reference_uid": new_uid,
        "prior_rtdose_files": prior_src["rtdose_files"], "prior_rtplan_file": prior_src["rtplan_file"],
        "prior_ct_series_instance_uid": prior_src["ct_series_instance_uid"],
        "prior_dose_grid": prior_case.grid.to_dict(),
        "interpolation": "trilinear", "margin_mm": float(margin), "margin_source": margin_how,
        "fraction_outside_prior_dose_grid": round(outside, 6),
        "registration": reg.record(), "software": _software_versions(),
    }
    targets = {n: s.mask for n, s in new_case.structures.items() if s.role == "target"}
    overrides = [o for o in source.get("input_overrides", []) if o.get("flag") != "--allow-missing-dose"]
    overrides += prior_src.get("input_overrides", [])
    overrides += check_prior(mapped, prior.n_fractions, prior.prescription_gy, targets,
                             f"{prior_folder.root} (mapped onto {new_folder.root})", bounds, accept)
    source.pop("input_overrides", None)
    record_overrides(source, overrides)
    case = Case(new_case.name, new_case.grid, new_case.ct_hu, new_case.structures, mapped.astype(np.float32), prior,
                source)
    return TwoCtImport(case, reg, prior_ct, covered)
