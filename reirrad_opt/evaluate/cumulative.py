"""Cumulative EQD2 of both courses for evaluation.

Every dose-volume metric of a cumulative goal is the metric of the **voxel-wise sum**
sum_k (1 - f_k) EQD2(prior course k) + EQD2(new) (:mod:`reirrad_opt.prior_eqd2`), each course
converted with its own number of fractions at the goal's alpha/beta, never the sum of metrics. On the fine evaluation grid the two physical
doses are interpolated at each sub-voxel sample first and converted and summed there (a sample is
a voxel of the evaluation grid).

The maps returned by :func:`eqd2_maps` are for display and reporting: they use a per-voxel
alpha/beta map (smallest alpha/beta where structures overlap) and a per-voxel recovered fraction
(smallest where structures overlap, i.e. the least recovery credited). The verdict of each goal
never uses these maps; it uses the goal's own alpha/beta and its structure's recovery.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import radiobiology as rb
from ..geometry import canonical_name
from ..prior_eqd2 import course_eqd2_terms, prior_eqd2_at, summed
from ..radiobiology import RecoveryModel
from .sampling import SamplePoints


def goal_dose_at(points: SamplePoints, new_dose_gy: np.ndarray, *, cumulative: bool, priors=None,
                 new_n_fractions: int | None = None, alpha_beta_gy: float | None = None,
                 recovered_fractions=None) -> np.ndarray:
    """The quantity a goal limits, at the samples: the new course's physical dose (Gy) or, for
    a cumulative goal, the cumulative EQD2 (Gy) of every prior course and the new one.

    ``priors``: the case's prior courses (:attr:`~reirrad_opt.case.Case.prior_courses`);
    ``recovered_fractions``: one per course (None: nothing recovered)."""
    new = points.values(new_dose_gy)
    if not cumulative:
        return new
    if not priors or new_n_fractions is None or alpha_beta_gy is None:
        raise ValueError("a cumulative goal needs the prior courses, the new course's fractions and alpha/beta")
    fractions = recovered_fractions if recovered_fractions is not None else (0.0,) * len(priors)
    prior = prior_eqd2_at(priors, points.values, alpha_beta_gy, fractions)
    return prior + np.asarray(rb.eqd2(np.maximum(new, 0.0), new_n_fractions, alpha_beta_gy), dtype=float)


@dataclass
class EQD2Maps:
    """Voxel maps (Gy) on the case grid: new-course EQD2, prior EQD2 after recovery, their sum,
    and the alpha/beta (Gy) and recovered fraction used in each voxel."""

    new_eqd2_gy: np.ndarray
    prior_eqd2_gy: np.ndarray
    cumulative_eqd2_gy: np.ndarray
    alpha_beta_gy: np.ndarray
    recovered_fraction: np.ndarray


def eqd2_maps(priors, new_dose_gy: np.ndarray, new_n_fractions: int,
              structures: dict[str, np.ndarray], alpha_beta_by_structure: dict[str, float], default_alpha_beta_gy: float,
              recovery: RecoveryModel) -> EQD2Maps:
    """EQD2 maps for display (see the module docstring). ``priors``: the case's prior courses;
    ``structures`` maps names to masks; ``alpha_beta_by_structure`` gives the alpha/beta of the
    structures that have one. ``recovered_fraction`` holds the first course's map (the fraction of
    every course is taken at its own interval)."""
    shape = np.asarray(priors[0].dose_gy).shape
    ab_map = rb.alpha_beta_map(shape, [(structures[n], ab) for n, ab in alpha_beta_by_structure.items()
                                       if n in structures], default_alpha_beta_gy)
    f_maps = [_recovery_map(shape, structures, recovery, p.course.interval_months) for p in priors]
    prior = summed(course_eqd2_terms([p.dose_gy for p in priors], [p.course.n_fractions for p in priors], f_maps,
                                     ab_map))
    new = np.asarray(rb.eqd2(np.maximum(new_dose_gy, 0.0), new_n_fractions, ab_map), dtype=float)
    return EQD2Maps(new.astype(np.float32), prior.astype(np.float32), (prior + new).astype(np.float32),
                    ab_map.astype(np.float32), f_maps[0].astype(np.float32))


def _recovery_map(shape, structures: dict[str, np.ndarray], recovery: RecoveryModel,
                  interval_months: float | None) -> np.ndarray:
    """Per-voxel recovered fraction at ``interval_months``: the smallest where structures overlap."""
    f_map = np.full(shape, np.inf)
    for name, mask in structures.items():
        f = recovery.fraction_for(canonical_name(name), interval_months)
        f_map[mask] = np.minimum(f_map[mask], f)
    f_map[np.isinf(f_map)] = recovery.fraction_for("", interval_months)
    return f_map
