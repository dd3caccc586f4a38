"""Translate a protocol into optimizer terms for one case (priority-1 caps included).

Organ limits on cumulative EQD2 become caps on the new course's physical dose
(:func:`reirrad_opt.radiobiology.new_course_dose_cap`), computed with the structure's alpha/beta,
the prior course's own fractionation and the recovery model. Maximum-type goals (Dmax, D0.03cc)
are enforced at exactly the points where the evaluation samples the organ (sub-voxel points,
trilinear dose; :mod:`reirrad_opt.evaluate.sampling`), each with the cap computed from the prior
dose interpolated there, just as the evaluation sums the courses. What is capped is therefore
what is evaluated.

A hard ceiling on the targets' maximum dose (protocol option ``max_dose_pct_rx``, default 115 % of
Rx) is added to every stage: without it a coverage-only first stage can buy coverage next to an
organ cap with an arbitrarily hot plan, which later priorities could then not undo.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from .. import radiobiology as rb
from ..geometry.sampling import sample_points
from ..prior_eqd2 import prior_eqd2_at, recovered_fractions
from ..protocol import OPTION_DEFAULTS
from ..case import Case
from ..geometry import canonical_name
from ..planning_settings import ProblemSettings
from .points import trilinear_stencil
from .terms import BODY_CEILING_ID, CEILING_ID, Term, TermSet, UnsupportedGoal, term_kind_and_fraction




def find_structure(case: Case, name: str, aliases: tuple[str, ...] = ()) -> str | None:
    """Name of the case structure matching a protocol structure (by TG-263 name or alias)."""
    if name in case.structures:
        return name
    wanted = {canonical_name(n) for n in (name, *aliases)}
    for key in case.structures:
        if key in wanted or canonical_name(key) in wanted:
            return key
    return None


def lattice(rows: np.ndarray, grid, spacing_mm: float) -> np.ndarray:
    """Which of the flat voxel indices ``rows`` lie on a lattice about ``spacing_mm`` apart (every
    k-th voxel along each axis, k = spacing / voxel size rounded, at least 1).

    A plan ceiling seeded on such a lattice stops the first solve from putting a hot spot anywhere
    the ceiling has no row yet: without it, the first solve of the NPC phantom at 2.5 mm left 291
    ceiling points over 115 % of Rx and the second, with those added, 6017 elsewhere."""
    kji = np.unravel_index(rows, grid.shape)
    on = np.ones(rows.size, dtype=bool)
    for idx, step_mm in zip(kji, grid.spacing_mm):
        k = max(1, int(round(spacing_mm / float(step_mm))))
        on &= idx % k == 0
    return on


def _reaches_outside(interp: "sp.csr_matrix", rows: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per point: does its interpolation stencil (``interp`` over voxel ``rows``) weigh a voxel
    outside ``mask``?"""
    return np.asarray(interp[:, ~mask.ravel()[rows]].sum(axis=1)).ravel() > 1e-12


def sample_stencil(mask: np.ndarray, grid, fine_factor: int) -> tuple[np.ndarray, "sp.csr_matrix"]:
    """The evaluator's sample points of ``mask`` (``fine_factor`` per axis, as the evaluation's) that
    a cap must hold at, as (rows, trilinear interpolation matrix).

    Kept: every voxel centre of the organ, and every sub-voxel sample point whose interpolation
    stencil reaches a voxel outside the organ. A point whose 8 stencil corners are all organ voxel
    centres needs no row of its own: its new and prior doses are convex combinations of the
    corners', EQD2 is convex in dose, so its cumulative EQD2 is at most the same combination of
    the corners' values, each within the limit.
    """
    pts = sample_points(mask, grid, fine_factor)
    centres = np.argwhere(mask).astype(float)
    if pts.index_kji is None:
        return trilinear_stencil(centres, grid.shape)
    rows, interp = trilinear_stencil(pts.index_kji, grid.shape)
    outside_corner = _reaches_outside(interp, rows, mask)
    index = np.concatenate([centres, pts.index_kji[outside_corner]])
    return trilinear_stencil(index, grid.shape)


def _depth_mm(mask: np.ndarray, grid) -> np.ndarray:
    """Distance (mm) from each voxel of ``mask`` to the nearest voxel outside it (0 outside), computed
    on the mask's bounding box plus one voxel."""
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - 1, 0)
    hi = np.minimum(idx.max(axis=0) + 2, np.array(mask.shape))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    padded = np.pad(mask[box], 1, constant_values=False)
    depth = np.zeros(mask.shape)
    depth[box] = ndimage.distance_transform_edt(padded, sampling=grid.spacing_mm)[1:-1, 1:-1, 1:-1]
    return depth


def coverage_stencil(mask: np.ndarray, grid, fine_factor: int, band_voxels: int = ProblemSettings.exact_band_voxels
                     ) -> tuple[np.ndarray, "sp.csr_matrix", np.ndarray]:
    """Points at which a target's coverage (a lower CVaR) is optimized, as (rows, trilinear
    interpolation matrix, relative volume per point); the evaluation's samples (``fine_factor`` per
    axis) where they matter.

    The evaluation samples a target at sub-voxel points with interpolated dose, which differs from
    the voxel centres where the dose falls off: at the structure's edge and within a voxel or two of
    it. Kept as exact points: every sub-voxel sample whose voxel lies within ``band_voxels`` voxel
    spacings of the outside, or whose stencil reaches a voxel outside. The deeper samples are
    represented by their voxel's centre, weighted by their number. (TG-119 at 4 mm, PTV D95% after
    the last stage: the points read 50.020 Gy and the evaluation 50.022 Gy; with only the samples
    whose stencil reaches outside, 50.105 against 49.80 Gy, a met goal that the evaluation failed;
    with a band of one voxel, 50.123 against 50.019 Gy.)"""
    pts = sample_points(mask, grid, fine_factor)
    centres = np.argwhere(mask)
    if pts.index_kji is None:
        rows, interp = trilinear_stencil(centres.astype(float), grid.shape)
        return rows, interp, np.ones(centres.shape[0])
    rows, interp = trilinear_stencil(pts.index_kji, grid.shape)
    edge = _reaches_outside(interp, rows, mask)
    parent_kji = np.clip(np.rint(pts.index_kji), 0, np.array(grid.shape) - 1).astype(np.int64)
    edge |= _depth_mm(mask, grid)[tuple(parent_kji.T)] <= band_voxels * max(grid.spacing_mm) + 1e-6
    parent = np.ravel_multi_index(parent_kji[~edge].T, grid.shape)
    centre_flat = np.ravel_multi_index(centres.T, grid.shape)
    counts = np.zeros(centre_flat.size)
    pos = np.searchsorted(centre_flat, parent)
    np.add.at(counts, pos, 1.0)
    keep = counts > 0
    index = np.concatenate([centres[keep].astype(float), pts.index_kji[edge]])
    weights = np.concatenate([counts[keep], np.ones(int(edge.sum()))])
    rows, interp = trilinear_stencil(index, grid.shape)
    return rows, interp, weights


def cluster_points(mask: np.ndarray, grid, spacing_mm: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Optimization points of a dose-volume goal on ``mask``, as (flat voxel indices, relative volume).

    Every surface voxel of the structure (one with a face neighbour outside it) is a point of its
    own: the cold tail of a coverage goal and the steep dose fall-off lie there. The interior voxels
    are grouped in cells of about ``spacing_mm`` (an integer number of voxels per axis); each cell is
    represented by its member voxel nearest the members' centroid, weighted by the number of
    members. Inside a structure the dose varies little over a few millimetres, so the weighted
    points give nearly the same dose-volume histogram with far fewer LP rows (TG-119 PTV at 3 mm:
    6,275 voxels -> 2,776 points). The evaluation of the final dose always reads every voxel.

    ``spacing_mm`` None, or not larger than 1.5 voxels on any axis: every voxel, weight 1.
    """
    from scipy import ndimage

    rows = np.flatnonzero(mask)
    cell = np.ones(3, dtype=np.int64) if spacing_mm is None else np.maximum(
        1, np.rint(float(spacing_mm) / np.asarray(grid.spacing_mm, dtype=float)).astype(np.int64))
    if np.all(cell == 1):
        return rows, np.ones(rows.size)
    inner = ndimage.binary_erosion(mask, border_value=0)
    surface = np.flatnonzero(mask & ~inner)
    kji = np.argwhere(inner)
    if kji.shape[0] == 0:
        return rows, np.ones(rows.size)
    key = np.ravel_multi_index((kji // cell).T, tuple(-(-np.asarray(grid.shape) // cell)))
    order = np.argsort(key, kind="stable")
    key, kji = key[order], kji[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[starts, key.size])
    centroid = np.add.reduceat(kji.astype(float), starts, axis=0) / counts[:, None]
    dist = ((kji - np.repeat(centroid, counts, axis=0)) ** 2).sum(axis=1)
    group = np.repeat(np.arange(starts.size), counts)
    best = np.lexsort((dist, group))            # per cell, the nearest member first
    first = best[np.r_[0, np.cumsum(counts)[:-1]]]
    reps = np.ravel_multi_index(kji[first].T, grid.shape)
    points = np.concatenate([surface, reps])
    weights = np.concatenate([np.ones(surface.size), counts.astype(float)])
    order = np.argsort(points)
    return points[order], weights[order]


def build_terms(case: Case, protocol, n_fractions: int, rx_gy: float, recovery=None, *,
                every_voxel: bool = False, sampling: ProblemSettings | None = None) -> TermSet:
    """Terms for every goal of ``protocol`` that the optimizer can represent.

    Args:
        case: the case (structures, prior dose and the prior course's fractionation).
        protocol: a loaded :class:`reirrad_opt.protocol.Protocol`.
        n_fractions: number of fractions of the new course.
        rx_gy: prescribed physical dose of the new course (Gy), for %Rx limits.
        recovery: recovery model (default: the protocol's).
        every_voxel: the soft dose-volume goals on every voxel (and the evaluation's edge samples), as
            the first-order engine takes them; otherwise on interior points ``sampling.point_spacing_mm``
            apart (see :func:`cluster_points`). Maxima (every organ cap) and a first-priority target's
            coverage always use every voxel and sub-voxel sample point.
        sampling: where the points go (:class:`~reirrad_opt.planning_settings.ProblemSettings`; default
            its defaults).
    """
    sampling = sampling or ProblemSettings()
    recovery = recovery if recovery is not None else protocol.recovery
    grid = case.grid
    out = TermSet(terms=[])
    stencils: dict[str, tuple] = {}   # structure name -> coverage_stencil (the two tiers share it)
    # the points where the evaluation reads the plan (protocol option; 1 = voxel centres)
    fine_factor = int(protocol.options.get("evaluation_fine_factor", OPTION_DEFAULTS["evaluation_fine_factor"]))
    for goal in protocol.goals:
        name = find_structure(case, goal.structure, tuple(getattr(goal, "aliases", ()) or ()))
        if name is None:
            out.skipped.append(f"{goal.id}: structure {goal.structure} is not in the case")
            continue
        mask = case.structures[name].mask
        if not mask.any():
            out.skipped.append(f"{goal.id}: structure {name} is empty")
            continue
        structure_cc = float(mask.sum()) * grid.voxel_volume_cc
        is_target = case.structures[name].role == "target"
        hard = goal.priority == 1 and goal.sense == "max" and not is_target
        for tier in ("desirable", "acceptable"):
            limit = getattr(goal, tier)
            if limit is None:
                continue
            try:
                kind, fraction, threshold = term_kind_and_fraction(
                    goal.metric, goal.sense, structure_cc, limit.value, limit.unit, rx_gy)
            except UnsupportedGoal as exc:
                out.skipped.append(f"{goal.id}: {exc}")
                break
            if goal.cumulative and kind != "voxel_max":
                out.skipped.append(f"{goal.id}: cumulative-EQD2 {goal.metric} has no linear form; it is evaluated, "
                                   f"not optimized")
                break
            interp = weights = None
            if (kind == "cvar_lower" and is_target and goal.priority == 1) or \
                    (kind in ("cvar_lower", "cvar_upper") and not hard and every_voxel):
                if name not in stencils:   # the desirable and acceptable tiers share the points
                    stencils[name] = coverage_stencil(mask, grid, fine_factor, sampling.exact_band_voxels)
                rows, interp, weights = stencils[name]
                prior_here = None
            elif kind == "voxel_max":
                rows, interp = sample_stencil(mask, grid, fine_factor)
                prior_here = _reader(rows, interp)
            elif kind in ("cvar_upper", "cvar_lower") and not hard:
                rows, weights = cluster_points(mask, grid, sampling.point_spacing_mm)
                weights = None if np.all(weights == 1.0) else weights
                prior_here = _reader(rows)
            else:
                rows = np.flatnonzero(mask)
                prior_here = _reader(rows)
            if threshold is not None:
                level: float | np.ndarray = threshold
            else:
                limit_gy = goal.limit_gy(tier, rx_gy)
                if goal.cumulative:
                    # every prior course at these points, each with its own fractions and interval
                    prior_eff = prior_eqd2_at(case.prior_courses, prior_here, goal.alpha_beta_gy,
                                              recovered_fractions(recovery, name, case.prior_courses))
                    cap = rb.new_course_dose_cap(limit_gy, prior_eff, n_fractions, goal.alpha_beta_gy)
                    level = np.asarray(cap.cap_gy, dtype=float)
                    exhausted = np.asarray(cap.exhausted, dtype=bool)
                    if exhausted.any():
                        out.exhausted.append(
                            f"{name}: prior EQD2 alone reaches the {tier} limit {limit_gy:.1f} Gy in "
                            f"{exhausted.mean() * structure_cc:.2f} cc; that part can take no new dose")
                else:
                    level = float(limit_gy)
            desc = (f"{name} {goal.metric} {'<=' if goal.sense == 'max' else '>='} "
                    f"{limit.value:g} {limit.unit} ({tier}{', cumulative EQD2' if goal.cumulative else ''})")
            if interp is not None and kind == "voxel_max":
                level = np.broadcast_to(np.asarray(level, dtype=float), (interp.shape[0],)).copy()
            out.terms.append(Term(goal.id, name, goal.priority, kind, rows, level, fraction, tier, hard, desc,
                                  interp, goal.metric, weights, cumulative=bool(goal.cumulative)))
    ceiling_pct = float(protocol.options.get("max_dose_pct_rx", OPTION_DEFAULTS["max_dose_pct_rx"]))
    targets = [s.mask for s in case.structures.values() if s.role == "target" and s.mask.any()]
    target_union = np.logical_or.reduce(targets) if targets else np.zeros(grid.shape, bool)
    # The ceilings' seeds (rows from the first solve where the reference dose comes near them, see
    # Term.seed): every target voxel, and the body within sampling.ceiling_shell_mm of a target plus a
    # sampling.ceiling_lattice_mm lattice elsewhere. Coverage is bought with hot dose in and next to the target:
    # seeded on an 8 mm lattice only, the first solve of the NPC phantom at 2.5 mm put 135 target voxels
    # over the ceiling (by up to 25 Gy), the second 986 others and 887 body voxels, and the two lazy
    # rounds cost 20 s of dual simplex.
    if targets:
        rows = np.flatnonzero(target_union)
        out.terms.append(Term(CEILING_ID, "targets", 1, "voxel_max", rows, ceiling_pct / 100.0 * rx_gy,
                              hard=True, description=f"plan maximum dose <= {ceiling_pct:g} % of Rx in the targets",
                              seed=np.ones(rows.size, dtype=bool)))
    # the same ceiling everywhere else in the body: without it, fluence whose low tails help a cold
    # target edge could deposit any dose along a path that no other term watches
    body_rows = np.flatnonzero(case.body & ~target_union)
    seed = lattice(body_rows, grid, sampling.ceiling_lattice_mm)
    if targets:
        seed |= near(target_union, grid, sampling.ceiling_shell_mm).ravel()[body_rows]
    out.terms.append(Term(BODY_CEILING_ID, "External", 1, "voxel_max", body_rows, ceiling_pct / 100.0 * rx_gy,
                          hard=True, description=f"plan maximum dose <= {ceiling_pct:g} % of Rx in the body",
                          seed=seed))
    return out


def _reader(rows: np.ndarray, interp=None):
    """Reads a dose grid at the optimizer's points: its voxels ``rows``, interpolated by ``interp``
    (sample stencil rows x ``rows``) when given."""
    if interp is None:
        return lambda dose_gy: dose_gy.ravel()[rows]
    return lambda dose_gy: interp @ dose_gy.ravel()[rows]


def near(mask: np.ndarray, grid, distance_mm: float) -> np.ndarray:
    """Voxels outside ``mask`` whose centre lies within ``distance_mm`` of a voxel centre of ``mask``."""
    from scipy import ndimage

    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    dist = ndimage.distance_transform_edt(~mask, sampling=grid.spacing_mm)
    return (dist > 0) & (dist <= distance_mm)
