"""The tier and hold logic every engine shares: which terms are in force, what a tier weighs, how a
solved dose-volume goal is held in later stages.

Pure functions of the terms (no solver state): :func:`select_terms` picks the caps in force and the
soft goals (an exhausted cap point becomes a soft term, twin tiers of one limit merge);
:func:`dvh_hold` says at which level and points a solved dose-volume goal is held.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .terms import CEILING_IDS, Term, dvh_dose, dvh_tail

def point_map(t: Term, points: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """(map from voxel doses to the dose at ``points`` of ``t``, those voxels' flat grid indices)."""
    if t.interp is not None:
        sub = t.interp[points].tocsc()
        used = np.flatnonzero(np.diff(sub.indptr))
        return sub[:, used].tocsr(), t.rows[used]
    return sp.identity(points.size, format="csr"), t.rows[points]


def same_points(a: Term, b: Term) -> bool:
    """True if point k of ``a`` is point k of ``b`` for every k (same voxels, same sub-voxel map)."""
    same_map = (a.interp is None) == (b.interp is None) and (
        a.interp is None or (a.interp.shape == b.interp.shape and (a.interp != b.interp).nnz == 0))
    return same_map and np.array_equal(a.rows, b.rows)


def same_surrogate(a: Term, b: Term) -> bool:
    """True if ``a`` and ``b`` are the same goal's surrogate at the same level and points (the two
    tiers of a goal with a single limit)."""
    same_weights = (a.point_weights is None) == (b.point_weights is None) and (
        a.point_weights is None or np.array_equal(a.point_weights, b.point_weights))
    return (a.goal_id == b.goal_id and a.kind == b.kind and a.fraction == b.fraction and same_points(a, b)
            and same_weights and np.shape(a.level_gy) == np.shape(b.level_gy)
            and np.array_equal(a.level_gy, b.level_gy))


def split_exhausted(hard: list[Term], exhausted_cap_gy: float) -> tuple[list[Term], list[Term]]:
    """Take the exhausted points out of the hard organ caps: (the caps without them, one soft term
    per cap for them).

    A point whose cap allows at most ``exhausted_cap_gy`` (Gy) of new dose (its prior dose alone used
    up, or all but used up, the cumulative limit) cannot be held under its cap by an aim a few mGy
    inside it, and photon scatter reaches it from every beam: as a hard row it made the LP
    infeasible and the plan empty. Its new dose is minimised instead, as the first concern of the
    goal's priority (the maximum new dose over those points, tier weight 'exhausted', 100 times a
    desirable goal's), and the evaluation reports the limit as it stands."""
    kept, exhausted = [], []
    for t in hard:
        if t.kind != "voxel_max" or t.goal_id in CEILING_IDS:
            kept.append(t)
            continue
        low = point_levels(t) <= exhausted_cap_gy
        if low.any():
            points = np.flatnonzero(low)
            exhausted.append(t.points_subset(
                points, level_gy=np.zeros(points.size), hard=False, tier="exhausted",
                description=f"{t.structure}: {points.size} point(s) whose prior dose used up the {t.tier} limit; "
                            f"new dose minimised (no cap can hold it)"))
        if not low.all():
            kept.append(t.points_subset(np.flatnonzero(~low)) if low.any() else t)
    return kept, exhausted


def point_levels(term: Term) -> np.ndarray:
    return np.broadcast_to(np.asarray(term.level_gy, dtype=float), (term.n_points,))


def select_terms(terms: list[Term], tier_by_goal: dict[str, str], tier_weight: dict[str, float],
                 exhausted_cap_gy: float) -> tuple[list[Term], list[Term], dict[str, float]]:
    """The terms a lexicographic solve works with: (hard caps in force, soft goals, tier weight of
    each soft term's shortfall per Gy, from ``tier_weight``: tier -> weight per Gy).

    Hard caps: one tier per hard goal (``tier_by_goal``), without their exhausted points, which
    become soft terms (see :func:`split_exhausted`). A soft maximum with both tiers keeps only its
    desirable term (its slack already drives the acceptable one down), and a goal whose two tiers
    are one limit (rGTV D98% >= 98 % Rx, desirable and acceptable) is one term whose shortfall
    costs both tiers' weights: its twin would double the CVaR rows and the held rows."""
    in_force = [t for t in terms if t.hard and t.tier == tier_by_goal.get(t.goal_id, "desirable")]
    hard, exhausted = split_exhausted(in_force, exhausted_cap_gy)
    desirable_max = {t.goal_id for t in terms if not t.hard and t.kind == "voxel_max" and t.tier == "desirable"}
    soft = [t for t in terms if not t.hard and not (
        t.kind == "voxel_max" and t.tier == "acceptable" and t.goal_id in desirable_max)] + exhausted
    weights = {t.key: tier_weight[t.tier] for t in soft}
    for t in [t for t in soft if t.tier == "acceptable"]:
        twin = next((d for d in soft if d.tier == "desirable" and same_surrogate(d, t)), None)
        if twin is not None:
            weights[twin.key] += weights.pop(t.key)
            soft = [s for s in soft if s is not t]
    return hard, soft, weights


def dvh_hold(t: Term, dose_rows: np.ndarray, slip_gy: float, hold_safety_gy: float,
             evaluated_gy: float | None = None) -> tuple[float, np.ndarray]:
    """How a dose-volume goal ``t`` is held once its stage is solved: (held level in Gy, mask of the
    term's points that are held at it): the points outside the DVH's free tail (the coldest fraction q of a
    lower goal, the hottest q of an upper one), each held at the level, keep the DVH point there.

    ``dose_rows``: dose (Gy) on ``t.rows`` at the solved fluence. A goal that its stage met is held at
    its level: a later priority never turns a met goal into a missed one, even where the slip would
    allow more (a goal met short of its slip-tightened aim). A goal left short may give back at most
    ``slip_gy`` from what was achieved. Where the evaluation (``evaluated_gy``: supersampled, every
    voxel) reads the goal worse than the term's points do, the points are held that much further in
    (met means met as the evaluation reads it). The level is kept ``hold_safety_gy`` (Gy) inside (never
    beyond the achieved value): a solver's tolerance must not leave a met goal a micro-Gy short in the
    evaluation."""
    points = t.point_values(dose_rows)
    upper = t.sense == "max"
    achieved = dvh_dose(points, t.fraction, upper, t.point_weights)
    level = float(np.max(t.level_gy))
    worse = 0.0
    if evaluated_gy is not None and np.isfinite(evaluated_gy):
        worse = max(0.0, t.sign * (evaluated_gy - achieved))
    target = level - t.sign * worse          # the level on the points, as the evaluation reads it
    met = slack_after_stage(t.sign * (achieved - target), slip_gy) == 0.0
    hold = (target if met else achieved + t.sign * slip_gy) - t.sign * hold_safety_gy
    if t.sign * (hold - achieved) < 0:       # never inside what was achieved
        hold = achieved
    return hold, ~dvh_tail(points, t.fraction, upper, t.point_weights)


def slack_after_stage(excess_gy: float, slip_gy: float) -> float:
    """How far (Gy) beyond its level a goal may go in later stages, given its excess over the level
    when its stage ended (``excess_gy`` > 0: short of the level): none for a met goal (a later
    priority never turns it into a missed one), else the shortfall plus the slip."""
    return float(excess_gy) + slip_gy if excess_gy > 0 else 0.0
