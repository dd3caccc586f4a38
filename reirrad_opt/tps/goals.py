"""``tps_goals.json``: the plan's protocol lines as goals a TPS can hold (schema: tps_goals_schema.json).

Every level is a dose of the NEW course in cGy (cGy(RBE) for particle plans). A cumulative-EQD2
limit is voxel-wise (its new-course cap differs from voxel to voxel with the prior dose), which one
TPS goal cannot say: its goal carries the tightest cap over the organ's voxels
(``level_basis: cumulative_cap_min``), so meeting the goal meets the limit everywhere; the loosest
cap (``cap_max_cgy``) says how much that may cost. Target lines carry the protocol's level, and every
line the value the reirrad-opt plan achieved on its own dose (so a TPS optimizer can start there).
"""
from __future__ import annotations

import math

from ..evaluate.metrics import metric_value
from ..protocol import parse_metric
from .caps import VOXEL_CAP_KINDS, CapMap

SCHEMA_VERSION = 1
CGY_PER_GY = 100.0
GOAL_TYPES = {"D_cc": "dose_at_absolute_volume", "Dmax": "dose_at_absolute_volume", "D_pct": "dose_at_volume",
              "Dmin": "dose_at_volume", "Dmean": "average_dose", "V_Gy": "volume_at_dose",
              "V_pctRx": "volume_at_dose"}


def _cgy(value_gy: float | None) -> float | None:
    if value_gy is None or (isinstance(value_gy, float) and math.isnan(value_gy)):
        return None
    return round(float(value_gy) * CGY_PER_GY, 2)


def _level_gy(goal, rx_gy: float) -> float | None:
    """A non-cumulative dose line's level (Gy): its desirable limit, else its acceptable one."""
    for tier in ("desirable", "acceptable"):
        value = goal.limit_gy(tier, rx_gy)
        if value is not None:
            return value
    return None


def tps_goals(plan, caps: CapMap, roi_names: dict[str, str | None], *, limit_level: str = "planned",
              evaluation_rows: list[dict] | None = None) -> dict:
    """The content of tps_goals.json for ``plan`` (a :class:`reirrad_opt.planning.Plan`).

    Args:
        caps: the plan's cap map (:func:`reirrad_opt.tps.caps.cap_map`, same tiers as ``limit_level``).
        roi_names: case structure name -> the ROI name in the TPS, or None for structures reirrad-opt
            made (rCTV, PTV, a synthetic rGTV): those are marked ``roi_generated``.
        limit_level: recorded: 'planned' (the tier the optimizer held each line to), 'desirable' or
            'acceptable'.
        evaluation_rows: plan.json's ``evaluation`` rows (default: the plan's own).
    """
    frac = plan.fractionation
    rx_gy = float(frac.total_gy)
    rows = evaluation_rows if evaluation_rows is not None else plan.evaluation.to_dict().get("rows", [])
    particle = plan.dose_unit == "Gy(RBE)"
    goals, unmapped = [], []
    for row in sorted(rows, key=lambda r: (r["priority"], r["goal_id"])):
        goal = plan.protocol.goal(row["goal_id"])
        canonical = row["structure"]
        case_name = row.get("case_structure")
        if row["verdict"] in ("absent", "not evaluated") or case_name is None:
            unmapped.append({"line_id": goal.id, "canonical_name": canonical,
                             "reason": f"{row['verdict']}: {row.get('note') or 'structure not in the case'}"})
            continue
        spec = parse_metric(goal.metric)
        goal_type = GOAL_TYPES.get(spec.kind)
        if goal_type is None or (goal_type == "volume_at_dose" and spec.kind == "V_Gy" and goal.cumulative):
            unmapped.append({"line_id": goal.id, "canonical_name": canonical,
                             "reason": f"metric {goal.metric} has no TPS goal form"})
            continue
        if goal.cumulative and (goal.sense != "max" or spec.kind not in VOXEL_CAP_KINDS):
            unmapped.append({"line_id": goal.id, "canonical_name": canonical,
                             "reason": f"a cumulative {goal.metric} {goal.sense} limit is no voxel cap of the new "
                                       f"course; it is evaluated on the cumulative dose, not mapped"})
            continue
        roi = roi_names.get(case_name)
        entry: dict = {"line_id": goal.id, "roi_name": roi if roi else case_name, "roi_generated": roi is None,
                       "canonical_name": canonical, "priority": int(goal.priority), "goal_type": goal_type,
                       "direction": "at_most" if goal.sense == "max" else "at_least"}
        if spec.kind == "D_cc":
            entry["volume_cc"] = float(spec.x)
        elif spec.kind == "Dmax":
            entry["volume_cc"] = 0.0
        elif spec.kind == "D_pct":
            entry["volume_pct"] = float(spec.x)
        elif spec.kind == "Dmin":
            entry["volume_pct"] = 100.0
        mask = plan.case.structures[case_name].mask
        if goal.cumulative:
            line = caps.line(goal.id)
            if line is None:
                unmapped.append({"line_id": goal.id, "canonical_name": canonical,
                                 "reason": "no cumulative limit applies at the chosen limit level"})
                continue
            achieved = metric_value(goal.metric, plan.new_dose_gy, mask, plan.case.grid, rx_gy).value
            entry.update(level_cgy=_cgy(line.min_cap_gy), level_basis="cumulative_cap_min",
                         cumulative_limit_gy=line.limit_eqd2_gy, cap_max_cgy=_cgy(line.max_cap_gy),
                         protocol_level_cgy=None, achieved_cgy=_cgy(achieved), achieved_pct=None,
                         note=f"{line.tier} cumulative limit {line.limit_eqd2_gy:g} Gy EQD2 "
                              f"(a/b {goal.alpha_beta_gy:g} Gy) as the tightest new-course cap over {case_name}; "
                              f"caps range {line.min_cap_gy:.2f}-{line.max_cap_gy:.2f} "
                              f"{'Gy(RBE)' if particle else 'Gy'}")
        elif goal_type == "volume_at_dose":
            threshold_gy = spec.threshold_gy(rx_gy)
            limit = goal.desirable or goal.acceptable
            if limit is None or limit.unit != "%":
                unmapped.append({"line_id": goal.id, "canonical_name": canonical,
                                 "reason": f"{goal.metric}: only a volume limit in % of the ROI maps to a goal"})
                continue
            entry.update(level_cgy=_cgy(threshold_gy), level_basis="new_course_limit", volume_pct=float(limit.value),
                         cumulative_limit_gy=None, cap_max_cgy=None, protocol_level_cgy=_cgy(threshold_gy),
                         achieved_cgy=None,
                         achieved_pct=None if row["value"] is None else round(float(row["value"]), 3),
                         note=f"% of {case_name} receiving at least {threshold_gy:.2f} Gy: at most {limit.value:g} %")
        else:
            level = _level_gy(goal, rx_gy)
            if level is None:
                unmapped.append({"line_id": goal.id, "canonical_name": canonical, "reason": "the line has no limit"})
                continue
            entry.update(level_cgy=_cgy(level), level_basis="new_course_limit", cumulative_limit_gy=None,
                         cap_max_cgy=None, protocol_level_cgy=_cgy(level), achieved_cgy=_cgy(row["value"]),
                         achieved_pct=None, note="")
        hard = goal.priority == 1 and goal.sense == "max" and plan.case.structures[case_name].role != "target"
        entry["role"] = "constraint" if hard else "objective"
        entry["verdict"] = row["verdict"]
        goals.append(entry)
    return {
        "schema_version": SCHEMA_VERSION,
        "protocol": plan.protocol.name,
        "fractionation": {"name": frac.name, "n_fractions": int(frac.n_fractions),
                          "dose_per_fraction_gy": float(frac.dose_per_fraction_gy),
                          "prescription_cgy": _cgy(rx_gy)},
        "modality": plan.modality,
        "dose_unit": "cGy",
        "dose_kind": "rbe_weighted" if particle else "physical",
        "rbe": float(plan.rbe) if particle else None,
        "limit_level": limit_level,
        "goals": goals,
        "unmapped": unmapped,
    }
