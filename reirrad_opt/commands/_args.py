"""argparse ``type=`` functions shared by every command.

Each one raises :class:`argparse.ArgumentTypeError` with a message that names the value it
received and what was expected; argparse prefixes it with the option name, e.g.
``argument --beams: invalid value '0': expected a positive whole number (1, 2, ...)``.

The bounds shared by several commands live here, one constant each, so that every command (and
its help text) states the same range.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import re
from typing import Iterator, Mapping

from ..plausibility import DEFAULT_BOUNDS

# Beams of one plan (the command line and studies, reirrad_opt/study/variants.py), as a TPS request's beams.count.
MAX_BEAMS = 36
# Photon beamlet size / particle spot spacing at the isocentre (mm), on the command line and in studies
# (bixel_mm and spot_spacing_mm). Below 1 mm the influence matrix no longer fits in memory; above 20 mm
# one beamlet covers a whole small target.
SPACING_MM_RANGE = (1.0, 20.0)
# Months since the prior course: at most 50 years, the bound of every imported or stored prior course
# (reirrad_opt/plausibility.py); a longer interval is a typo (days, or a date), not a patient.
MAX_INTERVAL_MONTHS = DEFAULT_BOUNDS.max_interval_months
# Gantry angles (degrees, IEC 61217): 0 <= angle < 360; 360 is gantry 0.
GANTRY_FULL_TURN_DEG = 360.0


def _number(text: str, kind: type, expected: str) -> float | int:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {expected}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {expected} (a finite number)")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (a size in mm, a dose in Gy, ...)."""
    value = _number(text, float, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number > 0")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (a margin in mm, an interval in months, ...)."""
    value = _number(text, float, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number >= 0")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (a count of beams, fractions, ...)."""
    value = _number(text, int, "a positive whole number (1, 2, ...)")
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a positive whole number (1, 2, ...)")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0."""
    value = _number(text, int, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a whole number >= 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (a relative weight, a share)."""
    value = _number(text, float, "a number from 0 to 1")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected a number from 0 to 1")
    return value


def _within(text: str, kind: type, lo: float, hi: float, expected: str, hi_open: bool = False) -> float | int:
    """``text`` as a ``kind`` from ``lo`` to ``hi`` (below ``hi`` with ``hi_open``); else the error saying
    ``expected``."""
    value = _number(text, kind, expected)
    if not (lo <= value < hi if hi_open else lo <= value <= hi):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {expected}")
    return value


def spacing_mm(text: str) -> float:
    """A beamlet size or spot spacing in mm within :data:`SPACING_MM_RANGE` (as in studies)."""
    lo, hi = SPACING_MM_RANGE
    return _within(text, float, lo, hi, f"a size in mm from {lo:g} to {hi:g} (as in studies)")


def beam_count(text: str) -> int:
    """A number of beams or fields, 1 to :data:`MAX_BEAMS`."""
    return _within(text, int, 1, MAX_BEAMS, f"a whole number of beams from 1 to {MAX_BEAMS}")


def interval_months(text: str) -> float:
    """Months since the prior course: 0 to :data:`MAX_INTERVAL_MONTHS`."""
    return _within(text, float, 0.0, MAX_INTERVAL_MONTHS, f"a number of months from 0 to {MAX_INTERVAL_MONTHS:g} "
                                                          f"({MAX_INTERVAL_MONTHS / 12:g} years)")


def gantry_angle(text: str) -> float:
    """A gantry angle in degrees, 0 <= angle < 360 (IEC 61217)."""
    turn = f"{GANTRY_FULL_TURN_DEG:g}"
    return _within(text, float, 0.0, GANTRY_FULL_TURN_DEG,
                   f"a gantry angle in degrees from 0 to below {turn} (IEC 61217; {turn} is 0)", hi_open=True)


class GantryAngles(argparse.Action):
    """``nargs="+"`` of :func:`gantry_angle`: at most :data:`MAX_BEAMS` angles, no angle twice (the
    same beam twice; compared modulo 360 degrees to 1e-6 degrees)."""

    def __call__(self, parser, namespace, values, option_string=None):
        angles = list(values)
        if len(angles) > MAX_BEAMS:
            raise argparse.ArgumentError(self, f"{len(angles)} angles: expected at most {MAX_BEAMS} beams")
        groups: dict[float, list[float]] = {}
        for a in angles:
            groups.setdefault(round(a % GANTRY_FULL_TURN_DEG, 6) % GANTRY_FULL_TURN_DEG, []).append(a)
        twice = [g for g in groups.values() if len(g) > 1]
        if twice:
            parts = [f"{g[0]:g} degrees {len(g)} times" if len(set(g)) == 1 else
                     " = ".join(f"{a:g}" for a in g) + " degrees" for g in twice]
            raise argparse.ArgumentError(self, f"the same gantry angle more than once ({'; '.join(parts)}): each "
                                               f"beam needs its own angle")
        setattr(namespace, self.dest, angles)


def _translate(text: str, names: Mapping[str, str]) -> str:
    """``text`` with each keyword of ``names`` (a whole word) replaced by its option; an item of a
    keyword (``prior_levels_gy['Brainstem']``) becomes the option and the item (``--prior-level
    'Brainstem'``)."""
    words = "|".join(map(re.escape, sorted(names, key=len, reverse=True)))
    pattern = re.compile(r"(?<![\w-])(" + words + r")(?:\[([^\]]*)\])?(?!\w)")
    return pattern.sub(lambda m: names[m.group(1)] + (f" {m.group(2)}" if m.group(2) is not None else ""), text)


@contextlib.contextmanager
def options_named(names: Mapping[str, str]) -> Iterator[None]:
    """Around a library call that takes command-line values as keywords: a ValueError whose message
    names a keyword of ``names`` (``{"resolution_mm": "--resolution-mm"}``) is raised again as an
    InputError naming the option instead; other errors pass unchanged."""
    from ..cli import InputError

    try:
        yield
    except ValueError as exc:
        text = str(exc)
        translated = _translate(text, names)
        if translated == text:
            raise
        raise InputError(translated) from None
