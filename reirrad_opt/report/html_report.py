"""report.html: one self-contained page (figures embedded) built from plan.json content."""
from __future__ import annotations

import base64
import html
from pathlib import Path

VERDICT_COLOUR = {"desirable": "#c8efc8", "acceptable": "#fff0b3", "fail": "#f7b4b4", "not evaluated": "#e0e0e0"}


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def _table(rows: list[dict], columns: list[tuple[str, str]], colour_key: str | None = None) -> str:
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in columns)
    body = []
    for r in rows:
        style = f' style="background:{VERDICT_COLOUR.get(r.get(colour_key), "#fff")}"' if colour_key else ""
        body.append(f"<tr{style}>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k, _ in columns) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _plain(value) -> str:
    """A reporting value as text: floats with 2 decimals, tables as 'key: value; ...'."""
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_plain(x) for x in value)
    return str(value)


def _dict_list(d: dict) -> str:
    items = [f"<li><b>{html.escape(str(k))}</b>: {html.escape(_plain(v))}</li>"
             for k, v in d.items() if k != "per_structure"]
    return "<ul>" + "".join(items) + "</ul>"


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
    head = "".join(f"<th>{html.escape(t)}</th>" for t in ("structure", "role", "volume (cc)", "a/b (Gy)", "dose"))
    head += "".join(f"<th>{html.escape(m.replace('_gy', ''))} (Gy)</th>" for m in metrics)
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


def render_report_html(plan: dict, figures: list[Path]) -> str:
    verdict = plan.get("verdict", "?")
    banner_colour = VERDICT_COLOUR.get(verdict, "#eee")
    fails = [r for r in plan.get("evaluation", []) if r.get("priority") == 1 and r.get("verdict") == "fail"]
    loud = ""
    if verdict == "fail":
        lines = "".join(f"<li>{html.escape(str(r.get('structure')))} {html.escape(str(r.get('metric')))}: "
                        f"{_fmt(r.get('value'))} {html.escape(str(r.get('unit', '')))}</li>" for r in fails)
        loud = f"<div class='alarm'><b>PRIORITY-1 LIMIT NOT MET: this plan must not be used as is.</b><ul>{lines}</ul></div>"
    rx = plan.get("prescription", {})
    evaluation = _table(plan.get("evaluation", []), [
        ("priority", "priority"), ("structure", "structure"), ("metric", "metric"), ("cumulative", "cumulative EQD2"),
        ("value", "value"), ("unit", "unit"), ("desirable", "desirable"), ("acceptable", "acceptable"),
        ("margin", "margin"), ("verdict", "verdict"), ("note", "note")], colour_key="verdict")
    stages = _table([dict(s, slip=(s.get("slip") or {}).get("value_gy"), notes="; ".join(s.get("notes", [])))
                     for s in plan.get("stages", [])],
                    [("priority", "priority"), ("name", "stage"), ("status", "status"), ("objective", "objective"),
                     ("slip", "slip (Gy)"), ("seconds", "time (s)"), ("notes", "notes")])
    imgs = "".join(
        f"<figure><img src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}' "
        f"alt='{html.escape(p.name)}'><figcaption>{html.escape(p.name)}</figcaption></figure>"
        for p in figures if p.is_file())
    diagnosis = ("<h2>Diagnosis</h2><ul>" + "".join(f"<li>{html.escape(d)}</li>" for d in plan["diagnosis"]) + "</ul>"
                 if plan.get("diagnosis") else "")
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in plan.get("notes", []))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Re-irradiation plan: {html.escape(str(verdict))}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin-bottom: 1em; }}
td, th {{ border: 1px solid #999; padding: 3px 6px; text-align: left; }}
th {{ background: #ddd; }}
.banner {{ background: {banner_colour}; padding: 0.8em; font-size: 1.3em; border: 1px solid #888; }}
.alarm {{ background: #d00; color: #fff; padding: 0.8em; margin: 0.8em 0; font-size: 1.1em; }}
img {{ max-width: 100%; border: 1px solid #ccc; }}
</style></head><body>
<h1>Re-irradiation plan</h1>
<div class="banner">Overall verdict: <b>{html.escape(str(verdict))}</b> &mdash; {html.escape(str(plan.get('verdict_detail', '')))}</div>
{loud}
<p>Protocol <b>{html.escape(str(plan.get('protocol', {}).get('name', '')))}</b>; modality <b>{html.escape(str(plan.get('modality')))}</b>;
prescription {_fmt(rx.get('eqd2_gy'))} Gy EQD2 as {_fmt(rx.get('n_fractions'), 0)} x {_fmt(rx.get('dose_per_fraction_gy'))} Gy
({html.escape(str(rx.get('fractionation')))}, {_fmt(rx.get('total_gy'))} Gy physical); {len(plan.get('beams', []))} beams.
The verdict comes from the independent evaluation of the final dose, not from the optimizer.</p>
<h2>Evaluation against the protocol</h2>{evaluation}
{diagnosis}
<h2>Optimization stages</h2><p>Engine: {html.escape(str(plan.get('engine', '')))}.</p>{stages}
<h2>Figures</h2>{imgs}
<h2>Reporting (ESTRO-EORTC re-irradiation consensus)</h2>{_dict_list(plan.get('reporting', {}))}
{_per_structure_table(plan.get('reporting', {}).get('per_structure', {}) or {})}
<h2>Notes</h2><ul>{notes}</ul>
<p>Timing (s): {html.escape(', '.join(f'{k} {v}' for k, v in plan.get('timing_s', {}).items()))}.
Versions: {html.escape(', '.join(f'{k} {v}' for k, v in plan.get('versions', {}).items()))}.</p>
</body></html>
"""


def write_report_html(plan: dict, path: Path, figures: list[Path]) -> None:
    path.write_text(render_report_html(plan, figures), encoding="utf-8")
