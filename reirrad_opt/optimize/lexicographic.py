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
PTV) and fluence roughness within all of the above. Every stage is an LP/QP solved by cvxpy with
Clarabel (interior point) by default.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from ..progress import SILENT, Progress
from .terms import Term, cvar_expression

TIER_WEIGHT = {"desirable": 1.0, "acceptable": 10.0}
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


class _Rows:
    """Caches the float64 row blocks of the influence matrix per term."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix
        self._cache: dict[int, sp.csr_matrix] = {}

    def block(self, rows: np.ndarray) -> sp.csr_matrix:
        key = id(rows)
        if key not in self._cache:
            self._cache[key] = self.matrix[rows].astype(np.float64).tocsr()
        return self._cache[key]


def _term_expression(term: Term, dose: cp.Expression, n: int):
    """The convex (max sense) or concave (min sense) scalar/vector expression of a term."""
    if term.kind == "voxel_max":
        return dose
    if term.kind in ("mean_max", "mean_min"):
        return cp.sum(dose) / n
    expr, _ = cvar_expression(dose, n, term.fraction, upper=(term.kind == "cvar_upper"))
    return expr


def _term_constraint(term: Term, expr, bound) -> cp.Constraint:
    """Surrogate within ``level + bound`` (max sense) or ``level - bound`` (min sense)."""
    if term.sense == "max":
        return expr <= term.level_gy + bound
    return expr >= term.level_gy - bound


def _solve(problem: cp.Problem, solver: str) -> str:
    try:
        problem.solve(solver=solver, verbose=False)
    except cp.error.SolverError:
        try:
            problem.solve(solver="SCS", verbose=False, max_iters=20000)
        except cp.error.SolverError:
            return "solver_error"
    return str(problem.status)


class LexicographicSolver:
    """State of a lexicographic optimization: the stages solved so far and their achieved values.

    Args:
        matrix: influence matrix (n_voxels x n_columns), Gy per unit weight.
        terms: all terms (hard and soft), see :func:`reirrad_opt.optimize.build.build_terms`.
        rx_gy: prescription (Gy, new-course physical), the scale of every slack.
        slips_gy: priority -> what later stages may give back on that priority's goals (Gy).
        tier_by_goal: hard goal id -> 'desirable' or 'acceptable' (which cap is in force).
        solver: cvxpy solver name (default Clarabel).
    """

    def __init__(self, matrix: sp.csr_matrix, terms: list[Term], *, rx_gy: float, slips_gy: dict[int, float],
                 tier_by_goal: dict[str, str], solver: str = "CLARABEL", progress: Progress = SILENT,
                 rows: "_Rows | None" = None) -> None:
        self.rows = rows if rows is not None else _Rows(matrix)
        self.n_cols = matrix.shape[1]
        self.terms = terms
        self.rx_gy = float(rx_gy)
        self.slips_gy = dict(slips_gy)
        self.tier_by_goal = dict(tier_by_goal)
        self.solver = solver
        self.progress = progress
        self.hard = [t for t in terms if t.hard and t.tier == self.tier_by_goal.get(t.goal_id, "desirable")]
        self.soft = [t for t in terms if not t.hard]
        self.achieved: dict[str, float] = {}   # term key -> s* (Gy): later stages keep level + s*
        self.stages: list[StageResult] = []
        self.weights = np.zeros(self.n_cols)
        self.hard_duals: dict[str, np.ndarray] = {}

    def _base_constraints(self, w: cp.Variable) -> tuple[list, list]:
        cons, hard_cons = [], []
        for t in self.hard:
            c = self.rows.block(t.rows) @ w <= t.level_gy
            cons.append(c)
            hard_cons.append((t, c))
        for t in self.soft:
            if t.key in self.achieved:
                expr = _term_expression(t, self.rows.block(t.rows) @ w, len(t.rows))
                cons.append(_term_constraint(t, expr, self.achieved[t.key]))
        return cons, hard_cons

    def solve_priority(self, p: int, label: str | None = None) -> StageResult | None:
        """Solve the stage of priority ``p`` (None if it has no soft goals)."""
        stage_terms = [t for t in self.soft if t.priority == p]
        if not stage_terms:
            return None
        t0 = time.perf_counter()
        w = cp.Variable(self.n_cols, nonneg=True)
        cons, hard_cons = self._base_constraints(w)
        slip = float(self.slips_gy.get(p, 0.0))
        objective = 0
        slacks = {}
        for t in stage_terms:
            s = cp.Variable(nonneg=True)
            slacks[t.key] = s
            expr = _term_expression(t, self.rows.block(t.rows) @ w, len(t.rows))
            cons.append(_term_constraint(t, expr, s - slip))
            objective = objective + TIER_WEIGHT[t.tier] * s / self.rx_gy
            if t.sense == "max" and t.tier == "desirable":
                # ALARA: push below the limit once it is met (small weight, never worth a slack)
                alara = cp.max(expr) if t.kind == "voxel_max" else expr
                objective = objective + ALARA_WEIGHT * alara / self.rx_gy
        problem = cp.Problem(cp.Minimize(objective), cons)
        status = _solve(problem, self.solver)
        seconds = time.perf_counter() - t0
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
            if c.dual_value is not None:
                self.hard_duals[t.key] = np.abs(np.asarray(c.dual_value, dtype=float).ravel())
        result = StageResult(p, name, status, float(problem.value), stage_achieved, slip, seconds)
        self.stages.append(result)
        self.progress(f"stage {name}: {status}, objective {problem.value:.4g}, {seconds:.1f} s")
        return result

    def solve_normal_tissue(self, normal: NormalTissue) -> StageResult:
        """The last stage: normal-tissue dose and fluence roughness within all earlier results."""
        t0 = time.perf_counter()
        w = cp.Variable(self.n_cols, nonneg=True)
        cons, _ = self._base_constraints(w)
        objective = 0
        if len(normal.body_rows):
            objective = objective + cp.sum(self.rows.block(normal.body_rows) @ w) / (
                len(normal.body_rows) * self.rx_gy)
        if len(normal.ring_rows):
            excess = cp.pos(self.rows.block(normal.ring_rows) @ w - normal.ring_reference_gy)
            objective = objective + cp.sum(excess) / (len(normal.ring_rows) * self.rx_gy)
        if normal.roughness is not None and normal.roughness.shape[0] and self.weights.any():
            scale = float(np.mean(self.weights[self.weights > 0] ** 2))
            objective = objective + normal.roughness_weight * cp.sum_squares(normal.roughness @ w) / (
                normal.roughness.shape[0] * scale)
        problem = cp.Problem(cp.Minimize(objective), cons)
        status = _solve(problem, self.solver)
        seconds = time.perf_counter() - t0
        notes = []
        if w.value is not None and status in ("optimal", "optimal_inaccurate"):
            self.weights = np.maximum(np.asarray(w.value, dtype=float), 0.0)
        else:
            notes.append(f"normal-tissue stage did not solve ({status}); the previous fluence is kept")
        value = float(problem.value) if problem.value is not None else float("nan")
        result = StageResult(None, "normal tissue and fluence smoothness", status, value, {}, 0.0, seconds, notes)
        self.stages.append(result)
        self.progress(f"stage normal tissue: {status}, {seconds:.1f} s")
        return result

    def final_excess(self) -> dict[str, float]:
        """Excess over its level (Gy, the optimizer's surrogate) of every term for the current weights."""
        return {t.key: t.excess_gy(self.rows.block(t.rows) @ self.weights) for t in self.terms}

    def priorities(self) -> list[int]:
        return sorted({t.priority for t in self.soft})
