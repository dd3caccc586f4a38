"""Orthogonal slices of a case-grid volume in patient LPS millimetres, for dose figures.

The grid is indexed (z, y, x) with x towards the patient's left, y towards posterior and z towards
superior (DICOM LPS). Axial slices are seen from the feet (patient's right on the image left,
anterior up), coronal slices from the front (right on the left, superior up), sagittal slices from
the patient's right (anterior on the left, superior up), as case.png shows them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import Grid


@dataclass(frozen=True)
class SliceView:
    """One orthogonal slice through a voxel.

    Attributes:
        name: 'axial', 'coronal' or 'sagittal'.
        position: e.g. 'z = 12.0 mm', the slice's patient coordinate.
        axis: the array axis cut (0 z, 1 y, 2 x) and ``index`` the voxel index along it.
        h_mm, v_mm: patient coordinates (mm) of the image's columns and rows.
        h_label, v_label: axis titles, e.g. 'x (mm)'.
        marks: orientation letters at the (left, right, top, bottom) edges.
        flip_v: True when the vertical axis runs downwards (axial: anterior up, y grows to posterior).
    """

    name: str
    position: str
    axis: int
    index: int
    h_mm: np.ndarray
    v_mm: np.ndarray
    h_label: str
    v_label: str
    marks: tuple[str, str, str, str]
    flip_v: bool

    def cut(self, volume: np.ndarray) -> np.ndarray:
        """The 2-D slice of ``volume`` (rows along ``v_mm``, columns along ``h_mm``)."""
        return np.take(np.asarray(volume), self.index, axis=self.axis)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """imshow extent (left, right, bottom, top) in mm, with origin='lower'."""
        dh = (self.h_mm[1] - self.h_mm[0]) if self.h_mm.size > 1 else 1.0
        dv = (self.v_mm[1] - self.v_mm[0]) if self.v_mm.size > 1 else 1.0
        return (self.h_mm[0] - dh / 2, self.h_mm[-1] + dh / 2, self.v_mm[0] - dv / 2, self.v_mm[-1] + dv / 2)


def orthogonal_views(grid: Grid, kji: tuple[int, int, int]) -> list[SliceView]:
    """Axial, coronal and sagittal views through voxel ``kji`` of ``grid``."""
    k, j, i = (int(v) for v in kji)
    zc, yc, xc = grid.axis_coordinates_mm()
    return [
        SliceView("axial", f"z = {zc[k]:.1f} mm", 0, k, xc, yc, "x (mm), to patient left", "y (mm), to posterior",
                  ("R", "L", "A", "P"), True),
        SliceView("coronal", f"y = {yc[j]:.1f} mm", 1, j, xc, zc, "x (mm), to patient left", "z (mm), superior",
                  ("R", "L", "S", "I"), False),
        SliceView("sagittal", f"x = {xc[i]:.1f} mm", 2, i, yc, zc, "y (mm), to posterior", "z (mm), superior",
                  ("A", "P", "S", "I"), False),
    ]


def body_box_mm(view: SliceView, body: np.ndarray, margin_mm: float = 5.0) -> tuple[float, float, float, float] | None:
    """(h_min, h_max, v_min, v_max) mm of the body on this slice plus ``margin_mm``; None if the
    body does not cross the slice."""
    m = view.cut(body)
    if not m.any():
        return None
    rows = np.flatnonzero(m.any(axis=1))
    cols = np.flatnonzero(m.any(axis=0))
    return (float(view.h_mm[cols[0]]) - margin_mm, float(view.h_mm[cols[-1]]) + margin_mm,
            float(view.v_mm[rows[0]]) - margin_mm, float(view.v_mm[rows[-1]]) + margin_mm)


def mark_orientation(ax, marks: tuple[str, str, str, str], colour: str = "yellow") -> None:
    """Write the orientation letters at the axes' left, right, top and bottom edges."""
    left, right, top, bottom = marks
    for text, xy, ha, va in ((left, (0.01, 0.5), "left", "center"), (right, (0.99, 0.5), "right", "center"),
                             (top, (0.5, 0.99), "center", "top"), (bottom, (0.5, 0.01), "center", "bottom")):
        ax.text(*xy, text, transform=ax.transAxes, color=colour, fontsize=10, fontweight="bold", ha=ha, va=va)


def draw_outlines_and_frame(ax, view: SliceView, masks: dict[str, np.ndarray], colours: dict, box,
                            title: str, fontsize: float = 10.0) -> None:
    """Outline each structure of ``masks`` on the slice (right-sided organs, names ending in _R,
    dashed, so left and right are told apart), crop the axes to ``box`` (h0, h1, v0, v1 in mm),
    keep mm equal on both axes, and write the orientation letters, the title and the mm labels."""
    for name, mask in masks.items():
        m = view.cut(mask)
        if m.any():
            ax.contour(view.h_mm, view.v_mm, m.astype(float), levels=[0.5], colors=[colours[name]],
                       linewidths=0.9, linestyles="dashed" if name.endswith("_R") else "solid")
    ax.set_xlim(box[0], box[1])
    ax.set_ylim((box[3], box[2]) if view.flip_v else (box[2], box[3]))
    ax.set_aspect("equal")
    mark_orientation(ax, view.marks)
    ax.set_title(title, fontsize=fontsize, color="white")
    ax.set_xlabel(view.h_label, fontsize=fontsize - 2, color="#cccccc")
    ax.set_ylabel(view.v_label, fontsize=fontsize - 2, color="#cccccc")
