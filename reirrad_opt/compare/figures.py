"""Figures of a comparison: overlaid cumulative-EQD2 DVHs, dose fall-off profiles and dose slices
with their difference. Photon curves solid, particle curves dashed, everywhere."""
from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..report.case_figure import structure_colour  # noqa: E402
from ..report.plan_figures import dvh_styles, format_volume_axis, plan_curves, plot_curve  # noqa: E402
from ..report.slices import body_box_mm, draw_outlines_and_frame, orthogonal_views  # noqa: E402

STYLE = {0: "-", 1: "--"}
MARKERS = {0: "o", 1: "s"}
OUTLINES = ("rGTV", "PTV", "Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lobe_Temporal_L",
            "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R")


def comparison_figure(cmp, path: Path) -> None:
    """Left: cumulative-EQD2 DVHs of the organs' cumulative lines for both plans; right: the new-course
    dose DVHs of the other lines (targets). Every curve is drawn from the samples its plan's
    evaluation read (:func:`reirrad_opt.evaluate.curves.evaluation_curves`), so its markers are the
    values in the plans' tables; limits are short segments (dashed desirable, dotted acceptable).
    Line style tells the plan (solid photon), colour the structure (left/right partners differ)."""
    mods = cmp.modalities
    first = cmp.plans[mods[0]]
    curves = {m: plan_curves(cmp.plans[m]) for m in mods}
    names = list(dict.fromkeys(c.structure for c in curves[mods[0]]))
    colours = {n: c for n, (c, _) in dvh_styles(names).items()}
    near_min = str(first.protocol.options.get("near_min_metric", "D98%"))
    rx = float(first.fractionation.total_gy)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.6), gridspec_kw={"width_ratios": [1.6, 1]})
    for k, m in enumerate(mods):
        rows_by_id = {r.goal_id: r for r in cmp.plans[m].evaluation.rows}
        for c in curves[m]:
            ax = ax1 if c.cumulative else ax2
            label = (f"{c.structure} (a/b {c.alpha_beta_gy:g})" if c.cumulative else c.structure) if k == 0 else None
            plot_curve(ax, c, rows_by_id, colours.get(c.structure, "k"), STYLE[k % 2], label, rx_gy=rx,
                       near_min_metric=near_min, log_volume=c.cumulative, marker=MARKERS[k % 2])
    style_handles = [plt.Line2D([], [], color="k", ls=STYLE[k % 2], marker=MARKERS[k % 2], ms=4, label=f"{m} plan")
                     for k, m in enumerate(mods)]
    style_handles += [plt.Line2D([], [], color="k", ls="--", lw=1.2, label="desirable limit"),
                      plt.Line2D([], [], color="k", ls=":", lw=1.2, label="acceptable limit")]
    fig.legend(handles=style_handles, loc="lower center", ncol=len(style_handles), fontsize=8, frameon=False)
    ax1.legend(loc="lower left", fontsize=7, ncol=2, title="organ line (a/b, Gy)", title_fontsize=7)
    format_volume_axis(ax1, True)
    format_volume_axis(ax2, False)
    ax1.set(xlabel="cumulative EQD2 (Gy(RBE); photons RBE 1), prior after recovery + new course", xlim=(0, None),
            title="Organs: cumulative EQD2 DVHs (markers: the tables' values)")
    for pct, ls in ((95, ":"), (100, "-"), (107, "--")):
        ax2.axvline(rx * pct / 100, color="grey", ls=ls, lw=0.7)
    targets = [c for m in mods for c in curves[m] if not c.cumulative]
    low = min([0.6 * rx] + [float(c.dose_gy.min()) - 2.0 for c in targets])   # every target's D98 % in view
    ax2.set(xlabel="new-course dose (Gy(RBE); photons RBE 1)", xlim=(max(low, 0.0), 1.2 * rx),
            title=f"Targets: new course (Rx {rx:.1f} Gy; 95 / 100 / 107 %)")
    ax2.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def falloff_figure(cmp, path: Path, distances_mm: np.ndarray | None = None) -> None:
    """New-course dose (% of Rx) against distance from the PTV surface along the rays of the
    fall-off metric: median over the rays with the 10-90 % band, per plan."""
    d = np.arange(-10.0, 60.5, 0.5) if distances_mm is None else np.asarray(distances_mm, float)
    fig, ax = plt.subplots(figsize=(9, 5.4))
    colours = ("tab:blue", "tab:red")
    for k, m in enumerate(cmp.modalities):
        pm = cmp.metrics[m]
        rx = pm.rx_gy
        curves = []
        for dist, dose in pm.falloff_profiles:
            if dist.size < 2:
                continue
            curves.append(np.interp(d, dist, 100.0 * dose / rx, left=np.nan, right=np.nan))
        if not curves:
            continue
        arr = np.asarray(curves)
        arr[:, np.isfinite(arr).sum(axis=0) < 0.25 * len(curves)] = np.nan   # distances few rays reach
        with warnings.catch_warnings():   # distances no ray reaches are all-NaN columns
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(arr, axis=0)
            lo, hi = np.nanpercentile(arr, 10, axis=0), np.nanpercentile(arr, 90, axis=0)
        f = pm.falloff
        label = (f"{m}: 90->50 % {f['90-50'].median_mm:.1f} mm, 80->20 % {f['80-20'].median_mm:.1f} mm (median, "
                 f"{f['80-20'].n_directions} rays)")
        ax.plot(d, med, color=colours[k % 2], ls=STYLE[k], lw=1.8, label=label)
        ax.fill_between(d, lo, hi, color=colours[k % 2], alpha=0.12)
    for lvl in (90, 80, 50, 20):
        ax.axhline(lvl, color="grey", lw=0.6, ls=":")
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set(xlabel="distance outward from the PTV surface (mm)", ylabel="new-course dose (% of Rx)",
           ylim=(0, 120), title="Dose fall-off outside the PTV (median over rays, band 10-90 %)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def slices_figure(cmp, path: Path) -> None:
    """Axial, coronal and sagittal slices through the rGTV (or PTV) centre in patient LPS mm with
    orientation letters, cropped to the body: each plan's new-course dose on the CT with isodose
    lines at 95 and 107 % of Rx, and the difference (particle - photon)."""
    case, grid = cmp.case, cmp.case.grid
    mods = cmp.modalities
    key = "rGTV" if "rGTV" in case.structures else "PTV"
    centre = tuple(int(round(c)) for c in np.argwhere(case.structures[key].mask).mean(axis=0))
    views = orthogonal_views(grid, centre)
    outlines = [n for n in OUTLINES if n in case.structures]
    colours = {n: structure_colour(n, i) for i, n in enumerate(outlines)}
    rx = float(cmp.plans[mods[0]].fractionation.total_gy)
    doses = [np.asarray(cmp.plans[m].new_dose_gy, dtype=float) for m in mods]
    diff = doses[1] - doses[0]
    # colour range: the 99.5th percentile of |difference| in the body, at most half of Rx (beyond saturates)
    dmax = min(float(np.percentile(np.abs(diff[case.body]), 99.5)), 0.5 * rx) or 1.0
    units = [getattr(cmp.plans[m], "dose_unit", "Gy") for m in mods]
    panels = [(doses[0], f"{mods[0]} ({units[0]})", "dose"), (doses[1], f"{mods[1]} ({units[1]})", "dose"),
              (diff, f"{mods[1]} - {mods[0]} (Gy(RBE))", "diff")]
    boxes = [body_box_mm(v, case.body) or v.extent for v in views]
    fig, axes = plt.subplots(3, 3, figsize=(13.5, 12.5), layout="constrained", facecolor="black")
    iso = [0.95 * rx, 1.07 * rx]
    for row, (vol, label, kind) in enumerate(panels):
        for col, view in enumerate(views):
            ax = axes[row, col]
            ax.set_facecolor("black")
            ext = view.extent
            ax.imshow(view.cut(case.ct_hu), cmap="gray", vmin=-300, vmax=1200, origin="lower", extent=ext,
                      interpolation="nearest")
            sl = view.cut(vol)
            if kind == "dose":
                im = ax.imshow(np.ma.masked_less(sl, 0.05 * rx), cmap="jet", alpha=0.5, vmin=0, vmax=1.1 * rx,
                               origin="lower", extent=ext, interpolation="nearest")
                if float(sl.max()) > iso[0]:
                    ax.contour(view.h_mm, view.v_mm, sl, levels=iso, colors=["white", "#ffa500"], linewidths=1.3)
            else:
                im = ax.imshow(np.ma.masked_where(~view.cut(case.body), sl), cmap="RdBu_r", alpha=0.8,
                               vmin=-dmax, vmax=dmax, origin="lower", extent=ext, interpolation="nearest")
            draw_outlines_and_frame(ax, view, {n: case.structures[n].mask for n in outlines}, colours, boxes[col],
                                    f"{view.name}, {view.position}: {label}", fontsize=9.5)
            ax.tick_params(colors="#aaaaaa", labelsize=7)
        cb = fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.85, extend="both" if kind == "diff" else "max")
        cb.set_label(label, color="white")
        cb.ax.tick_params(colors="white")
        cb.solids.set_alpha(1.0)
    handles = [plt.Line2D([], [], color=colours[n], ls="--" if n.endswith("_R") else "-", label=n) for n in outlines]
    handles += [plt.Line2D([], [], color="white", label=f"95 % Rx ({iso[0]:.1f})"),
                plt.Line2D([], [], color="#ffa500", label=f"107 % Rx ({iso[1]:.1f})")]
    fig.legend(handles=handles, loc="outside lower center", ncol=7, fontsize=8, labelcolor="white", frameon=False)
    fig.savefig(path, dpi=90, facecolor=fig.get_facecolor())
    plt.close(fig)
