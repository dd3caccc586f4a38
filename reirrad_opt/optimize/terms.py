"""Protocol goals as convex terms on the new course's physical dose d = A w.

Every term is a *sufficient* (conservative) surrogate of its DVH metric:

* ``voxel_max`` (Dmax, D0.03cc as a voxel maximum, and every cumulative-EQD2 maximum through the
  per-voxel physical-dose cap): ``d_i <= level_i`` for every voxel i of the term. Exact for Dmax.
* ``mean_max`` / ``mean_min`` (Dmean): one linear row, exact.
* ``cvar_upper`` (D<x>% <= L, D<x>cc <= L, V<D> <= x %): the mean of the hottest fraction ``q`` of the
  voxels (upper CVaR) <= level. Since that mean is >= the dose at volume q, the DVH limit holds
  whenever the surrogate does (Rockafellar & Uryasev 2000; Romeijn et al. 2006).
* ``cvar_lower`` (near-min D98% >= L, D<x>% >= L, V<D> >= x %): the mean of the coldest fraction
  ``q`` >= level, which implies the dose at that volume is >= level.

The verdict never comes from these surrogates: the final dose is evaluated exactly by
:mod:`reirrad_opt.evaluate`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

CEILING_ID = "plan_Dmax"  # goal id of the plan-wide hard dose ceiling on the targets
BODY_CEILING_ID = "plan_Dmax_body"  # the same ceiling on every other body voxel (lazily activated)
CEILING_IDS = (CEILING_ID, BODY_CEILING_ID)
KINDS = ("voxel_max", "mean_max", "mean_min", "cvar_upper", "cvar_lower")


class UnsupportedGoal(ValueError):
    """A protocol goal the optimizer cannot represent as a convex term (it is still evaluated)."""


@dataclass(frozen=True)
class Term:
    """One goal's convex surrogate (frozen: the stages read it, none changes it; a changed term is a new
    one, ``dataclasses.replace``).

    Attributes:
        goal_id: the protocol goal's id.
        structure: TG-263 structure name.
        priority: the goal's priority.
        kind: one of KINDS.
        rows: flat voxel indices (full-grid C order) the term reads.
        level_gy: the limit as new-course physical dose in Gy (scalar, or one value per row for
            ``voxel_max`` caps derived from cumulative EQD2).
        fraction: volume fraction q for CVaR terms (0 < q <= 1).
        tier: which limit of the goal this term encodes: 'desirable' or 'acceptable'.
        hard: True for priority-1 organ limits: a constraint, never traded.
        description: human text (metric, limit, what was assumed).
        interp: for ``voxel_max`` terms enforced at the evaluator's sub-voxel sample points, the
            (n_points x len(rows)) trilinear map from voxel doses to point doses; ``level_gy`` then
            holds one value per point. None: the points are the voxel centres of ``rows``. CVaR
            terms can have points too (a target's coverage measured where the evaluation samples).
        point_weights: relative volume of each point of a CVaR term (None: equal).
        seed: for a ``voxel_max`` term, the points that enter the LP from the first solve when the
            reference dose brings them near the level (a coarse lattice of a plan ceiling, see
            :func:`reirrad_opt.optimize.build.lattice`); None: only the reference dose decides.
        scenarios: for a robust cap (:mod:`.robust_caps`), the scenario names, nominal first: its points
            are one block of ``n_points / len(scenarios)`` per scenario, in this order; () otherwise.
        cumulative: the goal's limit is on the cumulative EQD2 of both courses (``level_gy`` is the
            new-course cap it leaves), not on the new course's dose.
    """

    goal_id: str
    structure: str
    priority: int
    kind: str
    rows: np.ndarray
    level_gy: float | np.ndarray
    fraction: float = 1.0
    tier: str = "desirable"
    hard: bool = False
    description: str = ""
    interp: sp.csr_matrix | None = None
    metric: str = ""
    point_weights: np.ndarray | None = None
    seed: np.ndarray | None = None
    scenarios: tuple[str, ...] = ()
    cumulative: bool = False
    sense: str = field(init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"term {self.goal_id}: unknown kind {self.kind!r}")
        object.__setattr__(self, "sense", "min" if self.kind in ("mean_min", "cvar_lower") else "max")

    def scenario_of(self, points: np.ndarray) -> list[str]:
        """The scenario names of ``points`` (indices into the term's points) of a robust cap; [] otherwise."""
        if not self.scenarios:
            return []
        per = self.n_points // len(self.scenarios)
        return [self.scenarios[int(p) // per] for p in np.asarray(points, dtype=np.int64)]

    @property
    def n_points(self) -> int:
        """Number of constrained points of a ``voxel_max`` term (voxels or sub-voxel points)."""
        return int(self.interp.shape[0]) if self.interp is not None else int(self.rows.size)

    def point_values(self, dose_rows: np.ndarray) -> np.ndarray:
        """Dose (Gy) at the term's points from the dose on its rows."""
        d = np.asarray(dose_rows, dtype=float)
        return self.interp @ d if self.interp is not None else d

    def points_subset(self, points: np.ndarray, **changes) -> "Term":
        """A copy of this ``voxel_max`` term restricted to ``points`` (indices into its points), with
        any field replaced by ``changes`` (e.g. ``level_gy``, ``hard``, ``tier``)."""
        if self.kind != "voxel_max":
            raise ValueError(f"term {self.goal_id}: only a voxel_max term has points to select")
        points = np.asarray(points, dtype=np.int64)
        level = np.broadcast_to(np.asarray(self.level_gy, dtype=float), (self.n_points,))[points].copy()
        selected = dict(level_gy=level, point_weights=None,
                        rows=self.rows if self.interp is not None else self.rows[points],
                        interp=self.interp[points].tocsr() if self.interp is not None else None,
                        seed=None if self.seed is None else self.seed[points])
        return replace(self, **{**selected, **changes})

    @property
    def sign(self) -> float:
        """+1 for a maximum-type goal, -1 for a minimum-type one: ``sign * (dose - level) <= 0`` is met."""
        return 1.0 if self.sense == "max" else -1.0

    @property
    def key(self) -> str:
        """Unique key of the term: goal id and tier."""
        return f"{self.goal_id}@{self.tier}"

    def excess_gy(self, dose_rows: np.ndarray) -> float:
        """How far the optimizer's surrogate is beyond the level, in Gy (<= 0: met).

        ``voxel_max``: the largest excess of a voxel over its level; ``max`` terms: surrogate minus
        level; ``min`` terms: level minus surrogate."""
        d = np.asarray(dose_rows, dtype=float)
        if self.kind == "voxel_max":
            return float(np.max(self.point_values(d) - self.level_gy))
        value = self.surrogate(d)
        return value - float(self.level_gy) if self.sense == "max" else float(self.level_gy) - value

    def goal_excess_gy(self, dose_rows: np.ndarray) -> float:
        """How far the goal's own metric, measured at the term's points, is beyond the level (Gy;
        <= 0: met). Equal to :meth:`excess_gy` except for CVaR terms, where it reads the DVH point
        (the dose at volume q) instead of the mean of the tail, the conservative surrogate the LP
        solves with."""
        if self.kind not in ("cvar_upper", "cvar_lower"):
            return self.excess_gy(dose_rows)
        value = self.dvh_dose(dose_rows)
        level = float(np.max(self.level_gy))
        return value - level if self.sense == "max" else level - value

    def dvh_dose(self, dose_rows: np.ndarray) -> float:
        """The term's DVH point (Gy) at its points: see :func:`dvh_dose`."""
        return dvh_dose(self.point_values(dose_rows), self.fraction, upper=(self.kind == "cvar_upper"),
                        weights=self.point_weights)

    def surrogate(self, dose_rows: np.ndarray) -> float:
        """The optimizer's own value of the term for a dose on its rows (Gy): the maximum, mean or
        CVaR of the dose."""
        d = np.asarray(dose_rows, dtype=float)
        if self.kind == "voxel_max":
            return float(np.max(self.point_values(d)))
        if self.kind in ("mean_max", "mean_min"):
            return float(d.mean())
        return cvar_value(self.point_values(d), self.fraction, upper=(self.kind == "cvar_upper"),
                          weights=self.point_weights)


def cvar_value(dose: np.ndarray, fraction: float, upper: bool, weights: np.ndarray | None = None) -> float:
    """Exact CVaR of a dose vector: the (volume-weighted) mean of its hottest (upper) or coldest
    fraction, counting a fractional sample where the fraction ends inside it (the value the LP form
    takes at its optimum)."""
    d = np.asarray(dose, dtype=float)
    v = np.ones(d.size) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(-d if upper else d, kind="stable")
    d, v = d[order], v[order]
    m = fraction * v.sum()
    before = np.concatenate([[0.0], np.cumsum(v)[:-1]])
    taken = np.clip(m - before, 0.0, v)
    return float((taken * d).sum() / m)


def _sorted_from_tail(dose: np.ndarray, upper: bool, weights: np.ndarray | None):
    """(order from the hot (``upper``) or cold end, cumulative volume along it)."""
    d = np.asarray(dose, dtype=float)
    v = np.ones(d.size) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(-d if upper else d, kind="stable")
    return order, np.cumsum(v[order])


def dvh_dose(dose: np.ndarray, fraction: float, upper: bool, weights: np.ndarray | None = None) -> float:
    """A DVH point of (volume-weighted) points, in Gy. ``upper``: the highest dose that at least
    ``fraction`` of the volume receives (D5% for 0.05). Otherwise from the cold side: the highest
    dose that at least ``1 - fraction`` of the volume receives (D98% for 0.02); the points below it
    hold at most ``fraction`` of the volume."""
    order, cum = _sorted_from_tail(dose, upper, weights)
    m = fraction * cum[-1]
    if upper:   # the first point at which the hot side reaches the fraction
        i = int(np.searchsorted(cum, m * (1.0 - 1e-12)))
    else:       # the first point beyond the cold fraction
        i = int(np.searchsorted(cum, m * (1.0 + 1e-12), side="right"))
    return float(np.asarray(dose, dtype=float)[order[min(i, cum.size - 1)]])


def dvh_tail(dose: np.ndarray, fraction: float, upper: bool, weights: np.ndarray | None = None) -> np.ndarray:
    """Mask of the hottest (``upper``) or coldest points that together hold at most ``fraction``
    of the (weighted) volume: the points a dose-volume goal at that fraction leaves free."""
    order, cum = _sorted_from_tail(dose, upper, weights)
    n = int(np.searchsorted(cum, fraction * cum[-1] * (1.0 + 1e-12), side="right"))
    tail = np.zeros(cum.size, bool)
    tail[order[:n]] = True
    return tail


_D_VOL = re.compile(r"^D(?P<x>\d+(?:\.\d+)?)(?P<u>%|cc)$")
_V_DOSE = re.compile(r"^V(?P<x>\d+(?:\.\d+)?)(?P<u>%|Gy)$")


def term_kind_and_fraction(metric: str, sense: str, structure_cc: float, limit_value: float | None,
                           limit_unit: str | None, rx_gy: float) -> tuple[str, float, float | None]:
    """Map a protocol metric to ``(kind, fraction, dose_level_gy_or_None)``.

    The returned dose level is only set for V-metrics (whose limit is a volume): it is the dose
    threshold of the metric in Gy. For D-metrics the caller converts the limit itself.
    """
    if metric in ("Dmax", "D0.03cc") and sense == "max":
        return "voxel_max", 1.0, None
    if metric == "Dmean":
        return ("mean_max" if sense == "max" else "mean_min"), 1.0, None
    if metric == "near-min" and sense == "min":
        return "cvar_lower", 0.02, None
    m = _D_VOL.match(metric)
    if m:
        x = float(m["x"])
        q = x / 100.0 if m["u"] == "%" else x / max(structure_cc, 1e-9)
        if sense == "max":
            return "cvar_upper", float(np.clip(q, 1e-6, 1.0)), None
        return "cvar_lower", float(np.clip(1.0 - q, 1e-6, 1.0)), None
    m = _V_DOSE.match(metric)
    if m and limit_value is not None:
        threshold = float(m["x"]) * (rx_gy / 100.0 if m["u"] == "%" else 1.0)
        if limit_unit == "%":
            q = limit_value / 100.0
        elif limit_unit == "cc":
            q = limit_value / max(structure_cc, 1e-9)
        else:
            raise UnsupportedGoal(f"{metric}: volume limit must be in % or cc, got {limit_unit!r}")
        if sense == "max":  # at most q of the volume above threshold
            return "cvar_upper", float(np.clip(q, 1e-6, 1.0)), threshold
        return "cvar_lower", float(np.clip(1.0 - q, 1e-6, 1.0)), threshold  # at least q above threshold
    raise UnsupportedGoal(f"metric {metric!r} with sense {sense!r} has no convex surrogate in the optimizer")


@dataclass
class TermSet:
    """All terms for one case and protocol, plus what could not be represented."""

    terms: list[Term]
    skipped: list[str] = field(default_factory=list)     # goals not optimized (and why)
    exhausted: list[str] = field(default_factory=list)   # organs whose prior dose alone reaches a limit

    def at_priority(self, priority: int) -> list[Term]:
        return [t for t in self.terms if t.priority == priority]

    def hard_terms(self, tier_by_goal: dict[str, str]) -> list[Term]:
        """The hard terms in force: one tier per hard goal as chosen in ``tier_by_goal``."""
        return [t for t in self.terms if t.hard and t.tier == tier_by_goal.get(t.goal_id, "desirable")]
