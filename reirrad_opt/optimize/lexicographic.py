"""The lexicographic (prioritized) fluence optimization.

Stage p (for each priority p of the protocol, in order) solves a convex problem:

    minimise   sum over soft terms g of priority p:  W_tier * s_g / Rx   (+ ALARA terms)
    subject to w >= 0,
               every hard term (priority-1 organ caps):   A_g w <= cap_g          (never relaxed)
               every soft term g of priority p:           surrogate_g within level_g -/+ slip_p + s_g, s_g >= 0
               every soft term h of an earlier priority:  surrogate_h within level_h + s_h*   (s_h* achieved)

A soft goal is first aimed at its level tightened by its priority's slip; later stages may give
that slip back but no more, so a goal met at its own stage is still met at the end. A last stage
minimises normal-tissue dose (mean dose in sampled body voxels, a dose fall-off ring around the
PTV) and fluence roughness (total variation) within all of the above. Every stage is an LP,
built with cvxpy and solved by HiGHS (Clarabel as fallback).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..progress import SILENT, Progress
from .terms import BODY_CEILING_ID, CEILING_IDS, Term, cvar_expression

TIER_WEIGHT = {"desirable": 1.0, "acceptable": 10.0}
INTEGRAL_DOSE_WEIGHT = 1e-3  # tie-breaker in every stage: among equal optima, the least integral dose
ALARA_WEIGHT = 0.01
TOL_GY = 1e-3


@dataclass
class StageResult:
    """One solved stage.

    Attributes:
        priority: the protocol priority the stage optimizes (None for the normal-tissue stage).
        name: human label.
        status: solver status ('optimal', 'optimal_inaccurate', 'infeasible', ...).
        objective: the stage's objective value (dimensionless, slacks in units of Rx).
        achieved: term key -> excess over the term's level in Gy (<= 0 met; the optimizer's surrogate).
        slip_gy: what later stages may give back on this stage's goals (Gy).
        seconds: wall time (build + solve).
        notes: remarks (limit tier used, diagnosis, ...).
    """

    priority: int | None
    name: str
    status: str
    objective: float
    achieved: dict[str, float]
    slip_gy: float
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"priority": self.priority, "name": self.name, "status": self.status,
                "objective": None if not np.isfinite(self.objective) else round(float(self.objective), 6),
                "achieved": {k: round(v, 4) for k, v in self.achieved.items()},
                "slip": {"value_gy": round(self.slip_gy, 4)}, "seconds": round(self.seconds, 3),
                "notes": self.notes}


@dataclass
class NormalTissue:
    """Voxels and settings of the last (normal-tissue) stage.

    Attributes:
        body_rows: sampled body voxels away from the PTV (mean dose minimised).
        ring_rows: voxels around the PTV; ring_reference_gy: the dose fall-off they should stay under.
        roughness: sparse difference operator between neighbouring bixels (rows = pairs), or None.
        roughness_weight: weight of the mean squared fluence difference (relative).
    """

    body_rows: np.ndarray
    ring_rows: np.ndarray
    ring_reference_gy: np.ndarray
    roughness: sp.csr_matrix | None = None
    roughness_weight: float = 0.1


def truncate_columns(matrix: sp.csr_matrix, rel_threshold: float) -> sp.csr_matrix:
    """Copy of ``matrix`` without the entries below ``rel_threshold`` times their column's maximum
    (the low scatter tails of photon bixels, which make every row dense)."""
    if rel_threshold <= 0:
        return matrix
    csc = matrix.tocsc(copy=True)
    col_max = np.zeros(csc.shape[1])
    nz = np.diff(csc.indptr) > 0
    col_max[nz] = np.maximum.reduceat(np.abs(csc.data), csc.indptr[:-1][nz])
    csc.data[np.abs(csc.data) < rel_threshold * np.repeat(col_max, np.diff(csc.indptr))] = 0
    csc.eliminate_zeros()
    return csc.tocsr()


class _Rows:
    """Row blocks of the influence matrix per term: the full matrix (true dose) and the truncated
    optimization matrix, whose missing part enters the LP as a per-row constant evaluated at the
    correction fluence ``w_corr`` (updated between rounds until it has converged)."""

    def __init__(self, matrix: sp.csr_matrix, truncation: float = 0.0) -> None:
        self.matrix = matrix
        self.matrix_opt = truncate_columns(matrix, truncation)
        self.truncated = self.matrix_opt is not matrix
        self._cache: dict[int, sp.csr_matrix] = {}
        self._cache_opt: dict[int, sp.csr_matrix] = {}
        self.w_corr = np.zeros(matrix.shape[1])
        self._offsets: dict[int, np.ndarray] = {}

    def block(self, rows: np.ndarray) -> sp.csr_matrix:
        """Full-matrix rows (float64 CSR): the true dose."""
        key = id(rows)
        if key not in self._cache:
            self._cache[key] = self.matrix[rows].astype(np.float64).tocsr()
        return self._cache[key]

    def block_opt(self, rows: np.ndarray) -> sp.csr_matrix:
        """Truncated rows used inside the LP."""
        if not self.truncated:
            return self.block(rows)
        key = id(rows)
        if key not in self._cache_opt:
            self._cache_opt[key] = self.matrix_opt[rows].astype(np.float64).tocsr()
        return self._cache_opt[key]

    def offset(self, rows: np.ndarray) -> np.ndarray:
        """Dose (Gy) of the truncated entries at the correction fluence, per row."""
        if not self.truncated:
            return np.zeros(len(rows))
        key = id(rows)
        if key not in self._offsets:
            self._offsets[key] = self.block(rows) @ self.w_corr - self.block_opt(rows) @ self.w_corr
        return self._offsets[key]

    def set_correction(self, weights: np.ndarray) -> float:
        """Use ``weights`` for the correction; return the largest change of any cached offset (Gy)."""
        if not self.truncated:
            return 0.0
        delta = np.asarray(weights, dtype=float) - self.w_corr
        change = 0.0
        for key, rows_block in self._cache.items():
            if key in self._cache_opt:
                d = rows_block @ delta - self._cache_opt[key] @ delta
                change = max(change, float(np.max(np.abs(d))) if d.size else 0.0)
        self.w_corr = np.asarray(weights, dtype=float).copy()
        self._offsets.clear()
        return change

    def dose_expr(self, rows: np.ndarray, w: cp.Variable):
        """Affine expression of the dose (Gy) on ``rows`` for the LP."""
        if not self.truncated:
            return self.block(rows) @ w
        return self.block_opt(rows) @ w + self.offset(rows)


def _levels(term: Term) -> np.ndarray:
    return np.broadcast_to(np.asarray(term.level_gy, dtype=float), (term.n_points,))


def _term_expression(term: Term, dose: cp.Expression, n: int):
    """The convex (max sense) or concave (min sense) expression of a mean or CVaR term."""
    if term.kind in ("mean_max", "mean_min"):
        return cp.sum(dose) / n
    expr, _ = cvar_expression(dose, n, term.fraction, upper=(term.kind == "cvar_upper"))
    return expr


def _term_constraint(term: Term, expr, bound) -> cp.Constraint:
    """Surrogate within ``level + bound`` (max sense) or ``level - bound`` (min sense)."""
    if term.sense == "max":
        return expr <= term.level_gy + bound
    return expr >= term.level_gy - bound


FALLBACK_SOLVER = "CLARABEL"


def _solve(problem: cp.Problem, solver: str) -> str:
    """Solve with ``solver``; on a solver failure or an inaccurate/unknown status, retry once with
    the interior-point fallback (Clarabel)."""
    for name in dict.fromkeys((solver, FALLBACK_SOLVER)):
        try:
            problem.solve(solver=name, verbose=False)
        except cp.error.SolverError:
            continue
        if problem.status in ("optimal", "infeasible", "unbounded"):
            return str(problem.status)
    return str(problem.status or "solver_error")


MAX_ROUNDS = 8           # lazy-constraint / dose-correction rounds per stage
VIOLATION_TOL_GY = 1e-3  # a point above its bound by more than this (full-matrix dose) is violated
ACTIVATE_MARGIN_GY = 0.5  # points within this of their bound are added with the violated ones
INITIAL_RATIO = 0.6       # points whose reference dose reaches this fraction of their level start active


class LexicographicSolver:
    """State of a lexicographic optimization: the stages solved so far and their achieved values.

    Maximum-type terms (``voxel_max``) can have tens of thousands of points; only those that can
    matter enter the LP. A point starts active when a reference fluence (uniform, scaled to the
    first target level) brings it to ``INITIAL_RATIO`` of its level; after each solve every point is
    checked against its bound and the violated ones (and those within ``ACTIVATE_MARGIN_GY``) are
    added, until none is violated (at most ``MAX_ROUNDS`` solves). Active sets only grow.

    Args:
        matrix: influence matrix (n_voxels x n_columns), Gy per unit weight.
        terms: all terms (hard and soft), see :func:`reirrad_opt.optimize.build.build_terms`.
        rx_gy: prescription (Gy, new-course physical), the scale of every slack.
        slips_gy: priority -> what later stages may give back on that priority's goals (Gy).
        tier_by_goal: hard goal id -> 'desirable' or 'acceptable' (which cap is in force).
        solver: cvxpy solver name (default HiGHS: the stages are LPs whose rows are dense, where
            HiGHS was about ten times faster than Clarabel; Clarabel is the fallback).
    """

    def __init__(self, matrix: sp.csr_matrix, terms: list[Term], *, rx_gy: float, slips_gy: dict[int, float],
                 tier_by_goal: dict[str, str], solver: str = "HIGHS", progress: Progress = SILENT,
                 rows: "_Rows | None" = None, truncation: float = 0.0) -> None:
        self.rows = rows if rows is not None else _Rows(matrix, truncation)
        self.n_cols = matrix.shape[1]
        self.terms = terms
        self.rx_gy = float(rx_gy)
        self.slips_gy = dict(slips_gy)
        self.tier_by_goal = dict(tier_by_goal)
        self.solver = solver
        self.progress = progress
        self.hard = [t for t in terms if t.hard and t.tier == self.tier_by_goal.get(t.goal_id, "desirable")]
        desirable_max = {t.goal_id for t in terms if not t.hard and t.kind == "voxel_max" and t.tier == "desirable"}
        # a soft maximum with both tiers: the desirable slack already drives the acceptable one down
        self.soft = [t for t in terms if not t.hard and not (
            t.kind == "voxel_max" and t.tier == "acceptable" and t.goal_id in desirable_max)]
        self.achieved: dict[str, float] = {}   # term key -> s* (Gy): later stages keep level + s*
        self.stages: list[StageResult] = []
        self.weights = np.zeros(self.n_cols)
        self.hard_duals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.active: dict[str, np.ndarray] = {}
        self.margin: dict[str, float] = {}     # hard term key -> LP level tightening (Gy)
        # rows read by several terms (targets: ceiling, coverage and hotspot surrogates) share one
        # dose variable, so their dense influence rows enter the LP once, untruncated
        shared = [t for t in terms if (t.kind != "voxel_max" or t.interp is None) and t.goal_id != BODY_CEILING_ID]
        self.union_rows = np.unique(np.concatenate([t.rows for t in shared])) if shared else np.zeros(0, int)
        self._union_pos = {id(t.rows): np.searchsorted(self.union_rows, t.rows) for t in shared}
        self._union: tuple | None = None
        # mean dose over the voxels the matrix reaches, per unit weight of each column (Gy)
        reached = max(int(np.count_nonzero(np.diff(matrix.indptr))), 1) if sp.isspmatrix_csr(matrix) else matrix.shape[0]
        self.integral_per_weight = np.asarray(matrix.sum(axis=0), dtype=float).ravel() / reached
        self._point_blocks: dict[str, tuple[int, sp.csr_matrix]] = {}
        self._initial_activation()

    # ---- lazy point sets of voxel_max terms
    def _points_dose(self, t: Term, weights: np.ndarray) -> np.ndarray:
        return t.point_values(self.rows.block(t.rows) @ weights)

    def _initial_activation(self) -> None:
        targets = [t for t in self.soft if t.sense == "min"]
        w_ref = np.ones(self.n_cols)
        scale = 1.0
        if targets:
            first = min(t.priority for t in targets)
            t0 = next(t for t in targets if t.priority == first)
            mean_ref = float(np.mean(self.rows.block(t0.rows) @ w_ref))
            scale = float(np.max(t0.level_gy)) / mean_ref if mean_ref > 0 else 1.0
        for t in self.hard + self.soft:
            if t.kind != "voxel_max":
                continue
            ref = scale * self._points_dose(t, w_ref)
            level = _levels(t)
            # the plan ceilings bind only where the dose would be extreme: start with no point active
            ratio = 1.0 if t.goal_id in CEILING_IDS else INITIAL_RATIO
            self.active[t.key] = ref >= ratio * np.maximum(level, 1e-6)
        if not self.rows.w_corr.any():
            self.rows.set_correction(scale * w_ref)

    def _point_block(self, t: Term) -> sp.csr_matrix:
        """Rows of the LP for the active points of ``t`` (cached while the active set is unchanged)."""
        active = self.active[t.key]
        n_active = int(active.sum())
        cached = self._point_blocks.get(t.key)
        if cached is not None and cached[0] == n_active:
            return cached[1]
        # hard organ caps use the full rows: exact, no correction needed
        block = self.rows.block(t.rows) if t.hard else self.rows.block_opt(t.rows)
        idx = np.flatnonzero(active)
        m = (t.interp[idx] @ block).tocsr() if t.interp is not None else block[idx]
        self._point_blocks[t.key] = (n_active, m)
        return m

    def _union_dose(self, w: cp.Variable):
        """The shared dose variable of the union rows for the LP being built (with w)."""
        if self._union is None or self._union[0] is not w:
            d = cp.Variable(self.union_rows.size)
            # exact rows: coverage, hotspot and ceiling terms see the full influence matrix
            self._union = (w, d, d == self.rows.block(self.union_rows) @ w)
        return self._union[1]

    def _dose(self, t_rows: np.ndarray, w: cp.Variable):
        """Dose expression on a term's rows: a slice of the shared variable when it has one."""
        pos = self._union_pos.get(id(t_rows))
        if pos is not None:
            return self._union_dose(w)[pos]
        return self.rows.dose_expr(t_rows, w)

    def _point_expr(self, t: Term, w: cp.Variable):
        """Affine expression of the dose at the active points of a voxel_max term."""
        idx = np.flatnonzero(self.active[t.key])
        if t.interp is None and id(t.rows) in self._union_pos:
            return self._union_dose(w)[self._union_pos[id(t.rows)][idx]]
        if t.hard:
            return self._point_block(t) @ w
        offset = self.rows.offset(t.rows)
        offset = (t.interp[idx] @ offset) if t.interp is not None else offset[idx]
        return self._point_block(t) @ w + offset

    def _voxel_max_constraint(self, t: Term, w: cp.Variable, bound) -> cp.Constraint | None:
        active = self.active[t.key]
        if not active.any():
            return None
        return self._point_expr(t, w) <= _levels(t)[active] - self.margin.get(t.key, 0.0) + bound

    def _activate_violations(self, bounds: dict[str, float], weights: np.ndarray,
                             tighten: set[str] | None = None) -> int:
        """Check every point with the full-matrix dose: add violated (and nearly violated) points;
        where a hard term, or a term of the stage being solved (``tighten``), is violated although
        all its rows are in the LP (the truncated-dose correction was off), tighten its LP level by
        the error. Earlier stages' soft goals have their slip as headroom. Returns the number of
        violations found."""
        n_violated = 0
        hard_keys = {t.key for t in self.hard} | (tighten or set())
        for t in self.hard + self.soft:
            if t.key not in bounds:
                continue
            if t.kind != "voxel_max":
                # mean / CVaR terms: all rows are in the LP, only the correction can be off; hard
                # ones are tightened by the error, soft ones have their slip as headroom
                excess = t.excess_gy(self.rows.block(t.rows) @ weights) - bounds[t.key]
                if t.key in hard_keys and excess > VIOLATION_TOL_GY:
                    self.margin[t.key] = self.margin.get(t.key, 0.0) + excess + VIOLATION_TOL_GY
                    n_violated += 1
                continue
            value = self._points_dose(t, weights) - _levels(t) - bounds[t.key]
            violated = value > VIOLATION_TOL_GY
            if not violated.any():
                continue
            was_active = self.active[t.key] & violated
            n_new = int(np.count_nonzero(violated & ~self.active[t.key]))
            if was_active.any() and t.key in hard_keys:
                self.margin[t.key] = self.margin.get(t.key, 0.0) + float(value[was_active].max()) + VIOLATION_TOL_GY
                n_new += int(np.count_nonzero(was_active))
            n_violated += n_new
            self.active[t.key] |= value > -ACTIVATE_MARGIN_GY
        return n_violated

    # ---- stages
    def _base_constraints(self, w: cp.Variable) -> tuple[list, list, dict[str, float]]:
        """Hard terms and earlier soft terms; returns (constraints, hard (term, constraint), bounds)."""
        cons, hard_cons, bounds = [], [], {}
        for t in self.hard:
            if t.kind == "voxel_max":
                c = self._voxel_max_constraint(t, w, 0.0)
                bounds[t.key] = 0.0
            else:
                expr = _term_expression(t, self._dose(t.rows, w), len(t.rows))
                c = _term_constraint(t, expr, -self.margin.get(t.key, 0.0))
                bounds[t.key] = 0.0
            if c is not None:
                cons.append(c)
                hard_cons.append((t, c))
        for t in self.soft:
            if t.key not in self.achieved:
                continue
            if t.kind == "voxel_max":
                bounds[t.key] = self.achieved[t.key]
                c = self._voxel_max_constraint(t, w, self.achieved[t.key])
                if c is not None:
                    cons.append(c)
            else:
                bounds[t.key] = self.achieved[t.key]
                expr = _term_expression(t, self._dose(t.rows, w), len(t.rows))
                cons.append(_term_constraint(t, expr, self.achieved[t.key]))
        return cons, hard_cons, bounds

    def _solve_rounds(self, build) -> tuple[str, cp.Variable, cp.Problem, dict, list, float, int]:
        """Solve, activate violated points, re-solve until clean. ``build(w)`` returns
        (objective, extra constraints, slacks, extra bounds function)."""
        t0 = time.perf_counter()
        for round_ in range(1, MAX_ROUNDS + 1):
            w = cp.Variable(self.n_cols, nonneg=True)
            cons, hard_cons, bounds = self._base_constraints(w)
            objective, extra, slacks, stage_bounds = build(w)
            # without a tie-breaker a met goal leaves the LP free to return extreme vertices
            objective = objective + INTEGRAL_DOSE_WEIGHT * (self.integral_per_weight @ w) / self.rx_gy
            union = [self._union[2]] if self._union is not None and self._union[0] is w else []
            problem = cp.Problem(cp.Minimize(objective), cons + extra + union)
            status = _solve(problem, self.solver)
            if w.value is None or status not in ("optimal", "optimal_inaccurate"):
                return status, w, problem, slacks, hard_cons, time.perf_counter() - t0, round_
            weights = np.maximum(np.asarray(w.value, dtype=float), 0.0)
            bounds.update(stage_bounds(slacks))
            n_violated = self._activate_violations(bounds, weights, tighten=set(slacks))
            self.rows.set_correction(weights)
            if n_violated == 0:
                break
        return status, w, problem, slacks, hard_cons, time.perf_counter() - t0, round_

    def solve_priority(self, p: int, label: str | None = None) -> StageResult | None:
        """Solve the stage of priority ``p`` (None if it has no soft goals)."""
        stage_terms = [t for t in self.soft if t.priority == p]
        if not stage_terms:
            return None
        slip = float(self.slips_gy.get(p, 0.0))

        def build(w):
            objective, extra, slacks = 0, [], {}
            for t in stage_terms:
                s = cp.Variable(nonneg=True)
                slacks[t.key] = s
                if t.kind == "voxel_max":
                    c = self._voxel_max_constraint(t, w, s - slip)
                    extra.extend([c] if c is not None else [])
                    alara = cp.max(self._point_expr(t, w)) if self.active[t.key].any() else 0
                else:
                    expr = _term_expression(t, self._dose(t.rows, w), len(t.rows))
                    extra.append(_term_constraint(t, expr, s - slip - self.margin.get(t.key, 0.0)))
                    alara = expr
                objective = objective + TIER_WEIGHT[t.tier] * s / self.rx_gy
                if t.sense == "max" and t.tier == "desirable":
                    # ALARA: push below the limit once it is met (small weight, never worth a slack)
                    objective = objective + ALARA_WEIGHT * alara / self.rx_gy
            bounds = lambda sl: {k: max(0.0, float(v.value)) - slip for k, v in sl.items()}
            return objective, extra, slacks, bounds

        status, w, problem, slacks, hard_cons, seconds, rounds = self._solve_rounds(build)
        name = label or f"priority {p}"
        if w.value is None or status not in ("optimal", "optimal_inaccurate"):
            result = StageResult(p, name, status, float("nan"), {}, slip, seconds,
                                 [f"stage did not solve ({status}); the previous fluence is kept"])
            self.stages.append(result)
            self.progress(f"stage {name}: {status} in {seconds:.1f} s")
            return result
        self.weights = np.maximum(np.asarray(w.value, dtype=float), 0.0)
        stage_achieved = {}
        for t in stage_terms:
            self.achieved[t.key] = max(0.0, float(slacks[t.key].value))
            stage_achieved[t.key] = t.excess_gy(self.rows.block(t.rows) @ self.weights)
        for t, c in hard_cons:
            if c.dual_value is not None and t.kind == "voxel_max":
                self.hard_duals[t.key] = (np.flatnonzero(self.active[t.key]),
                                          np.abs(np.asarray(c.dual_value, dtype=float).ravel()))
        notes = [f"{rounds} solve(s) to activate every needed organ point"] if rounds > 1 else []
        result = StageResult(p, name, status, float(problem.value), stage_achieved, slip, seconds, notes)
        self.stages.append(result)
        self.progress(f"stage {name}: {status}, objective {problem.value:.4g}, {seconds:.1f} s ({rounds} rounds)")
        return result

    def solve_normal_tissue(self, normal: NormalTissue) -> StageResult:
        """The last stage: normal-tissue dose and fluence roughness within all earlier results."""
        w_scale = float(np.mean(self.weights[self.weights > 0])) if self.weights.any() else 1.0

        def build(w):
            objective = 0
            if len(normal.body_rows):
                objective = objective + cp.sum(self.rows.dose_expr(normal.body_rows, w)) / (
                    len(normal.body_rows) * self.rx_gy)
            if len(normal.ring_rows):
                excess = cp.pos(self.rows.dose_expr(normal.ring_rows, w) - normal.ring_reference_gy)
                objective = objective + cp.sum(excess) / (len(normal.ring_rows) * self.rx_gy)
            if normal.roughness is not None and normal.roughness.shape[0]:
                # total variation of the fluence (L1 of neighbour differences): keeps the stage an LP
                objective = objective + normal.roughness_weight * cp.norm1(normal.roughness @ w) / (
                    normal.roughness.shape[0] * w_scale)
            return objective, [], {}, lambda sl: {}

        status, w, problem, _, _, seconds, rounds = self._solve_rounds(build)
        notes = []
        if w.value is not None and status in ("optimal", "optimal_inaccurate"):
            self.weights = np.maximum(np.asarray(w.value, dtype=float), 0.0)
        else:
            notes.append(f"normal-tissue stage did not solve ({status}); the previous fluence is kept")
        value = float(problem.value) if problem.value is not None else float("nan")
        result = StageResult(None, "normal tissue and fluence smoothness", status, value, {}, 0.0, seconds, notes)
        self.stages.append(result)
        self.progress(f"stage normal tissue: {status}, {seconds:.1f} s ({rounds} rounds)")
        return result

    def final_excess(self) -> dict[str, float]:
        """Excess over its level (Gy, the optimizer's surrogate) of every term for the current weights."""
        return {t.key: t.excess_gy(self.rows.block(t.rows) @ self.weights) for t in self.terms}

    def priorities(self) -> list[int]:
        return sorted({t.priority for t in self.soft})
