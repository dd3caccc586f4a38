"""Infeasibility diagnosis: which hard organ limits stop a target goal from being met.

When a target goal of the first priority cannot be reached under the priority-1 caps, the duals of
the cap constraints tell which organ limits bind. For each binding organ we report the under-dosed
target voxels next to it, the new-course dose they reach, and the cap the organ's cumulative EQD2
limit leaves, e.g. "rGTV voxels within 4.0 mm of Brainstem (0.45 cc) reach at most 18.3 Gy
new-course dose (goal 63.5 Gy): Brainstem's cumulative EQD2 limit (desirable) leaves a new-course
cap of 12.1-20.4 Gy on its voxels". A voxel cap with no dual whose points are at the cap in voxels
next to the under-dosed ones is named too: the duals of an engine stopped short of its optimum (an
infeasible stage run to its iteration limit) need not show every limit that holds the target back.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..geometry import Grid
from .terms import CEILING_IDS, Term


def binding_goals(hard_terms: list[Term], hard_duals: dict[str, tuple[np.ndarray, np.ndarray]],
                  rel_threshold: float = 1e-4) -> list[tuple[Term, float]]:
    """Hard terms whose cap constraints carry a non-negligible dual, largest first.

    ``hard_duals`` maps a term key to (point indices, dual values) of its constraints."""
    totals = [(t, float(hard_duals[t.key][1].sum()) if t.key in hard_duals else 0.0) for t in hard_terms]
    top = max((v for _, v in totals), default=0.0)
    if top <= 0:
        return []
    return sorted([(t, v) for t, v in totals if v > rel_threshold * top], key=lambda tv: -tv[1])


def diagnose_target(target: Term, dose_flat: np.ndarray, hard_terms: list[Term], hard_duals: dict,
                    masks: dict[str, np.ndarray], grid: Grid, at_cap_gy: float = 0.1,
                    dose_unit: str = "Gy") -> list[str]:
    """Plain-language findings for a target term that the optimizer could not satisfy, its doses in
    ``dose_unit`` ('Gy', or 'Gy(RBE)' for a particle plan).

    Organ limits are named when their constraints carry a dual (binding), and also voxel caps whose
    points are at or above the cap (within ``at_cap_gy``, Gy) in voxels within two voxel spacings of
    the under-dosed target voxels: an engine stopped short of its optimum (e.g. the first-order engine
    on an infeasible stage) may hold an organ at its cap with multipliers that do not show it."""
    d_target = dose_flat[target.rows]
    goal_gy = float(np.max(target.level_gy))
    value = target.surrogate(d_target)
    lines = [f"{target.structure}: goal {target.description} not reachable under the priority-1 limits; best "
             f"achievable surrogate {value:.1f} {dose_unit} new-course dose against {goal_gy:.1f} {dose_unit}"]
    under_rows = target.rows[d_target < goal_gy - 1e-6]
    if under_rows.size == 0:
        return lines
    under = np.zeros(grid.n_voxels, bool)
    under[under_rows] = True
    under = under.reshape(grid.shape)
    binding = binding_goals(hard_terms, hard_duals)[:4]
    findings: list[str] = []
    for term, _dual in binding:
        if term.goal_id in CEILING_IDS:
            continue
        idx, duals = hard_duals.get(term.key, (np.arange(term.n_points), np.zeros(term.n_points)))
        binding_points = idx[duals > 1e-9 * duals.max()] if duals.size and duals.max() > 0 else idx
        line = _organ_finding(target, term, binding_points, under, dose_flat, masks, grid, goal_gy,
                              "on its binding voxels", dose_unit)
        if line is None:
            findings.append(f"{target.structure}: the {term.structure} limit ({_tier_text(term)}) binds, but "
                            f"{term.structure} has no voxels on the dose grid to point at")
            continue
        if term.scenarios and duals.size and duals.max() > 0:
            line += "; binding in " + ", ".join(dict.fromkeys(term.scenario_of(binding_points)))
        findings.append(line)
    named = {term.goal_id for term, _ in binding}
    near_under = None        # distance (mm) of every voxel from the under-dosed target voxels, once
    for term in hard_terms:
        if term.goal_id in named or term.goal_id in CEILING_IDS or term.kind != "voxel_max" or term.scenarios \
                or term.rows.size == 0 or int(term.rows.max()) >= dose_flat.size:
            continue
        caps = np.broadcast_to(np.asarray(term.level_gy, dtype=float), (term.n_points,))
        at_cap = np.flatnonzero(term.point_values(dose_flat[term.rows]) >= caps - at_cap_gy)
        if at_cap.size == 0:
            continue
        if near_under is None:
            near_under = ndimage.distance_transform_edt(~under, sampling=grid.spacing_mm).ravel()
        voxels = term.rows[at_cap] if term.interp is None else term.rows[np.unique(term.interp[at_cap].indices)]
        if near_under[voxels].min() > 2 * max(grid.spacing_mm):
            continue      # at its cap away from the under-dosed voxels: not what holds them back
        line = _organ_finding(target, term, at_cap, under, dose_flat, masks, grid, goal_gy,
                              f"on its voxels at or above the cap (within {at_cap_gy:g} {dose_unit})", dose_unit)
        if line:
            findings.append(line)
    ceilings = [term for term, _ in binding if term.goal_id in CEILING_IDS]
    if ceilings:
        level = min(float(np.max(term.level_gy)) for term in ceilings)
        findings.append(f"{target.structure}: the plan's maximum-dose ceiling ({level:.1f} {dose_unit}) binds; "
                        f"coverage next to the organ caps would need a hotter plan")
    if not findings:
        findings.append(f"{target.structure}: {under_rows.size * grid.voxel_volume_cc:.2f} cc below goal, but no "
                        f"priority-1 cap binds: the beam arrangement or the target surrogate limits coverage")
    return lines + findings


def _tier_text(term: Term) -> str:
    return term.tier + (", cumulative EQD2" if term.cumulative else "")


def _organ_finding(target: Term, term: Term, points: np.ndarray, under: np.ndarray, dose_flat: np.ndarray,
                   masks: dict[str, np.ndarray], grid: Grid, goal_gy: float, where: str,
                   dose_unit: str = "Gy") -> str | None:
    """One sentence on organ limit ``term`` limiting ``target`` next to its under-dosed voxels ``under``:
    the under-dosed voxels nearer the organ than their median distance, the dose they reach, and the
    range of the caps at ``points`` (indices of the term's points). None when the organ has no voxels."""
    organ = masks.get(term.structure)
    if organ is None or not organ.any():
        return None
    dist = ndimage.distance_transform_edt(~organ, sampling=grid.spacing_mm)
    near_mm = float(max(np.percentile(dist[under], 50), min(grid.spacing_mm)))
    close = under & (dist <= near_mm)
    reach = float(dose_flat.reshape(grid.shape)[close].max())
    caps = np.broadcast_to(np.asarray(term.level_gy, dtype=float), (term.n_points,))[points]
    return (f"{target.structure} voxels within {near_mm:.1f} mm of {term.structure} "
            f"({close.sum() * grid.voxel_volume_cc:.2f} cc) cannot exceed {reach:.1f} {dose_unit} new-course dose "
            f"(goal {goal_gy:.1f} {dose_unit}): the {term.structure} limit ({_tier_text(term)}) leaves a "
            f"new-course cap of {np.min(caps):.1f}-{np.median(caps):.1f} {dose_unit} {where}")
