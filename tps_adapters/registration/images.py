"""Case grids and arrays <-> SimpleITK images.

A :class:`reirrad_opt.geometry.Grid` is axis-aligned in patient LPS with arrays indexed (z, y, x);
a SimpleITK image of the same grid has size (nx, ny, nz), spacing (dx, dy, dz) mm, origin
(x0, y0, z0) mm and the identity direction, so both name the same points in LPS mm.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from reirrad_opt.geometry import Grid


def to_image(values: np.ndarray, grid: Grid, dtype=np.float32) -> sitk.Image:
    """``values`` [z, y, x] on ``grid`` as a SimpleITK image in LPS mm."""
    grid.check_array(values, "image values")
    image = sitk.GetImageFromArray(np.ascontiguousarray(values, dtype=dtype))
    image.SetSpacing(tuple(float(s) for s in grid.spacing_mm[::-1]))
    image.SetOrigin(tuple(float(o) for o in grid.origin_mm[::-1]))
    image.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return image


def grid_of(image: sitk.Image) -> Grid:
    """The case grid of an axis-aligned SimpleITK image (identity direction)."""
    if not np.allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6):
        raise ValueError(f"image direction {image.GetDirection()} is not the identity; expected an axial, axis-aligned grid")
    return Grid(tuple(image.GetSize()[::-1]), tuple(image.GetSpacing()[::-1]), tuple(image.GetOrigin()[::-1]))


def resample_isotropic(image: sitk.Image, voxel_mm: float, default_value: float = -1000.0) -> sitk.Image:
    """``image`` on an isotropic grid of ``voxel_mm`` mm over the same extent; smoothed first
    (Gaussian, sigma half the new voxel) where the new voxel is coarser, so that the coarse image
    is a local mean rather than an aliased sample."""
    spacing = np.array(image.GetSpacing(), dtype=float)
    size = np.array(image.GetSize(), dtype=float)
    if np.all(spacing >= voxel_mm - 1e-6):
        return image
    # ITK needs sigma > 0 on every axis; 1 % of a voxel leaves an axis that is not coarsened as it is
    sigma = [max(float(np.sqrt(max(voxel_mm ** 2 - s ** 2, 0.0)) / 2.0), 0.01 * s) for s in spacing]
    smooth = sitk.SmoothingRecursiveGaussian(image, sigma)
    new_size = [max(1, int(np.floor((n - 1) * s / voxel_mm)) + 1) for n, s in zip(size, spacing)]
    return sitk.Resample(smooth, new_size, sitk.Transform(), sitk.sitkLinear, image.GetOrigin(), (voxel_mm,) * 3,
                         image.GetDirection(), default_value, image.GetPixelID())
