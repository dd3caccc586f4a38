"""Robust evaluation: every protocol line of a plan evaluated in every uncertainty scenario.

Each scenario's new-course dose is recomputed by the dose engine with the scenario's geometry (the
beams' isocentre moved for a setup shift, the stopping power and depths changed for a range error,
see :mod:`.scenarios`) and the plan's own weights; the prior course's dose stays where it is in the
patient. The scenario dose is then judged by the same independent evaluation as the nominal plan
(:func:`~reirrad_opt.evaluate.evaluate_plan`). For each line: the nominal value, the worst value over
the scenarios (the highest for a maximum, the lowest for a minimum) and the scenario it comes from;
overall: whether priority 1 holds in every scenario.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..dose import compute_influence
from ..evaluate.rule import line_verdict
from ..evaluate.verdict import PlanEvaluation, evaluate_plan
from ..progress import SILENT, Progress
from .scenarios import Scenario, ScenarioSettings, scenario_set, shifted_beams


@dataclass(frozen=True)
class RobustRow:
    """One protocol line over the scenarios (values in ``unit``; None where it was not evaluated)."""

    goal_id: str
    structure: str
    metric: str
    priority: int
    cumulative: bool
    sense: str
    unit: str
    nominal: float | None
    worst: float | None
    worst_scenario: str | None
    verdict_nominal: str
    verdict_worst: str

    def to_dict(self) -> dict:
        return {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class RobustEvaluation:
    """The plan's lines in every scenario.

    Attributes:
        settings: the scenario settings.
        scenarios: the scenarios, nominal first.
        evaluations: scenario name -> its evaluation (the same rules as the nominal one).
        rows: one :class:`RobustRow` per protocol line.
        verdict: the overall verdict in the worst scenario of priority 1 ('desirable', 'acceptable',
            'fail' or 'incomplete': the lowest of the scenarios' verdicts).
        priority1_holds: every priority-1 line within its acceptable limit (or desirable where there is
            none) in every scenario.
        seconds: time for the scenario matrices and evaluations (s); ``peak_matrix_mb``: the largest
            scenario matrix (MB; one is held at a time).
        doses: scenario name -> its new-course dose (the plan's dose unit, case grid; float32), for the
            DVH bands; not written to plan.json.
    """

    settings: ScenarioSettings
    scenarios: tuple[Scenario, ...]
    evaluations: dict[str, PlanEvaluation]
    rows: tuple[RobustRow, ...]
    verdict: str
    priority1_holds: bool
    seconds: float
    peak_matrix_mb: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    doses: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {"settings": self.settings.to_dict(), "scenarios": [s.to_dict() for s in self.scenarios],
                "verdict": self.verdict, "priority1_holds": self.priority1_holds,
                "rows": [r.to_dict() for r in self.rows],
                "scenario_verdicts": {name: ev.verdict for name, ev in self.evaluations.items()},
                "seconds": round(self.seconds, 2), "peak_matrix_mb": round(self.peak_matrix_mb, 1),
                "notes": list(self.notes)}


VERDICT_ORDER = ("desirable", "acceptable", "incomplete", "fail")   # better to worse


def scenario_influence(case, beams, scenario: Scenario, *, rel_cutoff: float, cache_dir=None,
                       progress: Progress = SILENT, ct_calibration=None):
    """The physical influence matrix of ``beams`` on ``case`` in ``scenario`` (same columns as the nominal
    one): the isocentre moved against the patient's shift, the range error applied; with the nominal
    plan's CT calibration (:class:`~reirrad_opt.dose.CTCalibration`; None: the default)."""
    curves = {} if ct_calibration is None else {"spr_curve": ct_calibration.spr, **(
        {} if ct_calibration.red is None else {"red_curve": ct_calibration.red})}
    return compute_influence(case.grid, case.ct_hu, case.body, shifted_beams(beams, scenario.shift_xyz_mm),
                             target_mask=case.structures["PTV"].mask, rel_cutoff=rel_cutoff, cache_dir=cache_dir,
                             progress=progress,
                             range_shift=None if scenario.range_shift.is_zero else scenario.range_shift, **curves)


def scenario_dose(plan, scenario: Scenario, *, cache_dir=None, progress: Progress = SILENT, influence=None):
    """(new-course dose of ``plan`` in ``scenario``, in the plan's dose unit; the scenario's matrix).
    ``influence``: the scenario's matrix when it is already computed."""
    if scenario.is_nominal:
        influence = plan.influence
    elif influence is None:
        influence = scenario_influence(plan.case, plan.beams, scenario, rel_cutoff=plan.influence.rel_cutoff,
                                       cache_dir=cache_dir, progress=progress,
                                       ct_calibration=getattr(plan, "ct_calibration", None))
    dose = (influence.dose(plan.weights) * plan.rbe).astype(np.float32)
    return dose, influence


def robust_evaluation(plan, settings: ScenarioSettings | None = None, *, cache_dir=None,
                      influences: dict | None = None, progress: Progress = SILENT) -> RobustEvaluation:
    """Evaluate ``plan`` (a :class:`~reirrad_opt.planning.Plan`) in every scenario of ``settings``.
    ``influences``: scenario name -> its influence matrix where already computed (robust optimization)."""
    settings = settings or ScenarioSettings()
    scenarios = scenario_set(settings, plan.modality)
    t0 = time.perf_counter()
    evaluations: dict[str, PlanEvaluation] = {}
    doses: dict[str, np.ndarray] = {}
    peak_mb = 0.0
    absent = plan.evaluation.absent
    for k, scenario in enumerate(scenarios):
        if scenario.is_nominal:
            evaluations[scenario.name] = plan.evaluation
            doses[scenario.name] = plan.new_dose_gy
            continue
        progress(f"robust evaluation: scenario {k}/{len(scenarios) - 1}: {scenario.name}")
        dose, influence = scenario_dose(plan, scenario, cache_dir=cache_dir,
                                        influence=(influences or {}).get(scenario.name))
        doses[scenario.name] = dose
        m = influence.matrix
        peak_mb = max(peak_mb, (m.data.nbytes + m.indices.nbytes + m.indptr.nbytes) / 1e6)
        del influence, m
        evaluations[scenario.name] = evaluate_plan(plan.case, plan.protocol, dose, fractionation=plan.fractionation,
                                                   recovery=plan.protocol.recovery, dose_unit=plan.dose_unit,
                                                   absent=absent)
    rows = tuple(_robust_row(plan.evaluation, evaluations, i) for i in range(len(plan.evaluation.rows)))
    verdict = max((ev.verdict for ev in evaluations.values()), key=VERDICT_ORDER.index)
    holds = all(r.verdict_worst in ("desirable", "acceptable", "absent") for r in rows if r.priority == 1)
    notes = ("the prior course's dose is fixed in the patient: a setup shift moves the new course's dose only",
             "scenario doses are recomputed by the dose engine with the plan's weights; rigid setup errors only, "
             "no CT-number-specific range errors")
    return RobustEvaluation(settings, scenarios, evaluations, rows, verdict, holds, time.perf_counter() - t0, peak_mb,
                            notes, doses)


def _robust_row(nominal: PlanEvaluation, evaluations: dict[str, PlanEvaluation], i: int) -> RobustRow:
    r = nominal.rows[i]
    values = {name: ev.rows[i].value for name, ev in evaluations.items() if ev.rows[i].value is not None}
    if not values:
        return RobustRow(r.goal_id, r.structure, r.metric, r.priority, r.cumulative, r.sense, r.unit, None, None, None,
                         r.verdict, r.verdict)
    pick = max if r.sense == "max" else min
    worst_name = pick(values, key=values.get)
    worst = float(values[worst_name])
    verdict_worst, _, _ = line_verdict(worst, r.sense, r.desirable, r.acceptable, r.unit)
    return RobustRow(r.goal_id, r.structure, r.metric, r.priority, r.cumulative, r.sense, r.unit,
                     None if r.value is None else float(r.value), worst, worst_name, r.verdict, verdict_worst)
