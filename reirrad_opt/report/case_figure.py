"""case.png: axial, coronal and sagittal CT slices through a point (by default the rGTV centre)
with structure outlines and a dose colour wash (by default the prior course's dose).

Display conventions: axial slices are seen from the feet (patient's right on the image left,
anterior up), coronal slices from the front (patient's right on the left, superior up), sagittal
slices from the patient's right (anterior on the left, superior up). Axes are in patient LPS mm.
Drawing uses matplotlib's Agg canvas directly, without touching the global backend.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..prior_eqd2 import summed_physical_prior_dose_gy

# Outline colours for TG-263 names; other structures take colours from a fixed cycle.
STRUCTURE_COLOURS: dict[str, str] = {
    "External": "#d9d9d9", "rGTV": "#ff0000", "rCTV": "#ff8c00", "PTV": "#ffd700", "GTV": "#ff0000",
    "CTV": "#ff8c00", "Brainstem": "#00e5ff", "SpinalCord": "#1e90ff", "OpticChiasm": "#ff00ff",
    "OpticNrv_L": "#ee82ee", "OpticNrv_R": "#da70d6", "Lobe_Temporal_L": "#7fff00",
    "Lobe_Temporal_R": "#32cd32", "A_Carotid_L": "#ff4d4d", "A_Carotid_R": "#cc0000",
    "Parotid_L": "#f4a460", "Parotid_R": "#d2691e", "Cochlea_L": "#00fa9a", "Cochlea_R": "#3cb371",
    "Brain": "#b0c4de", "Bone_Skull": "#fffacd", "Bone_Mandible": "#eee8aa", "PTV_Prior": "#ffffff",
}
_CYCLE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c",
          "#fabebe", "#008080", "#e6beff", "#9a6324")
_DASHED = frozenset({"PTV_Prior", "Bone_Skull", "External", "Brain"})
# Not outlined unless asked for: visible on the CT anyway.
DEFAULT_HIDDEN = frozenset({"External", "Bone_Skull", "Bone_Mandible"})


def structure_colour(name: str, index: int) -> str:
    return STRUCTURE_COLOURS.get(name, _CYCLE[index % len(_CYCLE)])


def _centre_index(case, centre_xyz) -> tuple[int, int, int]:
    if centre_xyz is None:
        for candidate in ("rGTV", "GTV", "PTV"):
            if candidate in case.structures and case.structures[candidate].mask.any():
                centre_xyz = case.structures[candidate].centroid_xyz(case.grid)
                break
        else:
            centre_xyz = case.grid.index_to_patient((np.asarray(case.grid.shape) - 1) / 2.0)
    kji = np.rint(case.grid.patient_to_index(np.asarray(centre_xyz, dtype=float))).astype(int)
    if np.any(kji < 0) or np.any(kji >= np.asarray(case.grid.shape)):
        raise ValueError(f"case figure: centre {tuple(np.round(centre_xyz, 1))} mm (x, y, z) lies outside the grid")
    return int(kji[0]), int(kji[1]), int(kji[2])


def render_case_figure(
    case,
    out_path: str | os.PathLike,
    *,
    centre_xyz: tuple[float, float, float] | None = None,
    dose_gy: np.ndarray | None = None,
    dose_label: str = "prior course dose (Gy)",
    structures: list[str] | None = None,
    dose_threshold_fraction: float = 0.2,
    window_hu: tuple[float, float] = (40.0, 400.0),
    title: str | None = None,
    dpi: int = 110,
) -> Path:
    """Write a PNG with three orthogonal slices of ``case``.

    Args:
        case: a :class:`reirrad_opt.case.Case`.
        out_path: PNG file to write (its folder must exist).
        centre_xyz: slice position, patient (x, y, z) mm; default the rGTV (else GTV, PTV) centroid.
        dose_gy: dose to colour-wash (grid shape); default the case's prior-course dose (several
            courses: their doses added, labelled so; a display, not an EQD2).
        dose_label: colour-bar label.
        structures: names to outline (default all but :data:`DEFAULT_HIDDEN`).
        dose_threshold_fraction: doses below this fraction of the maximum are not washed.
        window_hu: CT window (level, width) in HU.
        title: figure title (default the case name).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    grid = case.grid
    if dose_gy is None:
        dose = summed_physical_prior_dose_gy(case.prior_courses)
        if len(case.prior_courses) > 1 and dose_label == "prior course dose (Gy)":
            dose_label = f"{len(case.prior_courses)} prior courses' doses added (Gy)"
    else:
        dose = np.asarray(dose_gy)
    grid.check_array(dose, "case figure dose")
    names = [n for n in case.structures if n not in DEFAULT_HIDDEN] if structures is None else list(structures)
    for n in names:
        if n not in case.structures:
            raise KeyError(f"case figure: case {case.name!r} has no structure {n!r}")
    k, j, i = _centre_index(case, centre_xyz)
    zc, yc, xc = grid.axis_coordinates_mm()
    dz, dy, dx = grid.spacing_mm
    level, width = window_hu
    vmin_ct, vmax_ct = level - width / 2, level + width / 2
    dmax = float(dose.max()) if dose.size else 0.0

    # (title, slicer, horizontal coords, vertical coords, extent, imshow origin, edge labels L R T B)
    views = [
        (f"axial  z = {zc[k]:.1f} mm", lambda a: a[k, :, :], xc, yc,
         (xc[0] - dx / 2, xc[-1] + dx / 2, yc[-1] + dy / 2, yc[0] - dy / 2), "upper", ("R", "L", "A", "P")),
        (f"coronal  y = {yc[j]:.1f} mm", lambda a: a[:, j, :], xc, zc,
         (xc[0] - dx / 2, xc[-1] + dx / 2, zc[0] - dz / 2, zc[-1] + dz / 2), "lower", ("R", "L", "S", "I")),
        (f"sagittal  x = {xc[i]:.1f} mm", lambda a: a[:, :, i], yc, zc,
         (yc[0] - dy / 2, yc[-1] + dy / 2, zc[0] - dz / 2, zc[-1] + dz / 2), "lower", ("A", "P", "S", "I")),
    ]
    widths = [(v[4][1] - v[4][0]) for v in views]
    fig = Figure(figsize=(16.5, 6.4), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(1, 6, width_ratios=[*widths, 0.06 * sum(widths) / 3, 0.12 * sum(widths) / 3,
                                              0.5 * sum(widths) / 3],
                          left=0.02, right=0.99, top=0.9, bottom=0.06, wspace=0.08)
    wash = None
    present: set[str] = set()
    for col, (label, cut, hcoord, vcoord, extent, origin, marks) in enumerate(views):
        ax = fig.add_subplot(gs[0, col])
        ax.set_facecolor("black")
        ax.imshow(cut(case.ct_hu), cmap="gray", vmin=vmin_ct, vmax=vmax_ct, extent=extent, origin=origin,
                  interpolation="nearest")
        if dmax > 0:
            d = cut(dose)
            masked = np.ma.masked_less(d, dose_threshold_fraction * dmax)
            wash = ax.imshow(masked, cmap="jet", vmin=0.0, vmax=dmax, alpha=0.35, extent=extent, origin=origin,
                             interpolation="bilinear")
        for idx, n in enumerate(names):
            m = cut(case.structures[n].mask)
            if not m.any():
                continue
            present.add(n)
            ax.contour(hcoord, vcoord, m.astype(float), levels=[0.5], colors=[structure_colour(n, idx)],
                       linewidths=0.8 if n in _DASHED else 1.3, linestyles="dashed" if n in _DASHED else "solid")
        if origin == "upper":
            ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("equal")
        ax.set_title(label, color="white", fontsize=11)
        ax.tick_params(colors="#aaaaaa", labelsize=7)
        for spine in ax.spines.values():
            spine.set_color("#555555")
        left, right, top, bottom = marks
        for text, xy in ((left, (0.01, 0.5)), (right, (0.99, 0.5)), (top, (0.5, 0.99)), (bottom, (0.5, 0.01))):
            ax.text(*xy, text, transform=ax.transAxes, color="yellow", fontsize=10, fontweight="bold",
                    ha="left" if xy[0] < 0.1 else "right" if xy[0] > 0.9 else "center",
                    va="top" if xy[1] > 0.9 else "bottom" if xy[1] < 0.1 else "center")
    cax = fig.add_subplot(gs[0, 3])
    if wash is not None:
        cb = fig.colorbar(wash, cax=cax)
        cb.set_label(dose_label, color="white")
        cb.ax.tick_params(colors="white", labelsize=8)
        cb.solids.set_alpha(1.0)
    else:
        cax.axis("off")
    lax = fig.add_subplot(gs[0, 5])
    lax.axis("off")
    handles = [Line2D([0], [0], color=structure_colour(n, idx), lw=2,
                      linestyle="--" if n in _DASHED else "-", label=n)
               for idx, n in enumerate(names) if n in present]
    if handles:
        leg = lax.legend(handles=handles, loc="center left", frameon=False, fontsize=8.5, labelcolor="white",
                         title="structures", title_fontsize=9)
        leg.get_title().set_color("white")
    fig.suptitle(title if title is not None else f"{case.name}  (CT window L{level:g}/W{width:g} HU)",
                 color="white", fontsize=12)
    out = Path(out_path)
    fig.savefig(out, dpi=dpi, facecolor=fig.get_facecolor())
    return out
