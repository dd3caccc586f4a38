"""Figures of a plan: DVHs drawn from the evaluation's own samples (dvh.png) and dose slices in
patient millimetres with isodose lines (dose.png).

Every DVH curve is an :class:`~reirrad_opt.evaluate.curves.EvaluationCurve`: the samples (fine
factor, sample points, quantity) the evaluation read its values on, so a dose read off a curve at
a row's volume is the row's value. Figures use matplotlib's Figure API with an Agg canvas (no
global backend or pyplot state).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..evaluate.curves import EvaluationCurve, evaluation_curves
from ..evaluate.metrics import resolve
from ..protocol import parse_metric
from .case_figure import structure_colour
from .slices import body_box_mm, draw_outlines_and_frame, orthogonal_views

# dark / light pairs (tab20): a left organ takes the dark colour, solid; its right partner the light one, dashed
_PAIRS = ("#1f77b4", "#6baed6", "#d62728", "#ff9896", "#2ca02c", "#98df8a", "#9467bd", "#c5b0d5", "#ff7f0e",
          "#ffbb78", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#17becf", "#9edae5", "#7f7f7f", "#c7c7c7",
          "#bcbd22", "#dbdb8d")
DVH_DPI = 110
LOG_VOLUME_FLOOR_PCT = 0.01
DOSE_DPI = 100
ISODOSE_PCT_RX = (50.0, 95.0, 107.0)
# isodose line colours, apart from the structure outlines' and readable on the colour wash
ISO_COLOURS_NEW = ("#b0b0b0", "white", "#ffa500")
ISO_COLOURS_CUMULATIVE = ("white", "#ffa500", "#ff69b4", "#b0b0b0", "#00ffaa", "#8080ff")


def plan_curves(plan) -> list[EvaluationCurve]:
    """The evaluation's curves of a :class:`~reirrad_opt.planning.Plan`."""
    return evaluation_curves(plan.case, plan.evaluation, plan.new_dose_gy, plan.fractionation.n_fractions)


def _side(name: str) -> tuple[str, str | None]:
    for suffix in ("_L", "_R"):
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix[1]
    return name, None


def dvh_styles(names: list[str]) -> dict[str, tuple[str, str]]:
    """``{structure: (colour, linestyle)}``: one hue per organ pair, left dark and solid, right
    light and dashed, so that _L/_R partners are told apart and still read as a pair."""
    bases = list(dict.fromkeys(_side(n)[0] for n in names))
    out = {}
    for n in names:
        base, side = _side(n)
        b = bases.index(base) % (len(_PAIRS) // 2)
        out[n] = (_PAIRS[2 * b + (1 if side == "R" else 0)], "--" if side == "R" else "-")
    return out


def _row_point(row, total_cc: float, rx_gy: float, near_min_metric: str = "D98%") -> tuple[float, float] | None:
    """(dose, volume %) where the row's metric sits on its curve: D-metrics at their volume,
    V-metrics at their dose threshold; None for Dmean."""
    spec = resolve(parse_metric(row.metric), near_min_metric)
    if spec.kind == "Dmax":
        return row.value, 0.0
    if spec.kind == "Dmin":
        return row.value, 100.0
    if spec.kind == "D_cc":
        return row.value, min(100.0, 100.0 * spec.x / total_cc)
    if spec.kind == "D_pct":
        return row.value, spec.x
    if spec.kind in ("V_Gy", "V_pctRx"):
        pct = row.value if row.unit == "%" else 100.0 * row.value / total_cc
        return spec.threshold_gy(rx_gy), pct
    return None


def _draw_limits(ax, row, point, colour, log_volume: bool) -> None:
    """Short segments through the row's point at its desirable (dashed) and acceptable (dotted)
    limits: vertical for dose limits, horizontal for volume limits in %."""
    dose, pct = point
    span = (pct / 4, min(pct * 4, 110)) if log_volume else (max(pct - 8, 0), min(pct + 8, 102))
    for limit, ls in ((row.desirable, "--"), (row.acceptable, ":")):
        if limit is None:
            continue
        if row.unit in ("%", "cc"):
            if row.unit == "%":
                ax.plot([dose * 0.97, dose * 1.03], [limit, limit], color=colour, ls=ls, lw=1.6)
        else:
            ax.plot([limit, limit], span, color=colour, ls=ls, lw=1.6)


def plot_curve(ax, curve: EvaluationCurve, rows_by_id: dict, colour, ls: str, label: str | None, *, rx_gy: float,
               near_min_metric: str = "D98%", log_volume: bool = False, marker: str = "o") -> None:
    """Draw one evaluation curve (volume in % of the structure) with its rows' values as markers
    and their limits as short segments; the line's ``gid`` is the curve's name."""
    dose, vol = curve.polyline()
    ax.plot(dose, 100.0 * vol / curve.total_cc, color=colour, ls=ls, lw=1.7, label=label, gid=curve.name)
    for g in curve.goal_ids:
        r = rows_by_id[g]
        point = _row_point(r, curve.total_cc, rx_gy, near_min_metric)
        if point is None:
            continue
        if log_volume:   # a Dmax (0 %) sits on the log axis' bottom edge
            point = (point[0], max(point[1], LOG_VOLUME_FLOOR_PCT))
        ax.plot(*point, marker=marker, ms=5, color=colour, mec="k", mew=0.6, ls="none")
        _draw_limits(ax, r, point, colour, log_volume)


def format_volume_axis(ax, log_volume: bool) -> None:
    """Volume axis in % of the structure: log for organ lines (mostly D0.03cc, whose 0.03-6 %
    vanish on a linear axis), linear for targets."""
    if log_volume:
        ax.set_yscale("log", nonpositive="clip")
        ax.set_ylim(LOG_VOLUME_FLOOR_PCT, 110)
        ax.set_ylabel("volume (% of structure, log scale)")
    else:
        ax.set_ylim(0, 102)
        ax.set_ylabel("volume (% of structure)")
    ax.grid(alpha=0.3)


def draw_dvh_figure(curves: list[EvaluationCurve], rows: list, rx_gy: float, *, dose_unit: str = "Gy",
                    fractionation: str = "", fine_factor: int = 1, near_min_metric: str = "D98%") -> Figure:
    """Left: the cumulative-EQD2 curves of cumulative lines; right: the new-course dose curves of
    the other lines (targets). Each row's value is a dot on its curve, its limits short segments
    (dashed desirable, dotted acceptable). Curves carry ``gid`` = the curve's name."""
    fig = Figure(figsize=(14, 5.6))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    styles = dvh_styles(list(dict.fromkeys(c.structure for c in curves)))
    by_id = {r.goal_id: r for r in rows}
    per_panel: dict[bool, list[EvaluationCurve]] = {True: [], False: []}
    for c in curves:
        per_panel[c.cumulative].append(c)
    for ax, cumulative in ((ax1, True), (ax2, False)):
        names = [c.structure for c in per_panel[cumulative]]
        for c in per_panel[cumulative]:
            colour, ls = styles[c.structure]
            label = c.structure if names.count(c.structure) == 1 else c.name
            if cumulative:
                label += f" (a/b {c.alpha_beta_gy:g})"
            plot_curve(ax, c, by_id, colour, ls, label, rx_gy=rx_gy, near_min_metric=near_min_metric,
                       log_volume=cumulative)
        format_volume_axis(ax, cumulative)
        if cumulative or not per_panel[cumulative]:
            ax.set_xlim(left=0)
        else:   # the targets' curves start far from 0 Gy
            ax.set_xlim(left=max(0.0, min(float(c.dose_gy.min()) for c in per_panel[cumulative]) - 2.0))
        if per_panel[cumulative]:
            ax.legend(fontsize=7.5, ncol=2 if len(per_panel[cumulative]) > 6 else 1,
                      loc="lower left" if cumulative else "upper right")
    ax1.set_xlabel(f"cumulative EQD2 ({dose_unit}): prior course after recovery + new course")
    ax1.set_title("Cumulative lines: cumulative EQD2 at each line's a/b", fontsize=10)
    ax2.set_xlabel(f"new-course dose ({dose_unit})" if dose_unit != "Gy" else "new-course physical dose (Gy)")
    for pct, ls in ((95, ":"), (100, "-"), (107, "--")):
        ax2.axvline(rx_gy * pct / 100, color="grey", ls=ls, lw=0.7)
    ax2.set_title(f"New-course lines ({fractionation}, Rx {rx_gy:.1f} {dose_unit}; grey: 95 / 100 / 107 % Rx)",
                  fontsize=10)
    legend = [Line2D([], [], color="k", marker="o", ls="none", ms=5, label="table value"),
              Line2D([], [], color="k", ls="--", label="desirable limit"),
              Line2D([], [], color="k", ls=":", label="acceptable limit")]
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
    how = "voxel centres" if fine_factor == 1 else f"{fine_factor}x{fine_factor}x{fine_factor} sub-voxel samples"
    fig.suptitle(f"DVHs from the evaluation's samples ({how}); dots are the table's values", fontsize=11)
    fig.tight_layout(rect=(0, 0.05, 1, 0.96))
    return fig


def dvh_figure(plan, path: Path, curves: list[EvaluationCurve] | None = None) -> Figure:
    """Write dvh.png for ``plan`` (see :func:`draw_dvh_figure`); returns the figure."""
    curves = plan_curves(plan) if curves is None else curves
    fig = draw_dvh_figure(curves, plan.evaluation.rows, float(plan.fractionation.total_gy),
                          dose_unit=getattr(plan, "dose_unit", "Gy"), fractionation=plan.fractionation.name,
                          fine_factor=plan.evaluation.fine_factor,
                          near_min_metric=str(plan.protocol.options.get("near_min_metric", "D98%")))
    fig.savefig(path, dpi=DVH_DPI)
    return fig


OUTLINES = ("rGTV", "PTV", "Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lobe_Temporal_L",
            "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R")


def priority1_cumulative_levels(rows) -> list[float]:
    """The distinct limits (Gy EQD2; Gy(RBE) for particle plans) of the evaluated priority-1
    cumulative dose lines."""
    levels = set()
    for r in rows:
        if r.priority == 1 and r.cumulative and r.unit in ("Gy", "Gy(RBE)") and r.value is not None:
            for lim in (r.desirable, r.acceptable):
                if lim is not None:
                    levels.add(round(float(lim), 2))
    return sorted(levels)


def dose_figure(plan, path: Path, cumulative_eqd2_gy: np.ndarray) -> Figure:
    """Axial, coronal and sagittal slices through the rGTV (else PTV) centre, cropped to the body,
    in patient mm with orientation letters: the new-course dose with isodose lines at 50 / 95 /
    107 % of Rx (top) and the cumulative EQD2 with the priority-1 cumulative limits (bottom)."""
    case, grid = plan.case, plan.case.grid
    key = "rGTV" if "rGTV" in case.structures else "PTV"
    centre = tuple(int(round(c)) for c in np.argwhere(case.structures[key].mask).mean(axis=0))
    views = orthogonal_views(grid, centre)
    outlines = [n for n in OUTLINES if n in case.structures]
    colours = {n: structure_colour(n, i) for i, n in enumerate(outlines)}
    rx = float(plan.fractionation.total_gy)
    unit = getattr(plan, "dose_unit", "Gy")
    p1 = priority1_cumulative_levels(plan.evaluation.rows)
    cum = np.asarray(cumulative_eqd2_gy)
    body = case.body
    rows_spec = [
        (np.asarray(plan.new_dose_gy), f"new-course dose ({unit})", 1.1 * rx,
         [rx * p / 100 for p in ISODOSE_PCT_RX], [f"{p:g} % of Rx ({rx * p / 100:.1f} {unit})" for p in ISODOSE_PCT_RX],
         "isodose lines, new course", ISO_COLOURS_NEW),
        (cum, f"cumulative EQD2 ({unit})", max(float(np.percentile(cum[body], 99.9)) if body.any() else 0.0, 1.0),
         p1, [f"{v:g} {unit} EQD2" for v in p1], "priority-1 cumulative limits", ISO_COLOURS_CUMULATIVE),
    ]
    # each view cropped to the body on its own slice (a head slice of a neck case stays readable)
    boxes = [body_box_mm(v, body) or v.extent for v in views]
    # one scale (inch per mm) for every panel: the tallest view fills the row height
    row_in = 4.4
    scale = row_in / max(b[3] - b[2] for b in boxes)
    widths_in = [(b[1] - b[0]) * scale for b in boxes]
    fig = Figure(figsize=(sum(widths_in) + 6.2, 2 * row_in + 1.6), facecolor="black")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 5, width_ratios=[*widths_in, 0.25, 3.4], left=0.04,
                          right=0.99, top=0.92, bottom=0.06, wspace=0.3, hspace=0.22)
    for row, (volume, label, vmax, levels, level_labels, legend_title, iso) in enumerate(rows_spec):
        im = None
        for col, view in enumerate(views):
            ax = fig.add_subplot(gs[row, col])
            ax.set_facecolor("black")
            ext = view.extent
            ax.imshow(view.cut(case.ct_hu), cmap="gray", vmin=-300, vmax=1200, origin="lower", extent=ext,
                      interpolation="nearest")
            d = view.cut(volume)
            im = ax.imshow(np.ma.masked_less(d, 0.1 * vmax), cmap="jet", alpha=0.4, vmin=0, vmax=vmax,
                           origin="lower", extent=ext, interpolation="nearest")
            if levels and float(d.max()) > min(levels):
                ax.contour(view.h_mm, view.v_mm, d, levels=levels,
                           colors=[iso[n % len(iso)] for n in range(len(levels))],
                           linewidths=1.6)
            draw_outlines_and_frame(ax, view, {n: case.structures[n].mask for n in outlines}, colours, boxes[col],
                                    f"{view.name}, {view.position}")
            ax.tick_params(colors="#aaaaaa", labelsize=7)
            for spine in ax.spines.values():
                spine.set_color("#555555")
        cax = fig.add_subplot(gs[row, 3])
        cb = fig.colorbar(im, cax=cax)
        cb.set_label(label, color="white")
        cb.ax.tick_params(colors="white", labelsize=8)
        cb.solids.set_alpha(1.0)
        lax = fig.add_subplot(gs[row, 4])
        lax.axis("off")
        handles = [Line2D([], [], color=iso[n % len(iso)], lw=1.6, label=t) for n, t in enumerate(level_labels)]
        if not handles:
            handles = [Line2D([], [], color="none", label="none evaluated")]
        leg = lax.legend(handles=handles, loc="upper left", frameon=False, fontsize=8.5, labelcolor="white",
                         title=f"{label}\n{legend_title}", title_fontsize=9)
        leg.get_title().set_color("white")
        if row == 1:
            lax.add_artist(leg)
            shandles = [Line2D([], [], color=colours[n], ls="--" if n.endswith("_R") else "-", label=n)
                        for n in outlines]
            sleg = lax.legend(handles=shandles, loc="lower left", frameon=False, fontsize=8, labelcolor="white",
                              title="structures", title_fontsize=9, ncol=2)
            sleg.get_title().set_color("white")
    fig.suptitle(f"{case.name}: slices through the {key} centre; patient LPS mm, axial seen from the feet, "
                 f"top new-course dose, bottom cumulative EQD2", color="white", fontsize=11)
    fig.savefig(path, dpi=DOSE_DPI, facecolor=fig.get_facecolor())
    return fig
