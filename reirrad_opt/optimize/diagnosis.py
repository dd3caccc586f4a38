"""Infeasibility diagnosis: which hard organ limits stop a target goal from being met.

When a target goal of the first priority cannot be reached under the priority-1 caps, the duals of
the cap constraints tell which organ limits bind. For each binding organ we report the under-dosed
target voxels next to it, the new-course dose they reach, and the cap the organ's cumulative EQD2
limit leaves, e.g. "rGTV voxels within 4.0 mm of Brainstem (0.45 cc) reach at most 18.3 Gy
new-course dose (goal 63.5 Gy): Brainstem's cumulative EQD2 limit (desirable) leaves a new-course
cap of 12.1-20.4 Gy on its voxels".
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
                    masks: dict[str, np.ndarray], grid: Grid) -> list[str]:
    """Plain-language findings for a target term that the optimizer could not satisfy."""
    d_target = dose_flat[target.rows]
    goal_gy = float(np.max(target.level_gy))
    value = target.surrogate(d_target)
    lines = [f"{target.structure}: goal {target.description} not reachable under the priority-1 limits; best "
             f"achievable surrogate {value:.1f} Gy new-course dose against {goal_gy:.1f} Gy"]
    under_rows = target.rows[d_target < goal_gy - 1e-6]
    if under_rows.size == 0:
        return lines
    under = np.zeros(grid.n_voxels, bool)
    under[under_rows] = True
    under = under.reshape(grid.shape)
    binding = binding_goals(hard_terms, hard_duals)
    if not binding:
        lines.append(f"{target.structure}: {under_rows.size * grid.voxel_volume_cc:.2f} cc below goal, but no "
                     f"priority-1 cap binds: the beam arrangement or the target surrogate limits coverage")
        return lines
    for term, _dual in binding[:4]:
        if term.goal_id in CEILING_IDS:
            lines.append(f"{target.structure}: the plan's maximum-dose ceiling ({np.max(term.level_gy):.1f} Gy) binds; "
                         f"coverage next to the organ caps would need a hotter plan")
            continue
        organ = masks.get(term.structure)
        if organ is None or not organ.any():
            continue
        dist = ndimage.distance_transform_edt(~organ, sampling=grid.spacing_mm)
        d_under = dist[under]
        near_mm = float(max(np.percentile(d_under, 50), min(grid.spacing_mm)))
        close = under & (dist <= near_mm)
        if not close.any():
            continue
        reach = float(dose_flat.reshape(grid.shape)[close].max())
        caps = np.broadcast_to(np.asarray(term.level_gy, dtype=float), (term.n_points,))
        idx, duals = hard_duals.get(term.key, (np.arange(caps.size), np.zeros(caps.size)))
        active = caps[idx[duals > 1e-9 * duals.max()]] if duals.size and duals.max() > 0 else caps
        binding_in = ""
        if term.scenarios and duals.size and duals.max() > 0:
            named = term.scenario_of(idx[duals > 1e-9 * duals.max()])
            binding_in = "; binding in " + ", ".join(dict.fromkeys(named))
        lines.append(
            f"{target.structure} voxels within {near_mm:.1f} mm of {term.structure} "
            f"({close.sum() * grid.voxel_volume_cc:.2f} cc) cannot exceed {reach:.1f} Gy new-course dose "
            f"(goal {goal_gy:.1f} Gy): the {term.structure} limit ({term.tier}, cumulative EQD2) leaves a "
            f"new-course cap of {np.min(active):.1f}-{np.median(active):.1f} Gy on its binding voxels{binding_in}")
    return lines
