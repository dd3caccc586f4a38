"""``compare()``: IMRT versus particle planning of one case under one protocol.

Both plans are made by :func:`reirrad_opt.planning.plan` on the same case object (identical anatomy,
targets, prior course) and the same :class:`~reirrad_opt.protocol.Protocol` object (same
priorities, limits, slips, fractionation and recovery model); only the modality and its beams
differ. Both plans are optimized, evaluated and compared on the dose that matters clinically: the
photon plan's physical dose (Gy, RBE 1) and the particle plan's RBE-weighted dose (Gy(RBE) = RBE x
physical dose, constant RBE: 1.1 for protons unless set; carbon only with an explicit RBE, stated
as an assumption, since its RBE varies with LET and no variable-RBE model is implemented).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..case import Case
from ..prior_eqd2 import describe_recovery
from ..progress import SILENT, Progress
from ..rbe import resolve_rbe
from .distal import (DEFAULT_DISTAL_MARGIN_MM, DEFAULT_MIN_WEIGHT_FRACTION, DEFAULT_RANGE_ERROR_PCT, DistalReport,
                     Organ, plan_distal_end_check)
from .narrative import comparison_summary, criteria_for, flat_metrics
from .plan_metrics import (DEFAULT_BRAIN_ALPHA_BETA_GY, DEFAULT_CI_LEVEL_PCT, PlanMetrics, plan_metrics)

PARTICLES = ("proton", "carbon")


@dataclass
class Comparison:
    """An IMRT-versus-particle comparison.

    Attributes:
        case: the case both plans were made on (with rCTV / PTV).
        protocol: the protocol both plans used.
        plans: modality ('photon', 'proton' or 'carbon') -> :class:`~reirrad_opt.planning.Plan`.
        metrics: modality -> :class:`PlanMetrics`.
        distal: particle modality -> :class:`DistalReport`.
        summary_rows: per criterion the values and the better modality (None: no meaningful
            difference); summary: plain-language sentences computed from them.
        criteria: the criteria (key, label, better, tolerance, unit).
        parameters: the comparison's own parameters; notes: what was assumed or derived.
    """

    case: Case
    protocol: object
    plans: dict
    metrics: dict[str, PlanMetrics]
    distal: dict[str, DistalReport]
    summary_rows: list[dict]
    summary: list[str]
    criteria: list
    parameters: dict
    notes: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> list[str]:
        return list(self.plans)

    @property
    def priority1_failed(self) -> bool:
        """True when either plan fails a priority-1 line."""
        return any(p.priority1_failed for p in self.plans.values())

    def structure_table(self) -> list[dict]:
        """Side by side per protocol line: value, verdict and margin of each plan, plus each
        structure's cumulative EQD2 summary (D0.03cc, Dmax, Dmean) from the evaluation."""
        mods = self.modalities
        first = self.plans[mods[0]].evaluation
        out = []
        for r0 in first.rows:
            row = {"goal_id": r0.goal_id, "structure": r0.structure, "case_structure": r0.case_structure,
                   "priority": r0.priority, "metric": r0.metric, "cumulative": r0.cumulative, "unit": r0.unit,
                   "alpha_beta_gy": r0.alpha_beta_gy, "desirable": r0.desirable, "acceptable": r0.acceptable}
            for m in mods:
                r = self.plans[m].evaluation.row(r0.goal_id)
                entry = {"value": _r(r.value), "verdict": r.verdict, "margin": _r(r.margin)}
                per = self.plans[m].evaluation.reporting.get("per_structure", {}).get(r.case_structure or "")
                if per and r.cumulative:
                    c = per["cumulative_eqd2"]
                    entry["cumulative_eqd2"] = {"D0.03cc_gy": c.get("D0.03cc_gy"), "Dmax_gy": c.get("Dmax_gy"),
                                                "Dmean_gy": c.get("Dmean_gy")}
                row[m] = entry
            out.append(row)
        return out

    def to_dict(self) -> dict:
        """The content of comparison.json (see docs/compare.md)."""
        mods = self.modalities
        first = self.plans[mods[0]]
        frac = first.fractionation
        return {
            "format": "reirrad-comparison-1",
            "case": self.case.name,
            "protocol": {"name": self.protocol.name, "path": str(getattr(self.protocol, "path", "") or ""),
                         "fractionation": frac.name, "rx_gy": frac.total_gy,
                         "recovery": describe_recovery(self.protocol.recovery, self.case.prior_courses)},
            "modalities": mods,
            "verdicts": {m: self.plans[m].verdict for m in mods},
            "dose": {m: self.plans[m].dose_info for m in mods},
            "verdict_detail": {m: self.plans[m].evaluation.summary for m in mods},
            "summary": self.summary,
            "criteria": self.summary_rows,
            "structures": self.structure_table(),
            "priority1_budget": {m: self.metrics[m].budget for m in mods},
            "targets": {m: self.metrics[m].targets for m in mods},
            "dose_metrics": {m: {k: v for k, v in self.metrics[m].to_dict().items()
                                 if k not in ("modality", "targets", "priority1_budget")} for m in mods},
            "distal_end": {m: rep.to_dict() for m, rep in self.distal.items()},
            "definitions": definitions(self.parameters),
            "parameters": self.parameters,
            "notes": self.notes,
            "plans": {m: self.plans[m].to_dict() for m in mods},
        }


def _r(x, digits: int = 3):
    if x is None:
        return None
    x = float(x)
    return None if not np.isfinite(x) else round(x, digits)


def definitions(params: dict) -> dict:
    """What each comparison metric is, which dose it uses and with which alpha/beta."""
    return {
        "dose": "photons: physical dose in Gy (RBE 1); particles: RBE-weighted dose in Gy(RBE) = RBE x physical "
                "dose with a constant RBE (parameters.rbe); the prior course in Gy(RBE) as the case holds it. "
                "Every dose, EQD2 and limit below is in these units, so photon Gy and particle Gy(RBE) compare "
                "directly",
        "structures": "per protocol line: the evaluated value (cumulative EQD2 at the line's alpha/beta for "
                      "cumulative lines, else the new course's dose; Gy for photons, Gy(RBE) for particles) with "
                      "its verdict and margin; cumulative_eqd2 = sum over the prior courses of (1 - f_k) "
                      "EQD2(prior course k) + EQD2(new) summed voxel by voxel",
        "priority1_budget": "cumulative limit (desirable / acceptable, EQD2 at the line's alpha/beta) minus the "
                            "evaluated cumulative D0.03cc: EQD2 left at the organ's hottest 0.03 cc for a future "
                            "course, crediting the protocol's recovery of the prior course; negative = exceeded",
        "targets": "new-course dose (Gy; Gy(RBE) for particles); V95% / V107% in % of the structure, of Rx; "
                   "D0.03cc = hotspot",
        "conformity_index_paddick": f"TV_L^2 / (TV x V_L) at the {params['ci_level_pct']:g} % Rx isodose, TV = PTV",
        "r50": "volume of the 50 % Rx isodose within the body / PTV volume",
        "integral_dose_gy_litre": "new-course dose summed over the body x voxel volume (Gy x litre; Gy(RBE) x "
                                  "litre for particles)",
        "normal_brain": f"brain structure minus PTV; V20 / V40 Gy EQD2 at alpha/beta "
                        f"{params['brain_alpha_beta_gy']:g} Gy of the new course alone (new_course_eqd2, EQD2 with "
                        f"the new course's fractions) and of both courses (cumulative_eqd2, with the protocol's "
                        f"recovery for the brain); the criteria compare the new-course values",
        "falloff_mm": "along 200 rays from the PTV centroid: distance from the 90 % to the 50 % and from the 80 % to "
                      "the 20 % Rx isodose outward from the PTV surface (new-course dose), median and range over the "
                      "rays that cross both levels inside the body",
        "distal_end": f"particle fields: priority-1/2 organs in the lateral cell of a significant spot (weight >= "
                      f"{params['min_spot_weight_fraction']:g} x the field's largest) at a water-equivalent depth "
                      f"from R80 to R80 + {params['distal_margin_mm']:g} mm; R80 scaled by 1 +/- "
                      f"{params['range_error_pct']:g} % for the range-error scenarios",
        "criteria": "winner = better value when the difference exceeds the stated tolerance, else no meaningful "
                    "difference",
    }


def distal_organs(case: Case, protocol) -> list[Organ]:
    """Priority-1 and priority-2 organs of the protocol found in the case (targets and coverage
    lines excluded), each with the highest priority of its lines."""
    from ..evaluate import find_case_structure

    prio: dict[str, int] = {}
    for g in protocol.goals:
        if g.priority > 2 or g.sense != "max":
            continue
        name = find_case_structure(case, g)
        if name is None or case.structures[name].role == "target" or name in ("rGTV", "rCTV", "PTV"):
            continue
        prio[name] = min(prio.get(name, g.priority), g.priority)
    return [Organ(n, case.structures[n].mask, p) for n, p in prio.items()]


def compare(case: Case, protocol=None, *, photon_angles_deg=None, photon_n_beams: int | None = None,
            particle_angles_deg=None, particle: str = "proton", fractionation: str | None = None, recovery=None,
            optic_nerve_rule: str | None = None, bixel_mm: float = 5.0, spot_spacing_mm: float = 5.0,
            cache_dir=None, solver: str | None = None, distal_margin_mm: float = DEFAULT_DISTAL_MARGIN_MM,
            range_error_pct: float = DEFAULT_RANGE_ERROR_PCT,
            min_spot_weight_fraction: float = DEFAULT_MIN_WEIGHT_FRACTION, ci_level_pct: float = DEFAULT_CI_LEVEL_PCT,
            brain_structure: str = "Brain", brain_alpha_beta_gy: float = DEFAULT_BRAIN_ALPHA_BETA_GY,
            rbe: float | None = None, absent=None, robust=None, ct_calibration=None, beam_model=None,
            progress: Progress = SILENT) -> Comparison:
    """Plan ``case`` with photons (IMRT) and with a particle under one protocol and compare them.

    Like :func:`~reirrad_opt.planning.plan`, derives rCTV and PTV when the case has none (once, before
    either plan, so both plans see the same targets), on a copy: the caller's ``case`` and ``protocol``
    are not modified (the comparison's ``case`` holds the derived volumes).

    Args:
        case: the case.
        protocol: a Protocol, a path to a protocol TOML, or None for the shipped NPC protocol.
        photon_angles_deg: IMRT gantry angles (deg); default the planner's 9 equispaced beams.
        photon_n_beams: number of equispaced IMRT beams instead of explicit angles.
        particle_angles_deg: particle field gantry angles (deg); default the planner's fields.
        particle: 'proton' or 'carbon'.
        fractionation, recovery, optic_nerve_rule: as for ``plan`` (applied once, to both plans).
        bixel_mm, spot_spacing_mm, cache_dir, solver: passed to ``plan``.
        beam_model: the particle plan's beam model (a BeamModel or a TOML path; None: generic).
        distal_margin_mm: depth beyond R80 (mm, water-equivalent) checked at the distal end.
        range_error_pct: range error of the distal-end scenarios (%).
        min_spot_weight_fraction: a spot counts for the distal-end check from this fraction of its
            field's largest weight.
        ci_level_pct: isodose (% of Rx) of the conformity index.
        brain_structure, brain_alpha_beta_gy: the normal-brain structure and alpha/beta (Gy) of its
            V20 / V40 Gy EQD2.
        rbe: constant RBE of the particle plan (0.5-5); default the protocol's ``rbe_proton`` (1.1)
            for protons; required for carbon (InputError before any planning otherwise).
        absent: structures declared absent (not contoured, outside the field), as for ``plan``.
        robust: ScenarioSettings: evaluate both plans in the setup (and, for the particle plan, range)
            scenarios too (``plan(robust=...)``); None: nominal evaluation only.
        ct_calibration: the CT calibration of both plans (:class:`~reirrad_opt.dose.CTCalibration`; default
            the generic stoichiometric one); it needs a RED column, since the photon plan uses it.
    """
    from ..planning import ensure_target_volumes, plan
    from ..protocol import Protocol, load_protocol

    if particle not in PARTICLES:
        raise ValueError(f"particle must be one of {PARTICLES}, got {particle!r}")
    if not 0 < ci_level_pct <= 150:
        raise ValueError(f"ci_level_pct must be in (0, 150] % of Rx, got {ci_level_pct}")
    if not brain_alpha_beta_gy > 0:
        raise ValueError(f"brain_alpha_beta_gy must be > 0 Gy, got {brain_alpha_beta_gy}")
    if photon_angles_deg is not None and photon_n_beams is not None:
        raise ValueError("give photon_angles_deg or photon_n_beams, not both")
    if isinstance(protocol, Protocol):
        if optic_nerve_rule is not None:
            raise ValueError("optic_nerve_rule selects goal variants when a protocol file is loaded; with a Protocol "
                             "object load it with load_protocol(path, optic_nerve_rule=...) instead")
        if fractionation:
            protocol = protocol.with_fractionation(fractionation)
    else:
        protocol = load_protocol(protocol, optic_nerve_rule=optic_nerve_rule, fractionation=fractionation)
    if recovery is not None:
        protocol = dataclasses.replace(protocol, recovery=recovery)
    rbe_setting = resolve_rbe(particle, rbe, protocol.options)   # refuses carbon without an RBE before planning
    case = dataclasses.replace(case, structures=dict(case.structures))   # the caller's case stays as it was
    notes = ensure_target_volumes(case)
    if ct_calibration is not None:
        ct_calibration.red_curve("the comparison's photon plan")   # refused before either plan is made
    kwargs = dict(bixel_mm=bixel_mm, spot_spacing_mm=spot_spacing_mm, cache_dir=cache_dir, absent=absent,
                  robust=robust, ct_calibration=ct_calibration, progress=progress)
    if solver is not None:
        kwargs["solver"] = solver
    plans = {}
    progress("compare: photon (IMRT) plan")
    plans["photon"] = plan(case, protocol, modality="photon", gantry_angles_deg=photon_angles_deg,
                           n_beams=photon_n_beams, **kwargs)
    progress(f"compare: {particle} plan")
    plans[particle] = plan(case, protocol, modality=particle, gantry_angles_deg=particle_angles_deg, rbe=rbe,
                           beam_model=beam_model, **kwargs)
    params = {"photon_angles_deg": [float(b.gantry_deg) for b in plans["photon"].beams],
              "particle": particle, "particle_angles_deg": [float(b.gantry_deg) for b in plans[particle].beams],
              "bixel_mm": float(bixel_mm), "spot_spacing_mm": float(spot_spacing_mm),
              "distal_margin_mm": float(distal_margin_mm), "range_error_pct": float(range_error_pct),
              "min_spot_weight_fraction": float(min_spot_weight_fraction), "ci_level_pct": float(ci_level_pct),
              "brain_structure": brain_structure, "brain_alpha_beta_gy": float(brain_alpha_beta_gy),
              "rbe": float(plans[particle].rbe), "rbe_source": plans[particle].rbe_source,
              "particle_dose_unit": plans[particle].dose_unit,
              "ct_calibration": plans[particle].ct_calibration.to_dict()}
    progress("compare: metrics")
    metrics = {m: plan_metrics(p, ci_level_pct=ci_level_pct, brain_structure=brain_structure,
                               brain_alpha_beta_gy=brain_alpha_beta_gy) for m, p in plans.items()}
    organs = distal_organs(case, protocol)
    distal = {particle: plan_distal_end_check(plans[particle], organs, distal_margin_mm=distal_margin_mm,
                                              range_error_pct=range_error_pct,
                                              min_weight_fraction=min_spot_weight_fraction)}
    flat = {m: flat_metrics(plans[m], metrics[m]) for m in plans}
    criteria = criteria_for(plans, flat)
    distal_brief = {}
    for m, rep in distal.items():
        nominal = sorted(rep.flagged("nominal"))
        distal_brief[m] = {"nominal": nominal, "range_error": sorted(rep.flagged(None) - set(nominal)),
                           "range_error_pct": rep.range_error_pct}
    rows, sentences = comparison_summary({m: p.verdict for m, p in plans.items()}, flat, criteria, distal_brief)
    for row, c in zip(rows, criteria):
        row["tolerance"] = c.tolerance
        row["values"] = {m: _r(v, 4) for m, v in row["values"].items()}
    notes = notes + [
        "both plans: same case object (anatomy, targets, prior dose), same protocol object (priorities, limits, "
        "slips, fractionation, recovery)",
        f"{particle} dose: RBE-weighted, {plans[particle].dose_unit} = {plans[particle].rbe:g} x physical dose "
        f"(constant RBE, {plans[particle].rbe_source}), as optimized, evaluated and compared; photon dose: physical "
        "Gy (RBE 1)",
    ] + [n for n in rbe_setting.notes() if n.startswith("WARNING")]
    if not any(m.brain for m in metrics.values()):
        notes.append(f"no structure {brain_structure!r} in the case: normal-brain V20/V40 not computed")
    return Comparison(case, protocol, plans, metrics, distal, rows, sentences,
                      [dataclasses.asdict(c) for c in criteria], params, notes)
