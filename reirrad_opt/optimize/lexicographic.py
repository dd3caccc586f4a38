"""The lexicographic loop, the same for every engine: the limit tier of priority 1, the stages in
order, the normal-tissue stage, the final cap guard, and the diagnosis of an unmet first priority.

Priority 1 is first solved with every organ at its *desirable* cumulative limit. If a first-
priority target goal is not met, the organs whose caps bind are relaxed to their *acceptable*
limit and priority 1 is solved again; both results are reported and the acceptable one is used
only if it improves the target (protocol option ``limit_choice = "desirable_then_acceptable"``;
``"desirable"`` or ``"acceptable"`` force one set). A goal still unmet is diagnosed, and
planning carries on with the caps honoured.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..geometry import Grid
from ..progress import SILENT, Progress
from .terms import CEILING_IDS
from .diagnosis import binding_goals, diagnose_target
from .dose_rows import DoseRows
from .engines import DEFAULT_ENGINE, get_engine
from .problem import LexicographicProblem
from .solver_base import SolverBase, StageSettings
from .stage import StageResult


@dataclass
class OptimizationOutcome:
    """What the optimizer did (its beliefs; the verdict comes from the evaluation).

    Attributes:
        weights: final beamlet/spot weights (>= 0).
        stages: every stage solved, in order (including a rejected or superseded priority-1 probe).
        tier_by_goal: hard goal id -> 'desirable' | 'acceptable' as used in the final plan.
        excess_gy: term key -> excess over its level of the final fluence (Gy; <= 0 met).
        diagnosis: plain-language infeasibility findings.
        notes: decisions taken (limit tier, skipped goals).
        engine: how the stages were solved ('first-order' or 'lp').
    """

    weights: np.ndarray
    stages: list[StageResult]
    tier_by_goal: dict[str, str]
    excess_gy: dict[str, float]
    diagnosis: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    engine: str = DEFAULT_ENGINE


def _unmet_targets(solver: SolverBase, priority: int) -> list:
    return [t for t in solver.soft if t.priority == priority and t.sense == "min" and t.tier == "desirable"
            and t.goal_excess_gy(solver.rows.dose(solver.weights)[t.rows]) > solver.settings.met_tol_gy]


MetricReader = Callable[[str, np.ndarray, str], float]
"""``read(metric, dose_gy, structure) -> Gy``: a goal's dose metric ('D98%', 'D0.03cc', ...) of the
dose on the case grid (shape grid.shape) in a structure, as the evaluation reads it (supersampled,
interpolated); nan where it is undefined. The caller wires the evaluation in (``plan()`` does)."""


def _shortfall(solver: SolverBase, terms, read: MetricReader | None, masks, grid: Grid) -> float:
    """Total shortfall (Gy) of target terms: by the optimizer's surrogate, plus the evaluator's
    measurement of the goal's metric when ``read`` is given."""
    total = 0.0
    for t in terms:
        total += max(0.0, t.goal_excess_gy(solver.rows.dose(solver.weights)[t.rows]))
        if read is not None and t.metric and t.structure in masks:
            total += max(0.0, float(np.max(t.level_gy)) - _evaluated(solver, t, read, grid))
    return total


def _evaluated(solver: SolverBase, t, read: MetricReader, grid: Grid) -> float:
    """The goal's metric as the evaluation measures it (-inf where it is undefined)."""
    dose = (solver.rows.matrix @ solver.weights)[:grid.n_voxels].reshape(grid.shape)   # the grid's rows
    value = read(t.metric, dose, t.structure)
    return float(value) if np.isfinite(value) else float("-inf")


def goal_reader(read: MetricReader | None, masks: dict[str, np.ndarray], grid: Grid):
    """``measure(term, dose) -> Gy or None``: a dose-volume goal's dose metric (D<x>%, D<x>cc,
    near-min) as the evaluation reads it on the full-grid ``dose``; None for volume metrics (V<D>),
    structures not in ``masks``, or without a reader."""
    def measure(t, dose: np.ndarray) -> float | None:
        if read is None or not t.metric or t.structure not in masks or t.metric.startswith("V"):
            return None
        value = read(t.metric, np.asarray(dose)[:grid.n_voxels].reshape(grid.shape), t.structure)
        return float(value) if np.isfinite(value) else None

    return measure


def _unmet_as_evaluated(solver: SolverBase, priority: int, read: MetricReader | None, masks, grid) -> list:
    """First-priority target terms met by the surrogate but not by the evaluator's measurement."""
    if read is None:
        return []
    return [t for t in solver.soft if t.priority == priority and t.sense == "min" and t.tier == "desirable"
            and t.metric and t.structure in masks
            and _evaluated(solver, t, read, grid) < float(np.max(t.level_gy)) - solver.settings.met_tol_gy]


def _organs_near(terms, targets, hard_goal_ids, masks, grid: Grid, within_voxels: float = 2.0) -> list[str]:
    """Hard goals whose organ lies within ``within_voxels`` voxel spacings of an under-covered target."""
    from scipy import ndimage

    near = []
    reach = within_voxels * max(grid.spacing_mm)
    for target in targets:
        dist = ndimage.distance_transform_edt(~masks[target.structure], sampling=grid.spacing_mm)
        for t in terms:
            if t.goal_id in hard_goal_ids and t.goal_id not in near and t.structure in masks \
                    and masks[t.structure].any() and dist[masks[t.structure]].min() <= reach:
                near.append(t.goal_id)
    return near


def optimize_plan(problem: LexicographicProblem, *, engine: str = DEFAULT_ENGINE,
                  settings: StageSettings | None = None, solver: str = "HIGHS", truncation: float = 0.01,
                  hold_dvh_points: bool = True, first_method: str = "ipm",
                  read_metric: MetricReader | None = None, extra_terms=(),
                  progress: Progress = SILENT) -> OptimizationOutcome:
    """Solve all priorities of ``problem`` (:class:`~.problem.LexicographicProblem`, see
    :func:`~.problem.build_problem`) lexicographically and return the outcome; ``problem`` is left as it was.

    ``truncation``: entries of the influence matrix below this fraction of their column's maximum
    are left out of the LP rows and added back as a per-row constant at the previous fluence,
    re-evaluated until it converges (0 disables); every check uses the full matrix.
    ``hold_dvh_points``: after its stage, hold each dose-volume goal at its points (all but its
    tail) instead of by its CVaR (see :class:`~reirrad_opt.optimize.engine_lp.LPSolver`).
    ``first_method``: how each stage's first LP is solved, 'ipm' (interior point + crossover) or
    'simplex' (from the previous stage's basis); see ``LexicographicSolver``.
    ``engine``: 'first-order' (default: :class:`~reirrad_opt.optimize.first_order.FirstOrderSolver`,
    L-BFGS-B with an augmented Lagrangian: every stage within a tolerance, much faster on fine grids) or
    'lp' (:class:`~reirrad_opt.optimize.engine_lp.LPSolver`, the exact LP optimum of every stage); any
    engine registered in :mod:`.engines`. ``solver`` and ``first_method`` are the LP engine's.
    ``settings``: the engine's constants (an instance of its ``Settings`` class; default its defaults).
    ``read_metric``: how the evaluation reads a goal's metric (:data:`MetricReader`); without it the goals
    are read at the optimizer's points only (no hold shifted, no tier chosen, by the evaluation's reading).
    ``extra_terms``: user terms on the dose expression, for an engine that takes them (``'cvxpy'``, see
    :mod:`.engine_cvxpy`); ValueError for another engine."""
    matrix, grid, masks, normal = problem.matrix, problem.grid, problem.masks, problem.normal
    limit_choice = problem.limit_choice
    hard_goals = list(problem.caps)
    has_acceptable = set(problem.relaxable)
    start = "acceptable" if limit_choice == "acceptable" else "desirable"
    tiers = {g: (start if (start == "desirable" or g in has_acceptable) else "desirable") for g in hard_goals}
    notes = list(problem.skipped) + list(problem.exhausted)
    rows = DoseRows(matrix, truncation)
    Solver = get_engine(engine)
    kwargs = dict(rx_gy=problem.rx_gy, slips_gy=dict(problem.slips_gy), progress=progress, rows=rows,
                  hold_dvh_points=hold_dvh_points, measure=goal_reader(read_metric, masks, grid), settings=settings)
    if engine == "lp":
        kwargs.update(solver=solver, first_method=first_method)
    if extra_terms:
        if not Solver.takes_extra_terms:
            raise ValueError(f"extra_terms: the {engine!r} engine takes no user terms; use engine='cvxpy'")
        kwargs.update(extra_terms=list(extra_terms))
    main = Solver(matrix, list(problem.terms), tier_by_goal=tiers, **kwargs)
    priorities = main.priorities()
    if not priorities:
        raise ValueError("the protocol has no goal the optimizer can use on this case (see the skipped goals)")
    first = priorities[0]
    label = "priority %d (%s limits)" % (first, start)
    last = priorities[-1] if normal is None else None   # the plan's last stage must end clean
    main.solve_priority(first, label=label, carry=first != last)
    unmet = _unmet_targets(main, first)
    unmet_eval = [] if unmet else _unmet_as_evaluated(main, first, read_metric, masks, grid)
    if (unmet or unmet_eval) and limit_choice == "desirable_then_acceptable":
        binding = [t.goal_id for t, _ in binding_goals(main.hard, main.hard_duals)
                   if t.goal_id in has_acceptable and t.goal_id not in CEILING_IDS]
        if not binding:  # met on voxel centres, short where the evaluation interpolates: organs next to it
            binding = _organs_near(main.hard, unmet or unmet_eval, has_acceptable - set(CEILING_IDS), masks, grid)
        if binding:
            unmet = unmet or unmet_eval
            relaxed = dict(tiers, **{g: "acceptable" for g in binding})
            before = _shortfall(main, unmet, read_metric, masks, grid)
            alt = Solver(matrix, list(problem.terms), tier_by_goal=relaxed, **kwargs)
            alt.solve_priority(first, label=f"priority {first} (acceptable limits for {', '.join(binding)})",
                               carry=first != last)
            after = _shortfall(alt, unmet, read_metric, masks, grid)
            if after < before - main.settings.met_tol_gy:
                notes.append(f"priority {first}: desirable limits leave the target goal(s) "
                             f"{', '.join(t.goal_id for t in unmet)} short by {before:.2f} Gy; acceptable limits "
                             f"used for {', '.join(binding)} (short by {after:.2f} Gy)")
                alt.stages = main.stages + alt.stages
                main = alt
                unmet = _unmet_targets(main, first)
            else:
                notes.append(f"priority {first}: relaxing {', '.join(binding)} to acceptable does not improve the "
                             f"target; desirable limits kept")
                main.stages.extend(alt.stages)
                main.stages[-1].notes.append("not used: no gain over the desirable limits")
                unmet = _unmet_targets(main, first)
    diagnosis: list[str] = []
    if unmet:
        dose = (rows.matrix @ main.weights)[:grid.n_voxels]   # the grid's rows (robust caps add scenario rows)
        for t in unmet:
            diagnosis.extend(diagnose_target(t, dose, main.hard, main.hard_duals, masks, grid,
                                             dose_unit=problem.dose_unit))
    else:
        for t in _unmet_as_evaluated(main, first, read_metric, masks, grid):
            near = _organs_near(main.hard, [t], {h.goal_id for h in main.hard} - set(CEILING_IDS), masks, grid)
            diagnosis.append(
                f"{t.structure}: {t.metric} reaches its goal ({np.max(t.level_gy):.1f} {problem.dose_unit}) on the "
                f"voxel centres but the supersampled evaluation reads {_evaluated(main, t, read_metric, grid):.1f} "
                f"{problem.dose_unit}: the dose falls "
                f"off inside the edge voxels next to {', '.join(near) or 'an organ cap'} (grid "
                f"{max(grid.spacing_mm):g} mm); a finer dose grid or a larger gap is needed to cover that edge")
    main.stages[-1].notes.extend(diagnosis)
    for p in priorities[1:]:
        main.solve_priority(p, carry=p != last)
    if normal is not None:
        main.solve_normal_tissue(normal)
    guarded = main.guard_caps()
    if guarded:
        main.stages[-1].notes.append(guarded)
        progress(guarded)
    return OptimizationOutcome(main.weights, main.stages, dict(main.tier_by_goal), main.final_excess(), diagnosis,
                               notes, engine)
