"""QA figure of a prior-dose mapping: the new CT and the mapped prior CT as a checkerboard, with
the mapped prior dose's isodose lines, in axial, coronal and sagittal slices through the target.

A misregistration shows as edges (bone, skin, air cavities) that jump between neighbouring squares;
the isodose lines show where the prior course's dose lands on the new anatomy.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from reirrad_opt.geometry import Grid

from .mapping import mapped_points, sample
from .result import Registration

ISODOSE_FRACTIONS = (0.2, 0.5, 0.8, 0.95)
ISODOSE_COLOURS = ("#1f77b4", "#2ca02c", "#ff7f0e", "#d62728")
CHECKER_MM = 20.0
HU_WINDOW = (-400.0, 600.0)


def slice_centre(grid: Grid, target: np.ndarray | None, dose: np.ndarray) -> tuple[int, int, int]:
    """Voxel index (z, y, x) of the target's centroid (else of the dose maximum)."""
    if target is not None and target.any():
        return tuple(int(round(v)) for v in np.argwhere(target).mean(axis=0))
    return tuple(int(v) for v in np.unravel_index(int(np.argmax(dose)), dose.shape))


def _planes(grid: Grid, centre: tuple[int, int, int]):
    z, y, x = centre
    full = slice(None)
    return [("axial", (slice(z, z + 1), full, full), 0), ("coronal", (full, slice(y, y + 1), full), 1),
            ("sagittal", (full, full, slice(x, x + 1)), 2)]


def write_qa_figure(path: str | Path, grid: Grid, new_ct_hu: np.ndarray, prior_dose_gy: np.ndarray,
                    registration: Registration, prior_ct_hu: np.ndarray | None = None, prior_ct_grid: Grid | None = None,
                    target: np.ndarray | None = None, title: str = "", dose_unit: str = "Gy") -> Path:
    """Write the QA PNG to ``path``. ``prior_dose_gy`` is the mapped prior dose on ``grid``
    (``dose_unit``); without a prior CT the panels show the new CT alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    centre = slice_centre(grid, target, prior_dose_gy)
    dmax = float(prior_dose_gy.max())
    axes_mm = grid.axis_coordinates_mm()
    fig, axs = plt.subplots(1, 3, figsize=(15, 6.2))
    for ax, (name, box, drop) in zip(axs, _planes(grid, centre)):
        new = np.squeeze(new_ct_hu[box], axis=drop)
        dose = np.squeeze(prior_dose_gy[box], axis=drop)
        keep = [a for a in range(3) if a != drop]  # (row axis, column axis) in z, y, x
        rows, cols = axes_mm[keep[0]], axes_mm[keep[1]]
        shown = new
        if prior_ct_hu is not None and prior_ct_grid is not None:
            prior, _ = sample(prior_ct_hu, prior_ct_grid, mapped_points(registration, grid, *box), outside=-1000.0)
            prior = np.squeeze(prior, axis=drop)
            ri = ((rows - rows[0]) // CHECKER_MM).astype(int)[:, None]
            ci = ((cols - cols[0]) // CHECKER_MM).astype(int)[None, :]
            shown = np.where((ri + ci) % 2 == 0, new, prior)
        extent = (cols[0], cols[-1], rows[-1], rows[0])
        ax.imshow(shown, cmap="gray", vmin=HU_WINDOW[0], vmax=HU_WINDOW[1], extent=extent, interpolation="nearest")
        if prior_ct_hu is not None:  # faint square edges, so that a seamless checkerboard reads as one
            for v in np.arange(rows[0], rows[-1], CHECKER_MM)[1:]:
                ax.axhline(v, color="yellow", alpha=0.15, linewidth=0.5)
            for v in np.arange(cols[0], cols[-1], CHECKER_MM)[1:]:
                ax.axvline(v, color="yellow", alpha=0.15, linewidth=0.5)
        if dmax > 0:
            levels = [f * dmax for f in ISODOSE_FRACTIONS]
            ax.contour(cols, rows, dose, levels=levels, colors=ISODOSE_COLOURS, linewidths=1.2)
        if target is not None and target.any():
            t = np.squeeze(target[box], axis=drop)
            if t.any():
                ax.contour(cols, rows, t.astype(float), levels=[0.5], colors="magenta", linewidths=1.0,
                           linestyles="dashed")
        if name != "axial":
            ax.invert_yaxis()  # superior (larger z) up
        lbl = {"axial": ("x (mm, patient left +)", "y (mm, posterior +)"),
               "coronal": ("x (mm, patient left +)", "z (mm, superior +)"),
               "sagittal": ("y (mm, posterior +)", "z (mm, superior +)")}[name]
        pos = {"axial": f"z = {axes_mm[0][centre[0]]:.1f} mm", "coronal": f"y = {axes_mm[1][centre[1]]:.1f} mm",
               "sagittal": f"x = {axes_mm[2][centre[2]]:.1f} mm"}[name]
        ax.set_title(f"{name}, {pos}")
        ax.set_xlabel(lbl[0])
        ax.set_ylabel(lbl[1])
    handles = [Line2D([], [], color=c, label=f"{100 * f:.0f} % ({f * dmax:.1f} {dose_unit})")
               for f, c in zip(ISODOSE_FRACTIONS, ISODOSE_COLOURS)]
    if target is not None and target.any():
        handles.append(Line2D([], [], color="magenta", linestyle="dashed", label="target"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), title="mapped prior dose", fontsize=9)
    checker = (f"checkerboard {CHECKER_MM:g} mm: new CT / prior CT mapped" if prior_ct_hu is not None
               else "new CT (no prior CT to compare)")
    text = "\n".join(textwrap.wrap(registration.summary(), 170))
    fig.suptitle((title + "\n" if title else "") + f"{text}\n{checker}", fontsize=8.5)
    fig.tight_layout(rect=(0, 0.12, 1, 0.86))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
