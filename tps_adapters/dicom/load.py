"""A folder of DICOM-RT files -> :class:`reirrad_opt.case.Case` (the prior course's anatomy and dose).

Everything resampled or assumed is stated in ``case.source["notes"]``; nothing that the folder
does not say (the interval between courses, or the fractionation when there is no RTPLAN) is
guessed: it must be given by the caller.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure, canonical_name, default_role, non_anatomical_reason
from reirrad_opt.safe_names import printable

from reirrad_opt.plausibility import (DEFAULT_BOUNDS, PlausibilityBounds, check_prior_fractionation, check_voxel_count,
                                      record_overrides)

from .checks import beam_dose_override, check_options, check_prior, duplicate_name_error, storage_name
from .ct import CTVolume, read_ct_series
from .errors import (DicomImportWarning, DoseCoverageWarning, GeometryError, MissingDataError, MixedInputError,
                     PriorCourseError, UnsupportedDoseError)
from .prior_rbe import apply_prior_dose_type
from .rtdose import DoseGrid, check_embedded_dvhs, read_rtdose, resample_axes, resample_dose
from .rtplan import PlanInfo, read_rtplan
from .rasterize import DEFAULT_END_CAPS, END_CAP_TEXT, END_CAPS, grid_edge_extent, stack_extent, union_extent
from .rtstruct import StructureSet, rasterize_roi, read_structure_set
from .scan import DicomFolder, scan_folder

PARTICLE_MODALITIES = ("proton", "carbon", "helium", "oxygen", "neon")
GRID_CHOICES = ("ct", "dose")


_ROLE_BY_INTERPRETED_TYPE = {
    "EXTERNAL": "external", "PTV": "target", "CTV": "target", "GTV": "target", "TREATED_VOLUME": "target",
    "IRRAD_VOLUME": "other", "ORGAN": "oar", "AVOIDANCE": "oar", "CAVITY": "other", "SUPPORT": "other",
    "FIXATION": "other", "BOLUS": "other", "CONTRAST_AGENT": "other", "CONTROL": "other", "DOSE_REGION": "other",
    "MARKER": "other", "REGISTRATION": "other", "ISOCENTER": "other", "BRACHY_CHANNEL": "other",
}


def roi_role(canonical: str, interpreted_type: str) -> str:
    """Role of an imported ROI: target and external names (rGTV, PTV, GTV..., External) and
    non-anatomical names (isodose, opt*, z_*, rings, couch, PRVs: 'other', see
    :func:`reirrad_opt.geometry.non_anatomical_reason`) keep the role of their name; otherwise the RT
    ROI Interpreted Type decides when it is set (PTV/CTV/GTV -> target, ORGAN/AVOIDANCE -> oar,
    EXTERNAL -> external, others -> other), else 'oar'."""
    by_name = default_role(canonical)
    if by_name in ("target", "external", "other"):
        return by_name
    return _ROLE_BY_INTERPRETED_TYPE.get(interpreted_type.upper().strip(), "") or by_name


def _spacing_tuple(voxel_mm: float | Sequence[float]) -> tuple[float, float, float]:
    if np.isscalar(voxel_mm):
        v = float(voxel_mm)  # type: ignore[arg-type]
        out = (v, v, v)
    else:
        vals = [float(v) for v in voxel_mm]  # type: ignore[union-attr]
        if len(vals) != 3:
            raise ValueError(f"voxel_mm must be one number or three (dz, dy, dx), got {voxel_mm!r}")
        out = (vals[0], vals[1], vals[2])
    if min(out) <= 0 or not all(np.isfinite(out)):
        raise ValueError(f"voxel_mm must be positive, got {voxel_mm!r}")
    return out


def grid_over_extent(axes: tuple[np.ndarray, np.ndarray, np.ndarray], spacing: tuple[float, float, float]) -> Grid:
    """A grid of ``spacing`` (dz, dy, dx) starting at the first voxel centre of ``axes`` and not
    reaching beyond the last one."""
    shape = tuple(int(np.floor((a[-1] - a[0]) / s + 1e-6)) + 1 for a, s in zip(axes, spacing))
    return Grid(shape, spacing, tuple(float(a[0]) for a in axes))


def _uniform_axes_grid(axes: tuple[np.ndarray, np.ndarray, np.ndarray], what: str) -> Grid:
    spacing = []
    for a, name in zip(axes, "zyx"):
        if a.size < 2:
            raise GeometryError(f"{what}: only one voxel along {name}; cannot use it as the case grid")
        d = np.diff(a)
        if np.ptp(d) > 0.01:
            raise GeometryError(f"{what}: non-uniform spacing along {name} ({sorted(set(np.round(d, 3)))} mm); "
                                "give voxel_mm to resample onto a uniform grid")
        spacing.append(float(np.mean(d)))
    return Grid(tuple(a.size for a in axes), tuple(spacing), tuple(float(a[0]) for a in axes))


def _choose_doses(folder: DicomFolder, doses: list[DoseGrid], notes: list[str]) -> tuple[list[DoseGrid], str]:
    """Select the RTDOSE(s) that make the prior course: one PLAN (or MULTI_PLAN) dose, else the
    BEAM doses summed, else one FRACTION dose. Returns (doses, summation)."""
    by_kind: dict[str, list[DoseGrid]] = {}
    for d in doses:
        by_kind.setdefault(d.summation_type, []).append(d)
    plan_like = by_kind.get("PLAN", []) + by_kind.get("MULTI_PLAN", [])
    if len(plan_like) > 1:
        raise MixedInputError(f"{folder.root}: {len(plan_like)} plan-level RTDOSE files "
                              f"({', '.join(d.path.name for d in plan_like)}); the prior course must be one dose: "
                              "sum them in the TPS (a plan sum) or import one course at a time")
    if plan_like:
        chosen = plan_like[0]
        ignored = [d for d in doses if d is not chosen]
        if ignored:
            notes.append(f"RTDOSE: {chosen.summation_type} dose {chosen.path.name} used; "
                         f"{', '.join(f'{d.summation_type} {d.path.name}' for d in ignored)} not added to it")
        beams = by_kind.get("BEAM", [])
        if beams and all(b.same_geometry(chosen) and b.units == chosen.units for b in beams):
            diff = float(np.max(np.abs(sum(b.values for b in beams) - chosen.values)))
            notes.append(f"RTDOSE: the {len(beams)} BEAM dose(s) sum to the PLAN dose within {diff:.3g} {chosen.units} "
                         f"(largest voxel difference; PLAN maximum {chosen.max_value:.4g})")
            quantum = max(b.scaling for b in beams) * len(beams) + chosen.scaling
            if diff > max(0.01 * chosen.max_value, quantum):
                warnings.warn(f"{folder.root}: the BEAM doses do not sum to the PLAN dose {chosen.path.name} "
                              f"(largest difference {diff:.3g} {chosen.units}); the PLAN dose is used",
                              DicomImportWarning, stacklevel=3)
        return [chosen], chosen.summation_type
    if by_kind.get("BEAM"):
        beams = by_kind["BEAM"]
        seen: dict[int, Path] = {}
        for b in beams:
            for n in b.referenced_beams:
                if n in seen:
                    raise MixedInputError(f"{b.path}: beam {n} is also the beam of {seen[n].name}; "
                                          "a beam dose would be counted twice")
                seen[n] = b.path
        plans = {b.referenced_plan_uid for b in beams}
        if len(plans) > 1:
            raise MixedInputError(f"{folder.root}: the BEAM doses refer to {len(plans)} different plans {sorted(plans)}")
        others = [d for d in doses if d.summation_type != "BEAM"]
        if others:
            notes.append(f"RTDOSE: {', '.join(f'{d.summation_type} {d.path.name}' for d in others)} not used")
        return beams, "BEAM"
    if by_kind.get("FRACTION"):
        if len(by_kind["FRACTION"]) > 1:
            raise MixedInputError(f"{folder.root}: several FRACTION doses "
                                  f"({', '.join(d.path.name for d in by_kind['FRACTION'])}); import one")
        return by_kind["FRACTION"], "FRACTION"
    kinds = sorted(by_kind)
    raise UnsupportedDoseError(f"{folder.root}: RTDOSE summation type(s) {kinds} ({', '.join(d.path.name for d in doses)}) "
                               "cannot be used as the prior course; export the PLAN dose (or the BEAM doses)")


def _choose_plan(folder: DicomFolder, plans: list[PlanInfo], doses: list[DoseGrid]) -> PlanInfo | None:
    if not plans:
        return None
    refs = {d.referenced_plan_uid for d in doses if d.referenced_plan_uid}
    if refs:
        match = [p for p in plans if p.sop_instance_uid in refs]
        if not match:
            raise MixedInputError(f"{folder.root}: the RTDOSE refers to RT Plan {sorted(refs)} but the folder's plan(s) are "
                                  f"{[p.sop_instance_uid + ' (' + p.path.name + ')' for p in plans]}")
        return match[0]
    if len(plans) > 1:
        raise MixedInputError(f"{folder.root}: {len(plans)} RT Plans ({', '.join(p.path.name for p in plans)}) and no "
                              "RTDOSE saying which one was delivered; keep one")
    return plans[0]


def _prior_course(folder: DicomFolder, plan: PlanInfo | None, prior_fractions: int | None,
                  interval_months: float | None, prior_modality: str | None, notes: list[str],
                  bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> PriorCourse:
    if interval_months is None:
        raise PriorCourseError(f"{folder.root}: the interval between the prior course and the re-irradiation is not "
                               "recorded in DICOM; give it (--interval-months MONTHS)")
    n = None
    if plan is not None and plan.n_fractions is not None:
        n = plan.n_fractions
        if prior_fractions is not None and int(prior_fractions) != n:
            msg = (f"the number of fractions given ({prior_fractions}) differs from RTPLAN {plan.path.name} ({n}); "
                   f"{prior_fractions} is used as given")
            warnings.warn(f"{folder.root}: {msg}", DicomImportWarning, stacklevel=3)
            notes.append(f"prior course: {msg}")
            n = int(prior_fractions)
        else:
            notes.append(f"prior course: {n} fractions from RTPLAN {plan.path.name}")
    elif prior_fractions is not None:
        n = int(prior_fractions)
        where = (f"RTPLAN {plan.path.name} has fraction groups {plan.fractions_per_group}" if plan is not None
                 else "no RTPLAN in the folder")
        notes.append(f"prior course: {n} fractions as given ({where})")
    elif plan is not None and len(plan.fractions_per_group) > 1:
        raise PriorCourseError(f"{plan.path}: {len(plan.fractions_per_group)} fraction groups "
                               f"({plan.fractions_per_group} fractions); the prior course has no single fractionation: "
                               "give the one to use for its EQD2 (--prior-fractions N)")
    else:
        where = f"{plan.path} has no fraction group" if plan is not None else f"{folder.root} holds no RTPLAN"
        raise PriorCourseError(f"{where}: the number of fractions of the prior course is unknown; give it "
                               "(--prior-fractions N)")
    if plan is not None and plan.modality:
        modality = plan.modality
        if prior_modality and prior_modality != modality:
            notes.append(f"prior course: modality {prior_modality!r} given, RTPLAN says {modality!r}; {prior_modality!r} used")
            modality = prior_modality
    elif prior_modality:
        modality = prior_modality
        notes.append(f"prior course: modality {modality!r} as given")
    else:
        modality = "photon"
        notes.append("prior course: no RTPLAN states the radiation type; photon assumed (give --prior-modality otherwise)")
    rx = plan.prescription_gy if plan is not None else None
    # the importer's own check first: its error names the folder and the option (--prior-fractions)
    check_prior_fractionation(n, rx, str(folder.root), bounds)
    label = f" (RTPLAN {plan.label!r})" if plan is not None and plan.label else ""
    rx_text = f"{rx:g} Gy" if rx is not None else "prescription not recorded"
    return PriorCourse(n_fractions=n, interval_months=float(interval_months), modality=modality, prescription_gy=rx,
                       description=f"{rx_text} in {n} fx, {modality}{label}")


def _check_dose_kind(doses: list[DoseGrid], modality: str, relative_dose_reference_gy: float | None,
                     notes: list[str]) -> float:
    """Check units and dose type; returns the factor from stored units to Gy."""
    units = {d.units for d in doses}
    types = {d.dose_type for d in doses}
    names = ", ".join(d.path.name for d in doses)
    if len(units) > 1 or len(types) > 1:
        raise UnsupportedDoseError(f"{names}: the doses mix units {sorted(units)} / types {sorted(types)}")
    unit, kind = units.pop(), types.pop()
    factor = 1.0
    if unit == "RELATIVE":
        if relative_dose_reference_gy is None:
            raise UnsupportedDoseError(f"{names}: DoseUnits RELATIVE; the dose in Gy is unknown. Give the dose in Gy "
                                       "that a relative value of 1 stands for (--relative-dose-gy GY)")
        factor = float(relative_dose_reference_gy)
        notes.append(f"RTDOSE: DoseUnits RELATIVE converted to Gy with 1.0 = {factor:g} Gy, as given")
    elif relative_dose_reference_gy is not None:
        notes.append("RTDOSE: DoseUnits already GY; the relative-dose reference given was not used")
    if kind == "PHYSICAL":
        pass
    elif kind == "EFFECTIVE":
        if modality not in PARTICLE_MODALITIES:
            raise UnsupportedDoseError(
                f"{names}: DoseType EFFECTIVE (a biologically weighted dose) for a {modality} course; the prior "
                "physical dose is needed. Export the PHYSICAL dose (or state a particle modality with --prior-modality)")
        notes.append(f"RTDOSE: DoseType EFFECTIVE ({modality}): the RBE-weighted dose of the TPS is used as the prior dose "
                     "(Gy(RBE))")
    else:
        raise UnsupportedDoseError(f"{names}: DoseType {kind!r}; expected PHYSICAL (or EFFECTIVE for particles)")
    return factor


def load_case(
    path: str | os.PathLike,
    *,
    prior_fractions: int | None = None,
    interval_months: float | None = None,
    structure_map: dict[str, str] | None = None,
    grid: str = "ct",
    voxel_mm: float | Sequence[float] | None = None,
    prior_modality: str | None = None,
    prior_rbe: float | None = None,
    relative_dose_reference_gy: float | None = None,
    assume_hu: float | None = None,
    allow_missing_dose: bool = False,
    end_caps: str = DEFAULT_END_CAPS,
    name: str | None = None,
    progress: Callable[[str], None] | None = None,
    accept: Collection[str] = (),
    bounds: PlausibilityBounds = DEFAULT_BOUNDS,
) -> Case:
    """Import a folder of DICOM-RT files (any file names) as a :class:`Case`.

    Args:
        path: the folder (searched recursively).
        prior_fractions: number of fractions of the prior course; required when there is no
            RTPLAN (or its fraction groups differ); overrides the RTPLAN (with a warning).
        interval_months: months from the end of the prior course to the re-irradiation; required.
        structure_map: canonical name -> exported ROI name (``{"rGTV": "GTV_recur"}``).
        grid: 'ct' (the CT grid; default) or 'dose' (the grid of the prior RTDOSE).
        voxel_mm: resample that grid onto this spacing (one number or (dz, dy, dx) mm).
        prior_modality: 'photon', 'proton', 'carbon', ... when there is no RTPLAN.
        prior_rbe: constant RBE applied to a PHYSICAL particle prior dose (default 1.1 for protons;
            required for carbon and heavier ions); see :mod:`.prior_rbe`.
        relative_dose_reference_gy: Gy per relative unit, for DoseUnits RELATIVE.
        assume_hu: HU to put where there is no CT (no CT series, or a case grid beyond the CT);
            without it such a case is refused.
        allow_missing_dose: accept a folder without RTDOSE (prior dose 0 Gy everywhere, stated).
        end_caps: how far a ROI reaches beyond its end contour planes: 'half' (default: it ends at
            them, as Eclipse and RayStation volumes show), 'full' or 'none' (see :mod:`.rasterize`).
        name: case name (default: Patient ID).
        progress: callable receiving progress messages.
        accept: override keys the user confirmed ('zero_prior', 'prior_off_target',
            'partial_beam_dose'; see :mod:`reirrad_opt.plausibility`), recorded in
            ``source["input_overrides"]``.
        bounds: plausibility bounds and the voxel limit (docs/input-checks.md).

    Raises:
        DicomImportError subclasses (see :mod:`.errors`) naming the file and the problem.
    """
    if grid not in GRID_CHOICES:
        raise ValueError(f"grid must be one of {GRID_CHOICES}, got {grid!r}")
    if end_caps not in END_CAPS:
        raise ValueError(f"end_caps must be one of {END_CAPS}, got {end_caps!r}")
    say = progress or (lambda message: None)
    notes: list[str] = []
    check_options(voxel_mm, assume_hu, bounds)
    folder = scan_folder(path)
    ident = folder.identity()
    say(f"scanned {folder.root}: {len(folder.ct)} CT, {len(folder.rtstruct)} RTSTRUCT, {len(folder.rtdose)} RTDOSE, "
        f"{len(folder.rtplan)} RTPLAN, {len(folder.ignored)} ignored")
    for f, reason in folder.ignored:
        notes.append(f"ignored {f.relative_to(folder.root)}: {reason}")

    plans = [read_rtplan(e.path, e.ds) for e in folder.rtplan]
    doses = [read_rtdose(e.path, bounds=bounds) for e in folder.rtdose]
    if doses:
        chosen, summation = _choose_doses(folder, doses, notes)
    elif allow_missing_dose:
        chosen, summation = [], ""
        notes.append("RTDOSE: none in the folder; the prior dose is 0 Gy everywhere (allowed explicitly)")
    else:
        raise MissingDataError(f"{folder.root}: no RTDOSE; the prior course's dose is needed "
                               "(a case without a prior dose, 0 Gy everywhere, only with --allow-missing-dose, "
                               "load_case(..., allow_missing_dose=True))")
    plan = _choose_plan(folder, plans, chosen)
    if plan is not None:
        notes.extend(plan.notes)
    prior = _prior_course(folder, plan, prior_fractions, interval_months, prior_modality, notes, bounds)
    factor = _check_dose_kind(chosen, prior.modality, relative_dose_reference_gy, notes) if chosen else 1.0
    prior, rbe_factor = apply_prior_dose_type(chosen, prior, prior_rbe, notes, folder.root)
    factor *= rbe_factor
    overrides = beam_dose_override(folder.root, [d.path.name for d in chosen], plan is not None,
                                   accept) if summation == "BEAM" else []
    if summation == "BEAM" and plan is not None:
        got = sorted(n for d in chosen for n in d.referenced_beams)
        missing = sorted(set(plan.treatment_beams) - set(got))
        if missing:
            raise MissingDataError(f"{folder.root}: BEAM doses for treatment beam(s) {missing} of RTPLAN {plan.path.name} "
                                   f"are missing (found beams {got}); export all beam doses or the PLAN dose")
    if summation == "BEAM":
        notes.append(f"RTDOSE: {len(chosen)} BEAM dose(s) summed ({', '.join(d.path.name for d in chosen)})")
    if summation == "FRACTION":
        factor *= prior.n_fractions
        notes.append(f"RTDOSE: FRACTION dose multiplied by the {prior.n_fractions} fractions of the prior course")
    for d in chosen:
        notes.extend(d.notes)
    for d in doses:
        text = check_embedded_dvhs(d)
        if text:
            notes.append(text)

    ct: CTVolume | None = None
    if folder.ct:
        say(f"reading {len(folder.ct)} CT slices")
        ct = read_ct_series([e.path for e in folder.ct], [e.ds for e in folder.ct], progress=say,
                            bounds=bounds)
        notes.extend(ct.notes)

    if grid == "ct":
        if ct is None:
            raise MissingDataError(f"{folder.root}: no CT series; use the dose grid as the case grid (grid='dose', "
                                   "--grid dose) together with assume_hu (--assume-hu)")
        base = ct.grid
        case_grid = grid_over_extent(base.axis_coordinates_mm(), _spacing_tuple(voxel_mm)) if voxel_mm is not None else base
    else:
        if not chosen:
            raise MissingDataError(f"{folder.root}: grid='dose' needs an RTDOSE")
        axes = chosen[0].axes_mm
        case_grid = (grid_over_extent(axes, _spacing_tuple(voxel_mm)) if voxel_mm is not None
                     else _uniform_axes_grid(axes, str(chosen[0].path)))
    # CT, prior dose, coverage and resampling copies (float32) plus one mask per ROI, per voxel
    check_voxel_count(case_grid.shape, f"{folder.root}: the case grid ({grid.upper()} grid"
                      f"{f', voxel {voxel_mm} mm' if voxel_mm is not None else ''})",
                      24 + len(folder.rtstruct and folder.rtstruct[0].ds.get("StructureSetROISequence", []) or []),
                      bounds, fix="use a coarser --voxel-mm")
    resampled_to = f" resampled to {case_grid.spacing_mm} mm (z, y, x)" if voxel_mm is not None else ""
    notes.append(f"case grid: the {grid.upper()} grid{resampled_to}, shape {case_grid.shape} (z, y, x)")

    # CT numbers on the case grid
    if ct is not None and case_grid == ct.grid:
        ct_hu = ct.hu
    elif ct is not None:
        ct_hu, covered = resample_axes(ct.hu, ct.grid.axis_coordinates_mm(), case_grid.axis_coordinates_mm())
        notes.append("CT: resampled trilinearly onto the case grid")
        if not covered.all():
            frac = 1.0 - covered.mean()
            if assume_hu is None:
                raise MissingDataError(f"{folder.root}: the CT covers only {100 * (1 - frac):.1f} % of the case grid; "
                                       "give the HU to assume elsewhere (--assume-hu) or use the CT grid")
            ct_hu[~covered] = assume_hu
            notes.append(f"CT: {100 * frac:.1f} % of the case grid lies outside the CT; {assume_hu:g} HU assumed there")
    else:
        if assume_hu is None:
            raise MissingDataError(f"{folder.root}: no CT series; give the HU to assume (--assume-hu, e.g. 0 for water)")
        ct_hu = np.full(case_grid.shape, assume_hu, dtype=np.float32)
        notes.append(f"CT: none in the folder; {assume_hu:g} HU assumed everywhere")

    # Prior dose on the case grid
    say("resampling the prior dose")
    prior_dose = np.zeros(case_grid.shape, dtype=np.float32)
    dose_covered = np.zeros(case_grid.shape, dtype=bool) if chosen else np.ones(case_grid.shape, dtype=bool)
    for d in chosen:
        values, covered = resample_dose(d, case_grid)
        prior_dose += values
        dose_covered |= covered
    if factor != 1.0:
        prior_dose *= np.float32(factor)
    if chosen and not (len(chosen) == 1 and all(
            a.shape == b.shape and np.allclose(a, b, atol=1e-3) for a, b in zip(chosen[0].axes_mm, case_grid.axis_coordinates_mm()))):
        notes.append("RTDOSE: resampled trilinearly onto the case grid (edge values held within half a dose voxel; "
                     "0 Gy beyond the dose grid)")
    if np.any(prior_dose < 0):
        raise UnsupportedDoseError(f"{folder.root}: negative dose values in {', '.join(d.path.name for d in chosen)}")

    # Structures
    structures: dict[str, Structure] = {}
    roi_records, empty = [], []
    ss: StructureSet | None = None
    if folder.rtstruct:
        entry = folder.rtstruct[0]
        ss = read_structure_set(entry.path, entry.ds)
        # contours must lie on the images present (CT, case grid) or their contoured stack in z
        contour_extent = stack_extent(ss.rois, union_extent(grid_edge_extent(case_grid),
                                                            *([grid_edge_extent(ct.grid)] if ct else [])))
        notes.append(f"RTSTRUCT: end caps {end_caps!r} (a ROI {END_CAP_TEXT[end_caps]})")
        if ct is not None and ss.referenced_series_uids and ct.series_instance_uid not in ss.referenced_series_uids:
            notes.append(f"RTSTRUCT {entry.path.name} refers to CT series {ss.referenced_series_uids}, not to the "
                         f"folder's CT series {ct.series_instance_uid}; contours are used in the shared frame of reference")
        exported_by_name: dict[str, str] = {}
        for roi in ss.rois:
            for text in roi.skipped:
                notes.append(f"RTSTRUCT ROI {roi.name!r}: {text}")
            if roi.is_empty:
                empty.append(roi.name)
                continue
            say(f"rasterising {printable(roi.name)}")
            r = rasterize_roi(roi, case_grid, end_caps=end_caps, extent_mm=contour_extent)
            if not r.mask.any():
                empty.append(roi.name)
                notes.append(f"RTSTRUCT ROI {roi.name!r}: no voxel centre of the case grid inside its contours "
                             f"({100 * r.fraction_outside:.0f} % of it outside the grid); not imported")
                continue
            cname = storage_name(canonical_name(roi.name, structure_map), str(ss.path), notes)
            if cname in exported_by_name:
                raise duplicate_name_error(ss.path, exported_by_name[cname], roi.name, cname, structure_map)
            exported_by_name[cname] = roi.name
            role = roi_role(cname, roi.interpreted_type)
            structures[cname] = Structure(cname, r.mask, role)
            if r.fraction_outside > 0:
                msg = (f"ROI {roi.name!r}: {100 * r.fraction_outside:.1f} % of its volume lies outside the case grid "
                       "and is not part of the mask")
                notes.append(f"RTSTRUCT {msg}")
                warnings.warn(f"{ss.path}: {msg}", DicomImportWarning, stacklevel=2)
            outside_dose = float((r.mask & ~dose_covered).sum()) / float(r.mask.sum())
            if outside_dose > 0:
                msg = (f"structure {cname!r} ({roi.name!r}): {100 * outside_dose:.1f} % of its volume lies outside the "
                       "prior dose grid, where the prior dose is taken as 0 Gy")
                notes.append(f"RTDOSE: {msg}")
                warnings.warn(f"{folder.root}: {msg}", DoseCoverageWarning, stacklevel=2)
            roi_records.append({"name": cname, "exported_name": roi.name, "roi_number": roi.number,
                                "interpreted_type": roi.interpreted_type, "volume_cc": round(r.volume_cc, 4),
                                "fraction_outside_grid": round(r.fraction_outside, 6),
                                "fraction_outside_dose_grid": round(outside_dose, 6)})
        if empty:
            notes.append(f"RTSTRUCT: empty ROI(s) not imported: {empty}")
        helpers = [f"{r['exported_name']!r} ({non_anatomical_reason(r['name'])})" for r in roi_records
                   if non_anatomical_reason(r["name"])]
        if helpers:
            notes.append(f"RTSTRUCT: non-anatomical structure(s), role 'other' (never an organ or a target): "
                         f"{', '.join(helpers)}")
    else:
        notes.append("RTSTRUCT: none in the folder; the case has no structures")

    source = {
        "kind": "dicom",
        "reference_dir": str(folder.root),
        "patient_id": ident["patient_id"],
        "study_instance_uid": ident["study_instance_uid"],
        "frame_of_reference_uid": ident["frame_of_reference_uid"],
        "ct_series_instance_uid": ct.series_instance_uid if ct else "",
        "ct_sop_instance_uids": ct.sop_instance_uids if ct else [],
        "ct_slice_z_mm": ct.slice_z_mm if ct else [],
        "patient_position": ct.patient_position if ct else "",
        "structure_set_sop_instance_uid": ss.sop_instance_uid if ss else "",
        "structure_set_file": str(ss.path.relative_to(folder.root)) if ss else "",
        "rtplan_sop_instance_uid": plan.sop_instance_uid if plan else "",
        "rtplan_file": str(plan.path.relative_to(folder.root)) if plan else "",
        "rtdose_files": [str(d.path.relative_to(folder.root)) for d in chosen],
        "dose_summation_type": summation,
        "dose_type": chosen[0].dose_type if chosen else "",
        "case_grid": grid if voxel_mm is None else f"{grid} resampled",
        "end_caps": end_caps,
        "rois": roi_records,
        "empty_rois": empty,
        "notes": notes,
    }
    targets = {n: s.mask for n, s in structures.items() if s.role == "target"}
    if chosen:
        overrides += check_prior(prior_dose, prior.n_fractions, prior.prescription_gy, targets,
                                 f"{folder.root} ({', '.join(d.path.name for d in chosen)})", bounds, accept)
    else:
        overrides.append({"flag": "--allow-missing-dose", "reason": f"{folder.root}: no RTDOSE; prior dose 0 Gy everywhere"})
    record_overrides(source, overrides)
    case_name = name or ident["patient_id"] or folder.root.name
    return Case(case_name, case_grid, ct_hu.astype(np.float32, copy=False), structures, prior_dose, prior, source)
