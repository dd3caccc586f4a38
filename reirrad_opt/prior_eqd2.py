"""The effective prior EQD2 of one or more prior courses: the one formula every evaluation, report
and the optimizer use, so that they cannot disagree.

For a structure s with alpha/beta a/b and prior courses k = 1..K, each with its dose D_k (Gy(RBE);
physical Gy for photons) on the case grid, n_k fractions and t_k months from its end to the start
of the new course, the effective prior EQD2 in a voxel (or sample point) v is

    E_prior(v) = sum_k (1 - f_s(t_k)) * EQD2(D_k(v); n_k, a/b),
    EQD2(D; n, a/b) = D (D / n + a/b) / (2 + a/b),

where f_s(t) is the recovery model's recovered fraction for s after t months. The EQD2 of each
course is computed voxel by voxel with **that course's own dose per fraction** D_k(v) / n_k, never
from the summed physical dose (EQD2 is not additive in physical dose: two courses of 30 Gy in 15
fractions give 2 x EQD2(30 Gy / 15 fx), not EQD2(60 Gy / 15 fx)), and each course is discounted by
the recovery at **its own** interval t_k. With one course this is (1 - f) EQD2(D; n, a/b), the
single-course formula, computed with the same operations in the same order (same numbers bit for
bit).

Callers pass how each course's dose grid is read at their points (``at``): samples of the fine
evaluation grid, the optimizer's stencil rows, or a structure mask.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from . import radiobiology as rb
from .radiobiology import RecoveryModel


def course_eqd2_terms(doses_gy: Sequence, n_fractions: Sequence[int], recovered_fractions: Sequence,
                      alpha_beta_gy) -> list[np.ndarray]:
    """Each course's effective EQD2 (Gy), (1 - f_k) EQD2(D_k; n_k, a/b), in the courses' order.

    Args:
        doses_gy: per course, its dose (Gy(RBE)) at the points; negative round-off is taken as 0.
        n_fractions: per course, its number of fractions (its dose per fraction is D_k / n_k).
        recovered_fractions: per course, the recovered fraction in [0, 1] (scalar or per point).
        alpha_beta_gy: alpha/beta (Gy), scalar or per point.
    """
    doses_gy, n_fractions, recovered_fractions = list(doses_gy), list(n_fractions), list(recovered_fractions)
    if not doses_gy or not len(doses_gy) == len(n_fractions) == len(recovered_fractions):
        raise ValueError(f"prior EQD2: one dose, one number of fractions and one recovered fraction per course, got "
                         f"{len(doses_gy)}, {len(n_fractions)} and {len(recovered_fractions)}")
    return [rb.effective_prior_eqd2(rb.prior_eqd2(np.maximum(d, 0.0), n, alpha_beta_gy), f)
            for d, n, f in zip(doses_gy, n_fractions, recovered_fractions)]


def summed(terms: Sequence[np.ndarray]) -> np.ndarray:
    """The voxel-wise sum of the courses' effective EQD2 terms (Gy), added in the courses' order."""
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def effective_prior_eqd2_sum(doses_gy: Sequence, n_fractions: Sequence[int], recovered_fractions: Sequence,
                             alpha_beta_gy) -> np.ndarray:
    """sum_k (1 - f_k) EQD2(D_k; n_k, a/b) (Gy) at the points (arguments as :func:`course_eqd2_terms`)."""
    return summed(course_eqd2_terms(doses_gy, n_fractions, recovered_fractions, alpha_beta_gy))


def recovered_fractions(recovery: RecoveryModel, structure: str, courses: Sequence) -> tuple[float, ...]:
    """The recovered fraction of each course for ``structure``, each at that course's own interval
    (months from its end to the start of the new course). ``courses``: PriorCourse or PriorDose."""
    return tuple(recovery.fraction_for(structure, _course(c).interval_months) for c in courses)


def prior_eqd2_at(priors: Sequence, at: Callable[[np.ndarray], np.ndarray], alpha_beta_gy,
                  fractions: Sequence) -> np.ndarray:
    """The effective prior EQD2 (Gy) at some points of the case grid.

    Args:
        priors: the case's :attr:`~reirrad_opt.case.Case.prior_courses` (PriorDose: course, dose_gy).
        at: reads a dose grid at the points (e.g. ``lambda d: d[mask]`` or sample interpolation).
        alpha_beta_gy: alpha/beta (Gy), scalar or per point.
        fractions: per course, the recovered fraction (see :func:`recovered_fractions`).
    """
    return effective_prior_eqd2_sum([at(p.dose_gy) for p in priors], [p.course.n_fractions for p in priors],
                                    fractions, alpha_beta_gy)


def summed_physical_prior_dose_gy(priors: Sequence) -> np.ndarray:
    """The prior courses' doses added (Gy(RBE)) on the case grid: for display and for the extent of
    the previously irradiated volume only. Never convert it to EQD2 (see the module docstring)."""
    return summed([np.asarray(p.dose_gy) for p in priors])


def most_recent_interval_months(courses: Sequence) -> float:
    """The shortest interval (months) since a prior course: the time since the most recent one."""
    return min(_course(c).interval_months for c in courses)


def describe_recovery(recovery: RecoveryModel, courses: Sequence) -> str:
    """The recovery assumption as recorded in every output. One course: the model's own
    description at its interval; several: the model and, per course, its interval and the recovered
    fraction applied (for other tissue and each structure with its own model)."""
    courses = [_course(c) for c in courses]
    if len(courses) == 1:
        return recovery.describe(courses[0].interval_months)
    parts = []
    for k, c in enumerate(courses, 1):
        fr = [f"{100 * recovery.fraction_for('', c.interval_months):.4g} %"]
        fr += [f"{name} {100 * recovery.fraction_for(name, c.interval_months):.4g} %" for name in recovery.per_structure]
        parts.append(f"course {k} ({c.n_fractions} fx, {c.interval_months:g} months): {', '.join(fr)}")
    return f"{recovery.describe()}; each prior course at its own interval: " + "; ".join(parts)


def _course(c):
    return getattr(c, "course", c)
