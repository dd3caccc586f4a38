"""Uncertainty scenarios of a plan: rigid setup shifts of the patient and range errors of particles.

A scenario is what the treatment could be instead of the plan: the patient displaced by a rigid shift
relative to the beams (``shift_xyz_mm``, patient LPS axes), and, for particles, the range longer or
shorter than planned (:class:`~reirrad_opt.dose.range_shift.RangeShift`). The prior course's dose stays
where it is in the patient: only the new course's dose moves.

The default set (``ScenarioSettings()``) is the usual clinical one: setup 3 mm along +-x, +-y, +-z, and
range 3.5 % + 1 mm over- and undershoot, taken one at a time: nominal + 6 setup + 2 range = 9 scenarios
for particles, nominal + 6 setup = 7 for photons (range errors do not apply to photons). ``combined``
takes every range error at every setup position, the planned one included (2 x 7 = 14 + nominal = 15
for particles; photons keep the setup set);
``corners`` adds the 8 diagonal setup shifts (each axis +-setup/sqrt(3), the same 3 mm length).
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..dose.range_shift import RangeShift


@dataclass(frozen=True)
class Scenario:
    """One scenario: a name, the patient's shift (mm, LPS) and the particles' range error."""

    name: str
    shift_xyz_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    range_shift: RangeShift = RangeShift()

    @property
    def is_nominal(self) -> bool:
        return not any(self.shift_xyz_mm) and self.range_shift.is_zero

    def to_dict(self) -> dict:
        return {"name": self.name, "shift_xyz_mm": list(self.shift_xyz_mm), "range_error": self.range_shift.to_dict()}


NOMINAL = Scenario("nominal")


@dataclass(frozen=True)
class ScenarioSettings:
    """Which scenarios a robust evaluation takes.

    Attributes:
        setup_mm: rigid setup error (mm): shifts of this length along each axis (0: none).
        range_pct: relative range error (% of the range; 0: none), particles only ...
        range_mm: ... plus this absolute error (mm of water).
        combined: every range error with every setup position (instead of one error at a time).
        corners: the 8 diagonal setup shifts too.
    """

    setup_mm: float = 3.0
    range_pct: float = 3.5
    range_mm: float = 1.0
    combined: bool = False
    corners: bool = False

    def __post_init__(self) -> None:
        for name, lo, hi in (("setup_mm", 0.0, 20.0), ("range_pct", 0.0, 20.0), ("range_mm", 0.0, 20.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise ValueError(f"robust scenarios: {name} must be a number from {lo:g} to {hi:g}, got {value!r}")
        for name in ("combined", "corners"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"robust scenarios: {name} must be true or false, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _setup_shifts(settings: ScenarioSettings) -> list[tuple[str, tuple[float, float, float]]]:
    s = float(settings.setup_mm)
    if s == 0.0:
        return []
    out = []
    for axis, label in enumerate("xyz"):
        for sign in (1.0, -1.0):
            v = [0.0, 0.0, 0.0]
            v[axis] = sign * s
            out.append((f"setup {'+' if sign > 0 else '-'}{label} {s:g} mm", tuple(v)))
    if settings.corners:
        c = s / math.sqrt(3.0)
        for signs in itertools.product((1.0, -1.0), repeat=3):
            label = "".join("+" if g > 0 else "-" for g in signs)
            out.append((f"setup corner {label} {s:g} mm", tuple(g * c for g in signs)))
    return out


def _range_errors(settings: ScenarioSettings) -> list[tuple[str, RangeShift]]:
    if settings.range_pct == 0.0 and settings.range_mm == 0.0:
        return []
    rel, mm = settings.range_pct / 100.0, float(settings.range_mm)
    return [(f"range +{settings.range_pct:g} % +{mm:g} mm", RangeShift(rel, mm)),
            (f"range -{settings.range_pct:g} % -{mm:g} mm", RangeShift(-rel, -mm))]


def scenario_set(settings: ScenarioSettings, modality: str) -> tuple[Scenario, ...]:
    """The scenarios of ``settings`` for a ``modality`` plan, nominal first."""
    setups = _setup_shifts(settings)
    ranges = _range_errors(settings) if modality != "photon" else []
    out = [NOMINAL]
    if settings.combined and ranges:   # every range error at every setup position (the planned one too)
        positions = [("", (0.0, 0.0, 0.0))] + setups
        return tuple([NOMINAL] + [Scenario(f"{rname}, {sname}" if sname else rname, shift, r)
                                  for (rname, r), (sname, shift) in itertools.product(ranges, positions)])
    out += [Scenario(name, shift) for name, shift in setups]
    out += [Scenario(rname, (0.0, 0.0, 0.0), r) for rname, r in ranges]
    return tuple(out)


def shifted_beams(beams, shift_xyz_mm) -> list:
    """The beams as they meet a patient displaced by ``shift_xyz_mm`` (mm, LPS): in the patient's frame the
    isocentre moves the other way; gantry, couch, spots, energies and weights are as planned."""
    shift = np.asarray(shift_xyz_mm, dtype=float)
    if not shift.any():
        return list(beams)
    return [dataclasses.replace(b, isocenter_xyz_mm=tuple(np.asarray(b.isocenter_xyz_mm, dtype=float) - shift))
            for b in beams]
