"""The LP engine (``"lp"``): each lexicographic stage as one linear program, solved by HiGHS.

Stage p (for each priority p of the protocol, in order) solves the LP:

    minimise   sum over soft terms g of priority p:  W_tier * s_g / Rx   (+ ALARA and tie-breaker terms)
    subject to w >= 0,
               every hard term (priority-1 organ caps):   surrogate_g within level_g           (never relaxed)
               every soft term g of priority p:           surrogate_g within level_g + s_g,  s_g >= -slip_p
               every soft term h of an earlier priority:  surrogate_h within level_h + s_h*
                                                          (s_h* = 0 if h was met, else its shortfall + slip_h)

A soft goal is first aimed at its level tightened by its priority's slip; later stages may give
that slip back but no more, and never past the level of a goal its stage met, so a goal met at its own
stage is still met at the end (:func:`~reirrad_opt.optimize.holds.slack_after_stage`). A last stage
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
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..progress import SILENT, Progress
from ..progress import detail as progress_detail
from .dose_rows import DosePool, DoseRows
from .holds import slack_after_stage
from .lp import LinearProgram, LPSolution
from .lp_rows import HeldGoal, LPRows, TermRows
from .solver_base import SolverBase, StageSettings
from .stage import NormalTissue, StageResult
from .terms import CEILING_IDS, Term

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



class LPSolver(LPRows, SolverBase):
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
        hold_dvh_points: after its stage, hold a dose-volume goal point-wise (:class:`HeldGoal`:
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
        self._lp_terms: dict[str, TermRows] = {}
        self._stage_cost: dict[int, float] = {}     # variable index -> cost of the current stage
        self.holds: dict[str, HeldGoal] = {}
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
        dose). Their rows are in the LP by then, so the next stage's solve holds them; a goal of this
        stage that ends beyond its level that way keeps its slip (:meth:`solve_priority` reads it from the
        full-matrix dose). Every interior-point solve of a fine grid costs 10-15 s
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
        drift: list[str] = []
        sol, seconds, rounds = self._solve_holding(
            lambda: self._solve_rounds(stage_terms, carry_gy=self.settings.carry_gy if carry else 0.0), drift)
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
            reading = t.excess_gy(dose[t.rows])   # the full-matrix value (the LP's rows lag behind it)
            if t.kind != "voxel_max":
                aim = max(aim, reading)
            # Gy beyond the level that later stages allow: none for a goal met in the full-matrix dose; a
            # stage with carry may end a maximum's points a little beyond it, and those keep the slip
            s = slack_after_stage(max(aim, reading), slip)
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
        notes = ([f"{rounds} solve(s) to activate every needed organ point"] if rounds > 1 else []) + drift
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
        notes: list[str] = []
        # a solve again (see _solve_holding) gets what is left of the stage's time limit
        deadline = None if normal.time_limit_s is None else time.perf_counter() + float(normal.time_limit_s)
        method = "dual" if self.first_method == "simplex" else "ipm"

        def solve():
            left_s = None if deadline is None else max(0.0, deadline - time.perf_counter())
            return self._solve_rounds([], method=method, time_limit_s=left_s)

        sol, seconds, rounds = self._solve_holding(solve, notes)
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

    def _solve_holding(self, solve, notes: list[str]):
        """``solve()`` (a stage's :meth:`_solve_rounds`), then again, at most ``settings.drift_rounds`` times,
        while the evaluation reads an earlier goal that its own stage met as short of its level
        (:meth:`~.solver_base.SolverBase.drift_shifts`): its hold moves further in by the shortfall plus
        ``settings.hold_safety_gy``. A solve again that does not end optimal is not kept: the holds go back
        and the stage's first solution stands (the notes say so). Returns (solution, seconds, rounds)."""
        sol, seconds, rounds = solve()
        for _ in range(self.settings.drift_rounds):
            if sol is None or sol.status != "optimal":
                break
            shifts = self.drift_shifts(set(self.holds), np.maximum(sol.x[self.w_idx], 0.0))
            if not shifts:
                break
            self._shift_holds(shifts)
            names = ", ".join(shifts)
            again, more_seconds, more_rounds = solve()
            seconds, rounds = seconds + more_seconds, rounds + more_rounds
            if again is None or again.status != "optimal":
                self._shift_holds({key: -shift for key, shift in shifts.items()})
                notes.append(f"held {names} further in, as the evaluation read them short after this stage, but the "
                             f"stage then ended '{again.status if again else 'not solved'}': its first solution is "
                             f"kept (the evaluation of the final dose decides)")
                break
            sol = again
            notes.append(f"held again further in, as the evaluation read them short after this stage: {names}")
            progress_detail(self.progress, f"  {notes[-1]}")
        return sol, seconds, rounds

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

