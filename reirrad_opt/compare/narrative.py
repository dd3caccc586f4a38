"""The comparison's criteria and its plain-language summary, computed from the numbers.

Each criterion names a metric key of :func:`flat_metrics`, which way is better and the difference
below which the two plans count as equal (the tolerances are stated in the output).
"""
from __future__ import annotations

import numpy as np

from .plan_metrics import DOSE_UNITS
from .summary import Criterion, summarise

ORGAN_TOLERANCE_GY = 0.5          # cumulative EQD2 of an organ line
TARGET_TOLERANCE_GY = 0.5         # coverage / hotspot dose of a target
HOTSPOT_VOLUME_TOLERANCE_PCT = 1.0
CI_TOLERANCE = 0.02
R50_TOLERANCE = 0.1
INTEGRAL_DOSE_TOLERANCE_REL = 0.02   # of the mean of the two plans
BRAIN_VOLUME_TOLERANCE_CC = 0.5
FALLOFF_TOLERANCE_MM = 0.5


def flat_metrics(plan, pm) -> dict[str, float | None]:
    """Metric key -> value of one plan (its evaluation rows and its :class:`PlanMetrics`)."""
    out: dict[str, float | None] = {}
    for r in plan.evaluation.rows:
        if r.cumulative and r.sense == "max" and r.unit in DOSE_UNITS:
            out[r.goal_id] = r.value if r.verdict != "not evaluated" else None
    for name, values in pm.targets.items():
        for m, v in values.items():
            out[f"{name} {m}"] = v
    out["CI"] = pm.conformity_index
    out["R50"] = pm.r50
    out["integral dose"] = pm.integral_dose_gy_litre
    for label in ("new_course_eqd2", "cumulative_eqd2"):
        for k, v in (pm.brain.get(label) or {}).items():
            if k.endswith("_cc"):
                out[f"brain {label} {k}"] = v
    for k, f in pm.falloff.items():
        out[f"fall-off {k}"] = f.median_mm
    return out


def criteria_for(plans: dict, metrics: dict[str, dict[str, float | None]]) -> list[Criterion]:
    """The criteria of a comparison: every cumulative organ line of the protocol (priority order),
    target coverage and hotspot, conformity, R50, integral dose, normal-brain V20/V40 Gy EQD2 of
    the new course, and the two fall-off distances."""
    first = next(iter(plans.values()))
    # photon Gy is Gy(RBE) at RBE 1: with a particle plan in the comparison every dose reads in Gy(RBE)
    gy = "Gy(RBE)" if any(getattr(p, "dose_unit", "Gy") == "Gy(RBE)" for p in plans.values()) else "Gy"
    crit: list[Criterion] = []
    for r in sorted(first.evaluation.rows, key=lambda r: r.priority):
        if r.cumulative and r.sense == "max" and r.unit in DOSE_UNITS:
            crit.append(Criterion(r.goal_id, f"{r.structure} cumulative EQD2 {r.metric} (priority {r.priority})",
                                  "lower", ORGAN_TOLERANCE_GY, gy))
    for name in ("rGTV", "PTV"):
        if any(f"{name} D98%" in m for m in metrics.values()):
            crit.append(Criterion(f"{name} D98%", f"{name} coverage D98%", "higher", TARGET_TOLERANCE_GY, gy))
    if any("PTV D2%" in m for m in metrics.values()):
        crit.append(Criterion("PTV D2%", "PTV hotspot D2%", "lower", TARGET_TOLERANCE_GY, gy))
        crit.append(Criterion("PTV V107%", "PTV hotspot V107%", "lower", HOTSPOT_VOLUME_TOLERANCE_PCT, "%"))
    crit.append(Criterion("CI", "conformity index (Paddick)", "higher", CI_TOLERANCE, ""))
    crit.append(Criterion("R50", "R50 (50 % isodose volume / PTV volume)", "lower", R50_TOLERANCE, ""))
    integral = [v for m in metrics.values() if (v := m.get("integral dose")) is not None and np.isfinite(v)]
    tol = INTEGRAL_DOSE_TOLERANCE_REL * float(np.mean(integral)) if integral else 0.0
    crit.append(Criterion("integral dose", "integral dose of the new course", "lower", tol, f"{gy} L"))
    for t in ("20", "40"):
        key = f"brain new_course_eqd2 V{t}Gy_cc"
        if any(key in m for m in metrics.values()):
            crit.append(Criterion(key, f"normal brain V{t} Gy EQD2 (new course)", "lower", BRAIN_VOLUME_TOLERANCE_CC,
                                  "cc"))
    crit.append(Criterion("fall-off 90-50", "dose fall-off 90 % -> 50 % (median)", "lower", FALLOFF_TOLERANCE_MM, "mm"))
    crit.append(Criterion("fall-off 80-20", "dose fall-off 80 % -> 20 % (median)", "lower", FALLOFF_TOLERANCE_MM, "mm"))
    return crit


def comparison_summary(verdicts: dict[str, str], metrics: dict[str, dict[str, float | None]],
                       criteria: list[Criterion], distal: dict[str, dict] | None = None) -> tuple[list[dict], list[str]]:
    """Summary rows (per criterion: values, winner) and sentences.

    Args:
        verdicts: modality -> overall verdict of its independent evaluation.
        metrics: modality -> metric key -> value.
        criteria: from :func:`criteria_for`.
        distal: particle modality -> {'nominal': [structures], 'range_error': [structures flagged only
            with the range error], 'range_error_pct': float}.
    """
    rows, sentences = summarise(metrics, criteria)
    mods = list(verdicts)
    head = "; ".join(f"{m} plan: {verdicts[m].upper()}" for m in mods)
    out = [f"{head[0].upper()}{head[1:]} (independent evaluation against the protocol)."]
    failing = [m for m in mods if verdicts[m] == "fail"]
    incomplete = [m for m in mods if verdicts[m] == "incomplete"]
    ok = [m for m in mods if m not in failing and m not in incomplete]
    if len(failing) == len(mods):
        out.append("Neither plan meets every priority-1 limit: neither can be used as is.")
    elif failing and ok:
        out.append(f"Only the {' and '.join(ok)} plan meets every priority-1 limit; the {' and '.join(failing)} plan "
                   f"fails at least one and cannot be used as is.")
    elif failing:
        out.append(f"The {' and '.join(failing)} plan fails at least one priority-1 limit and cannot be used as is.")
    if incomplete:
        # an organ that is not contoured is not a limit met: such a plan is never called the better one
        out.append(f"The {' and '.join(incomplete)} plan{'s are' if len(incomplete) > 1 else ' is'} incomplete: a "
                   f"priority-1 organ is not contoured, so its line could not be evaluated (declare it with --absent "
                   f"if it lies outside the field).")
    out.extend(sentences)
    for m, d in (distal or {}).items():
        nominal, extra = d.get("nominal", []), d.get("range_error", [])
        pct = d.get("range_error_pct", 0.0)
        if nominal:
            verb = "lies" if len(nominal) == 1 else "lie"
            text = (f"Distal-end warning ({m}): {', '.join(nominal)} {verb} in the distal fall-off region of "
                    f"significant spots.")
            if extra:
                text += f" With a +/-{pct:g} % range error also: {', '.join(extra)}."
            out.append(text)
        elif extra:
            out.append(f"Distal-end warning ({m}): no priority-1/2 organ at the end of range nominally, but with a "
                       f"+/-{pct:g} % range error: {', '.join(extra)}.")
        else:
            out.append(f"No priority-1 or priority-2 organ lies in the distal fall-off region of a significant {m} "
                       f"spot, nominally or with a +/-{pct:g} % range error.")
    return rows, out
