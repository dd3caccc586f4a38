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
``case.source['registration']`` (shown in plan.json and report.html) and the course's ``mapping``.

Several prior courses (:func:`load_prior_courses_case`): each comes from its own folder with its own
fractionation, interval, registration and margin, is registered and mapped on its own
(:mod:`.prior_mapping`), and becomes one prior course of the case (summed in EQD2 by
:mod:`reirrad_opt.prior_eqd2`, never as physical dose). ``case.source['prior_mappings']`` then holds
one record per course, ``source['registration']`` one line per course, and every note says which
course it concerns. The same RTDOSE in two prior folders is refused (one course counted twice).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

from reirrad_opt.case import Case, PriorDose
from reirrad_opt.plausibility import DEFAULT_BOUNDS, PlausibilityBounds, record_overrides

from .ct import CTVolume
from .errors import MissingDataError, MixedInputError
from .load import load_case
from .prior_mapping import (DEFAULT_AUTOMATIC_MARGIN_MM, REGION_MARGIN_MM, REGISTRATION_CHOICES,  # noqa: F401
                            MappedPrior, PriorSource, map_prior, open_prior, region_box)
from .rasterize import DEFAULT_END_CAPS
from .scan import scan_folder

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


@dataclass(frozen=True)
class PriorCoursesImport:
    """The result of :func:`load_prior_courses_case`: the case (one prior course per source, in
    order) and each course as mapped (registration, prior CT, coverage, record)."""

    case: Case
    courses: tuple[MappedPrior, ...]


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
    spec = PriorSource(prior_dir, interval_months, registration, prior_dose_margin_mm, prior_fractions,
                       prior_modality, prior_rbe, relative_dose_reference_gy)
    result = load_prior_courses_case(new_dir, [spec], region_names=region_names, rigid_settings=rigid_settings,
                                     deformable_settings=deformable_settings, structure_map=structure_map,
                                     voxel_mm=voxel_mm, assume_hu=assume_hu, end_caps=end_caps, name=name,
                                     progress=progress, accept=accept, bounds=bounds)
    course = result.courses[0]
    return TwoCtImport(result.case, course.registration, course.opened.prior_ct, course.covered)


def load_prior_courses_case(
    new_dir: str | os.PathLike,
    priors: Sequence[PriorSource],
    *,
    region_names: Collection[str] | None = None,
    rigid_settings=None,
    deformable_settings=None,
    structure_map: dict[str, str] | None = None,
    voxel_mm: float | Sequence[float] | None = None,
    assume_hu: float | None = None,
    end_caps: str = DEFAULT_END_CAPS,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
    accept: Collection[str] = (),
    bounds: PlausibilityBounds = DEFAULT_BOUNDS,
) -> PriorCoursesImport:
    """Import the new CT + RTSTRUCT of ``new_dir`` with one or more prior courses, each from its own
    folder (:class:`PriorSource`: its interval, fractions, registration, margin, ...) registered and
    mapped onto the new CT on its own. Arguments and errors as :func:`load_two_ct_case`; also a
    MixedInputError when two prior folders are one folder or hold the same RTDOSE."""
    if not priors:
        raise ValueError("load_prior_courses_case: at least one prior course is needed")
    say = progress or (lambda message: None)
    new_folder = scan_folder(new_dir)
    for spec in priors:
        if Path(spec.folder).resolve() == new_folder.root:
            raise MixedInputError(f"{new_folder.root}: given both as the new CT folder and as the prior folder; for "
                                  "one frame of reference import the folder alone (without --prior)")
    if new_folder.rtdose:
        raise MixedInputError(f"{new_folder.root}: holds RTDOSE {', '.join(e.path.name for e in new_folder.rtdose)}; "
                              "with a separate prior folder (--prior) the new folder holds the new CT and RTSTRUCT "
                              "only. Move the dose into the prior folder")
    if not new_folder.ct:
        raise MissingDataError(f"{new_folder.root}: no CT series; the new planning CT defines the case")
    scanned = []
    for spec in priors:
        scanned.append(scan_folder(spec.folder))
        _check_distinct(scanned)
    opened = [open_prior(new_folder, f, spec, end_caps=end_caps, progress=progress, accept=accept, bounds=bounds)
              for f, spec in zip(scanned, priors)]
    first = opened[0].case.prior
    say(f"reading the new CT and structures from {new_folder.root}")
    new_case = load_case(new_folder.root, grid="ct", voxel_mm=voxel_mm, interval_months=priors[0].interval_months,
                         prior_fractions=first.n_fractions, prior_modality=first.modality, assume_hu=assume_hu,
                         allow_missing_dose=True, structure_map=structure_map, end_caps=end_caps, name=name,
                         progress=progress, accept=accept, bounds=bounds)
    box, box_names = region_box(new_case, region_names, REGION_MARGIN_MM)
    mapped = [map_prior(o, new_case, new_folder, box, box_names, rigid_settings=rigid_settings,
                        deformable_settings=deformable_settings, progress=progress, accept=accept, bounds=bounds)
              for o in opened]
    return PriorCoursesImport(_assemble(new_case, mapped), tuple(mapped))


def _check_distinct(folders) -> None:
    """The last of the scanned prior folders must be another course: not an earlier folder, not
    holding an earlier folder's RTDOSE."""
    last, k_last = folders[-1], len(folders)
    uids = {str(e.ds.SOPInstanceUID): e.path for e in last.rtdose}
    for k, f in enumerate(folders[:-1], 1):
        if f.root == last.root:
            raise MixedInputError(f"{last.root}: given twice as a prior folder (courses {k} and {k_last})")
        same = [(uids[str(d.ds.SOPInstanceUID)], d.path) for d in f.rtdose if str(d.ds.SOPInstanceUID) in uids]
        if same:
            raise MixedInputError(f"{same[0][0]}: the same RTDOSE (SOP Instance UID) as {same[0][1]} of prior course "
                                  f"{k}; one course would be counted twice. Give each prior course's own dose")


def _assemble(new_case: Case, mapped: list[MappedPrior]) -> Case:
    """The case on the new CT with the mapped courses, its notes and records."""
    several = len(mapped) > 1
    source = dict(new_case.source)
    kept = [n for n in source.get("notes", []) if not n.startswith(_NEW_FOLDER_PRIOR_NOTES)]
    folder_notes, course_notes = [], []
    for k, m in enumerate(mapped, 1):
        tag = f"prior course {k} " if several else "prior "
        folder_notes += [f"{tag}folder: {n}" for n in m.opened.case.source.get("notes", [])
                         if n.startswith(_NEW_FOLDER_PRIOR_NOTES) and "resampled" not in n]
        course_notes += [f"prior course {k}: {n}" if several else n for n in m.notes]
    source["notes"] = kept + folder_notes + course_notes
    rois = {r["name"]: r for r in source.get("rois", [])}
    for s in new_case.structures.values():
        if s.name in rois:
            outside = [round(float((s.mask & ~m.covered).sum()) / max(1, int(s.mask.sum())), 6) for m in mapped]
            if several:
                rois[s.name]["fraction_outside_prior_dose_grid_by_course"] = outside
            else:
                rois[s.name]["fraction_outside_dose_grid"] = outside[0]
    first_src = mapped[0].opened.case.source
    source.update({"rtdose_files": [], "dose_summation_type": first_src["dose_summation_type"],
                   "dose_type": first_src["dose_type"]})
    if several:
        source["registration"] = "; ".join(f"prior course {k}: {m.course.mapping}" for k, m in enumerate(mapped, 1))
        source["prior_mappings"] = [dict(m.record, course=k, dose_summation_type=m.opened.case.source[
            "dose_summation_type"], dose_type=m.opened.case.source["dose_type"]) for k, m in enumerate(mapped, 1)]
    else:
        source["registration"] = mapped[0].course.mapping
        source["prior_mapping"] = mapped[0].record
    overrides = [o for o in source.get("input_overrides", []) if o.get("flag") != "--allow-missing-dose"]
    for m in mapped:
        overrides += list(m.overrides)
    source.pop("input_overrides", None)
    record_overrides(source, overrides)
    return Case(new_case.name, new_case.grid, new_case.ct_hu, new_case.structures, mapped[0].dose_gy,
                mapped[0].course, source, tuple(PriorDose(m.course, m.dose_gy) for m in mapped[1:]))
