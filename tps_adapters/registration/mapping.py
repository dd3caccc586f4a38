"""Prior dose (on its own grid, prior frame) -> the new case grid, through a registration.

Every case voxel centre x (new frame, LPS mm) is sent to the prior frame by the registration and
the prior dose is interpolated there trilinearly. As in :func:`tps_adapters.dicom.resample_dose`,
the edge value is held within half a voxel outside the outermost dose-grid centres; beyond that the
prior dose grid does not cover the point: the dose is 0 Gy there and the voxel is flagged.

The mapping's uncertainty can be made conservative with :func:`max_within_margin`: each voxel's
dose replaced by the maximum within R mm (an ellipsoid in voxels for anisotropic grids).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from reirrad_opt.geometry import Grid

from .result import Registration

#: case-grid slices mapped at a time (keeps the point arrays small on a CT-sized grid)
SLAB_VOXELS = 4_000_000


def mapped_points(registration: Registration | None, grid: Grid, z_slice: slice | None = None,
                  y_slice: slice | None = None, x_slice: slice | None = None) -> np.ndarray:
    """Prior-frame points (LPS mm, [..., (x, y, z)]) of the case grid's voxel centres in the box
    ``z_slice, y_slice, x_slice`` (whole axes when None); shape (nz, ny, nx, 3)."""
    z, y, x = (a[s if s is not None else slice(None)]
               for a, s in zip(grid.axis_coordinates_mm(), (z_slice, y_slice, x_slice)))
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    pts = np.stack([xx, yy, zz], axis=-1)
    if registration is None or registration.method == "identity":
        return pts
    if registration.method != "deformable":
        m = registration.matrix
        return pts @ m[:3, :3].T + m[:3, 3]
    field = sitk.TransformToDisplacementField(registration.transform, sitk.sitkVectorFloat64, (len(x), len(y), len(z)),
                                              (float(x[0]), float(y[0]), float(z[0])), grid.spacing_mm[::-1])
    return pts + sitk.GetArrayFromImage(field)  # (nz, ny, nx, (dx, dy, dz))


def sample(values: np.ndarray, grid: Grid, points_xyz: np.ndarray, outside: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear samples of ``values`` (on ``grid``) at ``points_xyz`` (LPS mm, [..., 3]).

    Returns (samples, covered): samples hold the edge value within half a voxel beyond the
    outermost centres and ``outside`` farther out; covered is False there."""
    idx = [(points_xyz[..., 2 - a] - grid.origin_mm[a]) / grid.spacing_mm[a] for a in range(3)]
    covered = np.ones(points_xyz.shape[:-1], dtype=bool)
    for a, i in enumerate(idx):
        covered &= (i >= -0.5) & (i <= grid.shape[a] - 0.5)
        np.clip(i, 0, grid.shape[a] - 1, out=i)
    out = ndimage.map_coordinates(values, idx, order=1, mode="nearest", prefilter=False)
    out = np.where(covered, out, outside)
    return out.astype(values.dtype, copy=False), covered


def map_to_grid(values: np.ndarray, source_grid: Grid, registration: Registration | None, grid: Grid,
                outside: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``values`` on ``source_grid`` (prior frame) -> ``grid`` (new frame) through ``registration``.

    Returns (mapped [z, y, x], covered bool [z, y, x])."""
    out = np.empty(grid.shape, dtype=values.dtype)
    covered = np.empty(grid.shape, dtype=bool)
    per_slice = max(1, grid.shape[1] * grid.shape[2])
    step = max(1, SLAB_VOXELS // per_slice)
    for k in range(0, grid.shape[0], step):
        sl = slice(k, min(k + step, grid.shape[0]))
        out[sl], covered[sl] = sample(values, source_grid, mapped_points(registration, grid, sl), outside)
    return out, covered


def margin_footprint(spacing_mm: tuple[float, float, float], radius_mm: float) -> np.ndarray:
    """Boolean ellipsoid of voxels within ``radius_mm`` (mm) of the centre voxel on ``spacing_mm``
    (dz, dy, dx)."""
    half = [int(np.floor(radius_mm / s + 1e-9)) for s in spacing_mm]
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing_mm)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    return zz ** 2 + yy ** 2 + xx ** 2 <= radius_mm ** 2 + 1e-9


def max_within_margin(dose: np.ndarray, grid: Grid, radius_mm: float) -> np.ndarray:
    """Each voxel's dose replaced by the largest dose of the voxels whose centres lie within
    ``radius_mm`` mm (0: unchanged). Same unit as ``dose`` (Gy or Gy(RBE))."""
    if radius_mm < 0 or not np.isfinite(radius_mm):
        raise ValueError(f"prior dose margin must be a finite number of mm >= 0, got {radius_mm!r}")
    footprint = margin_footprint(grid.spacing_mm, radius_mm)
    if footprint.size == 1:
        return dose.copy()
    return ndimage.maximum_filter(dose, footprint=footprint, mode="nearest")
