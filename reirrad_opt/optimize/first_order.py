"""The lexicographic stages solved by a first-order method (engine ``"first-order"``).

The stages, terms, slips and holds are those of every engine (:mod:`.holds`, :mod:`.solver_base`); only the way
each stage is solved differs. Stage p minimises, over the beamlet/spot weights w >= 0 (L-BFGS-B):

    sum over goals g of priority p:  W_tier * h(shortfall_g beyond its slip-tightened aim)   [Gy]
  + 0.01 * surrogate of each desirable maximum-type goal (ALARA) + 0.001 * integral dose (tie-breaker)
  + augmented-Lagrangian terms of every hard cap and every earlier goal's hold

where h is a hinge smoothed over ``settings.tau_gy`` (never below the hinge: the penalty is conservative).
CVaR surrogates take their threshold as one more variable (Rockafellar-Uryasev), with the same
smoothed hinge. A goal that cannot be met is therefore traded at its tier weight per Gy, while the
caps and holds are constraints: their multipliers grow until every point holds (to ``settings.feasibility_tol_gy``
in the full-matrix dose, within ``settings.max_outer`` outer iterations; a stage that does not get there says so);
the final safeguard (:meth:`SolverBase.guard_caps`) scales the fluence for whatever is left on an organ
cap.

Why a second engine: the LP's interior point factorises a system in the dense bixel columns at
every iteration (TG-119 at 3 mm: 18-60 s per solve, 408 s for the plan), while one gradient of these
surrogates costs two products with the truncated rows of the voxels the terms read (1.5 ms there).
What is given up: the LP's optimum is exact (a vertex with duals that name the binding caps); here a
stage ends within the tolerances above, and the multipliers of the caps stand in for the duals in the
diagnosis. The verdict comes from the evaluation of the final dose either way.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ..progress import SILENT, Progress
from ..progress import detail as progress_detail
from .dose_rows import DoseRows
from .first_order_settings import FirstOrderSettings
from .holds import dvh_hold, point_levels, slack_after_stage
from .smooth_terms import (BoundStack, LazyPool, PointBounds, ScalarBound, StageObjective, Surrogate, aimed_levels,
                           in_force, normal_tissue_objective, smooth_hinge)
from .solver_base import SolverBase
from .split_product import RowSplit, TransposedProduct
from .stage import NormalTissue, StageResult
from .terms import Term, dvh_tail


class FirstOrderSolver(SolverBase):
    """Lexicographic stages by L-BFGS-B with an augmented Lagrangian (see the module docstring).

    The interface is :class:`~reirrad_opt.optimize.solver_base.SolverBase`'s; ``hard_duals`` holds the
    caps' multipliers (Gy of objective per Gy of cap). ``settings``: the engine's constants
    (:class:`FirstOrderSettings`; default its defaults).
    """

    name = "first-order"
    Settings = FirstOrderSettings

    def __init__(self, matrix: sp.csr_matrix, terms: list[Term], *, rx_gy: float, slips_gy: dict[int, float],
                 tier_by_goal: dict[str, str], progress: Progress = SILENT, rows: DoseRows | None = None,
                 truncation: float = 0.0, hold_dvh_points: bool = True, measure=None,
                 settings: FirstOrderSettings | None = None) -> None:
        super().__init__(matrix, terms, rx_gy=rx_gy, slips_gy=slips_gy, tier_by_goal=tier_by_goal, progress=progress,
                         rows=rows, truncation=truncation, hold_dvh_points=hold_dvh_points, measure=measure,
                         settings=settings)
        self.position = np.full(self.rows.matrix.shape[0], -1, dtype=np.int64)
        self.evaluations = 0   # objective-and-gradient evaluations of the stage being solved
        self.weights = self.reference_fluence()
        dose = self.rows.dose(self.weights)
        self.bounds: dict[str, PointBounds] = {}     # term key (or 'hold ' + key) -> its point bounds
        self.scalars: dict[str, ScalarBound] = {}    # term key (or 'hold ' + key) -> its mean / CVaR bound
        self.pools: dict[str, LazyPool] = {}          # bound key -> the points that enter lazily
        for t in self.hard:
            if t.kind != "voxel_max":   # a hard organ mean or dose-volume limit (its smoothed CVaR reads high)
                level = float(np.max(t.level_gy))
                aim = level - t.sign * self.settings.hard_safety_gy
                self.scalars[t.key] = ScalarBound(self._surrogate(t), aim, t.sign, True)
                continue
            levels = point_levels(t)
            aimed = aimed_levels(levels, self.settings.hard_safety_gy)
            if t.n_points > self.settings.lazy_points:
                pool = LazyPool(np.ones(t.n_points, dtype=bool), aimed, aimed - self.settings.lazy_ratio * levels, 1.0)
                self.pools[t.key] = pool
                ref = t.point_values(dose[t.rows])
                start = np.zeros(t.n_points, dtype=bool)
                start[pool.near(ref)] = True
                if t.seed is not None:
                    start |= t.seed & (ref >= self.settings.seed_ratio * levels)
                points = np.flatnonzero(start)
            else:
                points = np.arange(t.n_points)
            self.bounds[t.key] = PointBounds(t, points, aimed[points], 1.0, True)

    def _surrogate(self, t: Term, moving: bool = False) -> Surrogate:
        return Surrogate(t, moving=moving, tau_gy=self.settings.tau_gy)

    # ---- lazy points of large caps and holds
    def _activate(self, dose: np.ndarray) -> tuple[int, int, float]:
        """Add the lazily entering points (:class:`LazyPool`) that the full-matrix ``dose`` brings near their
        bound. Returns (points entered, of those beyond their bound by more than
        ``settings.feasibility_tol_gy``, the largest excess among them in Gy; 0 if none). A point that entered
        inside its bound does not make the current fluence infeasible."""
        added, beyond, worst = 0, 0, 0.0
        for key, pool in self.pools.items():
            b = self.bounds[key]
            values = b.term.point_values(dose[b.term.rows])
            new = np.setdiff1d(pool.near(values), b.points, assume_unique=True)
            if new.size:
                excess = pool.sign * (values[new] - pool.bound_gy[new])
                beyond += int((excess > self.settings.feasibility_tol_gy).sum())
                worst = max(worst, float(excess.max()))
                points = np.concatenate([b.points, new])
                lam = np.concatenate([b.lam, np.zeros(new.size)])
                self.bounds[key] = PointBounds(b.term, points, pool.bound_gy[points], pool.sign, b.hard, lam)
                added += new.size
        return added, beyond, worst

    def _hold_points(self, key: str, t: Term, keep: np.ndarray, bound_gy: np.ndarray, dose: np.ndarray) -> None:
        """Hold the points ``keep`` (mask over ``t``'s points) at ``bound_gy`` (Gy, per point) from now on; a
        hold of more than ``settings.lazy_hold_points`` points enters lazily (``settings.lazy_hold_ratio``)."""
        if not keep.any():
            return
        if keep.sum() <= self.settings.lazy_hold_points:
            points = np.flatnonzero(keep)
        else:
            pool = LazyPool(keep, bound_gy, (1.0 - self.settings.lazy_hold_ratio) * np.abs(bound_gy), t.sign)
            self.pools[key] = pool
            points = pool.near(t.point_values(dose[t.rows]))
        self.bounds[key] = PointBounds(t, points, bound_gy[points], t.sign, False)

    def _move_tails(self, dose: np.ndarray) -> None:
        """Choose each held dose-volume goal's free tail again from the full-matrix ``dose`` (Gy): the held
        points are then those a DVH at this dose puts outside its tail. A point that leaves the hold takes its
        multiplier with it; one that joins starts at zero. The fluence that ends the stage holds every point
        outside its own tail at the level, so the goal's DVH point is held as before (a D95% minimum: 95 % of
        the volume at or above it), but the tail is not frozen where the goal's own stage left it."""
        for key, b in list(self.bounds.items()):
            t = b.term
            if b.hard or t.kind not in ("cvar_lower", "cvar_upper"):   # only a dose-volume hold has a free tail
                continue
            values = t.point_values(dose[t.rows])
            keep = ~dvh_tail(values, t.fraction, t.sense == "max", t.point_weights)
            pool, held = self.pools.get(key), b.chosen()
            if pool is None:   # every point outside the tail is held, all at the one held level
                chosen, levels = keep, np.full(t.n_points, b.bound_gy[0])
            else:   # the points in force that stay out of the tail, and the candidates now near their bound
                pool.candidate = keep
                chosen, levels = held & keep, pool.bound_gy
                chosen[pool.near(values)] = True
            if not np.array_equal(chosen, held):
                self.bounds[key] = b.at_points(np.flatnonzero(chosen), levels)

    def _rehold_drifted(self) -> list[str]:
        """Hold again, further in, each earlier goal the evaluation now reads short
        (:meth:`~.solver_base.SolverBase.drift_shifts`); returns the goals' keys."""
        held = {key[len("hold "):] for key in self.bounds if key.startswith("hold ")}
        shifts = self.drift_shifts(held, self.weights)
        for key, shift in shifts.items():
            self.bounds["hold " + key].bound_gy = self.bounds["hold " + key].bound_gy + shift
            if "hold " + key in self.pools:
                self.pools["hold " + key].bound_gy = self.pools["hold " + key].bound_gy + shift
        return list(shifts)

    def _solve_holding(self, stage: StageObjective, label: str, deadline: float | None = None,
                       first_inner: int | None = None) -> tuple[str, int, int, list[str]]:
        """:meth:`_solve`, then solved again (up to ``settings.drift_rounds`` times) while an earlier met goal
        is read short by the evaluation (:meth:`_rehold_drifted`); returns (status, outer iterations, L-BFGS-B
        iterations, notes)."""
        status, outer, total = self._solve(stage, label, deadline, first_inner)
        notes = []
        for _ in range(self.settings.drift_rounds):
            moved = self._rehold_drifted()
            if not moved:
                break
            notes.append(f"held again further in, as the evaluation read them short after this stage: {', '.join(moved)}")
            progress_detail(self.progress, f"  {label}: {notes[-1]}")
            status, more_outer, more = self._solve(stage, label, deadline)
            outer, total = outer + more_outer, total + more
        return status, outer, total, notes

    # ---- one stage
    def _working_rows(self, surrogates: list[Surrogate], stage: StageObjective) -> np.ndarray:
        parts = [b.voxels for b in self.bounds.values()] + [s.voxels for s in surrogates]
        parts += [stage.extra_rows]
        rows = np.unique(np.concatenate(parts))
        self.position[:] = -1
        self.position[rows] = np.arange(rows.size)
        return rows

    def _solve(self, stage: StageObjective, label: str, deadline: float | None = None,
               first_inner: int | None = None) -> tuple[str, int, int]:
        """Solve ``stage`` from the current weights (``first_inner`` L-BFGS-B iterations in the first
        outer iteration, ``settings.inner_iterations`` in the others, ``settings.cleanup_inner_iterations`` after
        one whose objective settled); returns (status, outer iterations, L-BFGS-B iterations)."""
        surrogates = list({id(s): s for s in [g[0] for g in stage.goals] + [a[0] for a in stage.alara]
                           + [c.surrogate for c in self.scalars.values()]}.values())
        for i, s in enumerate(surrogates):
            s.slot = self.n_cols + i
        n = self.n_cols
        x = np.concatenate([self.weights, np.zeros(len(surrogates))])
        rho = self.settings.rho_start
        tau = self.settings.tau_gy
        first_inner = first_inner or self.settings.inner_iterations
        dose = self.rows.dose(self.weights)
        self._activate(dose)
        status, total, previous, previous_worst = "not converged", 0, np.inf, np.inf
        inner = first_inner
        best = None   # (objective, weights, worst excess) of the best feasible iterate
        for outer in range(1, self.settings.max_outer + 1):
            for s in surrogates:
                if s.moving:
                    s.select(dose, seed=outer == 1)
            if self.settings.move_held_tails:
                self._move_tails(dose)
            rows = self._working_rows(surrogates, stage)
            B = self.rows.matrix_opt[rows]
            # the two products of every evaluation, shared between the threads (the same values as one thread's);
            # in a goal stage the gradient over the working rows is zero on all but about 1 % of them (TG-119 at
            # 3 mm, NPC phantom at 4 mm: the points at or beyond a bound, a CVaR's tail), so B.T reads those
            B_w, BT_g = RowSplit(B, self.rows.threads), TransposedProduct(B, self.rows.threads)
            pool = self.rows.pool
            correction = dose[rows] - B @ self.weights     # the truncated entries at the current fluence
            bounds = in_force(list(self.bounds.values()))
            for part in bounds:
                part.bind(self.position)
            for s in surrogates:
                s.bind(self.position, self.rows.threads)
            d_now = dose[rows]
            for s in surrogates:
                x[s.slot] = s.start(d_now)
            scalars = list(self.scalars.values())
            stack = BoundStack(bounds, rows.size, self.rows.threads)

            def objective(x: np.ndarray, augmented: bool = True) -> tuple[float, np.ndarray]:
                """The stage's objective and gradient; ``augmented=False``: without the constraints' terms
                (the part that is compared between outer iterations)."""
                w = x[:n]
                d = B_w(w, pool) + correction
                value = float(stage.linear @ w)
                grad_w = stage.linear.copy()
                grad_x = np.zeros(x.size)
                grad_d = np.zeros(d.size)
                read: dict[int, tuple[float, np.ndarray, float]] = {}   # a goal's surrogate is its ALARA term's

                def value_of(s: Surrogate) -> tuple[float, np.ndarray, float]:
                    if id(s) not in read:
                        read[id(s)] = s.value(d, x[s.slot], pool)
                    return read[id(s)]

                if augmented:   # caps and holds: augmented Lagrangian
                    m = np.maximum(0.0, stack.lam + rho * stack.excess(d, pool))
                    value += float(m @ m - stack.lam @ stack.lam) / (2.0 * rho)
                    grad_d += stack.pull(m, pool)
                    for c in scalars:
                        s = c.surrogate
                        v, gd, ge = value_of(s)
                        mc = max(0.0, c.mu + rho * c.sign * (v - c.bound_gy))
                        value += (mc * mc - c.mu ** 2) / (2.0 * rho)
                        grad_d += mc * c.sign * gd
                        grad_x[s.slot] += mc * c.sign * ge
                for s, aim, sign, weight in stage.goals:   # the stage's goals: exact penalty per Gy
                    if s.seeding:   # the mean shortfall of every point (see Surrogate)
                        pv = s.point_dose(d, pool)
                        h, slope = smooth_hinge(sign * (pv - aim), tau)
                        value += weight * float(h.mean())
                        grad_d += weight * sign * s.pull(slope / pv.size, pool)
                        continue
                    v, gd, ge = value_of(s)
                    h, slope = smooth_hinge(sign * (v - aim), tau)
                    value += weight * float(h)
                    grad_d += weight * float(slope) * sign * gd
                    grad_x[s.slot] += weight * float(slope) * sign * ge
                for s, weight in stage.alara:
                    v, gd, ge = value_of(s)
                    value += weight * v
                    grad_d += weight * gd
                    grad_x[s.slot] += weight * ge
                if stage.extra is not None:
                    v, gd, gw = stage.extra(d, w, self.position)
                    value += v
                    grad_d += gd
                    grad_w += gw
                grad_x[:n] = grad_w + BT_g(grad_d, pool)
                return value, grad_x

            bounds_x = [(0.0, None)] * n + [(None, None)] * len(surrogates)
            # L-BFGS-B's small BLAS calls on one thread: OpenBLAS's second thread spins between them on the
            # core the objective runs on (TG-119 at 3 mm: 100 iterations in 1.31 s with it, 0.35 s without)
            with threadpool_limits(limits=1, user_api="blas"):
                res = minimize(objective, x, jac=True, method="L-BFGS-B", bounds=bounds_x,
                               options=dict(maxiter=inner, maxcor=self.settings.lbfgs_memory, ftol=1e-13, gtol=1e-10))
            x = res.x
            total += int(res.nit)
            self.evaluations += int(res.nfev)
            self.weights = np.maximum(x[:n], 0.0)
            dose = self.rows.dose(self.weights)
            d_full = dose[rows]
            excess = stack.excess(d_full, pool)         # multipliers from the full-matrix dose
            stack.update(excess, rho)
            worst = float(excess.max(initial=0.0))
            over = int((excess > self.settings.feasibility_tol_gy).sum())
            for c in scalars:
                s = c.surrogate
                beyond = c.sign * (s.value(d_full, x[s.slot])[0] - c.bound_gy)
                c.mu = max(0.0, c.mu + rho * beyond)
                worst = max(worst, beyond)
                over += int(beyond > self.settings.feasibility_tol_gy)
            added, added_beyond, added_worst = self._activate(dose)
            worst = max(worst, added_worst)
            self.unresolved = over + added_beyond    # entered beyond their bound: not solved for
            self.worst_gy = worst
            goal_value = objective(x, augmented=False)[0]
            progress_detail(self.progress, f"  {label} outer {outer}: {res.nit} L-BFGS-B iterations ({res.nfev} evaluations), objective "
                                           f"{goal_value:.6g}, worst {worst:.4f} Gy beyond a bound, {added} point(s) "
                                           f"entered ({added_beyond} beyond their bound)")
            # done when feasible and converged: L-BFGS-B stopped on its own, or the objective (without the
            # constraints' terms, whose multipliers move) no longer improves (a stage that stopped on its
            # iteration count with a goal far from its aim is not done)
            gain = previous - goal_value
            threshold = max(self.settings.stall_rel * abs(goal_value), self.settings.stall_gy)
            stalled = res.status == 0 or gain <= threshold
            seeding = any(s.seeding for s in surrogates)   # the seed iteration is never the last
            # the seed iteration's objective (every point's mean shortfall) is another function than the next
            # one's (the DVH point): the first outer iteration after it is compared with nothing, or a rise
            # from one function to the other would read as a stall
            previous = np.inf if seeding else goal_value
            feasible = worst <= self.settings.feasibility_tol_gy and added_beyond == 0
            if feasible and not seeding and (best is None or goal_value < best[0]):
                best = (goal_value, self.weights.copy(), worst)
            if feasible and stalled and not seeding:
                status = "optimal"
                break
            if deadline is not None and time.perf_counter() > deadline:
                status = "time limit"
                break
            # a goal still short of its aim may gain a little per outer iteration for long: full inner runs
            settled = not seeding \
                and abs(gain) <= max(self.settings.cleanup_rel * abs(goal_value), self.settings.stall_gy) \
                and not any(sign * (s.value(d_full, x[s.slot])[0] - aim) > 0.0 for s, aim, sign, _ in stage.goals)
            inner = self.settings.cleanup_inner_iterations if settled else self.settings.inner_iterations
            # too slow to feasibility: more penalty
            if worst > self.settings.feasibility_tol_gy and worst > 0.25 * previous_worst:
                rho = min(rho * self.settings.rho_growth, self.settings.rho_max)
            previous_worst = worst
        # a multipliers' step can end the stage on a feasible iterate worse than an earlier feasible one (pyRadPlan's
        # TG-119 matrix, a held D2% goal: 3.39 at one outer iteration, 4.31 at the last): the earlier one is kept
        if status == "optimal" and best is not None \
                and best[0] < goal_value - threshold:
            progress_detail(self.progress, f"  {label}: the feasible iterate of objective {best[0]:.6g} kept "
                                           f"(the last reached {goal_value:.6g})")
            self.weights, self.worst_gy, self.unresolved = best[1], best[2], 0
        for key, b in self.bounds.items():
            if b.hard:
                self.hard_duals[key] = (b.points, b.lam.copy())
        return status, outer, total

    def _goal_part(self, t: Term, slip: float, stage: StageObjective) -> None:
        """Put goal ``t`` into ``stage``'s objective, aimed at its level tightened by ``slip``."""
        weight = self.tier_weight[t.key]
        s = self._surrogate(t, moving=t.kind in ("cvar_lower", "cvar_upper"))
        if t.kind == "voxel_max":   # the largest excess over the points' levels, aimed at -slip
            stage.goals.append((s, -slip, 1.0, weight))
        else:
            stage.goals.append((s, float(np.max(t.level_gy)) - t.sign * slip, t.sign, weight))
        if t.sense == "max" and t.tier == "desirable":
            stage.alara.append((s, self.settings.alara_weight))

    def _release(self, t: Term) -> None:
        """Drop the hold of ``t`` (its stage is solved again)."""
        self.met_as_evaluated.discard(t.key)
        self.bounds.pop("hold " + t.key, None)
        self.pools.pop("hold " + t.key, None)
        self.scalars.pop("hold " + t.key, None)

    def _hold(self, t: Term, dose: np.ndarray, slip: float) -> None:
        """Keep goal ``t`` for every later stage: within its level plus what its stage left short plus
        nothing more (``achieved``); a dose-volume goal point by point (:func:`dvh_hold`)."""
        self._release(t)
        if t.kind in ("cvar_lower", "cvar_upper") and self.hold_dvh_points:
            evaluated = self.measure(t, dose) if self.measure is not None else None
            hold, keep = dvh_hold(t, dose[t.rows], slip, self.settings.hold_safety_gy, evaluated)
            self._hold_points("hold " + t.key, t, keep, np.full(t.n_points, hold), dose)
            self.note_hold(t, evaluated)
            return
        # settings.hold_safety_gy inside what is allowed (the stages end within settings.feasibility_tol_gy of a
        # bound), but
        # never inside what the stage reached: a slip under the safety must not rule out the stage's own
        # result (the smoothed CVaR reads up to settings.tau_gy / 2 above the exact one)
        smoothing = self.settings.tau_gy / 2 if t.kind in ("cvar_lower", "cvar_upper") else 0.0
        reached = t.excess_gy(dose[t.rows]) + smoothing
        allowed = max(self.achieved[t.key] - self.settings.hold_safety_gy, reached)   # Gy beyond the level
        if t.kind == "voxel_max":
            self._hold_points("hold " + t.key, t, np.ones(t.n_points, dtype=bool), point_levels(t) + allowed, dose)
        else:
            bound = float(np.max(t.level_gy)) + t.sign * allowed
            self.scalars["hold " + t.key] = ScalarBound(self._surrogate(t), bound, t.sign, False)

    def solve_priority(self, p: int, label: str | None = None, carry: bool = False) -> StageResult | None:
        """Solve the stage of priority ``p`` (None if it has no soft goals). ``carry`` is accepted for
        the LP engine's interface; every stage here ends within ``settings.feasibility_tol_gy`` or its notes say how
        many points (or mean / CVaR bounds) are beyond and by how much."""
        stage_terms = [t for t in self.soft if t.priority == p]
        if not stage_terms:
            return None
        t0 = time.perf_counter()
        slip = float(self.slips_gy.get(p, 0.0))
        name = label or f"priority {p}"
        stage = StageObjective(linear=self.settings.integral_dose_weight * self.integral_per_weight)
        for t in stage_terms:
            self._release(t)     # solved again: its own hold goes
            self.achieved.pop(t.key, None)
            self._goal_part(t, slip, stage)
        self.evaluations = 0
        status, outer, iterations, drift = self._solve_holding(stage, name)
        dose = self.rows.dose(self.weights)
        stage_achieved, objective = {}, 0.0
        for t in stage_terms:
            excess = t.goal_excess_gy(dose[t.rows])   # what the stage aimed at: the DVH point, not a CVaR
            self.achieved[t.key] = slack_after_stage(excess, slip)
            objective += self.tier_weight[t.key] * max(0.0, excess + slip) / self.rx_gy
            stage_achieved[t.key] = excess
            self._hold(t, dose, slip)
        notes = [f"first-order engine: {outer} outer iteration(s), {iterations} L-BFGS-B iterations"] + drift
        if status != "optimal":
            notes.append(f"{self.unresolved} cap or hold point(s) up to {self.worst_gy:.3f} Gy beyond their bound "
                         f"after {outer} outer iterations (the evaluation of the final dose decides)")
        seconds = time.perf_counter() - t0
        result = StageResult(p, name, status, objective, stage_achieved, slip, seconds, notes, self.evaluations)
        self.stages.append(result)
        self.progress(f"stage {name}: {status}, {seconds:.1f} s")
        progress_detail(self.progress, f"  objective {objective:.4g} ({outer} outer, {iterations} L-BFGS-B iterations)")
        return result

    def solve_normal_tissue(self, normal: NormalTissue) -> StageResult:
        """The last stage: mean dose of the sampled body voxels, dose above the ring's fall-off, fluence
        roughness (total variation, smoothed) and target dose outside the window [``target_floor_gy``,
        ``target_reference_gy``] (quadratic, ``normal.hot_weight``), within all earlier results. The
        time limit is checked between outer iterations (the first at most ``settings.nt_first_inner_iterations``
        L-BFGS-B iterations, the others ``settings.inner_iterations``)."""
        t0 = time.perf_counter()
        body = np.asarray(normal.body_rows)
        linear = self.settings.integral_dose_weight * self.integral_per_weight
        if body.size:
            linear = linear + np.asarray(self.rows.matrix[body].mean(axis=0), dtype=float).ravel()
        before = self.weights.copy()
        deadline = None if normal.time_limit_s is None else t0 + float(normal.time_limit_s)
        stage = normal_tissue_objective(normal, linear, self.weights, self.rx_gy, tau_gy=self.settings.tau_gy,
                                        huber_fraction=self.settings.huber_fraction)
        self.evaluations = 0
        status, outer, iterations, drift = self._solve_holding(stage, "normal tissue", deadline,
                                                               first_inner=self.settings.nt_first_inner_iterations)
        notes = [f"first-order engine: {outer} outer iteration(s), {iterations} L-BFGS-B iterations"] + drift
        if status != "optimal" and self.worst_gy > self.settings.feasibility_tol_gy:
            self.weights = before
            notes.append(f"normal-tissue stage ended '{status}' with {self.unresolved} point(s) up to "
                         f"{self.worst_gy:.3f} Gy beyond an earlier bound; the fluence of the previous stage is kept")
        elif status != "optimal":   # the last iterate holds every earlier bound: kept, though not converged
            notes.append(f"normal-tissue stage ended '{status}' before converging; its last fluence, which holds "
                         f"every earlier bound, is kept (normal tissue and smoothness not fully refined)")
        seconds = time.perf_counter() - t0
        result = StageResult(None, "normal tissue and fluence smoothness", status, float("nan"), {}, 0.0, seconds,
                             notes, self.evaluations)
        self.stages.append(result)
        self.progress(f"stage normal tissue: {status}, {seconds:.1f} s")
        progress_detail(self.progress, f"  {outer} outer, {iterations} L-BFGS-B iterations")
        return result
