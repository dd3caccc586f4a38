"""argparse ``type=`` functions shared by every command.

Each one raises :class:`argparse.ArgumentTypeError` with a message that names the value it
received and what was expected; argparse prefixes it with the option name, e.g.
``argument --beams: invalid value '0': expected a positive whole number (1, 2, ...)``.
"""
from __future__ import annotations

import argparse
import math


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
