"""Image Orientation (Patient) of axial images: how to turn a DICOM pixel array into the
project's (y, x) array order with coordinates increasing along each axis.

A DICOM pixel ``P[row, col]`` sits at ``IPP + col * dc * r + row * dr * c`` where ``r`` and ``c``
are the row and column direction cosines (the first and last three values of Image Orientation
(Patient)) and ``PixelSpacing = [dr, dc]`` (distance between rows, between columns). Only axial
images whose ``r`` and ``c`` are each +-x or +-y (HFS, FFS, HFP, FFP and the decubitus
positions) can be put on an axis-aligned grid; anything else is refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import GeometryError
from .values import fmt_values as _fmt

AXIS_TOLERANCE = 1e-4


@dataclass(frozen=True)
class AxialLayout:
    """How a slice's pixel array maps onto ascending (y, x) axes.

    Attributes:
        transpose: rows run along x (decubitus): transpose before flipping.
        flip_y, flip_x: reverse the (transposed) array along y / x.
        spacing_yx: (dy, dx) in mm.
        shape_yx: (ny, nx) after the transform.
        normal_z: +1 or -1, the z component of r x c (slices stack along it).
    """

    transpose: bool
    flip_y: bool
    flip_x: bool
    spacing_yx: tuple[float, float]
    shape_yx: tuple[int, int]
    normal_z: int

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Pixel array ``[..., rows, cols]`` -> array ``[..., y, x]`` with ascending coordinates."""
        out = np.swapaxes(pixels, -1, -2) if self.transpose else pixels
        if self.flip_y:
            out = out[..., ::-1, :]
        if self.flip_x:
            out = out[..., :, ::-1]
        return out

    def axes_yx(self, ipp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ascending voxel-centre coordinates (y, x) in mm of a slice with position ``ipp``."""
        ny, nx = self.shape_yx
        dy, dx = self.spacing_yx
        # IPP is the centre of pixel [0, 0]; after flipping, index 0 is the far end.
        y0 = ipp[1] - (ny - 1) * dy if self.flip_y else ipp[1]
        x0 = ipp[0] - (nx - 1) * dx if self.flip_x else ipp[0]
        return y0 + dy * np.arange(ny), x0 + dx * np.arange(nx)

    def describe(self) -> str:
        parts = []
        if self.transpose:
            parts.append("rows and columns swapped (decubitus orientation)")
        if self.flip_x:
            parts.append("columns reversed (x decreasing in the file)")
        if self.flip_y:
            parts.append("rows reversed (y decreasing in the file)")
        return "; ".join(parts)


def _unit_axis(v: np.ndarray) -> tuple[int, int] | None:
    """(axis, sign) if ``v`` is +-x, +-y or +-z within tolerance, else None."""
    k = int(np.argmax(np.abs(v)))
    expected = np.zeros(3)
    expected[k] = np.sign(v[k])
    if np.max(np.abs(v - expected)) > AXIS_TOLERANCE:
        return None
    return k, int(np.sign(v[k]))


def axial_layout(orientation: np.ndarray, pixel_spacing: np.ndarray, rows: int, cols: int,
                 path: Path | str) -> AxialLayout:
    """Check Image Orientation (Patient) and return the pixel-array transform.

    Raises GeometryError naming ``path`` for oblique, sagittal or coronal images.
    """
    orientation = np.asarray(orientation, dtype=float)
    if orientation.size != 6:
        raise GeometryError(f"{path}: ImageOrientationPatient must hold 6 values, got {orientation.size}")
    r, c = orientation[:3], orientation[3:]
    ra, ca = _unit_axis(r), _unit_axis(c)
    if ra is None or ca is None:
        raise GeometryError(
            f"{path}: ImageOrientationPatient {_fmt(orientation, 5)} is oblique; only axis-aligned "
            "axial images are supported (reformat the series to axial in the TPS)")
    if {ra[0], ca[0]} != {0, 1}:
        raise GeometryError(
            f"{path}: ImageOrientationPatient {_fmt(orientation, 5)} is not axial (sagittal or coronal "
            "images); only axial series are supported")
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    if dr <= 0 or dc <= 0:
        raise GeometryError(f"{path}: PixelSpacing {_fmt(pixel_spacing)} must be positive")
    normal_z = int(np.sign(np.cross(r, c)[2]))
    if ra[0] == 0:  # columns run along x, rows along y
        return AxialLayout(False, ca[1] < 0, ra[1] < 0, (dr, dc), (rows, cols), normal_z)
    # columns run along y, rows along x: transpose so that axis -2 is y
    return AxialLayout(True, ra[1] < 0, ca[1] < 0, (dc, dr), (cols, rows), normal_z)
