"""study.html: the study's summary page, with matplotlib PNGs in ``figures/``.

- verdict counts (bars stacked by modality; failed variants counted by error class);
- for each swept variable (and the case, when there are several), the evaluated metrics of
  priority 1 and 2 against its values, one panel per metric, points coloured by modality, the
  desirable (dashed) and acceptable (dotted) limits drawn where every plan shares them;
- the table of every plan: variables, verdict and the metrics (units in the column names), each
  metric's cell coloured by its line's verdict.
"""
from __future__ import annotations

import html
import io
import math
from pathlib import Path

from ..atomic import atomic_file

MODALITY_COLOURS = {"photon": "#1f77b4", "proton": "#d62728", "carbon": "#2ca02c"}
MAX_PANELS = 8
# a metric cell's background from its line's verdict (as in report.html: met green, acceptable amber)
VERDICT_COLOURS = {"desirable": "#e3f4e3", "acceptable": "#fff3cd", "not met": "#fde2e2", "fail": "#f8c8c8",
                   "absent": "#eeeeee", "not evaluated": "#eeeeee"}


def write_page(out: Path, spec, table, lines: dict, run) -> Path:
    """Write figures/*.png and study.html; returns the page's path."""
    import matplotlib

    matplotlib.use("Agg")
    figures: list[tuple[str, str]] = []
    if not table.empty:
        figures.append(("Verdicts", _save(out, "verdicts.png", _verdict_figure(table))))
        metrics = _metric_columns(table, lines)
        for variable in _plotted_variables(spec, table):
            if metrics:
                fig = _metric_figure(table, variable, metrics, lines)
                figures.append((f"Metrics against {variable}", _save(out, f"metrics_by_{_safe(variable)}.png", fig)))
    page = _html(spec, table, figures, run)
    with atomic_file(out / "study.html", "w") as fh:
        fh.write(page)
    return out / "study.html"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _save(out: Path, name: str, fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    (out / "figures").mkdir(exist_ok=True)
    with atomic_file(out / "figures" / name, "wb") as fh:
        fh.write(buf.getvalue())
    return f"figures/{name}"


def _plotted_variables(spec, table) -> list[str]:
    """Swept variables as table columns, plus the varying case parameters (or the case)."""
    names = []
    if table["case"].nunique() > 1:
        params = [c for c in table.columns if c.startswith("case_") and table[c].nunique() > 1]
        names += params or ["case"]   # a varying phantom parameter says more than the case's name
    for s in spec.swept:
        col = "option_" + s[len("options."):] if s.startswith("options.") else s
        if col in table.columns and col not in ("gantry_angles_deg",) and table[col].nunique(dropna=False) > 1:
            names.append(col)
    return names


def _metric_columns(table, lines: dict) -> list[str]:
    """Value columns of priority 1 and 2 lines that hold numbers, priority order, at most MAX_PANELS."""
    cols = [c for c in lines if c in table.columns and lines[c]["priority"] <= 2 and table[c].notna().any()]
    cols.sort(key=lambda c: lines[c]["priority"])
    return cols[:MAX_PANELS]


def _verdict_figure(table):
    import matplotlib.pyplot as plt
    import numpy as np

    words = []
    for _, row in table.iterrows():
        if row["status"] == "failed":
            words.append(f"failed: {row.get('error_class')}")
        else:
            words.append(str(row.get("verdict", "done")))
    kinds = sorted(set(words))
    modalities = list(dict.fromkeys(table["modality"]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(kinds) + 2), 3.2))
    bottom = np.zeros(len(kinds))
    for m in modalities:
        counts = np.array([sum(1 for w, mm in zip(words, table["modality"]) if w == k and mm == m) for k in kinds])
        ax.bar(kinds, counts, bottom=bottom, color=MODALITY_COLOURS.get(m, "grey"), label=m)
        bottom += counts
    ax.set_ylabel("plans")
    ax.set_title("Verdict of each plan")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.legend(title="modality", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def _metric_figure(table, variable: str, metrics: list[str], lines: dict):
    import matplotlib.pyplot as plt

    values = list(dict.fromkeys(table[variable].astype(str)))
    try:  # numbers in numeric order
        values.sort(key=float)
    except ValueError:
        pass
    position = {v: i for i, v in enumerate(values)}
    modalities = list(dict.fromkeys(table["modality"]))
    ncol = min(4, len(metrics))
    nrow = math.ceil(len(metrics) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.8 * nrow), squeeze=False)
    for ax, col in zip(axes.ravel(), metrics):
        for mi, m in enumerate(modalities):
            sel = table[table["modality"] == m]
            xs = [position[str(v)] + 0.12 * (mi - (len(modalities) - 1) / 2) for v in sel[variable]]
            ax.plot(xs, sel[col], "o", color=MODALITY_COLOURS.get(m, "grey"), alpha=0.8, ms=5, label=m)
        info = lines.get(col, {})
        for which, style in (("desirable", "--"), ("acceptable", ":")):
            limit = info.get(which)
            if limit is not None and _shared_limit(table, col):
                ax.axhline(float(limit), color="black", ls=style, lw=0.8)
        ax.set_xlim(-0.5, len(values) - 0.5)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(values, fontsize=7, rotation=20)
        ax.set_title(col, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[len(metrics):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, title="modality", title_fontsize=7, loc="upper right")
    fig.suptitle(f"Priority 1-2 metrics against {variable} (dashed: desirable, dotted: acceptable limit)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def _shared_limit(table, col: str) -> bool:
    """A limit line is drawn only for cumulative-EQD2 metrics (Gy limits, the same in every plan);
    %Rx limits differ between fractionations."""
    return "_cumEQD2_" in col


def _html(spec, table, figures: list[tuple[str, str]], run) -> str:
    e = html.escape
    counts = ", ".join(f"{k}: {v}" for k, v in run.verdicts.items()) or "none"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>Study {e(spec.name)}</title>",
        "<style>body{font-family:sans-serif;margin:1.5em;max-width:1400px}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
        "th{background:#eee;position:sticky;top:0}td.t{text-align:left}.failed{background:#fdd}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
        f"<h1>Study {e(spec.name)}</h1>",
        f"<p>{e(spec.description)}</p>" if spec.description else "",
        f"<p>{run.n_jobs} plans: {len(spec.cases)} case(s) x {len(spec.variants)} variant(s); protocol "
        f"<code>{e(spec.protocol_path.name)}</code>. This run: {run.n_run} planned ({run.n_failed} failed) on "
        f"{run.n_influence} dose-influence matrices, {run.n_reused} kept from earlier runs, {run.wall_s:.0f} s. "
        f"Verdicts: {e(counts)}.</p>",
        "<p>Dose columns (<code>_Gy</code>) hold Gy for photon plans and Gy(RBE) for particle plans (RBE-weighted; "
        "column <code>dose_unit</code>); <code>cumEQD2</code> is the cumulative EQD2 of both courses, "
        "<code>new</code> the new course alone; <code>pct</code> is percent. Data: "
        "<a href='results.csv'>results.csv</a>, <a href='results.parquet'>results.parquet</a>, "
        "<a href='study.json'>study.json</a>.</p>",
    ]
    for title, src in figures:
        parts.append(f"<h2>{e(title)}</h2><img src='{e(src)}' alt='{e(title)}'>")
    parts.append("<h2>Plans</h2>")
    parts.append(_table_html(table))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _table_html(table) -> str:
    e = html.escape
    if table.empty:
        return "<p>No plan has a result yet.</p>"
    shown = [c for c in table.columns if not c.endswith("_verdict") and not c.endswith("_tier") and c != "notes"]
    head = "".join(f"<th>{e(c)}</th>" for c in shown)
    rows = []
    for _, row in table.iterrows():
        cls = " class='failed'" if row["status"] == "failed" else ""
        cells = []
        for c in shown:
            v = row[c]
            if isinstance(v, float):
                text = "" if math.isnan(v) else f"{v:.2f}"
                line_verdict = row.get(f"{c.rsplit('_', 2)[0]}_verdict")
                colour = VERDICT_COLOURS.get(str(line_verdict), "")
                style = f" style='background:{colour}' title='{e(str(line_verdict))}'" if colour else ""
                cells.append(f"<td{style}>{text}</td>")
            else:
                cells.append(f"<td class='t'>{'' if v is None else e(str(v))}</td>")
        rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<div style='overflow-x:auto'><table><tr>{head}</tr>{''.join(rows)}</table></div>"
