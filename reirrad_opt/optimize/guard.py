"""The last safeguard of the hard organ caps: scale the final fluence so every cap point holds.

The lexicographic stages check every cap point with the full influence matrix after each solve,
but they accept a point up to the check's tolerance (``VIOLATION_TOL_GY``, 1 mGy) beyond its cap,
and a stage that runs out of rounds or of time may leave more. The evaluation has no tolerance: on
the TG-119 phantom at 5 mm a Core point 0.001 Gy over its 25 Gy cap failed the priority-1 line.

Dose is linear in the fluence and every cap is on the new course's physical dose at a point
(a cumulative-EQD2 limit becomes such a cap through ``new_course_dose_cap``, monotone in dose), so
multiplying the whole fluence by ``f <= 1`` lowers every point's dose by the same fraction and can
only move a cap point towards its limit. The factor is the largest that brings every point to at
most its cap less ``margin_gy``; it costs the target the same fraction of its dose (0.004 % for
1 mGy on a 25 Gy cap).
"""
from __future__ import annotations

import numpy as np

GUARD_MARGIN_GY = 1e-4   # points are brought this far under their cap (the dose is stored in float32:
                         # its rounding at 100 Gy is below 1e-5 Gy)


def cap_scale_factor(point_dose_gy: np.ndarray, cap_gy: np.ndarray, margin_gy: float = GUARD_MARGIN_GY) -> float:
    """Largest factor ``f`` in (0, 1] with ``f * point_dose_gy <= cap_gy - margin_gy`` at every point
    whose dose is above ``cap_gy - margin_gy`` (1.0 when none is).

    Args:
        point_dose_gy: new-course physical dose at each cap point (Gy).
        cap_gy: the point's cap (Gy, new-course physical dose), same shape or a scalar.
        margin_gy: how far under its cap a scaled point ends (Gy).

    Points whose cap is at or below ``margin_gy`` are left out: their prior dose alone has used up
    (or nearly used up) the limit (``new_course_dose_cap`` flags them ``exhausted``), only zero fluence
    would keep them under it, and the evaluation reports them as they are.
    """
    dose = np.asarray(point_dose_gy, dtype=float)
    cap = np.broadcast_to(np.asarray(cap_gy, dtype=float), dose.shape)
    target = cap - margin_gy
    over = (dose > target) & (target > 0.0)
    if not over.any():
        return 1.0
    return float(np.min(target[over] / dose[over]))
