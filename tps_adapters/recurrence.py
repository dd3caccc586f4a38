"""Synthetic in-field recurrence for cases that have no recurrent GTV.

The typical local recurrence of nasopharyngeal carcinoma after radiotherapy is in-field, in the
prior high-dose target, often at the skull base next to the brainstem. :func:`place_recurrence`
reproduces that geometry on real anatomy with a real prior dose:

1. the prior high-dose target ``T`` is the named structure, or by default the prior target
   (role 'target') with the highest mean prior dose;
2. candidate centres are the voxels of ``T`` at least ``radius_mm`` from its surface (so the
   sphere fits inside ``T``), or all voxels of ``T`` when none is that deep, outside the organ;
3. the centre is the candidate nearest to the organ (ties: the higher prior dose, then the
   lower flat index);
4. rGTV = sphere(centre, ``radius_mm``) inside ``T`` and outside the organ.

A case that already has an rGTV is refused. New-course target names already in the case (``rCTV``,
``PTV``: the prior course's targets) are renamed ``<name>_prior`` (role 'other') so that the planner
derives the new rCTV and PTV from the synthetic rGTV; they may still serve as the prior high-dose
target; everything is stated in ``case.source['notes']`` and
``case.source['synthetic_recurrence']``. With several prior courses, "prior dose" here is their
doses added (it only chooses the place, it is never converted to EQD2).
"""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from reirrad_opt.case import Case
from reirrad_opt.geometry import Grid, Structure, contract, distance_outside_mm
from reirrad_opt.prior_eqd2 import summed_physical_prior_dose_gy

NEW_COURSE_NAMES = ("rGTV", "rCTV", "PTV")
# Largest radius of the synthetic rGTV (mm): a 40 mm sphere is 268 cc, beyond the largest recurrent
# nasopharyngeal GTVs; the default 12 mm (7 cc) is a typical one. A larger radius is a typo (cm, or
# a diameter in the wrong unit), and the sphere would be clipped to the whole prior target.
MAX_RADIUS_MM = 40.0


def check_radius_mm(radius_mm: float) -> None:
    """ValueError naming --recurrence-radius-mm unless 0 < ``radius_mm`` <= :data:`MAX_RADIUS_MM`."""
    if not (isinstance(radius_mm, (int, float)) and 0 < radius_mm <= MAX_RADIUS_MM):
        shown = f"{radius_mm:g}" if isinstance(radius_mm, (int, float)) else repr(radius_mm)
        raise ValueError(f"--recurrence-radius-mm {shown}: expected a radius in mm > 0 and at most "
                         f"{MAX_RADIUS_MM:g} mm (a plausible recurrent GTV; default 12 mm)")


def prior_high_dose_target(case: Case) -> str:
    """Name of the prior target with the highest mean prior dose; ValueError if there is none."""
    best, best_mean = None, -np.inf
    prior_dose = summed_physical_prior_dose_gy(case.prior_courses)
    for s in case.structures.values():
        if s.role != "target" or s.name == "rGTV" or not s.mask.any():
            continue
        mean = float(prior_dose[s.mask].mean())
        if mean > best_mean:
            best, best_mean = s.name, mean
    if best is None:
        raise ValueError(f"case {case.name!r}: no prior target structure (role 'target') to place a recurrence in; "
                         "name one (--recurrence-target)")
    return best


def place_recurrence(case: Case, near: str, radius_mm: float = 12.0, target: str | None = None) -> Case:
    """A copy of ``case`` with a synthetic rGTV (see the module doc).

    Args:
        case: the case (its prior dose and structures are kept).
        near: the organ the recurrence abuts (e.g. 'Brainstem'); TG-263 name in the case.
        radius_mm: radius of the spherical rGTV (mm, > 0 and at most :data:`MAX_RADIUS_MM`).
        target: the prior high-dose target (default: see :func:`prior_high_dose_target`).
    """
    if "rGTV" in case.structures:
        raise ValueError(f"case {case.name!r} already has an rGTV; a synthetic recurrence is for cases without one")
    check_radius_mm(radius_mm)
    if near not in case.structures:
        raise ValueError(f"--recurrence-near {near!r}: the case has no such structure; it has {list(case.structures)}")
    organ = case.structures[near].mask
    if not organ.any():
        raise ValueError(f"--recurrence-near {near!r}: the structure is empty")
    target_name = target or prior_high_dose_target(case)
    if target_name not in case.structures:
        raise ValueError(f"--recurrence-target {target_name!r}: the case has no such structure; it has "
                         f"{list(case.structures)}")
    t_mask = case.structures[target_name].mask
    if not t_mask.any():
        raise ValueError(f"prior target {target_name!r} is empty")
    notes = []
    grid = case.grid
    # Work in the bounding box of target and organ (plus the radius): exact distances there.
    pad = np.ceil(radius_mm / np.asarray(grid.spacing_mm)).astype(int) + 2
    occupied = np.argwhere(t_mask | organ)
    lo = np.maximum(occupied.min(axis=0) - pad, 0)
    hi = np.minimum(occupied.max(axis=0) + pad + 1, grid.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    sub = Grid(tuple(int(b - a) for a, b in zip(lo, hi)), grid.spacing_mm,
               tuple(float(o + s * a) for o, s, a in zip(grid.origin_mm, grid.spacing_mm, lo)))
    prior_dose = summed_physical_prior_dose_gy(case.prior_courses)
    t_sub, organ_sub, dose_sub = t_mask[box], organ[box], prior_dose[box]
    dist_organ = distance_outside_mm(organ_sub, sub)
    deep = contract(t_sub, sub, radius_mm) & ~organ_sub
    candidates = deep if deep.any() else (t_sub & ~organ_sub)
    if not candidates.any():
        raise ValueError(f"prior target {target_name!r} lies entirely inside {near!r}; no place for a recurrence")
    if not deep.any():
        notes.append(f"synthetic recurrence: no voxel of {target_name} is {radius_mm:g} mm from its surface; the "
                     "sphere is clipped to the target")
    flat = np.flatnonzero(candidates.ravel())
    d = dist_organ.ravel()[flat]
    dose = dose_sub.ravel()[flat]
    order = np.lexsort((flat, -dose, d))
    centre_flat = int(flat[order[0]])
    centre_sub = np.array(np.unravel_index(centre_flat, sub.shape))
    centre_xyz = sub.index_to_patient(centre_sub)
    kk, jj, ii = np.ogrid[0:sub.shape[0], 0:sub.shape[1], 0:sub.shape[2]]
    dz, dy, dx = sub.spacing_mm
    r2 = ((kk - centre_sub[0]) * dz) ** 2 + ((jj - centre_sub[1]) * dy) ** 2 + ((ii - centre_sub[2]) * dx) ** 2
    rgtv = np.zeros(grid.shape, dtype=bool)
    rgtv[box] = (r2 <= radius_mm ** 2 + 1e-9) & t_sub & ~organ_sub
    centre_distance = float(dist_organ.ravel()[centre_flat])
    centre_dose = float(dose_sub.ravel()[centre_flat])
    structures: dict[str, Structure] = {}
    for name, s in case.structures.items():
        if name in NEW_COURSE_NAMES:
            new = f"{name}_prior"
            structures[new] = Structure(new, s.mask, "other")
            notes.append(f"synthetic recurrence: the case's {name!r} renamed {new!r} (role other) so that the new "
                         "course's targets are derived from the synthetic rGTV")
        else:
            structures[name] = s
    structures["rGTV"] = Structure("rGTV", rgtv, "target")
    info = {
        "near": near, "target": target_name, "radius_mm": float(radius_mm),
        "centre_xyz_mm": [round(float(v), 3) for v in centre_xyz],
        "centre_to_organ_mm": round(centre_distance, 3),
        "volume_cc": round(float(rgtv.sum()) * grid.voxel_volume_cc, 4),
        "prior_dose_at_centre_gy": round(centre_dose, 3),
        "rgtv_mean_prior_dose_gy": round(float(prior_dose[rgtv].mean()), 3),
    }
    notes.append(f"synthetic recurrence: rGTV = {radius_mm:g} mm sphere in {target_name} at the point nearest "
                 f"{near} (centre {info['centre_xyz_mm']} mm, {info['centre_to_organ_mm']} mm from {near}), "
                 f"{info['volume_cc']} cc, mean prior dose {info['rgtv_mean_prior_dose_gy']} Gy"
                 + (f" (the {len(case.prior_courses)} prior courses' doses added)" if case.further_priors else ""))
    source = copy.deepcopy(case.source)
    source.setdefault("notes", []).extend(notes)
    source["synthetic_recurrence"] = info
    return replace(case, structures=structures, source=source)
