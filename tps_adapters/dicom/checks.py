"""Import checks of a DICOM-RT folder that need more than one object (see docs/input-checks.md).

* :func:`beam_dose_override`: BEAM doses without the RT Plan that lists the beams cannot be
  checked for completeness (one of two beams is half the prior dose): refused unless
  ``--accept-partial-beam-dose``.
* :func:`storage_name`: an ROI name with control characters (a NUL truncates the case file's key)
  is stored with ``_`` in their place, the rename stated in the notes and warned.
* :func:`duplicate_name_error`: two ROIs mapping to one name, with a fix that can work.
* :func:`check_prior`: the prior course's fractionation and dose against the plausibility bounds.
* :func:`check_options`: the caller's voxel size and assumed HU.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Collection, Mapping

import numpy as np

from reirrad_opt.geometry import canonical_name
from reirrad_opt.plausibility import (DEFAULT_BOUNDS, ImplausibleInputError, PlausibilityBounds, check_prior_dose,
                                      check_prior_fractionation, check_spacing_mm, require_override)
from reirrad_opt.safe_names import printable, structure_key

from .errors import DicomImportWarning, StructureNameError


def beam_dose_override(root: Path, beam_files: list[str], plan_found: bool, accept: Collection[str]) -> list[dict]:
    """Override record for BEAM doses summed without their RT Plan ([] when the plan is there)."""
    if plan_found:
        return []
    reason = (f"{root}: the prior dose is the sum of {len(beam_files)} BEAM dose(s) ({', '.join(beam_files)}) without "
              "a PLAN dose or the RT Plan that lists the beams, so a missing beam (and a prior dose read too low) "
              "cannot be detected")
    return [require_override("partial_beam_dose", accept, reason)]


def storage_name(name: str, where: str, notes: list[str]) -> str:
    """The name to store a structure under; a changed name is noted and warned (DicomImportWarning)."""
    key = structure_key(name)
    if key != name:
        msg = (f"ROI name {printable(name)} holds characters that cannot be stored or shown (control characters); "
               f"stored as {printable(key)}")
        notes.append(f"RTSTRUCT {msg}")
        warnings.warn(f"{where}: {msg}", DicomImportWarning, stacklevel=3)
    return key


def duplicate_name_error(path: Path, first: str, second: str, cname: str,
                         structure_map: Mapping[str, str] | None) -> StructureNameError:
    """The error for ROIs ``first`` and ``second`` that both map to ``cname``, suggesting a
    --structure-map entry only when one would separate them."""
    base = f"{path}: ROIs {printable(first)} and {printable(second)} both map to {printable(cname)}"
    candidate = f"{cname}_2"
    trial = dict(structure_map or {})
    trial[candidate] = second
    if canonical_name(second, trial) == candidate and canonical_name(first, trial) != candidate:
        return StructureNameError(f"{base}; give the second another name with --structure-map "
                                  f"(e.g. --structure-map {candidate}={second})")
    same = "have the same name" if first == second else "differ only in case, spaces or separators"
    return StructureNameError(f"{base}: the two ROIs {same}, so --structure-map cannot tell them apart; rename or "
                              "delete one of them in the TPS and export the structure set again")


def check_prior(prior_dose_gy: np.ndarray, n_fractions: int, prescription_gy: float | None,
                targets: Mapping[str, np.ndarray], where: str, bounds: PlausibilityBounds = DEFAULT_BOUNDS,
                accept: Collection[str] = ()) -> list[dict]:
    """The prior course's fractionation and dose (Gy); returns override records (see
    :mod:`reirrad_opt.plausibility`)."""
    check_prior_fractionation(n_fractions, prescription_gy, where, bounds)
    return check_prior_dose(prior_dose_gy, prescription_gy, targets, where, bounds, accept)


def check_options(voxel_mm, assume_hu: float | None, bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> None:
    """The caller's voxel size (mm; one or three values) and assumed CT number (HU) against the
    plausibility bounds, before anything is read."""
    if voxel_mm is not None:
        check_spacing_mm(np.atleast_1d(np.asarray(voxel_mm, dtype=float)), "--voxel-mm (voxel_mm)", bounds)
    if assume_hu is not None:
        lo, hi = bounds.hu_range
        if not np.isfinite(assume_hu) or not lo <= float(assume_hu) <= hi:
            raise ImplausibleInputError(f"--assume-hu (assume_hu) {assume_hu:g} HU; expected {lo:g} to {hi:g} HU")
