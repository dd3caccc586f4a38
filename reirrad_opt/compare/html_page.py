"""comparison.html: one self-contained page (figures embedded) built from comparison.json content."""
from __future__ import annotations

import base64
import html
from pathlib import Path

# one colour per verdict word on every page
from ..report.html_report import VERDICT_COLOUR

WIN_COLOUR = "#d6e9ff"
DISCLAIMER = "For research and plan-quality studies; not for clinical use without independent verification"
FIGURE_CAPTIONS = {
    "comparison.png": "Both plans' DVHs, each drawn from the samples its own evaluation read, so the markers are "
                      "the values in the tables (photon: solid line, circles; particle: dashed line, squares). "
                      "Left: cumulative EQD2 of the organ lines (prior course after recovery + new course, at each "
                      "line's alpha/beta), log volume axis; right: new-course dose of the target lines with 95 / 100 "
                      "/ 107 % of Rx. Short dashed / dotted segments: desirable / acceptable limits.",
    "falloff.png": "New-course dose (% of Rx) against distance outward from the PTV surface along the rays of the "
                   "fall-off metric: median over the rays with the 10-90 % band, per plan.",
    "slices.png": "Axial, coronal and sagittal slices through the rGTV centre in patient LPS mm (axial seen from the "
                  "feet: patient right on the image left), cropped to the body: each plan's new-course dose with "
                  "isodose lines at 95 and 107 % of Rx, and the difference particle - photon.",
}


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return _esc(value)


def _cell(text: str, colour: str | None = None) -> str:
    return f"<td style='background:{colour}'>{text}</td>" if colour else f"<td>{text}</td>"


def _table(head: list[str], rows: list[list[str]]) -> str:
    h = "".join(f"<th>{_esc(t)}</th>" for t in head)
    b = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{h}</tr></thead><tbody>{b}</tbody></table>"


def _criteria_table(c: dict, mods: list[str]) -> str:
    rows = []
    for r in c["criteria"]:
        cells = [_cell(_esc(r["criterion"]))]
        for m in mods:
            cells.append(_cell(_fmt(r["values"].get(m)), WIN_COLOUR if r["winner"] == m else None))
        cells += [_cell(_esc(r["unit"])), _cell(_esc(r["better"])), _cell(_fmt(r.get("tolerance"))),
                  _cell(_esc(r["winner"] or "no meaningful difference"))]
        rows.append(cells)
    return _table(["criterion", *mods, "unit", "better", "tolerance", "better plan"], rows)


def _limit(value, sense: str | None) -> str:
    """A limit with its direction ('&lt;=' for maximum lines, '&gt;=' for minimum lines)."""
    if value is None:
        return "-"
    if sense is None:
        return _fmt(value)
    return f"{'&gt;=' if sense == 'min' else '&lt;='} {_fmt(value)}"


def _senses(c: dict, mods: list[str]) -> dict[str, str]:
    """goal_id -> 'max' | 'min', from the first plan's evaluation rows in comparison.json."""
    plan = (c.get("plans") or {}).get(mods[0]) or {}
    return {r["goal_id"]: r.get("sense") for r in plan.get("evaluation", []) if "goal_id" in r}


def _structures_table(c: dict, mods: list[str]) -> str:
    rows = []
    senses = _senses(c, mods)
    for s in c["structures"]:
        sense = senses.get(s.get("goal_id"))
        cells = [_cell(_fmt(s["priority"])), _cell(_esc(s["structure"])), _cell(_esc(s["metric"])),
                 _cell("cumulative EQD2" if s["cumulative"] else "new-course dose"), _cell(_esc(s["unit"])),
                 _cell(_limit(s["desirable"], sense)), _cell(_limit(s["acceptable"], sense))]
        for m in mods:
            e = s.get(m, {})
            colour = VERDICT_COLOUR.get(e.get("verdict"))
            cells += [_cell(_fmt(e.get("value")), colour), _cell(_esc(e.get("verdict", "-")), colour)]
        rows.append(cells)
    head = ["P", "structure", "metric", "dose", "unit", "desirable", "acceptable"]
    for m in mods:
        head += [f"{m} value", f"{m} verdict"]
    return _table(head, rows)


def _robust_table(c: dict, mods: list[str]) -> str:
    """Nominal and worst-case values of every line, side by side (each plan's plan.json ``robust``)."""
    robust = {m: ((c.get("plans") or {}).get(m) or {}).get("robust") for m in mods}
    if not any(robust.values()):
        return ""
    head = ["P", "structure", "metric", "unit"]
    for m in mods:
        head += [f"{m} nominal", f"{m} worst", f"{m} worst scenario"]
    by_goal = {m: {r["goal_id"]: r for r in (robust[m] or {}).get("rows", [])} for m in mods}
    rows = []
    for s in c["structures"]:
        cells = [_cell(_fmt(s["priority"])), _cell(_esc(s["structure"])), _cell(_esc(s["metric"])), _cell(_esc(s["unit"]))]
        for m in mods:
            r = by_goal[m].get(s.get("goal_id"), {})
            colour = VERDICT_COLOUR.get(r.get("verdict_worst"))
            cells += [_cell(_fmt(r.get("nominal"))), _cell(_fmt(r.get("worst")), colour),
                      _cell(_esc(r.get("worst_scenario") or "-"))]
        rows.append(cells)
    holds = "; ".join(f"{m}: priority 1 {'holds in every scenario' if (robust[m] or {}).get('priority1_holds') else 'DOES NOT HOLD in every scenario'}"
                      f" ({len((robust[m] or {}).get('scenarios', [])) - 1} scenarios)" for m in mods if robust[m])
    return ("<h2>Robust evaluation: nominal and worst case</h2><p>Each plan evaluated with the patient shifted "
            "rigidly and, for the particle plan, with the range longer and shorter (docs/robustness.md); the "
            f"prior dose stays fixed in the patient. {_esc(holds)}. The verdicts above are the nominal ones.</p>"
            + _table(head, rows))


def _budget_table(c: dict, mods: list[str]) -> str:
    first = c["priority1_budget"][mods[0]]
    rows = []
    for i, b in enumerate(first):
        cells = [_cell(_esc(b["structure"])), _cell(_esc(b["metric"])), _cell(_fmt(b["alpha_beta_gy"], 1)),
                 _cell(_fmt(b["desirable_gy"])), _cell(_fmt(b["acceptable_gy"]))]
        for m in mods:
            bm = c["priority1_budget"][m][i]
            cells += [_cell(_fmt(bm["cumulative_eqd2_gy"])), _cell(_fmt(bm["remaining_desirable_gy"])),
                      _cell(_fmt(bm["remaining_acceptable_gy"]))]
        rows.append(cells)
    gy = _common_dose_unit(c, mods)
    head = ["organ", "metric", "a/b (Gy)", f"desirable ({gy})", f"acceptable ({gy})"]
    for m in mods:
        head += [f"{m}: cumulative ({gy})", f"{m}: left to desirable ({gy})", f"{m}: left to acceptable ({gy})"]
    return _table(head, rows)


def _dose_table(c: dict, mods: list[str]) -> str:
    d = c["dose_metrics"]

    def falloff(m, k):
        f = d[m]["falloff_mm"][k]
        return f"{_fmt(f['median_mm'], 1)} [{_fmt(f['min_mm'], 1)}-{_fmt(f['max_mm'], 1)}]"

    def brain(m, label, key):
        b = d[m].get("normal_brain") or {}
        return _fmt((b.get(label) or {}).get(key))

    gy = _common_dose_unit(c, mods)
    lines = [("conformity index (Paddick)", lambda m: _fmt(d[m]["conformity_index_paddick"], 3)),
             ("R50", lambda m: _fmt(d[m]["r50"])),
             (f"integral dose, new course ({gy} L)", lambda m: _fmt(d[m]["integral_dose_gy_litre"])),
             ("normal brain V20 Gy EQD2, new course (cc)", lambda m: brain(m, "new_course_eqd2", "V20Gy_cc")),
             ("normal brain V40 Gy EQD2, new course (cc)", lambda m: brain(m, "new_course_eqd2", "V40Gy_cc")),
             ("normal brain V20 Gy EQD2, cumulative (cc)", lambda m: brain(m, "cumulative_eqd2", "V20Gy_cc")),
             ("normal brain V40 Gy EQD2, cumulative (cc)", lambda m: brain(m, "cumulative_eqd2", "V40Gy_cc")),
             ("fall-off 90 -> 50 % (mm): median [range]", lambda m: falloff(m, "90-50")),
             ("fall-off 80 -> 20 % (mm): median [range]", lambda m: falloff(m, "80-20"))]
    rows = [[_cell(_esc(label))] + [_cell(fn(m)) for m in mods] for label, fn in lines]
    for name in next(iter(c["targets"].values()), {}):
        for metric in c["targets"][mods[0]][name]:
            unit = "%" if metric.startswith("V") else gy
            rows.append([_cell(_esc(f"{name} {metric} ({unit})"))] +
                        [_cell(_fmt(c["targets"][m].get(name, {}).get(metric))) for m in mods])
    return _table(["metric", *mods], rows)


def _common_dose_unit(c: dict, mods: list[str]) -> str:
    """The unit both plans' doses read in side by side: Gy(RBE) when a particle plan is compared (a photon
    Gy is a Gy(RBE) at RBE 1), else Gy; content without a plan's unit reads it from the modality."""
    dose = c.get("dose") or {}
    units = [(dose.get(m) or {}).get("unit") or ("Gy" if m == "photon" else "Gy(RBE)") for m in mods]
    return "Gy(RBE)" if "Gy(RBE)" in units else "Gy"


def _dose_units(c: dict, mods: list[str]) -> str:
    """One sentence per plan: which dose it was optimized and judged on (comparison.json ``dose``)."""
    dose = c.get("dose") or {}
    parts = [f"{m}: {d['quantity']} dose in {d['unit']}" + (f" (constant RBE {d['rbe']:g})" if d.get("rbe_model") == "constant"
                                                           else "") for m in mods if (d := dose.get(m))]
    return "; ".join(parts) or "not recorded"


def render_comparison_html(c: dict, figures: list[Path]) -> str:
    """The page for comparison.json content ``c`` with the figures embedded."""
    mods = c["modalities"]
    banners = "".join(
        f"<div class='banner' style='background:{VERDICT_COLOUR.get(c['verdicts'][m], '#eee')}'>"
        f"<b>{_esc(m)}</b> plan: <b>{_esc(c['verdicts'][m].upper())}</b> &mdash; "
        f"{_esc(c['verdict_detail'][m])}</div>" for m in mods)
    alarm = ""
    failing = [m for m in mods if c["verdicts"][m] == "fail"]
    if failing:
        alarm = (f"<div class='alarm'><b>PRIORITY-1 LIMIT NOT MET by the {_esc(' and '.join(failing))} plan: "
                 f"it must not be used as is.</b></div>")
    summary = "".join(f"<li>{_esc(s)}</li>" for s in c["summary"])
    distal = ""
    for m, rep in c["distal_end"].items():
        items = "".join(f"<li>{_esc(w)}</li>" for w in rep["warnings"]) or "<li>none</li>"
        distal += (f"<h3>{_esc(m)}: distal-end check</h3><p>{_esc(rep['definition'])}.</p><ul class='warn'>{items}</ul>")
    imgs = "".join(
        f"<figure><img src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}' alt='{_esc(p.name)}'>"
        f"<figcaption><b>{_esc(p.name)}</b>: {_esc(FIGURE_CAPTIONS.get(p.name, ''))}</figcaption></figure>"
        for p in figures if p.is_file())
    defs = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in c["definitions"].items())
    notes = "".join(f"<li>{_esc(n)}</li>" for n in c["notes"])
    params = _esc(", ".join(f"{k} {v}" for k, v in c["parameters"].items()))
    p = c["protocol"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>IMRT versus particle comparison: {_esc(c['case'])}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }}
td, th {{ border: 1px solid #999; padding: 3px 6px; text-align: left; }}
th {{ background: #ddd; }}
.banner {{ padding: 0.6em; margin: 0.3em 0; font-size: 1.1em; border: 1px solid #888; }}
.alarm {{ background: #d00; color: #fff; padding: 0.8em; margin: 0.8em 0; font-size: 1.1em; }}
.warn li {{ color: #8a4b00; }}
.disclaimer {{ border-left: 4px solid #c60; padding: 0.3em 0.8em; background: #fff6ec; }}
figcaption {{ font-size: 0.9em; max-width: 1300px; }}
img {{ max-width: 100%; border: 1px solid #ccc; }}
</style></head><body>
<h1>IMRT versus {_esc(mods[1])}: case {_esc(c['case'])}</h1>
<p class="disclaimer">{DISCLAIMER}.</p>
<p>Both plans: same anatomy, targets and prior course; protocol <b>{_esc(p['name'])}</b>, {_esc(p['fractionation'])}
(Rx {_fmt(p['rx_gy'], 1)} Gy), {_esc(p['recovery'])}. Verdicts come from the independent evaluation of each final dose.</p>
<p><b>Dose:</b> {_esc(_dose_units(c, mods))}. Photon Gy and particle Gy(RBE) compare directly (RBE 1 for photons).</p>
{banners}{alarm}
<h2>Summary</h2><ul>{summary}</ul>
<h2>Criteria</h2>{_criteria_table(c, mods)}
<h2>Distal end of range</h2>{distal}
<h2>Protocol lines side by side</h2>{_structures_table(c, mods)}
{_robust_table(c, mods)}
<h2>Remaining priority-1 EQD2 budget</h2>{_budget_table(c, mods)}
<h2>Dose distribution metrics</h2>{_dose_table(c, mods)}
<h2>Figures</h2>{imgs}
<h2>Definitions</h2><ul>{defs}</ul>
<h2>Notes</h2><ul>{notes}</ul>
<p>Parameters: {params}.</p>
</body></html>
"""


def write_comparison_html(c: dict, path: Path, figures: list[Path]) -> None:
    path.write_text(render_comparison_html(c, figures), encoding="utf-8")
