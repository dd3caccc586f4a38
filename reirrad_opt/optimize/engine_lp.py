"""The LP engine (``"lp"``): each lexicographic stage as one linear program, solved by HiGHS.

Stage p (for each priority p of the protocol, in order) solves the LP:

    minimise   sum over soft terms g of priority p:  W_tier * s_g / Rx   (+ ALARA and tie-breaker terms)
    subject to w >= 0,
               every hard term (priority-1 organ caps):   surrogate_g within level_g           (never relaxed)
               every soft term g of priority p:           surrogate_g within level_g + s_g,  s_g >= -slip_p
               every soft term h of an earlier priority:  surrogate_h within level_h + s_h* + slip_h

A soft goal is first aimed at its level tightened by its priority's slip; later stages may give
that slip back but no more, so a goal met at its own stage is still met at the end. A last stage
minimises normal-tissue dose (mean dose in sampled body voxels, a dose fall-off ring around the
PTV) and fluence roughness (total variation) within all of the above.

All stages live in one :class:`~reirrad_opt.optimize.lp.LinearProgram` that only grows: each
lazy round adds rows, each stage changes costs and bounds, and HiGHS restarts from the last basis.

How the goals enter the LP (every term has an *excess* variable e, in Gy, beyond its level):

* dose variables ``d_v`` (one per voxel that some term reads) with the equality row
  ``d_v = A'_v w + c_v``, where A' drops entries below ``truncation`` x column maximum and ``c_v`` adds
  them back at the previous fluence (updated every round; see :class:`DosePool`); a point that the
  correction's lag puts over a cap or a hold has its rows tightened by that much (up to
  ``settings.lag_margin_max_gy``, then it gets a second, exact row ``A_p w``);
* ``voxel_max``: one sparse row per active point, ``sum_c interp_pc d_c - e <= level_p``;
* ``mean``: one dense row over w with the structure's mean influence;
* ``cvar``: the Rockafellar-Uryasev form with an auxiliary threshold z and one shortfall variable
  per voxel.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..progress import SILENT, Progress
from ..progress import detail as progress_detail
from .dose_rows import DosePool, DoseRows
from .holds import dvh_hold, point_levels, point_map
from .lp import LinearProgram, LPSolution
from .solver_base import SolverBase, StageSettings
from .stage import NormalTissue, StageResult
from .terms import CEILING_IDS, Term, dvh_dose

SOLVERS = ("HIGHS",)
FIRST_METHODS = ("ipm", "simplex")   # how each stage's first LP is solved (see _solve_rounds)


@dataclass(frozen=True)
class LPSettings(StageSettings):
    """Constants of the LP engine (on top of :class:`~reirrad_opt.optimize.solver_base.StageSettings`).

    Attributes:
        hard_safety_gy: hard caps are aimed this far inside (Gy): the simplex's feasibility tolerance
            (1e-7, scaled) must not put a point a micro-Gy over a limit the evaluation checks exactly.
        max_rounds: lazy-constraint / dose-correction rounds per stage.
        violation_tol_gy: a point above its bound by more than this (Gy, full-matrix dose) is violated.
        activate_margin_gy: points within this (Gy) of their bound are added with the violated ones.
        ceiling_activate_ratio: plan-ceiling points at this fraction of the ceiling are added with them
            (a hot spot that one solve made moves next to where its rows were in the next).
        initial_ratio: points whose reference dose reaches this fraction of their level start active.
        dual_round_min_s: a lazy round's dual simplex gets at least this long (s) before the interior
            point takes over, ...
        dual_round_ipm_factor: ... and at least this many times the stage's first interior-point solve.
        dual_round_barrier_after: the interior point that takes over starts on the second core this many
            times the stage's first interior-point solve into the dual simplex.
        lag_margin_max_gy: a point's row is tightened for the correction's lag up to this much (Gy),
            then made exact.
        ceiling_lag_margin_max: ... except a plan-ceiling point: up to this fraction of the ceiling.
        stage_lag_tol_gy: a stage's dose-volume term read this much (Gy) differently by the full matrix
            is solved again.
        carry_gy: a stage before the last ends once no point is more than this (Gy) beyond its bound.
        ceiling_left_gy: any stage ends once the only points beyond their bound are plan-ceiling
            points, by at most this (Gy).
        proximity_weight: cost of moving each weight away from the last solve's fluence (see
            ``LPSolver._anchor``), in the tie-breaker's units; 0 switches it off.
        floor_rx: lower bound of every excess variable: -floor_rx x Rx (never reached).
    """

    hard_safety_gy: float = 2e-3
    max_rounds: int = 8
    violation_tol_gy: float = 1e-3
    activate_margin_gy: float = 0.5
    ceiling_activate_ratio: float = 0.95
    initial_ratio: float = 0.6
    dual_round_min_s: float = 2.0
    dual_round_ipm_factor: float = 2.0
    dual_round_barrier_after: float = 0.5
    lag_margin_max_gy: float = 0.25
    ceiling_lag_margin_max: float = 0.05
    stage_lag_tol_gy: float = 0.05
    carry_gy: float = 0.2
    ceiling_left_gy: float = 0.05
    proximity_weight: float = 3e-3
    floor_rx: float = 10.0


@dataclass
class _TermLP:
    """A term's variables and rows in the LP.

    ``excess`` (Gy) is at least the surrogate's excess over the level; soft terms also have ``aim``
    (the stage slack, >= -slip at the term's own stage, fixed afterwards) and the ``link`` row
    ``excess - aim <= -margin``; hard terms bound ``excess <= -margin`` directly."""

    excess: int
    aim: int | None = None
    link: int | None = None
    value_row: int | None = None          # mean / CVaR: the row bounding the surrogate
    point_rows: list = field(default_factory=list)   # voxel_max: LP rows of active points
    point_ids: list = field(default_factory=list)    # voxel_max: the points of those rows
    point_exact: list = field(default_factory=list)  # voxel_max: True where that block is exact (full matrix)


@dataclass
class _Hold:
    """A dose-volume goal (a CVaR term) held exactly once its stage is solved.

    ``keep`` marks every point of the term except its tail at the solved fluence (the coldest
    fraction q of a ``cvar_lower`` term, the hottest q of a ``cvar_upper`` one). The kept points
    carry at least 1 - q of the volume and were all at the DVH point or better, so holding each of
    them at ``level_gy`` (at or above it for a lower goal, at or below for an upper one) keeps the
    DVH point there, while the tail (a cold edge next to an organ cap, the hottest few percent) is
    free. Holding the CVaR instead would keep the tail's mean, which forces the rest of the target
    hotter than the goal needs. Every kept point's row enters when the hold is made; ``rows`` are
    their LP row indices."""

    term: Term
    level_gy: float
    keep: np.ndarray
    exact: np.ndarray     # points whose full-matrix row was added (see LPSolver._check_holds)
    margin: np.ndarray    # per-point allowance for the correction's lag (Gy, inward)
    rows: list = field(default_factory=list)
    row_ids: list = field(default_factory=list)   # the points of each block of ``rows``

    def set_bounds(self, lp: LinearProgram) -> None:
        """Row bounds from the held level and each point's lag allowance."""
        sign = self.term.sign
        for rows, ids in zip(self.rows, self.row_ids):
            lp.set_row_bounds(rows, -np.inf, sign * self.level_gy - self.margin[ids])


def _grow_allowance(margin_gy: np.ndarray, points: np.ndarray, over_gy: np.ndarray, tol_gy: float,
                    max_gy: float | np.ndarray) -> np.ndarray:
    """Add ``over_gy`` (plus ``tol_gy``) to the lag allowance ``margin_gy`` of ``points``, in place,
    where the total stays within ``max_gy`` (Gy, scalar or per point). Returns the points it would
    take beyond (their allowance is unchanged: they need an exact row)."""
    new = margin_gy[points] + over_gy + tol_gy
    fits = new <= max_gy
    margin_gy[points[fits]] = new[fits]
    return points[~fits]


class LPSolver(SolverBase):
    """The LP engine (``"lp"``): every stage's exact LP optimum, solved by HiGHS.

    Maximum-type terms (``voxel_max``) can have tens of thousands of points; only those that can
    matter enter the LP. A point starts active when a reference fluence (uniform, scaled to the
    first target level) brings it to ``settings.initial_ratio`` of its level; after each solve every point is
    checked against its bound with the full-matrix dose and the violated ones (and those within
    ``settings.activate_margin_gy``) are added, until none is violated (at most ``settings.max_rounds`` solves).

    Args:
        matrix: influence matrix (n_voxels x n_columns), Gy per unit weight.
        terms: all terms (hard and soft), see :func:`reirrad_opt.optimize.build.build_terms`.
        rx_gy: prescription (Gy, new-course physical), the scale of every slack.
        slips_gy: priority -> what later stages may give back on that priority's goals (Gy).
        tier_by_goal: hard goal id -> 'desirable' or 'acceptable' (which cap is in force).
        solver: 'HIGHS' (the only LP solver used: warm-started simplex, see :mod:`.lp`).
        rows: the matrix pair to use (shared between solvers of one plan), else built here.
        truncation: relative threshold of the truncated rows (see :class:`DosePool`).
        hold_dvh_points: after its stage, hold a dose-volume goal point-wise (:class:`_Hold`:
            measured on the 4 mm NPC phantom, PTV V107% 16 % -> 3 %, at 2.4x the solve time);
            False keeps its CVaR at the achieved value instead (faster, more conservative).
        first_method: how each stage's first LP (its new objective) is solved: 'ipm', a cold
            interior-point solve with crossover to a basis (default; NPC phantom at 5 mm: 80 s for
            all stages against 185 s), or 'simplex' from the previous stage's basis. The lazy
            rounds that follow always use the dual simplex from the last basis.
        settings: the engine's constants (:class:`LPSettings`; default its defaults).
    """

    name = "lp"
    Settings = LPSettings

    def __init__(self, matrix: sp.csr_matrix, terms: list[Term], *, rx_gy: float, slips_gy: dict[int, float],
                 tier_by_goal: dict[str, str], solver: str = "HIGHS", progress: Progress = SILENT,
                 rows: DoseRows | None = None, truncation: float = 0.0, hold_dvh_points: bool = True,
                 first_method: str = "ipm", measure=None, settings: LPSettings | None = None) -> None:
        if str(solver).upper() not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
        super().__init__(matrix, terms, rx_gy=rx_gy, slips_gy=slips_gy, tier_by_goal=tier_by_goal, progress=progress,
                         rows=rows, truncation=truncation, hold_dvh_points=hold_dvh_points, measure=measure,
                         settings=settings)
        self.active: dict[str, np.ndarray] = {}
        self.margin: dict[str, float] = {}     # term key -> LP level tightening (Gy)
        self.exact_points: dict[str, np.ndarray] = {}   # voxel_max term key -> points with a full-matrix row
        self.released: dict[str, np.ndarray] = {}   # ... -> points whose truncated row was set free (unreachable)
        self.lag_margin: dict[str, np.ndarray] = {}     # voxel_max term key -> per-point lag allowance (Gy)

        self.lp = LinearProgram()
        self.w_upper = self._weight_ceiling()
        self.w_idx = self.lp.add_variables(self.n_cols, 0.0, self.w_upper)
        self._proximity: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None   # see _anchor
        self.dose_vars = DosePool(self.lp, self.rows, self.w_idx)
        self._lp_terms: dict[str, _TermLP] = {}
        self._stage_cost: dict[int, float] = {}     # variable index -> cost of the current stage
        self.holds: dict[str, _Hold] = {}
        self.carried = False  # the last stage ended with them carried (see solve_priority)
        # the last stage ended with only plan-ceiling points beyond, within settings.ceiling_left_gy
        self.ceiling_left = False
        self.violations: dict[str, int] = {}   # goal id -> points found beyond their bound in the last check
        if first_method not in FIRST_METHODS:
            raise ValueError(f"first_method must be one of {FIRST_METHODS}, got {first_method!r}")
        self.first_method = first_method
        self.dual_too_slow = False   # set once a lazy round's dual simplex ran out of its time: rounds by IPM
        self._initial_activation()
        self._anchor(np.zeros(self.n_cols))
        for t in self.hard:
            self._add_term(t)
        self._secure_caps()

    # ---- building the LP
    def _weight_ceiling(self) -> np.ndarray:
        """Upper bound of each weight implied by the hard plan ceilings (a column alone must not
        exceed the ceiling in its hottest watched voxel). Redundant with the ceiling rows, but it
        keeps a stage from spending a round on fluence that is hot only where no row is active yet."""
        upper = np.full(self.n_cols, np.inf)
        for t in self.hard:
            if t.goal_id not in CEILING_IDS or t.kind != "voxel_max" or t.interp is not None:
                continue
            # straight from the matrix: the body ceiling's rows are most of it, not worth a cached copy
            col_max = np.asarray(self.rows.matrix[t.rows].max(axis=0).todense()).ravel()
            level = float(np.min(t.level_gy))
            with np.errstate(divide="ignore"):
                upper = np.minimum(upper, np.where(col_max > 0, level / col_max, np.inf))
        return upper

    def _add_term(self, t: Term) -> _TermLP:
        """Create the term's variables and rows (its active points for ``voxel_max``)."""
        if t.key in self._lp_terms:
            return self._lp_terms[t.key]
        lp = self.lp
        # finite bounds everywhere (free variables force long dual phase-1 runs in the simplex);
        # the excess can never go below -FLOOR: doses are >= 0 and capped by the plan ceiling
        floor = -self.settings.floor_rx * self.rx_gy
        if t.hard:
            upper = -self.margin.get(t.key, 0.0) - self.settings.hard_safety_gy
            tl = _TermLP(int(lp.add_variables(1, floor, upper)[0]))
        else:
            e, aim = lp.add_variables(2, floor, np.inf)
            link = lp.add_rows([(np.array([e, aim]), sp.csr_matrix(np.array([[1.0, -1.0]])))],
                               -np.inf, -self.margin.get(t.key, 0.0))[0]
            tl = _TermLP(int(e), int(aim), int(link))
        self._lp_terms[t.key] = tl
        sign = t.sign   # rows read: sign * (surrogate - level) <= excess
        level = float(np.max(t.level_gy)) if t.kind != "voxel_max" else 0.0
        if t.kind == "voxel_max":
            self._add_points(t, np.flatnonzero(self.active[t.key]))
        elif t.kind in ("mean_max", "mean_min"):
            mean_row = sp.csr_matrix(np.asarray(self.rows.block(t.rows).mean(axis=0)))
            tl.value_row = int(lp.add_rows([(self.w_idx, sign * mean_row),
                                            (np.array([tl.excess]), sp.csr_matrix([[-1.0]]))],
                                           -np.inf, sign * level)[0])
        else:  # CVaR, Rockafellar-Uryasev: upper z + sum(v u)/(qV), u >= d - z; lower z - sum(v u)/(qV), u >= z - d
            n = t.n_points
            d = self.dose_vars.variables(t.rows)
            dose_map = t.interp if t.interp is not None else sp.identity(n, format="csr")  # points <- voxels
            z = lp.add_variables(1, 0.0, np.inf)   # the dose at volume q: >= 0
            u = lp.add_variables(n, 0.0, np.inf)
            eye = sp.identity(n, format="csr")
            ones = sp.csr_matrix(np.ones((n, 1)))
            # upper: d_p - z - u <= 0 ; lower: z - d_p - u <= 0   (i.e. sign * (d_p - z) - u <= 0)
            lp.add_rows([(d, sign * dose_map), (z, -sign * ones), (u, -eye)], -np.inf, 0.0)
            # sign * (z + sign * sum(v u)/(qV) - level) - excess <= 0  ->  sign*z + sum(v u)/(qV) - e <= sign*level
            v = np.ones(n) if t.point_weights is None else np.asarray(t.point_weights, dtype=float)
            scale = v / (t.fraction * v.sum())
            tl.value_row = int(lp.add_rows([(z, sp.csr_matrix([[sign]])), (u, sp.csr_matrix(scale[None, :])),
                                            (np.array([tl.excess]), sp.csr_matrix([[-1.0]]))],
                                           -np.inf, sign * level)[0])
        return tl

    def _point_block(self, t: Term, points: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """(map from dose variables to the dose at ``points``, the dose variables' indices)."""
        block, voxels = point_map(t, points)
        return block, self.dose_vars.variables(voxels)

    def _add_points(self, t: Term, points: np.ndarray) -> None:
        """Rows ``dose(point) - excess <= level(point)`` for ``points`` of a voxel_max term."""
        if points.size == 0:
            return
        tl = self._lp_terms[t.key]
        block, d = self._point_block(t, points)
        ones = sp.csr_matrix(np.ones((points.size, 1)))
        rows = self.lp.add_rows([(d, block), (np.array([tl.excess]), -ones)], -np.inf, self._row_levels(t)[points])
        tl.point_rows.append(rows)
        tl.point_ids.append(points)
        tl.point_exact.append(False)

    def _beyond_at_zero(self, t: Term, points: np.ndarray) -> np.ndarray:
        """Mask of ``points`` of a hard cap whose truncated row could not be met even with zero fluence:
        the correction's constant (the dropped scatter at the last fluence) alone reaches the row's bound.
        Such a row makes the LP infeasible (a 2 Gy cap next to a target: the first priority, and with
        it the plan, came out empty); the point needs an exact row, which zero fluence always meets."""
        if self.dose_vars.exact or points.size == 0:
            return np.zeros(points.size, dtype=bool)
        block, voxels = point_map(t, points)
        constant = block @ self.dose_vars.constants(voxels)
        bound = self._row_levels(t)[points] - self.margin.get(t.key, 0.0) - self.settings.hard_safety_gy
        return constant >= bound

    def _secure_caps(self) -> None:
        """Exact rows for the hard cap points whose truncated row is out of reach at the current
        correction (see :meth:`_beyond_at_zero`): after the hard terms enter and after every change of
        the correction (points activated since then entered at the correction they are checked at)."""
        for t in self.hard:
            if t.kind != "voxel_max":
                continue
            candidates = np.flatnonzero(self.active[t.key] & ~self.released[t.key])
            unreachable = candidates[self._beyond_at_zero(t, candidates)]
            if unreachable.size:
                self._add_exact_points(t, unreachable, release=True)

    def _exact_rows(self, t: Term, points: np.ndarray) -> sp.csr_matrix:
        """The dose at ``points`` of ``t`` as rows over the weights, from the full influence matrix."""
        block, voxels = point_map(t, points)
        return sp.csr_matrix(block @ self.rows.matrix[voxels]).astype(np.float64)

    def _row_levels(self, t: Term) -> np.ndarray:
        """The level of each point of a voxel_max term as its LP rows bound it: the term's level less
        the point's allowance for the correction's lag (see :meth:`_allow_lag`)."""
        return point_levels(t) - self.lag_margin[t.key]

    def _allow_lag(self, t: Term, points: np.ndarray, over_gy: np.ndarray) -> np.ndarray:
        """Tighten the rows of ``points`` of a voxel_max term by ``over_gy`` (how far the full-matrix
        dose put them beyond their bound while their own rows read them within it): the next solve
        keeps them that much inside, which absorbs the same lag again. A bound change keeps the
        dual simplex's basis, where an exact (full-matrix, dense) row makes every later solve
        heavier (TG-119 at 3 mm: 310 exact Core rows doubled the interior point's time). A point
        whose allowance would pass ``settings.lag_margin_max_gy`` keeps its allowance and is returned: it needs
        an exact row (:meth:`_add_exact_points`). A plan ceiling's points may be tightened by up to
        ``settings.ceiling_lag_margin_max`` of the ceiling: the ceiling is a safety net against extreme dose, a point
        kept a few per cent under it costs no goal, and its exact rows are dense (TG-119 at 3 mm: 798
        of the 1,128 exact rows of the last stage, which made up half of its LP's non-zeros)."""
        max_gy = self.settings.lag_margin_max_gy
        if t.goal_id in CEILING_IDS:
            max_gy = np.maximum(max_gy, self.settings.ceiling_lag_margin_max * point_levels(t)[points])
        beyond = _grow_allowance(self.lag_margin[t.key], points, over_gy, self.settings.violation_tol_gy, max_gy)
        if beyond.size < points.size:
            self._refresh_level(t)
        return beyond

    def _add_exact_points(self, t: Term, points: np.ndarray, release: bool = False) -> None:
        """Rows ``A_p w - excess <= level(p)`` on the full (untruncated) influence rows, for points of a
        voxel_max term whose truncated row let them over their bound through the correction's lag.
        The point's truncated row stays (redundant up to the correction): set free, the NPC phantom's
        dual simplex rounds at 2.5 mm ran out of time (a first-priority round 13 s instead of 1.4 s, the
        plan 131 s instead of 55 s). A point with its exact row can only be over its bound by the
        solver's tolerance, so the rounds end: without these rows the correction and the fluence chase
        each other at the points where the LP sits on a cap (NPC phantom at 4 mm: 20-40 points over
        their bound in every one of 8 rounds).

        ``release``: the points' truncated rows are out of reach (:meth:`_beyond_at_zero`) and are set
        free, whether the points had their exact row already or get it now."""
        tl = self._lp_terms[t.key]
        if release:
            for block_rows, ids, exact in zip(tl.point_rows, tl.point_ids, tl.point_exact):
                freed = np.isin(ids, points) if not exact else np.zeros(0, dtype=bool)
                if freed.any():
                    self.lp.set_row_bounds(block_rows[freed], -np.inf, np.inf)
            self.released[t.key][points] = True
        points = points[~self.exact_points[t.key][points]]
        if points.size == 0:
            return
        ones = sp.csr_matrix(np.ones((points.size, 1)))
        rows = self.lp.add_rows([(self.w_idx, self._exact_rows(t, points)), (np.array([tl.excess]), -ones)],
                                -np.inf, self._row_levels(t)[points])
        tl.point_rows.append(rows)
        tl.point_ids.append(points)
        tl.point_exact.append(True)
        self.exact_points[t.key][points] = True

    def _check_holds(self, dose: np.ndarray) -> int:
        """Held goals whose DVH point the full-matrix ``dose`` puts beyond the held level by more than
        ``settings.hold_safety_gy`` (the truncated rows' correction lagged): their held points beyond the level
        have their rows tightened by how far they are beyond it, as :meth:`_allow_lag` does, or get
        an exact row once that allowance would pass ``settings.lag_margin_max_gy``. Returns their number."""
        n = 0
        for h in self.holds.values():
            t = h.term
            values = t.point_values(dose[t.rows])
            dvh = dvh_dose(values, t.fraction, t.sense == "max", t.point_weights)
            if t.sign * (dvh - h.level_gy) <= self.settings.hold_safety_gy:
                continue   # the DVH point is still within what the slip allows
            self.worst_gy = max(self.worst_gy, float(t.sign * (dvh - h.level_gy)))
            over = t.sign * (values - h.level_gy)
            beyond = np.flatnonzero(h.keep & ~h.exact & (over > self.settings.violation_tol_gy))
            if beyond.size:
                points = _grow_allowance(h.margin, beyond, over[beyond], self.settings.violation_tol_gy,
                                         self.settings.lag_margin_max_gy)
                if points.size:
                    h.rows.append(self.lp.add_rows([(self.w_idx, t.sign * self._exact_rows(t, points))],
                                                   -np.inf, np.full(points.size, t.sign * h.level_gy)))
                    h.row_ids.append(points)
                    h.exact[points] = True
                h.set_bounds(self.lp)
                self.violations[f"{t.goal_id} (held)"] = int(beyond.size)
                n += int(beyond.size)
        return n

    # ---- dose-volume goals held exactly after their stage
    def _hold(self, t: Term, dose: np.ndarray, slip: float) -> None:
        """Replace the CVaR of ``t`` (just solved at its own stage) by a :class:`_Hold`: its DVH
        point may give back at most ``slip`` from what was achieved, and need not be better than
        the level (as the evaluation reads it, see ``measure``)."""
        self._release(t)
        evaluated = self.measure(t, dose) if self.measure is not None else None
        hold, keep = dvh_hold(t, dose[t.rows], slip, self.settings.hold_safety_gy, evaluated)
        h = _Hold(t, hold, keep, np.zeros(keep.size, dtype=bool), np.zeros(keep.size))
        self.holds[t.key] = h
        # every kept point's row at once: an interior-point solve moves any point it does not see
        kept = np.flatnonzero(keep)
        if kept.size:
            block, d = self._point_block(t, kept)
            sign = t.sign      # rows: sign * dose(point) <= sign * held level
            h.rows.append(self.lp.add_rows([(d, sign * block)], -np.inf, np.full(kept.size, sign * hold)))
            h.row_ids.append(kept)
        # the CVaR no longer binds: its slack may grow freely (it has no cost after its stage)
        tl = self._lp_terms[t.key]
        self.lp.set_variable_bounds(tl.aim, self.achieved[t.key], np.inf)

    def _release(self, t: Term) -> None:
        """Drop the hold of ``t`` (its stage is solved again)."""
        h = self.holds.pop(t.key, None)
        if h is not None:
            for rows in h.rows:
                self.lp.set_row_bounds(rows, -np.inf, np.inf)

    def _set_margin(self, t: Term, margin: float) -> None:
        self.margin[t.key] = margin
        tl = self._lp_terms.get(t.key)
        if tl is None:
            return
        if tl.aim is None:
            self.lp.set_variable_bounds(tl.excess, -self.settings.floor_rx * self.rx_gy,
                                        -margin - self.settings.hard_safety_gy)
        else:
            self.lp.set_row_bounds(tl.link, -np.inf, -margin)

    def _refresh_level(self, t: Term) -> None:
        """Row bounds from the term's current level (after the level was changed, e.g. re-aimed)."""
        tl = self._lp_terms[t.key]
        if t.kind == "voxel_max":
            for rows, pts, exact in zip(tl.point_rows, tl.point_ids, tl.point_exact):
                level = self._row_levels(t)[pts]
                if not exact:   # released where the point's truncated row was unreachable
                    level = np.where(self.released[t.key][pts], np.inf, level)
                self.lp.set_row_bounds(rows, -np.inf, level)
        else:
            sign = t.sign
            self.lp.set_row_bounds(tl.value_row, -np.inf, sign * float(np.max(t.level_gy)))

    # ---- lazy point sets of voxel_max terms
    def _initial_activation(self) -> None:
        w_ref = self.reference_fluence()
        dose = self.rows.dose(w_ref)
        for t in self.hard + self.soft:
            if t.kind != "voxel_max":
                continue
            ref = t.point_values(dose[t.rows])
            # the plan ceilings bind only where the dose would be extreme: start with no point active
            ratio = 1.0 if t.goal_id in CEILING_IDS else self.settings.initial_ratio
            level = np.maximum(point_levels(t), 1e-6)
            self.active[t.key] = ref >= ratio * level
            if t.seed is not None:   # a coarse lattice where the reference dose comes near the level
                self.active[t.key] |= t.seed & (ref >= self.settings.seed_ratio * level)
            self.exact_points[t.key] = np.zeros(t.n_points, dtype=bool)
            self.released[t.key] = np.zeros(t.n_points, dtype=bool)
            self.lag_margin[t.key] = np.zeros(t.n_points)
        self.dose_vars.set_correction(w_ref)

    def _activate_violations(self, bounds: dict[str, float], dose: np.ndarray, lp_dose: np.ndarray,
                             tighten: set[str]) -> int:
        """Check every point with the full-matrix ``dose``: add violated (and nearly violated) points.

        Where a hard term, or a term of the stage being solved (``tighten``), is violated in the dose
        its own rows read (``lp_dose``: the truncated rows at the solve's correction), the solver's
        tolerance put it there: tighten its LP level by that much. A violation that only the full
        matrix shows is the correction's lag; the next round re-solves with the correction at this
        fluence instead. Earlier stages' soft goals have their slip as headroom. Returns the number
        of violations found."""
        n_violated = 0
        hard_keys = {t.key for t in self.hard} | tighten
        self.violations = {}
        self.worst_gy = 0.0
        for t in self.hard + self.soft:
            if t.key not in bounds:
                continue
            if t.kind != "voxel_max":
                # a mean row is exact; a CVaR of the stage being solved whose full-matrix value differs
                # from the LP's (the correction's lag) by up to settings.stage_lag_tol_gy needs no further round:
                # its stage records (holds) what the full-matrix dose achieves
                excess = t.excess_gy(dose[t.rows]) - bounds[t.key]
                if t.key in hard_keys:
                    lp_excess = t.excess_gy(lp_dose[t.rows]) - bounds[t.key]
                    if abs(excess - lp_excess) > self.settings.stage_lag_tol_gy:
                        n_violated += 1   # the LP optimized a stale value: again with the new correction
                        self.violations[f"{t.goal_id} (lag)"] = 1
                        self.worst_gy = max(self.worst_gy, abs(excess - lp_excess))
                    elif excess > self.settings.violation_tol_gy and lp_excess > self.settings.violation_tol_gy:
                        self.worst_gy = max(self.worst_gy, lp_excess)
                        self._set_margin(t, self.margin.get(t.key, 0.0) + lp_excess + self.settings.violation_tol_gy)
                        progress_detail(self.progress, f"  {t.goal_id}: over its bound by {lp_excess:.4f} Gy in "
                                        f"its own rows (solver tolerance): level tightened by "
                                        f"{self.margin[t.key]:.4f} Gy")
                        n_violated += 1
                continue
            value = t.point_values(dose[t.rows]) - point_levels(t) - bounds[t.key]
            violated = value > self.settings.violation_tol_gy
            if not violated.any():
                continue
            self.worst_gy = max(self.worst_gy, float(value[violated].max()))
            was_active = self.active[t.key] & violated
            n_new = int(np.count_nonzero(violated & ~self.active[t.key]))
            if was_active.any() and t.key in hard_keys:
                exact = self.exact_points[t.key]
                lp_value = np.where(exact, value, t.point_values(lp_dose[t.rows]) - point_levels(t) - bounds[t.key])
                by_tolerance = was_active & (lp_value > self.settings.violation_tol_gy)
                if by_tolerance.any():
                    worst = float(lp_value[by_tolerance].max())
                    self._set_margin(t, self.margin.get(t.key, 0.0) + worst + self.settings.violation_tol_gy)
                    progress_detail(self.progress, f"  {t.goal_id}: {int(by_tolerance.sum())} point(s) over "
                                    f"their row's bound by up to {worst:.4f} Gy (solver tolerance): level "
                                    f"tightened by {self.margin[t.key]:.4f} Gy")
                lagged = np.flatnonzero(was_active & ~by_tolerance & ~exact)
                self._add_exact_points(t, self._allow_lag(t, lagged, value[lagged] - np.minimum(lp_value[lagged], 0.0)))
                n_new += int(np.count_nonzero(was_active))
            n_violated += n_new
            if n_new:
                self.violations[t.goal_id] = self.violations.get(t.goal_id, 0) + n_new
            margin = self.settings.activate_margin_gy
            if t.goal_id in CEILING_IDS:
                margin = np.maximum(margin, (1.0 - self.settings.ceiling_activate_ratio) * point_levels(t))
            new = (value > -margin) & ~self.active[t.key]
            self.active[t.key] |= new
            self._add_points(t, np.flatnonzero(new))
        return n_violated

    # ---- stages
    def _anchor(self, weights: np.ndarray) -> None:
        """Cost the fluence's move away from ``weights`` (the last solve's): variables
        ``u_j >= |w_j - weights_j|`` with cost ``settings.proximity_weight`` x the integral dose of a unit of
        ``w_j`` / Rx, in every solve of every stage (a cost that changed between rounds would cost the
        dual simplex its warm start). The first anchor is zero fluence (the tie-breaker, twice).

        A stage's LP is degenerate: many fluences reach the same objective, and without this each
        lazy round's dual simplex jumped to another of them (NPC phantom at 2.5 mm: 20-90 % of the
        fluence's norm per round), so the truncated rows' correction, exact only at the last
        fluence, lagged again and the next round had new points to repair. With it the plan took 57 s
        instead of 68 s (rounds per stage 3, 2, 2, 3 against 3, 4, 4, 3), with the same verdict."""
        if self.settings.proximity_weight <= 0:
            return
        n = self.n_cols
        if self._proximity is None:
            eye = sp.identity(n, format="csr")
            u = self.lp.add_variables(n, 0.0, self.w_upper)
            below = self.lp.add_rows([(u, eye), (self.w_idx, -eye)], -weights, np.inf)   # u >= anchor - w
            above = self.lp.add_rows([(u, eye), (self.w_idx, eye)], weights, np.inf)     # u >= w - anchor
            self._proximity = (u, below, above)
        else:
            _, below, above = self._proximity
            self.lp.set_row_bounds(below, -weights, np.inf)
            self.lp.set_row_bounds(above, weights, np.inf)

    def _stage_objective(self, sol: LPSolution) -> float:
        """The solved objective without the proximity term (the move it costs is not the stage's)."""
        if self._proximity is None or sol.x is None:
            return sol.objective
        return float(sol.objective - self._proximity_cost() @ sol.x[self._proximity[0]])

    def _proximity_cost(self) -> np.ndarray:
        """Cost of each proximity variable ``u`` (see :meth:`_anchor`)."""
        return self.settings.proximity_weight * self.integral_per_weight / self.rx_gy

    def _apply_cost(self) -> None:
        cost = np.zeros(self.lp.n_vars)
        # without a tie-breaker a met goal leaves the LP free to return extreme vertices
        cost[self.w_idx] = self.settings.integral_dose_weight * self.integral_per_weight / self.rx_gy
        if self._proximity is not None:
            cost[self._proximity[0]] = self._proximity_cost()
        for idx, c in self._stage_cost.items():
            cost[idx] += c
        self.lp.set_cost(cost)

    def _bounds(self, stage_terms: list[Term], x: np.ndarray) -> dict[str, float]:
        """Excess allowed per term key (Gy) for the violation check: 0 for hard terms, s* for
        earlier soft goals, the stage's own slack for the terms being optimized."""
        bounds = {t.key: 0.0 for t in self.hard}
        bounds.update({k: v for k, v in self.achieved.items()})
        for t in stage_terms:
            bounds[t.key] = float(x[self._lp_terms[t.key].aim])
        return bounds

    def _solve_logged(self, method: str, what: str, deadline: float | None = None):
        t0 = time.perf_counter()
        if deadline is not None and t0 >= deadline:
            return LPSolution("time limit", None, None, float("nan"), 0)
        sol = self.lp.solve(method, None if deadline is None else deadline - t0)
        how = {"ipm": "interior point + crossover", "barrier": "interior point"}.get(method, f"{method} simplex")
        self._report(what, how, sol, time.perf_counter() - t0)
        return sol

    def _report(self, what: str, how: str, sol: LPSolution, seconds: float, extra: str = "") -> None:
        """One progress line per LP solve: method, status, iterations, time and the LP's size."""
        progress_detail(self.progress, f"  LP {what}: {how}, {sol.status}, {sol.iterations} iterations, "
                                       f"{seconds:.1f} s{extra} ({self.lp.n_rows} rows, {self.lp.n_vars} variables)")

    def _dual_or_barrier(self, what: str, dual_limit_s: float, deadline: float | None,
                         barrier_after_s: float = 0.0) -> LPSolution:
        """A lazy round: the dual simplex from the last basis for at most ``dual_limit_s``, else the
        interior point, started ``barrier_after_s`` into the dual simplex on the second core (see
        :meth:`LinearProgram.solve_dual_or_barrier`); once the dual simplex ran out of time, every
        later solve of this solver is an interior point (``dual_too_slow``)."""
        t0 = time.perf_counter()
        if deadline is not None and t0 >= deadline:
            return LPSolution("time limit", None, None, float("nan"), 0)
        dual, barrier = self.lp.solve_dual_or_barrier(dual_limit_s, None if deadline is None else deadline - t0,
                                                      barrier_after_s)
        self._report(what, "dual simplex", dual, dual.seconds)
        if barrier is None:
            return dual
        self.dual_too_slow = True
        self._report(f"{what} (dual simplex too slow)", "interior point (started with it)", barrier, barrier.seconds,
                     f"; {time.perf_counter() - t0:.1f} s in all")
        return barrier

    def _solve_rounds(self, stage_terms: list[Term], method: str | None = None,
                      time_limit_s: float | None = None, carry_gy: float = 0.0):
        """Solve, activate violated points, re-solve until clean, or until no point is more than
        ``carry_gy`` beyond its bound (a stage before the last: see :meth:`solve_priority`). Returns
        (solution, seconds, rounds).

        The stage's first solve uses ``method`` (default ``self.first_method``). 'ipm': a cold
        interior-point solve with crossover (NPC phantom at 5 mm: priority 2 in 8 s against 45 s;
        on degenerate dose LPs the simplex crawls as its basis factor fills in). 'simplex':
        the stage's new rows and bounds are first solved under the previous objective (dual
        simplex from the previous optimum), then the new objective from that feasible basis by the
        primal simplex (the dual simplex for the first stage). Every later round of lazily added
        rows is solved by the dual simplex from the last basis; after an interior-point first
        solve, a round whose dual simplex takes more than twice as long as that solve did is
        solved by the interior point, and so is every later round."""
        t0 = time.perf_counter()
        deadline = None if time_limit_s is None else t0 + float(time_limit_s)
        first = method or self.first_method
        if first == "simplex":
            first = "primal" if any(s.status == "optimal" for s in self.stages) else "dual"
            sol = self._solve_logged("dual", "new rows, previous objective", deadline)
        else:
            sol = None   # the interior point needs no feasible start
        round_ = 0
        self.unresolved = 0
        self.carried = False
        self.ceiling_left = False
        for round_ in range(1, self.settings.max_rounds + 1):
            if sol is not None and sol.status != "optimal":
                break
            self._apply_cost()   # variables added since the last solve may carry costs
            t_round = time.perf_counter()
            if round_ == 1:
                # once the dual simplex proved too slow for this LP, no basis is worth a crossover
                how = "barrier" if first == "ipm" and self.dual_too_slow else first
                sol = self._solve_logged(how, f"round {round_}", deadline)
                first_seconds = time.perf_counter() - t_round
            elif first != "ipm":
                sol = self._solve_logged("dual", f"round {round_}", deadline)
            elif self.dual_too_slow:
                sol = self._solve_logged("barrier", f"round {round_}", deadline)
            else:
                # the dual simplex usually repairs a few added rows in a moment, but on a dense LP it
                # can crawl (TG-119 at 5 mm: 98 rows, 48 s, where the interior point takes 17-35 s); it
                # gets twice as long as the stage's interior-point solve took, then the interior point
                # (started alongside, on the second core) solves the round, and every later one
                st = self.settings
                sol = self._dual_or_barrier(f"round {round_}",
                                            max(st.dual_round_min_s, st.dual_round_ipm_factor * first_seconds),
                                            deadline, barrier_after_s=st.dual_round_barrier_after * first_seconds)
            if sol.status != "optimal":
                break
            weights = np.maximum(sol.x[self.w_idx], 0.0)
            dose = self.rows.dose(weights)   # full matrix: every check reads the exact dose
            lp_dose = self.dose_vars.lp_dose(dose, weights)   # what the LP rows read (this solve's correction)
            n_violated = self._activate_violations(self._bounds(stage_terms, sol.x), dose, lp_dose,
                                                   {t.key for t in stage_terms})
            n_violated += self._check_holds(dose)
            self.unresolved = n_violated   # limits found broken after the last solve
            where = ", ".join(f"{k} {v}" for k, v in sorted(self.violations.items(), key=lambda kv: -kv[1]))
            progress_detail(self.progress, f"  round {round_}: {n_violated} point(s) beyond their bound"
                          f"{f' ({where}; worst {self.worst_gy:.3f} Gy)' if where else ''}, {self.lp.n_rows} rows now")
            self.dose_vars.set_correction(weights)
            self._secure_caps()
            self._anchor(weights)   # the next solve moves the fluence only where it gains
            if n_violated == 0:
                break
            if self.worst_gy <= carry_gy:
                self.carried = True
                break
            if self.worst_gy <= self.settings.ceiling_left_gy \
                    and n_violated == sum(self.violations.get(g, 0) for g in CEILING_IDS):
                # a few hundredths of a Gy over the 115 % safety net are not worth another solve (TG-119 at
                # 3 mm: 56 s for one point 0.018 Gy over); the stage's notes say so
                self.ceiling_left = True
                break
        return sol, time.perf_counter() - t0, round_

    def solve_priority(self, p: int, label: str | None = None, carry: bool = False) -> StageResult | None:
        """Solve the stage of priority ``p`` (None if it has no soft goals).

        ``carry``: the stage may end with points at most ``settings.carry_gy`` beyond their bound (in the full-matrix
        dose). Their rows are in the LP by then, so the next stage's solve holds them; its slip covers
        what that costs the goals solved here. Every interior-point solve of a fine grid costs 10-15 s
        (NPC phantom at 2.5 mm), and the last rounds of a stage only chase a few points a few
        hundredths of a Gy over as the truncated rows' correction catches up with the fluence.
        The last stage of a plan must end clean: ``carry`` is off unless asked for."""
        stage_terms = [t for t in self.soft if t.priority == p]
        if not stage_terms:
            return None
        slip = float(self.slips_gy.get(p, 0.0))
        self._stage_cost = {}
        for t in stage_terms:
            self._release(t)
            tl = self._add_term(t)
            self._refresh_level(t)
            self.achieved.pop(t.key, None)
            self.lp.set_variable_bounds(tl.aim, -slip, np.inf)
            self._stage_cost[tl.aim] = self.tier_weight[t.key] / self.rx_gy
            if t.sense == "max" and t.tier == "desirable":
                # ALARA: push below the limit once it is met (small weight, never worth a slack)
                self._stage_cost[tl.excess] = self.settings.alara_weight / self.rx_gy
        sol, seconds, rounds = self._solve_rounds(stage_terms, carry_gy=self.settings.carry_gy if carry else 0.0)
        name = label or f"priority {p}"
        if sol is None or sol.status != "optimal":
            status = sol.status if sol is not None else "not solved"
            for t in stage_terms:  # keep the goals out of later stages' way: their slack stays free
                self.lp.set_variable_bounds(self._lp_terms[t.key].aim, -np.inf, np.inf)
            self._stage_cost = {}
            result = StageResult(p, name, status, float("nan"), {}, slip, seconds,
                                 [f"stage did not solve ({status}); the previous fluence is kept"])
            self.stages.append(result)
            self.progress(f"stage {name}: {status} in {seconds:.1f} s")
            return result
        self.weights = np.maximum(sol.x[self.w_idx], 0.0)
        dose = self.rows.dose(self.weights)
        stage_achieved = {}
        for t in stage_terms:
            tl = self._lp_terms[t.key]
            aim = float(sol.x[tl.aim])
            if t.kind != "voxel_max":   # the full-matrix value where the LP's lagged one reads better
                aim = max(aim, t.excess_gy(dose[t.rows]))
            s = max(0.0, aim + slip)       # slack beyond the slip-tightened aim
            self.achieved[t.key] = s
            self.lp.set_variable_bounds(tl.aim, s, s)        # later stages: within level + s
            stage_achieved[t.key] = t.goal_excess_gy(dose[t.rows])
            if t.kind in ("cvar_lower", "cvar_upper") and self.hold_dvh_points:
                self._hold(t, dose, slip)
        for t in self.hard:
            tl = self._lp_terms[t.key]
            if t.kind == "voxel_max" and tl.point_rows:
                ids, rows = np.concatenate(tl.point_ids), np.concatenate(tl.point_rows)
                solved = rows < sol.row_dual.size     # rows added after the last solve have no dual yet
                self.hard_duals[t.key] = (ids[solved], np.abs(sol.row_dual[rows[solved]]))
        self._stage_cost = {}
        notes = [f"{rounds} solve(s) to activate every needed organ point"] if rounds > 1 else []
        if self.unresolved and self.carried:
            notes.append(f"{self.unresolved} point(s) at most {self.worst_gy:.3f} Gy beyond their bound carried into "
                         f"the next stage, which holds their rows")
        elif self.unresolved and self.ceiling_left:
            notes.append(self._ceiling_note())
        elif self.unresolved:
            notes.append(f"{self.unresolved} point(s) still beyond their bound after {self.settings.max_rounds} "
                         f"solves: the fluence may break a limit the stage holds (the evaluation of the final dose "
                         f"decides)")
        objective = self._stage_objective(sol)
        result = StageResult(p, name, sol.status, objective, stage_achieved, slip, seconds, notes)
        self.stages.append(result)
        self.progress(f"stage {name}: {sol.status}, {seconds:.1f} s")
        progress_detail(self.progress, f"  objective {objective:.4g} ({rounds} rounds, {self.lp.n_rows} rows)")
        return result

    def solve_normal_tissue(self, normal: NormalTissue) -> StageResult:
        """The last stage: normal-tissue dose and fluence roughness within all earlier results."""
        # what the stage before carried: the previous fluence, kept if this stage fails, is that far off
        carried = f"{self.unresolved} point(s) up to {self.worst_gy:.3f} Gy" if self.carried else ""
        w_scale = float(np.mean(self.weights[self.weights > 0])) if self.weights.any() else 1.0
        cost: dict[int, float] = {}
        if len(normal.body_rows):
            body_mean = np.asarray(self.rows.matrix[normal.body_rows].mean(axis=0), dtype=float).ravel() / self.rx_gy
            for i, c in zip(self.w_idx, body_mean):
                cost[int(i)] = float(c)
        self._stage_cost = cost
        ring = np.asarray(normal.ring_rows)
        if ring.size:
            # every ring voxel's row at once (rows d_v - r_v <= reference_v, r_v >= 0: the dose above the
            # reference fall-off, costed): the rows are sparse (truncated dose), and adding them lazily
            # cost the NPC phantom at 4 mm a second round whose dual simplex ran 8 s without finishing
            reference = np.asarray(normal.ring_reference_gy, dtype=float)
            d = self.dose_vars.variables(ring)
            r = self.lp.add_variables(ring.size, 0.0, np.inf)
            rows = self.lp.add_rows([(d, sp.identity(ring.size, format="csr")),
                                     (r, -sp.identity(ring.size, format="csr"))], -np.inf, reference)
            over = self.rows.matrix[ring] @ self.weights > reference   # r takes the excess (basic), row tight
            self.lp.swap_into_basis(r[over], rows[over])
            for i in r:
                self._stage_cost[int(i)] = 1.0 / (ring.size * self.rx_gy)
        if normal.roughness is not None and normal.roughness.shape[0]:
            self._add_roughness(normal.roughness, normal.roughness_weight / (normal.roughness.shape[0] * w_scale),
                                split=self.dual_too_slow)
        # new rows and a new objective: the dual simplex from the last basis, or a cold interior point
        sol, seconds, rounds = self._solve_rounds([],
                                                  method="dual" if self.first_method == "simplex" else "ipm",
                                                  time_limit_s=normal.time_limit_s)
        notes = []
        if sol is not None and sol.status == "optimal" and self.unresolved and not self.ceiling_left:
            notes.append(f"normal-tissue stage left {self.unresolved} point(s) beyond an earlier bound after "
                         f"{self.settings.max_rounds} solves; the fluence of the previous stage is kept")
        elif sol is not None and sol.status == "optimal":
            self.weights = np.maximum(sol.x[self.w_idx], 0.0)
            if self.unresolved:
                notes.append(self._ceiling_note())
        elif sol is not None and sol.status == "time limit":
            notes.append(f"normal-tissue stage stopped at its time limit ({normal.time_limit_s:g} s); the fluence "
                         f"of the previous stage is kept (every earlier priority holds; normal tissue and "
                         f"smoothness not refined)")
        else:
            notes.append(f"normal-tissue stage did not solve ({sol.status if sol else 'not solved'}); "
                         f"the previous fluence is kept")
        if carried and not (sol is not None and sol.status == "optimal" and not self.unresolved):
            notes.append(f"the previous stage's fluence has {carried} beyond their bound (carried for this stage to "
                         f"clear): the evaluation of the final dose decides")
        value = self._stage_objective(sol) if sol is not None else float("nan")
        status = sol.status if sol is not None else "not solved"
        self._stage_cost = {}
        result = StageResult(None, "normal tissue and fluence smoothness", status, value, {}, 0.0, seconds, notes)
        self.stages.append(result)
        self.progress(f"stage normal tissue: {status}, {seconds:.1f} s")
        progress_detail(self.progress, f"  {rounds} rounds")
        return result

    def _ceiling_note(self) -> str:
        return (f"{self.unresolved} plan-ceiling point(s) left at most {self.worst_gy:.3f} Gy above the ceiling "
                f"(max_dose_pct_rx, the optimizer's safety net against extreme dose, not a protocol goal; another "
                f"solve of the stage would cost as much as its first)")

    def _add_roughness(self, roughness: sp.csr_matrix, cost: float, split: bool) -> None:
        """Total variation of the fluence (L1 of the neighbour differences ``R w``, each costed
        ``cost``), in the form that suits the solver the stage will use.

        For the simplex rounds (and the interior point with presolve and crossover before them):
        ``tv_k >= +-R_k w``, two rows per pair. ``split`` (once the dual simplex proved too slow, the
        interior point without presolve): each difference split into its rise and fall,
        ``R_k w = p_k - q_k`` with ``p, q >= 0`` and ``p_k + q_k`` costed (equal to ``|R_k w|`` at the
        optimum), one row per pair.
        Measured on the last stage's first LP, the same optimum either way: TG-119 at 3 mm, interior
        point without presolve, 43 s split against 60 s in pairs; NPC phantom at 2.5 mm, interior point
        with presolve and crossover, 9.4 s split against 7.4 s in pairs."""
        n_pairs = roughness.shape[0]
        eye = sp.identity(n_pairs, format="csr")
        if split:
            rise = self.lp.add_variables(n_pairs, 0.0, np.inf)
            fall = self.lp.add_variables(n_pairs, 0.0, np.inf)
            self.lp.add_rows([(self.w_idx, roughness), (rise, -eye), (fall, eye)], 0.0, 0.0)
            costed = np.concatenate([rise, fall])
        else:
            tv = self.lp.add_variables(n_pairs, 0.0, np.inf)
            up = self.lp.add_rows([(self.w_idx, roughness), (tv, -eye)], -np.inf, 0.0)
            down = self.lp.add_rows([(self.w_idx, -roughness), (tv, -eye)], -np.inf, 0.0)
            # start from |R w| at the current fluence: each difference basic, its tight row non-basic
            rising = roughness @ self.weights >= 0
            self.lp.swap_into_basis(tv, np.where(rising, up, down))
            costed = tv
        for i in costed:
            self._stage_cost[int(i)] = cost

