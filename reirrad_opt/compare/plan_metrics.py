"""Comparison metrics of one plan: target coverage and hotspot, conformity, R50, integral dose,
normal-brain EQD2 volumes, dose fall-off and the remaining priority-1 EQD2 budget.

Which dose each metric uses:

* Targets, conformity index, R50, integral dose and fall-off: the new course's dose as planned
  and evaluated (Gy for photons; Gy(RBE), the RBE-weighted dose, for particles; see
  :mod:`reirrad_opt.compare.run`). The EQD2 values below use the same dose (Gy(RBE) for particles).
* Normal brain (the brain structure minus the PTV): V20 and V40 Gy EQD2 of the **new course**
  alone (EQD2 with the new course's number of fractions) and of the **cumulative** dose
  (sum over the prior courses of (1 - f_k) EQD2(prior course k) + EQD2(new), each course with its
  own fractionation, f_k the protocol's recovered fraction for the brain at course k's interval;
  :mod:`reirrad_opt.prior_eqd2`), both at one alpha/beta (default 2.5 Gy, the protocol's value
  for neural tissue), voxel centres of the case grid.
* Remaining budget of a priority-1 organ: its cumulative limit (desirable and acceptable, EQD2 at
  the goal's alpha/beta) minus the evaluated cumulative value of its goal metric (D0.03cc): the
  EQD2 still available at that organ's hottest 0.03 cc for a future course, with the recovery
  the protocol credits today (negative: the limit is exceeded).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import radiobiology as rb
from ..prior_eqd2 import prior_eqd2_at, recovered_fractions
from ..evaluate import metric_value
from ..evaluate.metrics import DEFAULT_FINE_FACTOR
from .metrics import FallOff, dose_falloff, integral_dose_gy_litre, paddick_ci, r50

TARGET_METRICS = ("D98%", "D95%", "D50%", "D2%", "D0.03cc", "V95%", "V107%")
BRAIN_THRESHOLDS_GY = (20.0, 40.0)
DEFAULT_BRAIN_ALPHA_BETA_GY = 2.5
DEFAULT_CI_LEVEL_PCT = 95.0
DOSE_UNITS = ("Gy", "Gy(RBE)")   # evaluation rows in dose (photon / particle plans)


@dataclass
class PlanMetrics:
    """Comparison metrics of one plan (see the module docstring for the doses used).

    Attributes:
        modality: 'photon', 'proton' or 'carbon'.
        targets: structure -> metric -> value (Gy, or % of the structure for V-metrics).
        conformity_index: Paddick CI of the ``ci_level_pct`` isodose around the PTV.
        r50: volume of the 50 % isodose (in the body) over the PTV volume.
        integral_dose_gy_litre: new-course dose integrated over the body (Gy * litre).
        brain: normal-brain EQD2 volumes (see :func:`brain_metrics`), or {} without a brain structure.
        falloff: '90-50' / '80-20' -> :class:`FallOff` (mm outward from the PTV surface).
        falloff_profiles: per ray direction (distance from the PTV surface mm, dose Gy).
        budget: remaining priority-1 budget rows (see :func:`priority1_budget`).
        ci_level_pct, rx_gy: the isodose level of the CI (% of Rx) and the prescription (Gy).
    """

    modality: str
    targets: dict[str, dict[str, float | None]]
    conformity_index: float
    r50: float
    integral_dose_gy_litre: float
    brain: dict
    falloff: dict[str, FallOff]
    falloff_profiles: list = field(repr=False, default_factory=list)
    budget: list[dict] = field(default_factory=list)
    ci_level_pct: float = DEFAULT_CI_LEVEL_PCT
    rx_gy: float = 0.0

    def to_dict(self) -> dict:
        return {
            "modality": self.modality, "targets": self.targets,
            "conformity_index_paddick": _r(self.conformity_index, 4), "ci_isodose_pct_rx": self.ci_level_pct,
            "r50": _r(self.r50, 3), "integral_dose_gy_litre": _r(self.integral_dose_gy_litre, 3),
            "normal_brain": self.brain, "falloff_mm": {k: v.to_dict() for k, v in self.falloff.items()},
            "priority1_budget": self.budget,
        }


def _r(x, digits: int = 3):
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, digits)


def target_metrics(plan, names=("rGTV", "PTV"), metrics=TARGET_METRICS) -> dict[str, dict[str, float | None]]:
    """Coverage and hotspot metrics of the targets on the new course's dose (supersampled as in the
    evaluation); V-metrics in % of the structure, of the plan's Rx."""
    rx = float(plan.fractionation.total_gy)
    case = plan.case
    near_min = str(plan.protocol.options.get("near_min_metric", "D98%"))
    out = {}
    for name in names:
        if name not in case.structures or not case.structures[name].mask.any():
            continue
        mask = case.structures[name].mask
        out[name] = {m: _r(metric_value(m, plan.new_dose_gy, mask, case.grid, rx, fine_factor=DEFAULT_FINE_FACTOR,
                                        near_min_metric=near_min).value, 3) for m in metrics}
    return out


def priority1_budget(plan) -> list[dict]:
    """Remaining cumulative-EQD2 budget of every priority-1 organ line (sense 'max', cumulative,
    dose metric): limit minus the evaluated value, for the desirable and the acceptable limit."""
    rows = []
    for r in plan.evaluation.rows:
        if r.priority != 1 or not r.cumulative or r.sense != "max" or r.unit not in DOSE_UNITS:
            continue
        value = r.value if r.verdict != "not evaluated" else None
        rows.append({
            "goal_id": r.goal_id, "structure": r.structure, "metric": r.metric, "alpha_beta_gy": r.alpha_beta_gy,
            "cumulative_eqd2_gy": _r(value), "desirable_gy": r.desirable, "acceptable_gy": r.acceptable,
            "remaining_desirable_gy": None if value is None or r.desirable is None else _r(r.desirable - value),
            "remaining_acceptable_gy": None if value is None or r.acceptable is None else _r(r.acceptable - value),
            "verdict": r.verdict,
        })
    return rows


def normal_brain_mask(case, structure: str = "Brain") -> tuple[str | None, np.ndarray | None]:
    """The case's brain structure (by name or alias) minus the PTV and the rGTV; (None, None) if absent."""
    from ..geometry import canonical_name

    name = structure if structure in case.structures else next(
        (k for k in case.structures if canonical_name(k) == canonical_name(structure)), None)
    if name is None:
        return None, None
    mask = case.structures[name].mask.copy()
    for t in ("PTV", "rGTV"):
        if t in case.structures:
            mask &= ~case.structures[t].mask
    return name, mask


def brain_metrics(plan, *, structure: str = "Brain", alpha_beta_gy: float = DEFAULT_BRAIN_ALPHA_BETA_GY,
                  thresholds_gy=BRAIN_THRESHOLDS_GY) -> dict:
    """Normal-brain volumes (cc and %) receiving >= each threshold of EQD2, for the new course alone
    and for the cumulative dose of both courses (see the module docstring)."""
    from ..geometry import canonical_name

    case = plan.case
    name, mask = normal_brain_mask(case, structure)
    if name is None or not mask.any():
        return {}
    voxel_cc = case.grid.voxel_volume_cc
    n_new = plan.fractionation.n_fractions
    priors = case.prior_courses
    f_recs = recovered_fractions(plan.protocol.recovery, canonical_name(name), priors)
    new = np.asarray(rb.eqd2(np.maximum(plan.new_dose_gy[mask], 0.0), n_new, alpha_beta_gy), dtype=float)
    prior = prior_eqd2_at(priors, lambda dose_gy: dose_gy[mask], alpha_beta_gy, f_recs)
    total_cc = mask.sum() * voxel_cc
    out = {"structure": f"{name} minus PTV", "volume_cc": _r(total_cc), "alpha_beta_gy": float(alpha_beta_gy),
           "recovered_fraction": float(f_recs[0]), "new_n_fractions": int(n_new),
           "prior_n_fractions": int(case.prior.n_fractions)}
    if len(priors) > 1:
        out["recovered_fractions"] = [float(f) for f in f_recs]
        out["prior_n_fractions_by_course"] = [int(p.course.n_fractions) for p in priors]
    for label, values in (("new_course_eqd2", new), ("cumulative_eqd2", prior + new)):
        out[label] = {}
        for t in thresholds_gy:
            cc = float((values >= t).sum()) * voxel_cc
            out[label][f"V{t:g}Gy_cc"] = _r(cc)
            out[label][f"V{t:g}Gy_pct"] = _r(100.0 * cc / total_cc)
    return out


def plan_metrics(plan, *, ci_level_pct: float = DEFAULT_CI_LEVEL_PCT, brain_structure: str = "Brain",
                 brain_alpha_beta_gy: float = DEFAULT_BRAIN_ALPHA_BETA_GY, falloff_directions: int = 200) -> PlanMetrics:
    """Every comparison metric of one plan."""
    case = plan.case
    if "PTV" not in case.structures:
        raise ValueError(f"case {case.name!r}: the comparison metrics need a PTV structure")
    ptv = case.structures["PTV"].mask
    body = case.body
    rx = float(plan.fractionation.total_gy)
    dose = np.asarray(plan.new_dose_gy, dtype=float)
    falloff, profiles = dose_falloff(dose, ptv, body, case.grid, rx, n_directions=falloff_directions, profiles=True)
    return PlanMetrics(
        modality=plan.modality, targets=target_metrics(plan),
        conformity_index=paddick_ci(dose, ptv, ci_level_pct / 100.0 * rx), r50=r50(dose, ptv, body, rx),
        integral_dose_gy_litre=integral_dose_gy_litre(dose, body, case.grid),
        brain=brain_metrics(plan, structure=brain_structure, alpha_beta_gy=brain_alpha_beta_gy),
        falloff=falloff, falloff_profiles=profiles, budget=priority1_budget(plan), ci_level_pct=float(ci_level_pct),
        rx_gy=rx)
