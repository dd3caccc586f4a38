"""A range error of a particle plan, as the dose engine applies it (robust evaluation's range scenarios).

The stopping-power ratio of the planning CT is uncertain (CT calibration, a few per cent) and so is
the delivered range (machine, about a millimetre). With a relative error ``relative`` and an absolute
error ``absolute_mm``, the water-equivalent depth the particles truly see at a voxel whose planned
water-equivalent depth is ``d`` is

    d_true = d * (1 - relative) - absolute_mm        (clipped at 0)

so a Bragg peak planned at range R lands at a planned depth of (R + absolute_mm) / (1 - relative),
about R * (1 + relative) + absolute_mm: positive values overshoot (deeper), negative undershoot.
The relative part scales the stopping-power map, the absolute part shifts every ray's depth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RangeShift:
    """A range error: ``relative`` (fraction, e.g. 0.035 for 3.5 % deeper) and ``absolute_mm`` (mm of
    water, deeper when positive)."""

    relative: float = 0.0
    absolute_mm: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.relative) and -0.2 <= self.relative <= 0.2):
            raise ValueError(f"range error: relative {self.relative!r} must be a fraction from -0.2 to 0.2 "
                             f"(e.g. 0.035 for 3.5 %)")
        if not (math.isfinite(self.absolute_mm) and abs(self.absolute_mm) <= 20.0):
            raise ValueError(f"range error: absolute_mm {self.absolute_mm!r} must be within +-20 mm")

    @property
    def is_zero(self) -> bool:
        return self.relative == 0.0 and self.absolute_mm == 0.0

    @property
    def spr_factor(self) -> float:
        """The factor on the stopping-power map: 1 - relative."""
        return 1.0 - self.relative

    def to_dict(self) -> dict:
        return {"relative": self.relative, "absolute_mm": self.absolute_mm}
