"""Plausibility of imported input: resource limits, the prior course, CT numbers, voxel sizes.

Every importer (DICOM-RT, OpenKBP) runs the same checks with the same bounds, held in one frozen
:class:`PlausibilityBounds` passed in by the caller (the CLI sets ``max_voxels`` from
``--max-voxels``). The dangerous direction is an under-read prior dose: a new course planned on it
overdoses an organ already at tolerance. So:

* impossible values (a non-finite dose or CT number, a prior maximum above
  ``max_dose_over_rx`` x the prescription or above ``max_dose_gy``, a voxel of 0 or 1e200 mm,
  -70 Gy or 100,000 fractions) are refused with :class:`ImplausibleInputError`;
* inputs that are possible but usually a mistake (an all-zero or nearly-zero prior dose, a prior
  dose that covers none of the contoured targets, BEAM doses whose completeness cannot be checked)
  are refused with :class:`OverrideRequiredError` unless the user confirms with the flag it names;
  an accepted override is returned as a record ``{"flag": "--accept-...", "reason": "..."}`` that
  the importer stores in ``case.source["input_overrides"]`` (and so in plan.json and reports);
* grids larger than ``max_voxels`` are refused with :class:`ResourceLimitError` before anything of
  that size is allocated.

The bounds and flags are listed in docs/input-checks.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

import numpy as np

from .safe_names import printable

#: override key -> command-line flag that confirms it
OVERRIDE_FLAGS: dict[str, str] = {
    "zero_prior": "--accept-zero-prior",
    "prior_off_target": "--accept-prior-off-target",
    "partial_beam_dose": "--accept-partial-beam-dose",
}


class ImplausibleInputError(ValueError):
    """An input value outside physical or clinical plausibility; the message names the file or
    option, the value read and the bound."""


class OverrideRequiredError(ImplausibleInputError):
    """A possible but suspicious input, refused unless the flag ``self.flag`` confirms it."""

    def __init__(self, message: str, flag: str):
        super().__init__(message)
        self.flag = flag


class ResourceLimitError(ValueError):
    """A grid or array too large to allocate under the stated limit (``--max-voxels``)."""


@dataclass(frozen=True)
class PlausibilityBounds:
    """Bounds of the import checks (all documented in docs/input-checks.md).

    Attributes:
        max_voxels: largest grid (voxel count) allocated by an import (CT series, RTDOSE, case
            grid); 64 M voxels of float32 are 0.26 GB per array.
        max_dose_over_rx: prior maximum dose above this multiple of the prior prescription (Gy)
            is an error (a 60 Gy plan's maximum is ~ 1.1 x; 1.5 x is no clinical plan).
        max_dose_gy: prior maximum dose above this (Gy) is an error, prescription known or not.
        zero_dose_fraction_rx: a prior maximum below this fraction of the prescription is
            "nearly zero" (needs --accept-zero-prior); 10 % also catches a per-fraction dose
            exported as the plan dose of a course of 11 or more fractions.
        zero_dose_gy: without a prescription, a prior maximum below this (Gy) is nearly zero.
        target_min_fraction_of_max: the prior dose "covers" a target when the target's mean
            prior dose reaches this fraction of the prior maximum dose; covering none of the
            contoured targets needs --accept-prior-off-target. Relative to the maximum, not to the
            prescription: it tests where the dose is (geometry), the other bounds its scale.
        hu_range: CT numbers (HU) expected in a patient or phantom CT.
        hu_max_fraction_above: share of CT voxels allowed above ``hu_range[1]`` (metal: a few
            voxels up to ``hu_hard_range[1]`` are real); more is an error.
        hu_hard_range: CT numbers (HU) outside this are an error wherever they are. The lower end
            admits the padding value of scanners outside their field of view (-3024 HU on GE).
        voxel_mm_range: (exclusive minimum, maximum) of a voxel size or pixel spacing (mm).
        fractions_range: allowed number of fractions of the prior course.
        max_prescription_gy: largest prior prescription (Gy); it must also be > 0.
        max_interval_months: longest time from a prior course to the new one (months): 50 years.
    """

    max_voxels: int = 64_000_000
    max_dose_over_rx: float = 1.5
    max_dose_gy: float = 150.0
    zero_dose_fraction_rx: float = 0.1
    zero_dose_gy: float = 0.5
    target_min_fraction_of_max: float = 0.5
    hu_range: tuple[float, float] = (-1100.0, 4000.0)
    hu_max_fraction_above: float = 0.01
    hu_hard_range: tuple[float, float] = (-3100.0, 32000.0)
    voxel_mm_range: tuple[float, float] = (0.0, 50.0)
    fractions_range: tuple[int, int] = (1, 100)
    max_prescription_gy: float = 150.0
    max_interval_months: float = 600.0


DEFAULT_BOUNDS = PlausibilityBounds()


def _gy(value: float) -> str:
    """A dose for a message: '61,335.2' below a billion, '6.13e+31' above."""
    return f"{value:,.1f}" if abs(value) < 1e9 else f"{value:.3g}"


def require_override(key: str, accept: Collection[str], reason: str) -> dict:
    """The override record for ``key`` when the user accepted it; OverrideRequiredError otherwise.

    ``reason`` says what is unusual, with numbers; the error adds the flag that accepts it.
    """
    flag = OVERRIDE_FLAGS[key]
    if key not in accept:
        raise OverrideRequiredError(f"{reason}. If this is really so, confirm it with {flag} (recorded in the case "
                                    "and every report)", flag)
    return {"flag": flag, "reason": reason}


def check_voxel_count(shape: tuple[int, ...], what: str, bytes_per_voxel: float,
                      bounds: PlausibilityBounds = DEFAULT_BOUNDS, fix: str = "") -> None:
    """Refuse a grid of ``shape`` over ``bounds.max_voxels`` voxels before it is allocated.

    ``bytes_per_voxel`` estimates what the import holds per voxel (for the GB in the message);
    ``fix`` is a hint (e.g. 'use a coarser --voxel-mm').
    """
    n = 1
    for s in shape:
        n *= int(s)
    if n > bounds.max_voxels:
        gb = n * bytes_per_voxel / 1e9
        shape_text = " x ".join(str(int(s)) for s in shape)
        raise ResourceLimitError(
            f"{what}: a grid of {shape_text} = {n:,} voxels (about {gb:,.1f} GB of memory) exceeds the limit of "
            f"{bounds.max_voxels:,} voxels{'; ' + fix if fix else ''}; raise the limit with --max-voxels N only if "
            "the machine has that memory")


def check_spacing_mm(spacing_mm, what: str, bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> None:
    """Voxel sizes / pixel spacings (mm) must be finite, > 0 and <= ``bounds.voxel_mm_range[1]``."""
    lo, hi = bounds.voxel_mm_range
    values = [float(v) for v in np.ravel(spacing_mm)]
    for v in values:
        if not np.isfinite(v) or v <= lo or v > hi:
            shown = ", ".join(f"{x:g}" for x in values)
            raise ImplausibleInputError(f"{what}: voxel size [{shown}] mm; expected every size > {lo:g} mm and "
                                        f"<= {hi:g} mm")


def check_prior_fractionation(n_fractions: int, prescription_gy: float | None, where: str,
                              bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> None:
    """Prior fractions within ``bounds.fractions_range``; prescription (if known) > 0 and
    <= ``bounds.max_prescription_gy`` Gy."""
    lo, hi = bounds.fractions_range
    if not lo <= int(n_fractions) <= hi:
        raise ImplausibleInputError(f"{where}: the prior course has {n_fractions} fractions; expected {lo} to {hi} "
                                    "(--prior-fractions)")
    if prescription_gy is not None:
        rx = float(prescription_gy)
        if not np.isfinite(rx) or rx <= 0 or rx > bounds.max_prescription_gy:
            raise ImplausibleInputError(f"{where}: prior prescription {rx:g} Gy; expected more than 0 and at most "
                                        f"{bounds.max_prescription_gy:g} Gy (--prior-prescription-gy)")


def check_prior_dose(dose_gy: np.ndarray, prescription_gy: float | None, targets: Mapping[str, np.ndarray],
                     where: str, bounds: PlausibilityBounds = DEFAULT_BOUNDS,
                     accept: Collection[str] = ()) -> list[dict]:
    """Check the prior dose (Gy) on the case grid; returns the override records of accepted flags.

    ``targets``: the contoured targets' masks by name (none: the coverage test is skipped).
    Errors: non-finite or negative values, a maximum above ``max_dose_over_rx`` x the
    prescription or above ``max_dose_gy``. Overrides: a nearly-zero maximum ('zero_prior'), no
    target covered ('prior_off_target').
    """
    dose = np.asarray(dose_gy)
    finite = np.isfinite(dose)
    if not finite.all():
        raise ImplausibleInputError(f"{where}: the prior dose holds {int((~finite).sum()):,} non-finite voxel(s) "
                                    "(inf or NaN; an overflowing DoseGridScaling or a corrupt value)")
    if dose.size and float(dose.min()) < 0:
        raise ImplausibleInputError(f"{where}: the prior dose holds negative values (minimum {float(dose.min()):.4g} Gy)")
    dmax = float(dose.max()) if dose.size else 0.0
    rx = float(prescription_gy) if prescription_gy is not None else None
    if dmax > bounds.max_dose_gy:
        raise ImplausibleInputError(
            f"{where}: the prior dose reaches {_gy(dmax)} Gy, above the plausible maximum of {bounds.max_dose_gy:g} Gy"
            f"{f' (prescription {rx:g} Gy)' if rx else ''}; check DoseGridScaling (3004,000E) and DoseUnits")
    if rx and dmax > bounds.max_dose_over_rx * rx:
        raise ImplausibleInputError(
            f"{where}: the prior dose reaches {_gy(dmax)} Gy, {dmax / rx:.3g} x the prescription of {rx:g} Gy (at most "
            f"{bounds.max_dose_over_rx:g} x is plausible); check DoseGridScaling, DoseUnits and the prescription "
            "(--prior-prescription-gy)")
    overrides: list[dict] = []
    zero_limit = bounds.zero_dose_fraction_rx * rx if rx else bounds.zero_dose_gy
    if dmax < zero_limit:
        basis = (f"{100 * bounds.zero_dose_fraction_rx:g} % of the {rx:g} Gy prescription" if rx
                 else f"{bounds.zero_dose_gy:g} Gy (prescription unknown)")
        what = "is zero everywhere" if dmax == 0 else f"reaches only {dmax:.4g} Gy"
        overrides.append(require_override(
            "zero_prior", accept,
            f"{where}: the prior dose {what}, below {basis}; a prior course read too low lets the new course "
            "overdose organs at tolerance"))
        return overrides  # a (nearly) zero dose covers no target either; one confirmation is enough
    if targets:
        means = {name: float(dose[m].mean()) if m.any() else 0.0 for name, m in targets.items()}
        if all(v < bounds.target_min_fraction_of_max * dmax for v in means.values()):
            shown = ", ".join(f"{printable(name)} {v:.3g} Gy" for name, v in means.items())
            overrides.append(require_override(
                "prior_off_target", accept,
                f"{where}: the prior dose covers none of the contoured targets (mean prior dose {shown}; each below "
                f"{100 * bounds.target_min_fraction_of_max:g} % of the prior maximum {dmax:.4g} Gy): the dose and the "
                "contours may not belong together (wrong frame of reference, offset or plan)"))
    return overrides


def check_ct_hu(hu: np.ndarray, where: str, bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> list[str]:
    """Check CT numbers (HU); returns notes. Errors: non-finite values, any value outside
    ``hu_hard_range``, more than ``hu_max_fraction_above`` of the voxels above ``hu_range[1]``, a CT
    of one single value. Values below ``hu_range[0]`` (scanner padding) are stated in a note."""
    hu = np.asarray(hu)
    notes: list[str] = []
    if hu.size == 0:
        return notes
    finite = np.isfinite(hu)
    if not finite.all():
        raise ImplausibleInputError(f"{where}: {int((~finite).sum()):,} CT value(s) are not finite (inf or NaN); "
                                    "check RescaleSlope / RescaleIntercept")
    lo, hi = float(hu.min()), float(hu.max())
    hard_lo, hard_hi = bounds.hu_hard_range
    if lo < hard_lo or hi > hard_hi:
        raise ImplausibleInputError(f"{where}: CT numbers from {lo:.6g} to {hi:.6g} HU; expected {hard_lo:g} to "
                                    f"{hard_hi:g} HU at most (check RescaleSlope / RescaleIntercept)")
    if lo == hi:
        raise ImplausibleInputError(f"{where}: every CT value is {lo:g} HU; a CT of one single value holds no "
                                    "anatomy (check RescaleSlope, which must not be 0, and the pixel data)")
    above = int((hu > bounds.hu_range[1]).sum())
    if above > bounds.hu_max_fraction_above * hu.size:
        raise ImplausibleInputError(
            f"{where}: {100 * above / hu.size:.2f} % of the CT voxels are above {bounds.hu_range[1]:g} HU (maximum "
            f"{hi:.6g} HU); at most {100 * bounds.hu_max_fraction_above:g} % (metal) is plausible: check "
            "RescaleSlope / RescaleIntercept")
    if above:
        notes.append(f"CT: {above:,} voxel(s) above {bounds.hu_range[1]:g} HU (maximum {hi:.6g} HU; metal?) kept as read")
    below = int((hu < bounds.hu_range[0]).sum())
    if below:
        notes.append(f"CT: {below:,} voxel(s) below {bounds.hu_range[0]:g} HU (minimum {lo:.6g} HU; scanner padding "
                     "outside the field of view) kept as read")
    return notes


def record_overrides(source: dict, overrides: list[dict]) -> None:
    """Append override records to ``source["input_overrides"]`` (created if absent)."""
    if overrides:
        source.setdefault("input_overrides", []).extend(overrides)
