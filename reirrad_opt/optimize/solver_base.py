"""What every lexicographic engine shares: :class:`StageSettings` (the constants both engines use)
and :class:`SolverBase` (inputs, terms in force, stages solved, the final cap guard).

An engine subclasses :class:`SolverBase`, names its own frozen settings class (a subclass of
:class:`StageSettings`) in ``Settings``, implements :meth:`SolverBase.solve_priority` and
:meth:`SolverBase.solve_normal_tissue`, and is registered by name in :mod:`.engines`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..progress import SILENT, Progress
from .dose_rows import DoseRows
from .guard import cap_scale_factor
from .holds import point_levels, select_terms
from .stage import NormalTissue, StageResult
from .terms import CEILING_IDS, Term


@dataclass(frozen=True)
class StageSettings:
    """Constants of the lexicographic stages that every engine uses the same way.

    Attributes:
        desirable_weight, acceptable_weight, exhausted_weight: cost of a soft goal's shortfall per Gy
            by tier ('exhausted': the points of a hard cap whose prior dose alone used up the limit,
            see :func:`~reirrad_opt.optimize.holds.split_exhausted`).
        integral_dose_weight: tie-breaker in every stage: among equal optima, the least integral dose
            (weight per Gy of mean dose, relative to a goal's shortfall).
        alara_weight: a desirable maximum-type goal, once met, is pushed lower at this weight per Gy.
        met_tol_gy: a goal whose excess over its level is at most this (Gy) counts as met.
        seed_ratio: a term's seed points (``Term.seed``) start active from this fraction of their level.
        exhausted_cap_gy: a cap point allowing at most this much new dose (Gy) is exhausted: its new
            dose is minimised instead of capped.
        hold_safety_gy: held dose-volume goals are kept this far (Gy) inside the level they may reach.
        hard_safety_gy: hard caps are aimed this far (Gy) inside their limit.
        drift_rounds: a stage is solved again, at most this many times, when the evaluation reads an
            earlier goal that its own stage met as short of its level (see :meth:`SolverBase.drift_shifts`).
    """

    desirable_weight: float = 1.0
    acceptable_weight: float = 10.0
    exhausted_weight: float = 100.0
    integral_dose_weight: float = 1e-3
    alara_weight: float = 0.01
    met_tol_gy: float = 1e-3
    seed_ratio: float = 0.5
    exhausted_cap_gy: float = 0.01
    hold_safety_gy: float = 0.02
    hard_safety_gy: float = 2e-3
    drift_rounds: int = 2

    @property
    def tier_weight(self) -> dict[str, float]:
        """Tier name -> cost of a shortfall per Gy."""
        return {"desirable": self.desirable_weight, "acceptable": self.acceptable_weight,
                "exhausted": self.exhausted_weight}


class SolverBase(ABC):
    """What every lexicographic engine shares: its inputs, the terms in force (:func:`select_terms`),
    the stages solved and their achieved values, and what is done once the stages are solved.

    Attributes every engine keeps up to date: ``weights`` (the fluence of the last stage solved),
    ``stages``, ``achieved`` (term key -> s*, Gy: later stages keep level + s*), ``hard_duals``
    (hard term key -> (points, the price of each point's cap: the LP's duals, the first-order
    engine's multipliers; read by the diagnosis to name binding caps)), ``unresolved`` and
    ``worst_gy`` (points still beyond their bound after the last solve, and by how much, Gy).
    """

    name = ""                 # the engine's registered name
    Settings = StageSettings  # the engine's frozen settings class
    takes_extra_terms = False  # True: the engine takes user terms (``extra_terms=``, see engine_cvxpy)

    def __init__(self, matrix: sp.csr_matrix, terms: list[Term], *, rx_gy: float, slips_gy: dict[int, float],
                 tier_by_goal: dict[str, str], progress: Progress = SILENT, rows: DoseRows | None = None,
                 truncation: float = 0.0, hold_dvh_points: bool = True, measure=None,
                 settings: StageSettings | None = None) -> None:
        if settings is None:
            settings = self.Settings()
        elif not isinstance(settings, self.Settings):
            raise TypeError(f"engine {self.name!r} takes {self.Settings.__name__}, got {type(settings).__name__}")
        self.settings = settings
        self.rows = rows if rows is not None else DoseRows(matrix, truncation)
        self.n_cols = matrix.shape[1]
        self.terms = terms
        self.rx_gy = float(rx_gy)
        self.slips_gy = dict(slips_gy)
        self.tier_by_goal = dict(tier_by_goal)
        self.progress = progress
        self.hold_dvh_points = bool(hold_dvh_points)
        self.measure = measure
        self.hard, self.soft, self.tier_weight = select_terms(terms, self.tier_by_goal, settings.tier_weight,
                                                                settings.exhausted_cap_gy)
        self.achieved: dict[str, float] = {}   # term key -> s* (Gy): later stages keep level + s*
        self.stages: list[StageResult] = []
        self.weights = np.zeros(self.n_cols)
        self.hard_duals: dict[str, tuple[np.ndarray, np.ndarray]] = {}   # term key -> (points, duals)
        self.met_as_evaluated: set[str] = set()   # held dose-volume goals the evaluation read met at their stage
        self.unresolved = 0   # points still beyond their bound after the last stage's final solve
        self.worst_gy = 0.0   # how far the worst of them is beyond its bound (Gy)
        # mean dose over the voxels the matrix reaches, per unit weight of each column (Gy)
        m = self.rows.matrix
        reached = max(int(np.count_nonzero(np.diff(m.indptr))), 1)
        self.integral_per_weight = np.asarray(m.sum(axis=0), dtype=float).ravel() / reached

    def reference_fluence(self) -> np.ndarray:
        """Uniform weights giving the first target goal's level as its mean dose (where points start
        active, the first correction of the truncated rows, the first-order engine's start)."""
        w = np.ones(self.n_cols)
        targets = [t for t in self.soft if t.sense == "min"]
        if not targets:
            return w
        t0 = min(targets, key=lambda t: t.priority)
        # the full dose (kept by DoseRows: the engines read it next) rather than the target's rows cut out of
        # the matrix (TG-119 at 3 mm: 0.2 s to cut, 0.03 s for the whole product)
        mean = float(np.mean(self.rows.dose(w)[t0.rows]))
        return w * (float(np.max(t0.level_gy)) / mean if mean > 0 else 1.0)

    def guard_caps(self) -> str | None:
        """Scale the fluence down, if needed, so that every hard organ cap holds at every one of its
        points in the full-matrix dose (see :mod:`reirrad_opt.optimize.guard`). The plan ceiling is
        not an organ cap and is left as the stages ended it. Returns the note saying what was done
        (None if no point was over)."""
        dose = self.rows.dose(self.weights)
        factor, worst_gy, worst_goal = 1.0, 0.0, ""
        for t in self.hard:
            if t.kind != "voxel_max" or t.goal_id in CEILING_IDS:
                continue
            values, caps = t.point_values(dose[t.rows]), point_levels(t)
            factor = min(factor, cap_scale_factor(values, caps))
            excess = float(np.max(values - caps)) if values.size else 0.0
            if excess > worst_gy:
                worst_gy, worst_goal = excess, t.goal_id
        if factor >= 1.0:
            return None
        self.weights = self.weights * factor
        loud = "" if factor > 0.999 else " (this costs every target the same fraction of its dose)"
        return (f"the final fluence was scaled by {factor:.6f} so that every organ cap holds at every point "
                f"(worst before: {worst_goal} {worst_gy:.4f} Gy over){loud}")

    def final_excess(self) -> dict[str, float]:
        """Excess over its level (Gy) of every term's goal at the term's points for the current
        weights (DVH points for dose-volume goals, not their CVaR)."""
        dose = self.rows.dose(self.weights)
        return {t.key: t.goal_excess_gy(dose[t.rows]) for t in self.terms}

    def note_hold(self, t: Term, evaluated: float | None) -> None:
        """Record whether the evaluation read goal ``t`` met (``evaluated``: its metric, Gy; None where
        there is no evaluation) when its stage ended and its hold was made."""
        if evaluated is not None and np.isfinite(evaluated) and t.sign * (evaluated - float(np.max(t.level_gy))) <= 0.0:
            self.met_as_evaluated.add(t.key)
        else:
            self.met_as_evaluated.discard(t.key)

    def drift_shifts(self, held: set[str], weights: np.ndarray) -> dict[str, float]:
        """Each held dose-volume goal (``held``: term keys) that the evaluation read met when its stage ended
        but reads short of its level at the fluence ``weights``: key -> how far (Gy, signed) its hold moves in,
        the shortfall plus ``settings.hold_safety_gy``.

        A met goal is held on its points, shifted by what the evaluation read worse than the points when its
        stage ended (:func:`~.holds.dvh_hold`). A later stage reshapes the dose inside the structure, and the
        evaluation (supersampled, every voxel) can then read the goal further from the points than that:
        NPC phantom at 5 mm, rGTV D98% held 0.024 Gy above its level on the points, read 0.004 Gy short of it
        by the evaluation after the last stage. The engine then holds it further in, by the shortfall plus
        ``settings.hold_safety_gy``, and solves the stage again. A goal the evaluation read short at its own
        stage is not in the list: the stage could not do better, and pushing it on would only make the later
        stages infeasible."""
        if self.measure is None:
            return {}
        dose = self.rows.dose(weights)
        out = {}
        for t in self.soft:
            if t.key not in self.met_as_evaluated or t.key not in held:
                continue
            evaluated = self.measure(t, dose)
            if evaluated is None or not np.isfinite(evaluated):
                continue
            short = t.sign * (evaluated - float(np.max(t.level_gy)))    # Gy beyond the level as evaluated
            if short > 0.0:
                out[t.key] = -t.sign * (short + self.settings.hold_safety_gy)
        return out

    def priorities(self) -> list[int]:
        return sorted({t.priority for t in self.soft})


    @abstractmethod
    def solve_priority(self, p: int, label: str | None = None, carry: bool = False) -> StageResult | None:
        """Solve the stage of priority ``p`` (None if it has no soft goals) and append its result to
        ``stages``. ``carry``: the stage may end with points a little beyond their bound for the next
        stage to hold (an engine without lazy rounds ignores it)."""

    @abstractmethod
    def solve_normal_tissue(self, normal: NormalTissue) -> StageResult:
        """The last stage: normal-tissue dose and fluence roughness within every earlier result."""
