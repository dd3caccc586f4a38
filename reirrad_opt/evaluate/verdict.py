"""Independent plan evaluation: every protocol line gets a value, a verdict and a margin.

Only the case, the protocol and the final new-course dose are used (nothing from an optimizer).

The verdict words and the rule are in :mod:`.rule`: per line 'desirable', 'acceptable', 'not met'
(desirable missed, no acceptable limit), 'fail', 'not evaluated' (structure missing or empty) or
'absent' (declared absent, see :mod:`reirrad_opt.absent`); overall, from the priority-1 lines
alone, 'desirable', 'acceptable', 'fail' or 'incomplete' (a priority-1 organ is not contoured: never
a pass). Lower-priority goals missed are named in the verdict detail.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..absent import declared_absent
from ..case import Case
from ..geometry import canonical_name
from ..prior_eqd2 import describe_recovery, recovered_fractions, summed_physical_prior_dose_gy
from ..protocol import Fractionation, Protocol
from ..radiobiology import RecoveryModel
from .cumulative import eqd2_maps, goal_dose_at
from .dvh import DVH
from .metrics import DEFAULT_FINE_FACTOR, resolve, value_from_dvh
from .reporting import reirradiation_type, reporting_block
from .rule import ROW_VERDICTS, line_verdict, overall_verdict, signed_margin  # noqa: F401 (re-exported)
from .sampling import SamplePoints, sample_points
from .structures import check_absent_not_contoured, find_case_structure

NEGATIVE_DOSE_TOLERANCE_GY = 1e-6


@dataclass
class EvaluationRow:
    """One protocol line evaluated.

    Attributes:
        structure: the protocol's (TG-263) structure name; ``case_structure`` the name in the case.
        goal_id, metric, priority, cumulative, sense: from the protocol.
        value: on the fine evaluation grid; ``value_coarse`` on the case grid; None if not evaluated.
        unit: 'Gy' or 'Gy(RBE)' (dose metrics: the new course's dose, physical for photons and
            RBE-weighted for particles, or cumulative EQD2 when ``cumulative``),
            '%' or 'cc' (V-metrics).
        desirable, acceptable: the limits in ``unit`` (None = no limit).
        verdict: 'desirable' | 'acceptable' | 'not met' | 'fail' | 'not evaluated' | 'absent'
            (see :mod:`.rule`).
        margin: signed, in ``unit``, positive = inside the limit (see :mod:`.rule`).
        margin_desirable, margin_acceptable: the margins to each limit.
        note: what the reader must know.
        recovered_fractions: of a cumulative line, the recovered fraction of each prior course (at its
            own interval); ``recovered_fraction`` is their common value, None when they differ.
    """

    structure: str
    goal_id: str
    metric: str
    priority: int
    cumulative: bool
    value: float | None
    unit: str
    value_coarse: float | None
    desirable: float | None
    acceptable: float | None
    verdict: str
    margin: float | None
    note: str = ""
    sense: str = "max"
    case_structure: str | None = None
    margin_desirable: float | None = None
    margin_acceptable: float | None = None
    fine_factor: int = 1
    alpha_beta_gy: float | None = None
    recovered_fraction: float | None = None
    volume_cc: float | None = None
    recovered_fractions: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return {k: _json(v) for k, v in self.__dict__.items()}


def _json(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, tuple):
        return [_json(x) for x in v]
    return v


@dataclass
class PlanEvaluation:
    """The independent evaluation of a plan.

    Attributes:
        rows: one :class:`EvaluationRow` per protocol line.
        verdict: 'desirable' | 'acceptable' | 'fail' | 'incomplete', from the priority-1 lines alone
            (see :mod:`.rule`).
        summary: the verdict detail: one paragraph stating the verdict, what decided it, and every
            lower-priority goal missed, line not evaluated and structure declared absent.
        failed_priority1, failed_lower_priority, not_evaluated: goal ids.
        not_met_priority1: goal ids of priority-1 lines 'not met' (no acceptable limit, desirable missed).
        missing_priority1: goal ids of priority-1 lines 'not evaluated'; not_contoured their structures.
        missed_lower_priority: goal ids of lower-priority lines 'acceptable', 'not met' or 'fail'.
        absent: structure -> how it was declared absent (plan.json ``absent_structures``).
        new_eqd2_gy, prior_eqd2_gy (after recovery), cumulative_eqd2_gy: voxel maps (Gy) on the
            case grid for display (per-voxel alpha/beta map; see :mod:`.cumulative`).
        reporting: the ESTRO-EORTC reporting block (JSON-ready dict).
        reirradiation_type: 'Type 1' | 'Type 2' | 'undetermined'.
        protocol_name, fractionation, rx_gy, recovery: what was evaluated against.
    """

    rows: list[EvaluationRow]
    verdict: str
    summary: str
    failed_priority1: list[str]
    failed_lower_priority: list[str]
    not_evaluated: list[str]
    new_eqd2_gy: np.ndarray = field(repr=False)
    prior_eqd2_gy: np.ndarray = field(repr=False)
    cumulative_eqd2_gy: np.ndarray = field(repr=False)
    reporting: dict = field(repr=False)
    reirradiation_type: str = "undetermined"
    protocol_name: str = ""
    fractionation: str = ""
    rx_gy: float = 0.0
    recovery: str = ""
    fine_factor: int = DEFAULT_FINE_FACTOR
    not_met_priority1: list[str] = field(default_factory=list)
    missing_priority1: list[str] = field(default_factory=list)
    not_contoured: list[str] = field(default_factory=list)
    missed_lower_priority: list[str] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)

    @property
    def priority1_failed(self) -> bool:
        """A priority-1 line is 'fail' or 'not met' (overall 'fail')."""
        return self.verdict == "fail"

    @property
    def incomplete(self) -> bool:
        """Overall 'incomplete': no priority-1 line fails, but one could not be evaluated."""
        return self.verdict == "incomplete"

    def row(self, goal_id: str) -> EvaluationRow:
        for r in self.rows:
            if r.goal_id == goal_id:
                return r
        raise KeyError(f"no evaluation row {goal_id!r}; rows: {[r.goal_id for r in self.rows]}")

    def to_dict(self) -> dict:
        """JSON-ready (no voxel arrays)."""
        return {
            "verdict": self.verdict, "verdict_detail": self.summary, "summary": self.summary,
            "incomplete": self.incomplete, "failed_priority1": list(self.failed_priority1),
            "not_met_priority1": list(self.not_met_priority1), "missing_priority1": list(self.missing_priority1),
            "not_contoured": list(self.not_contoured), "failed_lower_priority": list(self.failed_lower_priority),
            "missed_lower_priority": list(self.missed_lower_priority), "not_evaluated": list(self.not_evaluated),
            "absent_structures": dict(self.absent), "protocol": self.protocol_name,
            "fractionation": self.fractionation, "rx_gy": self.rx_gy, "recovery": self.recovery,
            "fine_factor": self.fine_factor, "reirradiation_type": self.reirradiation_type,
            "rows": [r.to_dict() for r in self.rows], "reporting": self.reporting,
        }


# ----------------------------------------------------------------------------- evaluate_plan

def _choose_fractionation(protocol: Protocol, fractionation) -> Fractionation:
    if fractionation is None:
        return protocol.fractionation
    if isinstance(fractionation, Fractionation):
        return fractionation
    if fractionation in protocol.fractionations:
        return protocol.fractionations[fractionation]
    raise ValueError(f"fractionation {fractionation!r} is not one of protocol {protocol.name!r}'s "
                     f"{sorted(protocol.fractionations)}")


def evaluate_plan(case: Case, protocol: Protocol, new_dose_gy: np.ndarray, *, fractionation=None,
                  recovery: RecoveryModel | None = None, fine_factor: int | None = None,
                  fine_masks: dict[str, tuple[np.ndarray, object]] | None = None,
                  structure_map: dict[str, str] | None = None, dose_unit: str = "Gy",
                  absent=None) -> PlanEvaluation:
    """Evaluate the new course's dose ``new_dose_gy`` (in ``dose_unit``, on ``case.grid``) against
    every line of ``protocol``.

    Args:
        fractionation: the new course's fractionation (a name of the protocol's, a
            :class:`Fractionation`, or None for the protocol's chosen one); its physical total is
            the Rx of '%Rx' limits and its number of fractions converts the new dose to EQD2.
        recovery: recovery model (default: the protocol's).
        fine_factor: sub-voxel sampling per axis for the fine evaluation (1 = voxel centres only);
            None: the protocol's option ``evaluation_fine_factor`` (default DEFAULT_FINE_FACTOR).
        fine_masks: optional finer rasterisations ``{case structure name: (mask, Grid)}``.
        structure_map: protocol structure name -> case structure name, overriding the alias search.
        dose_unit: unit of ``new_dose_gy`` and of the dose rows: 'Gy' (photons, physical) or 'Gy(RBE)'
            (particles: the RBE-weighted dose, with the prior dose in Gy(RBE) as the case holds it).
        absent: structures declared absent (not contoured, outside the field): a list of protocol
            structure names, or a mapping name -> how it was declared; added to the protocol option
            ``absent_structures``. Their lines read 'absent' and do not block a pass. A name that is
            not a protocol structure, or one the case contours, is a ValueError.
    """
    if dose_unit not in ("Gy", "Gy(RBE)"):
        raise ValueError(f"dose_unit must be 'Gy' or 'Gy(RBE)', got {dose_unit!r}")
    grid = case.grid
    dose = np.asarray(new_dose_gy)
    grid.check_array(dose, "new_dose_gy")
    if not np.all(np.isfinite(dose)):
        raise ValueError("new_dose_gy: every voxel must be finite (Gy)")
    if dose.size and dose.min() < -NEGATIVE_DOSE_TOLERANCE_GY:
        raise ValueError(f"new_dose_gy: doses must be >= 0 Gy, got minimum {float(dose.min()):.6g} Gy")
    dose = np.maximum(dose.astype(float), 0.0)  # removes only round-off below 1e-6 Gy
    frac = _choose_fractionation(protocol, fractionation)
    rx = frac.total_gy
    recovery = protocol.recovery if recovery is None else recovery
    priors = case.prior_courses
    near_min = str(protocol.options.get("near_min_metric", "D98%"))
    if fine_factor is None:
        fine_factor = int(protocol.options.get("evaluation_fine_factor", DEFAULT_FINE_FACTOR))
    absent = declared_absent(protocol, absent)
    check_absent_not_contoured(case, protocol.goals, absent, structure_map)

    points_cache: dict[str, SamplePoints] = {}
    coarse_cache: dict[str, SamplePoints] = {}

    def points_for(name: str) -> tuple[SamplePoints, SamplePoints | None]:
        """Fine and coarse samples; coarse None when no voxel centre lies inside (fine mask only)."""
        if name not in points_cache:
            mask = case.structures[name].mask
            fm = (fine_masks or {}).get(name)
            coarse_cache[name] = sample_points(mask, grid, 1) if mask.any() else None
            points_cache[name] = sample_points(mask, grid, fine_factor, fine_mask=fm[0] if fm else None,
                                               fine_grid=fm[1] if fm else None)
        return points_cache[name], coarse_cache[name]

    rows: list[EvaluationRow] = []
    found: dict[str, str] = {}
    for goal in protocol.goals:
        spec = resolve(goal.metric_spec, near_min)
        name = find_case_structure(case, goal, structure_map)
        base = dict(structure=goal.structure, goal_id=goal.id, metric=goal.metric, priority=goal.priority,
                    cumulative=goal.cumulative, sense=goal.sense, alpha_beta_gy=goal.alpha_beta_gy)
        unit = dose_unit if not spec.is_volume else (goal.desirable or goal.acceptable).unit
        lim_d = goal.limit_gy("desirable", rx) if not spec.is_volume else (goal.desirable.value if goal.desirable else None)
        lim_a = goal.limit_gy("acceptable", rx) if not spec.is_volume else (goal.acceptable.value if goal.acceptable else None)
        if goal.structure in absent:
            rows.append(EvaluationRow(**base, value=None, unit=unit, value_coarse=None, desirable=lim_d,
                                      acceptable=lim_a, verdict="absent", margin=None, case_structure=name,
                                      note=f"declared absent ({absent[goal.structure]}): not contoured, outside "
                                           f"the field; this line is not evaluated and does not block a pass"))
            continue
        fine_only = (name is not None and not case.structures[name].mask.any()
                     and name in (fine_masks or {}) and np.asarray(fine_masks[name][0]).any())
        if name is None or not (case.structures[name].mask.any() or fine_only):
            why = (f"structure {goal.structure} is not in the case (looked for {', '.join(dict.fromkeys(goal.names()))})"
                   if name is None else f"structure {name} is empty in the case")
            loud = "PRIORITY 1 LINE NOT EVALUATED: " if goal.priority == 1 else "not evaluated: "
            hint = (f"; contour it, or declare it absent (--absent {goal.structure}) if it lies outside the field"
                    if goal.priority == 1 else "")
            rows.append(EvaluationRow(**base, value=None, unit=unit, value_coarse=None, desirable=lim_d, acceptable=lim_a,
                                      verdict="not evaluated", margin=None, note=loud + why + hint,
                                      case_structure=name))
            continue
        found[goal.structure] = name
        fine_pts, coarse_pts = points_for(name)
        f_recs = recovered_fractions(recovery, goal.structure, priors) if goal.cumulative else None
        f_rec = (f_recs[0] if len(set(f_recs)) == 1 else None) if f_recs else None
        kwargs = dict(cumulative=goal.cumulative, priors=priors, new_n_fractions=frac.n_fractions,
                      alpha_beta_gy=goal.alpha_beta_gy, recovered_fractions=f_recs)
        h_fine = DVH.from_samples(goal_dose_at(fine_pts, dose, **kwargs), fine_pts.volume_cc)
        value, unit_v, note = value_from_dvh(spec, h_fine, rx, unit if spec.is_volume else "%")
        unit_v = dose_unit if unit_v == "Gy" else unit_v
        if coarse_pts is not None:
            h_coarse = DVH.from_samples(goal_dose_at(coarse_pts, dose, **kwargs), coarse_pts.volume_cc)
            value_c, _, _ = value_from_dvh(spec, h_coarse, rx, unit if spec.is_volume else "%")
        else:
            value_c = None
        verdict, margin, vnote = line_verdict(value, goal.sense, lim_d, lim_a, unit_v)
        notes = [n for n in (note, vnote) if n]
        if coarse_pts is None:
            notes.append("no voxel centre of the case grid lies inside the structure: evaluated on its fine mask only")
        if goal.metric != spec.name:
            notes.append(f"{goal.metric} evaluated as {spec.name}")
        if goal.cumulative and len(priors) == 1:
            notes.append(f"cumulative EQD2 (a/b {goal.alpha_beta_gy:g} Gy, prior {case.prior.n_fractions} fx, new "
                         f"{frac.n_fractions} fx, recovered fraction {f_rec:g})")
        elif goal.cumulative:
            notes.append(f"cumulative EQD2 (a/b {goal.alpha_beta_gy:g} Gy, {len(priors)} prior courses of "
                         f"{' + '.join(str(p.course.n_fractions) for p in priors)} fx, each converted with its own "
                         f"fractions, new {frac.n_fractions} fx, recovered fractions "
                         f"{', '.join(f'{f:g}' for f in f_recs)})")
        rows.append(EvaluationRow(**base, value=value, unit=unit_v, value_coarse=value_c, desirable=lim_d,
                                  acceptable=lim_a, verdict=verdict, margin=margin, note="; ".join(notes),
                                  case_structure=name, margin_desirable=signed_margin(value, lim_d, goal.sense),
                                  margin_acceptable=signed_margin(value, lim_a, goal.sense),
                                  fine_factor=fine_pts.fine_factor, recovered_fraction=f_rec,
                                  volume_cc=fine_pts.total_cc if coarse_pts is None else coarse_pts.total_cc,
                                  recovered_fractions=f_recs))

    overall = overall_verdict(rows)

    # maps and reporting
    ab_by_structure: dict[str, float] = {}
    for g in protocol.goals:
        if g.structure in found:
            n = found[g.structure]
            ab_by_structure[n] = min(ab_by_structure.get(n, math.inf), g.alpha_beta_gy)
    masks = {n: s.mask for n, s in case.structures.items()}
    default_ab = float(protocol.options.get("default_alpha_beta_gy", 3.0))
    maps = eqd2_maps(priors, dose, frac.n_fractions, masks, ab_by_structure, default_ab, recovery)
    ptv_name = _ptv_name(case, protocol, found)
    rtype = reirradiation_type(case.structures[ptv_name].mask if ptv_name else None,
                               summed_physical_prior_dose_gy(priors), grid,
                               float(protocol.options.get("type1_prior_dose_threshold_gy", 20.0)),
                               n_courses=len(priors))
    priority1 = {found[g.structure] for g in protocol.goals
                 if g.priority == 1 and g.structure in found and case.structures[found[g.structure]].role != "target"}
    reporting = reporting_block(case, protocol, frac, recovery, dose, rtype, ab_by_structure, default_ab,
                                points_for, found, priority1)
    return PlanEvaluation(rows, overall.verdict, overall.detail, overall.failed_priority1, overall.failed_lower_priority,
                          overall.not_evaluated, maps.new_eqd2_gy, maps.prior_eqd2_gy, maps.cumulative_eqd2_gy,
                          reporting, rtype.type, protocol.name, frac.name, rx, describe_recovery(recovery, priors),
                          fine_factor,
                          not_met_priority1=overall.not_met_priority1, missing_priority1=overall.missing_priority1,
                          not_contoured=overall.not_contoured, missed_lower_priority=overall.missed_lower_priority,
                          absent=absent)


def _ptv_name(case: Case, protocol: Protocol, found: dict[str, str]) -> str | None:
    if "PTV" in found:
        return found["PTV"]
    for key in case.structures:
        if canonical_name(key) == "PTV":
            return key
    return None
