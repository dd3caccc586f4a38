"""report.html: one self-contained page (figures embedded) built from plan.json content.

The header says what was planned, when, with what and on which grid; the evaluation table states
for every line the quantity it limits in words and each limit with its direction; the figures carry
captions; the reporting block is a table. Everything is read from plan.json content, with
fallbacks for keys that older plan.json files lack.
"""
from __future__ import annotations

import base64
import html
from pathlib import Path

# 'not met' (missed its desirable level with no acceptable limit set) reads as a miss, like 'fail'
VERDICT_COLOUR = {"desirable": "#c8efc8", "acceptable": "#fff0b3", "not met": "#f9c9b8", "fail": "#f7b4b4",
                  "not evaluated": "#e0e0e0", "absent": "#d4d4d4", "incomplete": "#ffb870"}
DISCLAIMER = "For research and plan-quality studies; not for clinical use without independent verification"
FIGURE_CAPTIONS = {
    "dvh.png": "DVHs drawn from the samples the evaluation read its values on ({fine}). Left: cumulative EQD2 "
               "(prior course after recovery + new course, each line at its own alpha/beta), log volume axis; "
               "right: new-course dose of the target lines. Dots are the values in the evaluation table; short "
               "dashed / dotted segments are the desirable / acceptable limits. Left/right organs: solid / dashed.",
    "dose.png": "Axial, coronal and sagittal slices through the rGTV centre, in patient LPS mm (axial seen from the "
                "feet: patient right on the image left), cropped to the body. Top: new-course dose ({unit}) with "
                "isodose lines at 50 / 95 / 107 % of Rx; bottom: cumulative EQD2 ({unit}) with isodose lines at the "
                "priority-1 cumulative limits.",
    "dvh_bands.png": "DVH bands of the robust evaluation, from the samples the evaluation read in each scenario. Left: "
                     "cumulative EQD2 ({unit}) of the priority-1 organ lines; right: new-course dose of the targets. "
                     "The line is the nominal DVH, the band the lowest to the highest DVH over the scenarios.",
}


def _esc(x) -> str:
    return html.escape(str(x))


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _esc(value)


def _table(rows: list[dict], columns: list[tuple[str, str]], colour_key: str | None = None,
           raw: frozenset[str] = frozenset()) -> str:
    """Rows of dicts as a table; cells of ``raw`` columns are HTML already."""
    head = "".join(f"<th>{_esc(title)}</th>" for _, title in columns)
    body = []
    for r in rows:
        style = f' style="background:{VERDICT_COLOUR.get(r.get(colour_key), "#fff")}"' if colour_key else ""
        cells = "".join(f"<td>{r.get(k, '-') if k in raw else _fmt(r.get(k))}</td>" for k, _ in columns)
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def dose_info(plan: dict) -> dict:
    """plan.json's ``dose`` object; for files without it, inferred from the rows' units."""
    if plan.get("dose"):
        return plan["dose"]
    rbe_rows = any(r.get("unit") == "Gy(RBE)" for r in plan.get("evaluation", []))
    return {"quantity": "RBE-weighted" if rbe_rows else "physical", "unit": "Gy(RBE)" if rbe_rows else "Gy",
            "rbe": None, "rbe_model": "not recorded"}


def quantity_words(row: dict, dose_unit: str) -> str:
    """What a line limits, in words."""
    if row.get("cumulative"):
        return "cumulative EQD2"
    return "new-course dose, Gy(RBE)" if dose_unit == "Gy(RBE)" else "new-course physical dose"


def limit_words(limit, sense: str | None, unit: str | None) -> str:
    """A limit with its direction, e.g. '&lt;= 67.50 Gy' (max lines) or '&gt;= 61.56 Gy' (min lines)."""
    if limit is None:
        return "-"
    sign = "&gt;=" if sense == "min" else "&lt;="
    return f"{sign} {_fmt(float(limit))} {_esc(unit or '')}".rstrip()


def _evaluation_rows(plan: dict, dose_unit: str) -> list[dict]:
    out = []
    for r in plan.get("evaluation", []):
        unit = r.get("unit")
        out.append(dict(r, quantity=quantity_words(r, dose_unit),
                        desirable_txt=limit_words(r.get("desirable"), r.get("sense"), unit),
                        acceptable_txt=limit_words(r.get("acceptable"), r.get("sense"), unit)))
    return out


def _header(plan: dict) -> str:
    case = plan.get("case") or {}
    grid = case.get("grid") or {}
    d = dose_info(plan)
    shape = " x ".join(str(n) for n in grid.get("shape", [])) or "not recorded"
    spacing = " x ".join(f"{float(s):g}" for s in grid.get("spacing_mm", []))
    grid_txt = f"{shape} voxels (z, y, x)" + (f", spacing {spacing} mm" if spacing else "")
    rbe = d.get("rbe")
    dose_txt = f"{d.get('quantity')} dose in {d.get('unit')}"
    if d.get("rbe_model") == "constant" and rbe is not None:
        dose_txt += f", constant RBE {float(rbe):g}"
    elif d.get("rbe_model") == "none":
        dose_txt += " (photons: no RBE)"
    rx = plan.get("prescription", {})
    versions = ", ".join(f"{k} {v}" for k, v in plan.get("versions", {}).items())
    items = [("case", case.get("name", "not recorded")),
             ("written (UTC)", plan.get("created_utc", "not recorded")),
             ("protocol", plan.get("protocol", {}).get("name", "")),
             ("modality", plan.get("modality")), ("dose", dose_txt),
             ("prescription", f"{_fmt(rx.get('total_gy'))} {d.get('unit', 'Gy')} in {_fmt(rx.get('n_fractions'), 0)} x "
                              f"{_fmt(rx.get('dose_per_fraction_gy'))} ({rx.get('fractionation')}); "
                              f"{_fmt(rx.get('eqd2_gy'))} {d.get('unit', 'Gy')} EQD2 (a/b {_fmt(rx.get('alpha_beta_gy'), 1)} Gy)"),
             ("dose grid", grid_txt), ("CT calibration", ct_calibration_words(plan)),
             ("beams", f"{len(plan.get('beams', []))}; engine {plan.get('engine', '')}"),
             ("planning settings", _settings_text(plan.get("settings"))),
             ("versions", versions)]
    bm = plan.get("beam_model")
    if bm:
        items.insert(-1, ("beam model", f"{bm.get('name')} ({bm.get('source')})"))
    body = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in items)
    return f"<table class='header'>{body}</table>"


def _settings_text(settings) -> str:
    """The planning settings that differ from the defaults (plan.json ``settings``), or 'defaults'."""
    if not isinstance(settings, dict):
        return "not recorded"
    from ..planning_settings import PlanningSettings

    defaults = PlanningSettings(engine=settings.get("engine", PlanningSettings.engine)).to_dict()
    changed = []
    for key, value in settings.items():
        if isinstance(value, dict):
            changed += [f"{key}.{k} = {v}" for k, v in value.items() if defaults.get(key, {}).get(k) != v]
        elif defaults.get(key) != value:
            changed.append(f"{key} = {value}")
    return "; ".join(changed) if changed else "defaults (see plan.json settings)"


def ct_calibration_words(plan: dict) -> str:
    """plan.json's ``ct_calibration`` in words: its source and, for a file, the start of its SHA-256."""
    cal = plan.get("ct_calibration")
    if not cal:
        return "not recorded"
    if cal.get("source") == "default stoichiometric":
        return "default stoichiometric (generic scanner, ICRP 110 tissues; a clinic should supply its own)"
    digest = cal.get("sha256")
    return f"{cal.get('source')}" + (f" (sha256 {digest[:16]}...)" if digest else "")


def _flat(value, digits: int = 2) -> str:
    """A reporting value as HTML: numbers rounded, small tables as nested tables."""
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_flat(v, digits)}</td></tr>" for k, v in value.items())
        return f"<table class='inner'>{rows}</table>"
    if isinstance(value, list):
        return "; ".join(_flat(v, digits) for v in value)
    return _fmt(value, digits)


def _reporting_table(reporting: dict) -> str:
    rows = "".join(f"<tr><th>{_esc(k.replace('_', ' '))}</th><td>{_flat(v)}</td></tr>"
                   for k, v in reporting.items() if k not in ("per_structure", "prior_courses"))
    return f"<table class='reporting'>{rows}</table>"


PRIOR_COURSE_COLUMNS = [("course", "course"), ("n_fractions", "fractions"), ("interval_months", "interval (months)"),
                        ("modality", "modality"), ("dose_type", "dose type"), ("rbe", "RBE"),
                        ("prescription_gy", "prescription (Gy)"), ("max_dose_gy", "max dose (Gy)"),
                        ("description", "description"), ("mapping", "mapping onto the case grid")]
COURSE_METRICS = (("D0.03cc_gy", "D0.03cc"), ("Dmax_gy", "Dmax"), ("Dmean_gy", "Dmean"))


def _prior_courses_section(reporting: dict) -> str:
    """Several prior courses: each course, and the priority-1 organs' effective prior EQD2 per course
    and summed (plan.json ``reporting.prior_courses`` and ``per_structure[*].prior_eqd2_by_course``)."""
    courses = reporting.get("prior_courses")
    if not courses:
        return ""
    head = "".join(f"<th>{_esc(t)} (Gy)</th>" for _, t in COURSE_METRICS)
    body = []
    for name, entry in (reporting.get("per_structure") or {}).items():
        for c in entry.get("prior_eqd2_by_course") or []:
            label = (f"course {c.get('course')}: {c.get('n_fractions')} fx, {_fmt(c.get('interval_months'), 1)} "
                     f"months, recovered {_fmt(c.get('recovered_fraction'), 3)}")
            body.append(f"<tr><td>{_esc(name)}</td><td>{_fmt(entry.get('alpha_beta_gy'))}</td><td>{_esc(label)}</td>"
                        + "".join(f"<td>{_fmt(c.get(m))}</td>" for m, _ in COURSE_METRICS) + "</tr>")
        if entry.get("prior_eqd2_by_course"):
            for kind, label in (("prior_eqd2_after_recovery", "all prior courses (voxel-wise sum)"),
                                ("cumulative_eqd2", "cumulative: prior courses + new course")):
                values = entry.get(kind) or {}
                body.append(f"<tr><td>{_esc(name)}</td><td>{_fmt(entry.get('alpha_beta_gy'))}</td><td><b>"
                            f"{_esc(label)}</b></td>" + "".join(f"<td>{_fmt(values.get(m))}</td>"
                                                                for m, _ in COURSE_METRICS) + "</tr>")
    organs = (f"<table><thead><tr><th>priority-1 organ</th><th>a/b (Gy)</th><th>EQD2 after recovery of</th>{head}"
              f"</tr></thead><tbody>{''.join(body)}</tbody></table>") if body else ""
    return (f"<h2>Prior courses ({len(courses)})</h2><p>Each course's EQD2 is computed voxel by voxel with its own "
            "number of fractions and reduced by the recovered fraction at its own interval; the courses are then "
            "added voxel by voxel. A metric of the sum (e.g. its D0.03cc) is not the sum of the courses' metrics: "
            "their hottest voxels need not coincide.</p>"
            + _table(courses, PRIOR_COURSE_COLUMNS) + organs)


DOSE_KINDS = (("cumulative_eqd2", "cumulative EQD2"), ("prior_eqd2_after_recovery", "prior EQD2 (after recovery)"),
              ("new_eqd2", "new-course EQD2"), ("new_physical", "new-course physical"))


def _per_structure_table(per_structure: dict) -> str:
    """The reporting block's dose summary: one row per structure and dose kind, metrics in Gy."""
    metrics: list[str] = []
    for entry in per_structure.values():
        for kind, _ in DOSE_KINDS:
            for m in entry.get(kind, {}) or {}:
                if m not in metrics:
                    metrics.append(m)
    head = "".join(f"<th>{_esc(t)}</th>" for t in ("structure", "role", "volume (cc)", "a/b (Gy)", "dose"))
    head += "".join(f"<th>{_esc(m.replace('_gy', ''))} (Gy)</th>" for m in metrics)
    body = []
    for name, entry in per_structure.items():
        for kind, title in DOSE_KINDS:
            values = entry.get(kind)
            if not values:
                continue
            cells = [name, entry.get("role"), entry.get("volume_cc"), entry.get("alpha_beta_gy"), title]
            body.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
                        + "".join(f"<td>{_fmt(values.get(m))}</td>" for m in metrics) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figures(figures: list[Path], plan: dict) -> str:
    fine = plan.get("protocol", {}).get("options", {}).get("evaluation_fine_factor")
    fine_txt = "voxel centres" if fine == 1 else (f"{fine}x{fine}x{fine} sub-voxel samples per voxel" if fine
                                                   else "the evaluation's sub-voxel samples")
    unit = dose_info(plan).get("unit", "Gy")
    out = []
    for p in figures:
        if not p.is_file():
            continue
        caption = FIGURE_CAPTIONS.get(p.name, p.name).format(fine=fine_txt, unit=unit)
        out.append(f"<figure><img src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}' "
                   f"alt='{_esc(p.name)}'><figcaption><b>{_esc(p.name)}</b>: {_esc(caption)}</figcaption></figure>")
    return "".join(out)


def _declared(plan: dict) -> str:
    parts = []
    absent = plan.get("absent_structures") or {}
    if absent:
        items = "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in absent.items())
        parts.append(f"<h2>Structures declared absent</h2><p>Lines on these structures are reported as "
                     f"'absent', not evaluated.</p><ul>{items}</ul>")
    overrides = plan.get("input_overrides") or []
    if overrides:
        items = "".join(f"<li><code>{_esc(o.get('flag'))}</code>: {_esc(o.get('reason'))}</li>" for o in overrides)
        parts.append(f"<h2>Input accepted by explicit override</h2><ul class='warn'>{items}</ul>")
    return "".join(parts)


def _seconds(value) -> str:
    return "-" if value is None else f"{float(value):.1f}"


def render_report_html(plan: dict, figures: list[Path]) -> str:
    verdict = plan.get("verdict", "?")
    banner_colour = VERDICT_COLOUR.get(verdict, "#eee")
    fails = [r for r in plan.get("evaluation", []) if r.get("priority") == 1 and r.get("verdict") == "fail"]
    loud = ""
    if verdict == "fail":
        lines = "".join(f"<li>{_esc(r.get('structure'))} {_esc(r.get('metric'))}: "
                        f"{_fmt(r.get('value'))} {_esc(r.get('unit', ''))}</li>" for r in fails)
        loud = f"<div class='alarm'><b>PRIORITY-1 LIMIT NOT MET: this plan must not be used as is.</b><ul>{lines}</ul></div>"
    elif verdict == "incomplete":
        loud = ("<div class='alarm'><b>INCOMPLETE: a priority-1 line could not be evaluated; the plan cannot be "
                "accepted against the protocol.</b></div>")
    d = dose_info(plan)
    evaluation = _table(_evaluation_rows(plan, d.get("unit", "Gy")), [
        ("priority", "priority"), ("structure", "structure"), ("metric", "metric"), ("quantity", "dose quantity"),
        ("value", "value"), ("unit", "unit"), ("desirable_txt", "desirable"), ("acceptable_txt", "acceptable"),
        ("margin", "margin"), ("verdict", "verdict"), ("note", "note")], colour_key="verdict",
        raw=frozenset({"desirable_txt", "acceptable_txt"}))
    stages = _table([dict(s, slip=(s.get("slip") or {}).get("value_gy"), notes="; ".join(s.get("notes", [])),
                          seconds=_seconds(s.get("seconds")))
                     for s in plan.get("stages", [])],
                    [("priority", "priority"), ("name", "stage"), ("status", "status"), ("objective", "objective"),
                     ("slip", f"slip ({d.get('unit', 'Gy')})"), ("seconds", "time (s)"), ("notes", "notes")])
    diagnosis = ("<h2>Diagnosis</h2><ul>" + "".join(f"<li>{_esc(x)}</li>" for x in plan["diagnosis"]) + "</ul>"
                 if plan.get("diagnosis") else "")
    notes = "".join(f"<li>{_esc(n)}</li>" for n in plan.get("notes", []))
    timing = ", ".join(f"{k} {_seconds(v)} s" for k, v in plan.get("timing_s", {}).items())
    case_name = (plan.get("case") or {}).get("name", "")
    reporting = plan.get("reporting", {}) or {}
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Re-irradiation plan {_esc(case_name)}: {_esc(verdict)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }}
td, th {{ border: 1px solid #999; padding: 3px 6px; text-align: left; vertical-align: top; }}
th {{ background: #ddd; }}
table.header th, table.reporting th {{ width: 11em; }}
table.inner {{ margin: 0; font-size: 1em; }}
table.inner th {{ background: #eee; font-weight: normal; }}
.banner {{ background: {banner_colour}; padding: 0.8em; font-size: 1.3em; border: 1px solid #888; }}
.alarm {{ background: #d00; color: #fff; padding: 0.8em; margin: 0.8em 0; font-size: 1.1em; }}
.disclaimer {{ border-left: 4px solid #c60; padding: 0.3em 0.8em; background: #fff6ec; }}
.warn li {{ color: #8a4b00; }}
figure {{ margin: 1em 0; }}
figcaption {{ font-size: 0.9em; max-width: 1300px; }}
img {{ max-width: 100%; border: 1px solid #ccc; }}
</style></head><body>
<h1>Re-irradiation plan: {_esc(case_name or 'case')}</h1>
{_header(plan)}
<p class="disclaimer">{DISCLAIMER}.</p>
<div class="banner">Overall verdict: <b>{_esc(verdict)}</b> &mdash; {_esc(plan.get('verdict_detail', ''))}</div>
{loud}
<p>The verdict comes from the independent evaluation of the final dose, not from the optimizer; the overall
verdict is decided by the priority-1 lines.</p>
<h2>Evaluation against the protocol</h2>{evaluation}
{_declared(plan)}
{_robust_section(plan.get("robust"))}
{diagnosis}
<h2>Optimization stages</h2><p>Engine: {_esc(plan.get('engine', ''))}.</p>{stages}
<h2>Figures</h2>{_figures(figures, plan)}
<h2>Reporting (ESTRO-EORTC re-irradiation consensus)</h2>{_reporting_table(reporting)}
{_prior_courses_section(reporting)}
{_per_structure_table(reporting.get('per_structure', {}) or {})}
<h2>Notes</h2><ul>{notes}</ul>
<p>Time: {_esc(timing)}.</p>
</body></html>
"""


def _robust_section(robust) -> str:
    """The robust evaluation (plan.json ``robust``): every line's nominal and worst value with its scenario."""
    if not robust:
        return ""
    s = robust.get("settings", {})
    head = (f"<h2>Robust evaluation</h2><p>{len(robust.get('scenarios', [])) - 1} scenarios besides the nominal "
            f"one: setup {_fmt(s.get('setup_mm'))} mm along &plusmn;x, &plusmn;y, &plusmn;z"
            + (f"; range {_fmt(s.get('range_pct'))} % + {_fmt(s.get('range_mm'))} mm over- and undershoot"
               if any(sc.get("range_error", {}).get("relative") for sc in robust.get("scenarios", [])) else "")
            + (", every range error at every setup position" if s.get("combined") else "")
            + ". The prior course's dose stays fixed in the patient; the new course's dose is recomputed per "
              "scenario with the plan's weights. The overall verdict above is the nominal plan's.</p>")
    alarm = "" if robust.get("priority1_holds") else \
        "<div class='alarm'>PRIORITY 1 DOES NOT HOLD IN EVERY SCENARIO: see the worst cases below.</div>"
    table = _table([dict(r, verdict=r.get("verdict_worst")) for r in robust.get("rows", [])],
                   [("priority", "priority"), ("structure", "structure"), ("metric", "metric"), ("unit", "unit"),
                    ("nominal", "nominal"), ("verdict_nominal", "nominal verdict"), ("worst", "worst case"),
                    ("worst_scenario", "worst scenario"), ("verdict_worst", "worst-case verdict")],
                   colour_key="verdict")
    return head + alarm + table


def write_report_html(plan: dict, path: Path, figures: list[Path]) -> None:
    path.write_text(render_report_html(plan, figures), encoding="utf-8")
