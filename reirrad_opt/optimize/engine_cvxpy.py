"""The cvxpy reference engine (``"cvxpy"``): each lexicographic stage stated as a cvxpy problem and
solved exactly (Clarabel by default; OSQP, HiGHS or any solver cvxpy has).

It states the same stages as the LP engine (:mod:`.engine_lp`), on the full influence matrix, with no
lazy points, truncation or rounds: over the weights w >= 0, stage p minimises

    sum over soft goals g of priority p:  W_tier * max(e_g, -slip_p) / Rx
  + alara_weight * e_g / Rx for each desirable maximum-type goal + integral_dose_weight * integral dose / Rx

subject to every hard cap e_h <= -hard_safety_gy, every earlier goal e_g <= s_g* (0 for a goal its stage
met, else its shortfall plus the slip: :func:`~reirrad_opt.optimize.holds.slack_after_stage`) and, for a held dose-volume goal, its kept points at the held level
(:func:`~reirrad_opt.optimize.holds.dvh_hold`). ``e`` is a term's excess over its level: the largest
point excess of a maximum, the mean, or the CVaR in the Rockafellar-Uryasev form. The last stage
minimises normal-tissue dose (body mean, dose above the ring's fall-off, fluence total variation, and
the PTV's squared dose outside the homogeneity window at ``NormalTissue.hot_weight``) within all of it.

Why: it is the exact reference the fast engines are tested against on small problems
(tests/test_engine_cvxpy.py), and it takes **user terms**: ``plan(..., engine="cvxpy",
extra_terms=[f, ...])``, where each ``f(dose)`` receives the cvxpy expression of the new-course dose on
the whole case grid (Gy, flat C-order voxel index, as ``mask.ravel()``) and returns a constraint (kept
in every stage, like a priority-1 cap), a convex scalar expression (added to the last stage's
objective, in the user's own scale), or a list of them. For example, a mean parotid dose of at most
20 Gy and a smooth penalty on the PTV's hot spots::

    parotid = np.flatnonzero(case.structures["Parotid_L"].mask)
    ptv = np.flatnonzero(case.structures["PTV"].mask)
    extra = [lambda d: cp.sum(d[parotid]) / parotid.size <= 20.0,
             lambda d: 1e-3 * cp.sum_squares(cp.pos(d[ptv] - 66.0)) / ptv.size]

What is given up: speed. Every stage holds every point of every term and the whole matrix (the NPC
phantom at 5 mm has tens of thousands of body-ceiling points): use it on small problems, coarse
grids, or to check the fast engines.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from ..progress import SILENT, Progress
from .dose_rows import DoseRows
from .holds import dvh_hold, point_levels, slack_after_stage
from .solver_base import SolverBase, StageSettings
from .stage import NormalTissue, StageResult
from .terms import Term

ExtraTerm = Callable[..., object]   # f(dose expression) -> cvxpy Constraint | Expression | list of them


@dataclass(frozen=True)
class CvxpySettings(StageSettings):
    """Constants of the cvxpy engine (on top of :class:`~reirrad_opt.optimize.solver_base.StageSettings`).

    Attributes:
        hard_safety_gy: hard caps are aimed this far (Gy) inside their limit (as the LP engine's: an
            interior-point solver's tolerance must not put a point over a limit the evaluation checks).
        solver: the cvxpy solver name ('CLARABEL', 'OSQP', 'HIGHS', ...).
    """

    hard_safety_gy: float = 2e-3
    solver: str = "CLARABEL"


def _cp():
    import cvxpy

    return cvxpy


class CvxpySolver(SolverBase):
    """The lexicographic stages as cvxpy problems (see the module docstring). ``extra_terms``: user
    terms on the dose expression; ``settings``: :class:`CvxpySettings`."""

    name = "cvxpy"
    Settings = CvxpySettings
    takes_extra_terms = True

    def __init__(self, matrix: sp.csr_matrix, terms: list[Term], *, rx_gy: float, slips_gy: dict[int, float],
                 tier_by_goal: dict[str, str], progress: Progress = SILENT, rows: DoseRows | None = None,
                 truncation: float = 0.0, hold_dvh_points: bool = True, measure=None,
                 settings: CvxpySettings | None = None, extra_terms: Sequence[ExtraTerm] = ()) -> None:
        super().__init__(matrix, terms, rx_gy=rx_gy, slips_gy=slips_gy, tier_by_goal=tier_by_goal, progress=progress,
                         rows=rows, truncation=truncation, hold_dvh_points=hold_dvh_points, measure=measure,
                         settings=settings)
        cp = _cp()
        if self.settings.solver not in cp.installed_solvers():
            raise ValueError(f"cvxpy engine: solver {self.settings.solver!r} is not installed; cvxpy has "
                             f"{cp.installed_solvers()}")
        self.w = cp.Variable(self.n_cols, nonneg=True, name="w")
        self.weights = self.reference_fluence()
        self._maps: dict[str, sp.csr_matrix] = {}     # term key -> dose at its points (or rows) per unit weight
        self._holds: list = []                        # constraints of held goals (kept in every later stage)
        self._earlier: list = []                      # (term, allowed excess s*) of solved goals
        self._extra_constraints, self._extra_objective = self._user_terms(extra_terms)

    # ---- the terms as cvxpy expressions
    def _map(self, t: Term) -> sp.csr_matrix:
        """Dose at the term's points per unit weight (its rows for a mean)."""
        if t.key not in self._maps:
            block = sp.csr_matrix(self.rows.matrix[t.rows], dtype=float)
            if t.kind != "mean_max" and t.kind != "mean_min" and t.interp is not None:
                block = sp.csr_matrix(t.interp @ block)
            self._maps[t.key] = block
        return self._maps[t.key]

    def _excess(self, t: Term):
        """(excess over the level in Gy as a cvxpy expression, the per-point constraint form of a
        maximum or None)."""
        cp = _cp()
        m = self._map(t)
        if t.kind == "voxel_max":
            return cp.max(m @ self.w - point_levels(t)), m
        level = float(np.max(t.level_gy))
        if t.kind in ("mean_max", "mean_min"):
            mean = cp.sum(m @ self.w) / m.shape[0]
            return t.sign * (mean - level), None
        n = m.shape[0]
        v = np.ones(n) if t.point_weights is None else np.asarray(t.point_weights, dtype=float)
        scale = v / (t.fraction * v.sum())
        z = cp.Variable()
        d = m @ self.w
        if t.kind == "cvar_upper":   # z + sum(v (d - z)+) / (q V)
            return z + scale @ cp.pos(d - z) - level, None
        return level - (z - scale @ cp.pos(z - d)), None   # lower: z - sum(v (z - d)+) / (q V)

    def _user_terms(self, extra_terms: Sequence[ExtraTerm]) -> tuple[list, object]:
        cp = _cp()
        constraints, objective = [], 0.0
        if not extra_terms:
            return constraints, objective
        dose = sp.csr_matrix(self.rows.matrix, dtype=float) @ self.w
        for i, f in enumerate(extra_terms):
            out = f(dose)
            for item in (out if isinstance(out, (list, tuple)) else [out]):
                if isinstance(item, cp.constraints.constraint.Constraint):
                    constraints.append(item)
                elif isinstance(item, cp.Expression) and item.is_scalar() and item.is_convex():
                    objective = objective + item
                else:
                    raise ValueError(f"extra_terms[{i}]: expected a cvxpy constraint or a convex scalar expression "
                                     f"of the dose, got {type(item).__name__}")
        return constraints, objective

    def _hard_constraints(self) -> list:
        out = []
        for t in self.hard:
            excess, point_map_ = self._excess(t)
            if point_map_ is not None:
                c = point_map_ @ self.w <= point_levels(t) - self.settings.hard_safety_gy
            else:
                c = excess <= -self.settings.hard_safety_gy
            out.append((t, c))
        return out

    def _solve(self, objective, constraints: list) -> tuple[str, float, object]:
        cp = _cp()
        problem = cp.Problem(cp.Minimize(objective), constraints)
        try:
            problem.solve(solver=self.settings.solver)
        except cp.error.SolverError as exc:
            return f"solver error ({exc})", float("nan"), problem
        status = "optimal" if problem.status in ("optimal", "optimal_inaccurate") else str(problem.status)
        return status, float(problem.value) if problem.value is not None else float("nan"), problem

    def _constraints(self, hard: list) -> list:
        earlier = [self._excess(t)[0] <= s for t, s in self._earlier]
        return [c for _, c in hard] + earlier + self._holds + self._extra_constraints

    def _record_duals(self, hard: list) -> None:
        for t, c in hard:
            if t.kind == "voxel_max" and c.dual_value is not None:
                duals = np.abs(np.atleast_1d(np.asarray(c.dual_value, dtype=float)))
                self.hard_duals[t.key] = (np.arange(duals.size), duals)

    # ---- stages
    def solve_priority(self, p: int, label: str | None = None, carry: bool = False) -> StageResult | None:
        """Solve the stage of priority ``p`` (None if it has no soft goals); ``carry`` does not apply
        (every stage is solved exactly)."""
        stage_terms = [t for t in self.soft if t.priority == p]
        if not stage_terms:
            return None
        cp = _cp()
        t0 = time.perf_counter()
        slip = float(self.slips_gy.get(p, 0.0))
        excesses = {t.key: self._excess(t)[0] for t in stage_terms}
        objective = self.settings.integral_dose_weight * (self.integral_per_weight @ self.w) / self.rx_gy
        for t in stage_terms:
            objective = objective + self.tier_weight[t.key] * cp.maximum(excesses[t.key], -slip) / self.rx_gy
            if t.sense == "max" and t.tier == "desirable":
                objective = objective + self.settings.alara_weight * excesses[t.key] / self.rx_gy
        hard = self._hard_constraints()
        status, value, _ = self._solve(objective, self._constraints(hard))
        name = label or f"priority {p}"
        seconds = time.perf_counter() - t0
        if status != "optimal":
            result = StageResult(p, name, status, float("nan"), {}, slip, seconds,
                                 [f"stage did not solve ({status}); the previous fluence is kept"])
            self.stages.append(result)
            self.progress(f"stage {name}: {status} in {seconds:.1f} s")
            return result
        self.weights = np.maximum(np.asarray(self.w.value, dtype=float), 0.0)
        dose = self.rows.dose(self.weights)
        stage_achieved = {}
        for t in stage_terms:
            e = float(excesses[t.key].value)
            s = slack_after_stage(e, slip)
            self.achieved[t.key] = s
            self._earlier.append((t, s))
            stage_achieved[t.key] = t.goal_excess_gy(dose[t.rows])
            if t.kind in ("cvar_lower", "cvar_upper") and self.hold_dvh_points:
                evaluated = self.measure(t, dose) if self.measure is not None else None
                hold, keep = dvh_hold(t, dose[t.rows], slip, self.settings.hold_safety_gy, evaluated)
                if keep.any():
                    self._holds.append(t.sign * (self._map(t)[np.flatnonzero(keep)] @ self.w - hold) <= 0)
        self._record_duals(hard)
        result = StageResult(p, name, status, value, stage_achieved, slip, seconds, [])
        self.stages.append(result)
        self.progress(f"stage {name}: {status}, {seconds:.1f} s")
        return result

    def solve_normal_tissue(self, normal: NormalTissue) -> StageResult:
        """The last stage: normal-tissue dose, fluence roughness, the PTV's homogeneity window and the
        user's objective terms, within every earlier result and the user's constraints."""
        cp = _cp()
        t0 = time.perf_counter()
        m = sp.csr_matrix(self.rows.matrix, dtype=float)
        objective = self.settings.integral_dose_weight * (self.integral_per_weight @ self.w) / self.rx_gy
        if len(normal.body_rows):
            body_mean = np.asarray(m[normal.body_rows].mean(axis=0), dtype=float).ravel() / self.rx_gy
            objective = objective + body_mean @ self.w
        ring = np.asarray(normal.ring_rows)
        if ring.size:
            over = cp.pos(m[ring] @ self.w - np.asarray(normal.ring_reference_gy, dtype=float))
            objective = objective + cp.sum(over) / (ring.size * self.rx_gy)
        if normal.roughness is not None and normal.roughness.shape[0]:
            w_scale = float(np.mean(self.weights[self.weights > 0])) if self.weights.any() else 1.0
            objective = objective + normal.roughness_weight / (normal.roughness.shape[0] * w_scale) \
                * cp.norm1(sp.csr_matrix(normal.roughness, dtype=float) @ self.w)
        if normal.hot_weight > 0 and normal.target_rows is not None and len(normal.target_rows):
            d = m[np.asarray(normal.target_rows)] @ self.w
            outside = cp.pos(d - normal.target_reference_gy) + cp.pos(normal.target_floor_gy - d)
            objective = objective + normal.hot_weight * cp.sum_squares(outside) / len(normal.target_rows)
        objective = objective + self._extra_objective
        hard = self._hard_constraints()
        status, value, _ = self._solve(objective, self._constraints(hard))
        notes = []
        if status == "optimal":
            self.weights = np.maximum(np.asarray(self.w.value, dtype=float), 0.0)
            self._record_duals(hard)
        else:
            notes.append(f"normal-tissue stage did not solve ({status}); the previous fluence is kept")
        seconds = time.perf_counter() - t0
        result = StageResult(None, "normal tissue and fluence smoothness", status, value if status == "optimal"
                             else float("nan"), {}, 0.0, seconds, notes)
        self.stages.append(result)
        self.progress(f"stage normal tissue: {status}, {seconds:.1f} s")
        return result
