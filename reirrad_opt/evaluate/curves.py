"""The DVH curves an evaluation read its values from, for figures and for the evaluation samples file.

A protocol line's value is read on the samples of its structure (:func:`.sampling.sample_points`
with the evaluation's fine factor, or the structure's fine mask) of the quantity the line limits
(:func:`.cumulative.goal_dose_at`): the cumulative EQD2 (Gy) at the line's alpha/beta and recovered
fraction for a cumulative line, the new course's dose otherwise (Gy, or Gy(RBE) for particles).
:func:`evaluation_curves` rebuilds exactly those samples, one :class:`EvaluationCurve` per structure
and quantity, so that a figure drawn from them, or a value recomputed from them, equals the table.

A curve's :meth:`EvaluationCurve.polyline` is the evaluation's own reading of a D<v> metric: the
dose of each level of samples placed at the middle of its volume (see :mod:`.dvh`), so a dose
interpolated on the drawn line at a volume is the table's D<v> there (exactly at the vertices kept).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import Grid
from .cumulative import goal_dose_at
from .dvh import DVH
from .sampling import sample_points

NOT_DRAWN = ("not evaluated", "absent")


@dataclass(frozen=True)
class EvaluationCurve:
    """The samples of one structure and one quantity, as the evaluation read them.

    Attributes:
        name: identifier, e.g. 'Brainstem, cumulative EQD2 (a/b 2.5 Gy, recovered 0)'.
        structure: the protocol's (TG-263) name; ``case_structure`` the case's.
        cumulative: True for cumulative EQD2 (Gy), False for the new course's dose.
        unit: the unit of the evaluation's dose rows: 'Gy' (photons), 'Gy(RBE)' (particles: the
            RBE-weighted dose and its cumulative EQD2).
        alpha_beta_gy, recovered_fraction: of the EQD2 conversion (None for new-course dose);
            recovered_fraction is None when several prior courses recover different fractions.
        recovered_fractions: per prior course, its recovered fraction (None for new-course dose).
        fine_factor: sub-division per axis of the samples (1 voxel centres, 0 a fine mask).
        goal_ids: the protocol lines read on this curve.
        dose_gy: sample values (``unit``), in the order of the sample points.
        volume_cc: volume of each sample (cc).
    """

    name: str
    structure: str
    case_structure: str
    cumulative: bool
    unit: str
    alpha_beta_gy: float | None
    recovered_fraction: float | None
    fine_factor: int
    goal_ids: tuple[str, ...]
    dose_gy: np.ndarray = field(repr=False)
    volume_cc: np.ndarray = field(repr=False)
    recovered_fractions: tuple[float, ...] | None = None

    @property
    def quantity(self) -> str:
        """The quantity in words, e.g. 'cumulative EQD2 (Gy)' or 'new-course dose (Gy(RBE))'."""
        if self.cumulative:
            return f"cumulative EQD2 ({self.unit})"
        return "new-course dose (Gy(RBE))" if self.unit == "Gy(RBE)" else "new-course physical dose (Gy)"

    @property
    def total_cc(self) -> float:
        return float(self.volume_cc.sum())

    def dvh(self) -> DVH:
        """The DVH of the samples (the evaluation's metrics)."""
        return DVH.from_samples(self.dose_gy, self.volume_cc)

    def polyline(self, max_points: int = 2000, keep_ends: int = 300) -> tuple[np.ndarray, np.ndarray]:
        """``(dose, volume_cc)`` of the drawn curve, volume ascending from 0 (at Dmax) to the
        structure's volume (at Dmin). Its vertices are the sample levels at the middle of their
        volume; with more levels than ``max_points`` the hottest and coldest ``keep_ends`` are kept
        and the rest thinned evenly (Dmax, D0.03cc and D98 % stay exact for structures whose
        hottest / coldest 0.03 cc or 2 % lie within those levels)."""
        h = self.dvh()
        dose, vol = h._dose_groups()
        mid = np.cumsum(vol) - 0.5 * vol
        n = dose.size
        if n > max_points:
            middle = np.linspace(keep_ends, n - keep_ends - 1, max(max_points - 2 * keep_ends, 2)).round().astype(int)
            keep = np.unique(np.concatenate([np.arange(keep_ends), middle, np.arange(n - keep_ends, n)]))
            dose, mid = dose[keep], mid[keep]
        return (np.concatenate([[dose[0]], dose, [dose[-1]]]),
                np.concatenate([[0.0], mid, [h.total_cc]]))


def _curve_name(structure: str, cumulative: bool, unit: str, ab: float | None, f_recs: tuple | None) -> str:
    if cumulative:
        return f"{structure}, cumulative EQD2 (a/b {ab:g} Gy, recovered {' / '.join(f'{f:g}' for f in f_recs)})"
    return f"{structure}, new-course dose ({unit})"


def evaluation_curves(case, evaluation, new_dose_gy: np.ndarray, new_n_fractions: int, *,
                      fine_masks: dict[str, tuple[np.ndarray, Grid]] | None = None) -> list[EvaluationCurve]:
    """One curve per evaluated structure and quantity, from the samples the evaluation used.

    Args:
        case: the evaluated case (grid, structures, prior courses: dose in Gy or Gy(RBE), fractions).
        evaluation: its :class:`~.verdict.PlanEvaluation` (rows, fine factor).
        new_dose_gy: the evaluated new-course dose (Gy, or Gy(RBE) for particles) on ``case.grid``.
        new_n_fractions: the new course's number of fractions (EQD2 of cumulative lines).
        fine_masks: the finer rasterisations the evaluation was given, if any.

    Raises ValueError when the samples cannot be the evaluation's (a row evaluated on a fine mask
    that is not given, or a different number of sub-divisions).
    """
    grid = case.grid
    groups: dict[tuple, list] = {}
    for r in evaluation.rows:
        if r.verdict in NOT_DRAWN or r.value is None or r.case_structure is None:
            continue
        ab = r.alpha_beta_gy if r.cumulative else None
        f_recs = _fractions_of(r, len(case.prior_courses)) if r.cumulative else None
        groups.setdefault((r.case_structure, r.cumulative, ab, f_recs), []).append(r)
    # the dose unit the evaluation wrote on its dose rows: 'Gy', or 'Gy(RBE)' for a particle plan
    units = {r.unit for g in groups.values() for r in g if r.unit not in ("%", "cc")}
    dose_unit = units.pop() if len(units) == 1 else "Gy"
    curves = []
    for (name, cumulative, ab, f_recs), rows in groups.items():
        first = rows[0]
        mask = case.structures[name].mask
        fm = (fine_masks or {}).get(name)
        if first.fine_factor == 0 and fm is None:
            raise ValueError(f"structure {name}: the evaluation read it on a fine mask; pass that mask as fine_masks")
        pts = sample_points(mask, grid, evaluation.fine_factor, fine_mask=fm[0] if fm else None,
                            fine_grid=fm[1] if fm else None)
        if pts.fine_factor != first.fine_factor:
            raise ValueError(f"structure {name}: samples with fine factor {pts.fine_factor}, but the evaluation's row "
                             f"{first.goal_id} used {first.fine_factor}")
        values = goal_dose_at(pts, new_dose_gy, cumulative=cumulative, priors=case.prior_courses,
                              new_n_fractions=new_n_fractions, alpha_beta_gy=ab, recovered_fractions=f_recs)
        f_rec = (f_recs[0] if len(set(f_recs)) == 1 else None) if f_recs else None
        curves.append(EvaluationCurve(_curve_name(first.structure, cumulative, dose_unit, ab, f_recs), first.structure,
                                      name, cumulative, dose_unit, ab, f_rec, pts.fine_factor,
                                      tuple(r.goal_id for r in rows), np.asarray(values, dtype=float),
                                      np.asarray(pts.volume_cc, dtype=float), f_recs))
    return curves


def _fractions_of(row, n_courses: int) -> tuple[float, ...]:
    """A cumulative row's recovered fraction per prior course (rows that record only the common
    ``recovered_fraction`` have it for every course)."""
    if row.recovered_fractions is not None:
        if len(row.recovered_fractions) != n_courses:
            raise ValueError(f"row {row.goal_id}: {len(row.recovered_fractions)} recovered fractions for a case with "
                             f"{n_courses} prior courses")
        return tuple(float(f) for f in row.recovered_fractions)
    return (float(row.recovered_fraction or 0.0),) * n_courses


def curve_for(curves: list[EvaluationCurve], goal_id: str) -> EvaluationCurve:
    """The curve a protocol line was read on."""
    for c in curves:
        if goal_id in c.goal_ids:
            return c
    raise KeyError(f"no curve for line {goal_id!r} (not evaluated, or absent)")


def save_evaluation_samples(path, curves: list[EvaluationCurve]) -> None:
    """Write ``evaluation_samples.npz``: for every evaluated protocol line ``G`` (its goal_id),
    ``G/dose_gy`` (the samples of the quantity it limits, Gy or Gy(RBE)) and ``G/volume_cc`` (cc);
    lines on the same curve share identical arrays. The rows' value is the DVH metric of these
    samples (see docs/plan-json.md)."""
    arrays = {}
    for c in curves:
        for g in c.goal_ids:
            arrays[f"{g}/dose_gy"] = c.dose_gy
            arrays[f"{g}/volume_cc"] = c.volume_cc
    np.savez_compressed(path, **arrays)
