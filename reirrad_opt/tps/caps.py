"""The new-course cap map: in every voxel, the largest new-course dose the chosen cumulative limits allow.

For a cumulative-EQD2 limit ``L`` of an organ (alpha/beta ``a/b``), a voxel whose prior course(s) left
``E`` Gy EQD2 (after any credited recovery, summed over the courses by :mod:`reirrad_opt.prior_eqd2`)
may receive at most the exact LQ inverse
``d = (n/2)(-(a/b) + sqrt((a/b)^2 + 4 (L - E)(2 + a/b) / n))`` in the ``n`` new fractions
(:func:`reirrad_opt.radiobiology.new_course_dose_cap`, the same cap the optimizer enforces). Where
organs overlap the smallest cap holds. D0.03cc limits are taken as voxel maxima, as the optimizer
takes them (conservative by the 0.03 cc a D0.03cc would let through).

Doses are in the plan's quantity: Gy for photons, Gy(RBE) for particles (the limits hold on the
RBE-weighted dose); :attr:`CapMap.physical_cap_gy` divides by the RBE.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import radiobiology as rb
from ..prior_eqd2 import prior_eqd2_at, recovered_fractions
from ..case import Case
from ..optimize.build import find_structure


@dataclass(frozen=True)
class LineCap:
    """The caps of one cumulative protocol line over its organ's voxels.

    Attributes:
        goal_id, structure: the protocol line and the case structure it applies to.
        tier: 'desirable' or 'acceptable', the limit the caps come from.
        limit_eqd2_gy: that cumulative EQD2 limit (Gy).
        cap_gy: the cap (Gy or Gy(RBE), new course) of each voxel of the structure, in mask order.
        min_cap_gy, max_cap_gy: the tightest and the loosest of them.
        exhausted_cc: volume (cc) whose prior EQD2 alone reaches the limit (cap 0).
    """

    goal_id: str
    structure: str
    tier: str
    limit_eqd2_gy: float
    cap_gy: np.ndarray
    min_cap_gy: float
    max_cap_gy: float
    exhausted_cc: float


@dataclass(frozen=True)
class CapMap:
    """The cap map on the case grid.

    Attributes:
        cap_gy: (z, y, x) smallest new-course cap (Gy, or Gy(RBE) for particles) of the cumulative
            lines covering each voxel; NaN where no cumulative line applies.
        lines: per cumulative line, its caps (see :class:`LineCap`).
        rbe: the new course's constant RBE (1 for photons).
        unit: 'Gy' or 'Gy(RBE)'.
    """

    cap_gy: np.ndarray
    lines: tuple[LineCap, ...]
    rbe: float = 1.0
    unit: str = "Gy"

    @property
    def physical_cap_gy(self) -> np.ndarray:
        """The cap as a physical dose (Gy): ``cap_gy / rbe``."""
        return self.cap_gy / self.rbe

    def filled(self, elsewhere_gy: float) -> np.ndarray:
        """The cap map with ``elsewhere_gy`` where no cumulative line applies (e.g. the plan's
        ceiling), as float32 for export."""
        return np.where(np.isnan(self.cap_gy), float(elsewhere_gy), self.cap_gy).astype(np.float32)

    def line(self, goal_id: str) -> LineCap | None:
        return next((c for c in self.lines if c.goal_id == goal_id), None)


VOXEL_CAP_KINDS = ("Dmax", "D_cc")   # metrics a voxel maximum bounds (D0.03cc as the optimizer holds it)


def cumulative_max_lines(protocol) -> list:
    """The protocol lines a voxel cap expresses: cumulative upper limits on Dmax or D<x>cc. A
    cumulative Dmean or D<x>% limit is no voxel cap (the optimizer evaluates it, does not hold it)."""
    return [g for g in protocol.goals if g.cumulative and g.sense == "max" and g.metric_spec.kind in VOXEL_CAP_KINDS]


def cap_map(case: Case, protocol, n_fractions: int, *, tiers: dict[str, str] | None = None,
            default_tier: str = "desirable", rbe: float = 1.0, unit: str = "Gy") -> CapMap:
    """The new-course cap map of ``case`` under the cumulative limits of ``protocol``.

    Args:
        n_fractions: fractions of the new course.
        tiers: goal id -> 'desirable' | 'acceptable': the limit each line's caps come from (e.g.
            the tier the optimizer held, plan.json ``limit_tier``); lines not named use ``default_tier``.
        rbe, unit: the new course's constant RBE and dose unit (recorded; the caps are on the dose
            the limits judge, RBE-weighted for particles).
    Lines whose organ is not in the case, or whose chosen limit is 'none', contribute nothing.
    """
    if default_tier not in ("desirable", "acceptable"):
        raise ValueError(f"default_tier must be 'desirable' or 'acceptable', got {default_tier!r}")
    tiers = tiers or {}
    cap = np.full(case.grid.shape, np.nan)
    lines = []
    recovery = protocol.recovery
    for goal in cumulative_max_lines(protocol):
        name = find_structure(case, goal.structure, tuple(goal.aliases))
        if name is None or not case.structures[name].mask.any():
            continue
        tier = tiers.get(goal.id, default_tier)
        if tier not in ("desirable", "acceptable"):
            tier = default_tier
        limit = goal.limit_gy(tier, None)
        if limit is None and tier == "desirable":
            tier, limit = "acceptable", goal.limit_gy("acceptable", None)
        if limit is None:
            continue
        mask = case.structures[name].mask
        prior = prior_eqd2_at(case.prior_courses, lambda dose_gy: dose_gy[mask], goal.alpha_beta_gy,
                              recovered_fractions(recovery, name, case.prior_courses))
        result = rb.new_course_dose_cap(limit, prior, n_fractions, goal.alpha_beta_gy)
        here = np.asarray(result.cap_gy, dtype=float)
        cap[mask] = np.fmin(cap[mask], here)
        lines.append(LineCap(goal.id, name, tier, float(limit), here, float(here.min()), float(here.max()),
                             float(np.count_nonzero(result.exhausted)) * case.grid.voxel_volume_cc))
    return CapMap(cap, tuple(lines), float(rbe), unit)
