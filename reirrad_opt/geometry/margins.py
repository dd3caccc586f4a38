"""Margins: exact Euclidean expansion/contraction on anisotropic grids, and the consensus
recipe for the recurrent CTV and PTV.

Distances are voxel-centre to voxel-centre Euclidean distances in mm computed with
``scipy.ndimage.distance_transform_edt`` using the grid spacing, so a 5 mm margin is 5 mm in
every direction whatever the slice thickness.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .grid import Grid


def distance_outside_mm(mask: np.ndarray, grid: Grid) -> np.ndarray:
    """Distance (mm) of every voxel centre to the nearest voxel centre of ``mask`` (0 inside)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=grid.spacing_mm)


def expand(mask: np.ndarray, grid: Grid, margin_mm: float) -> np.ndarray:
    """Isotropic expansion of ``mask`` by ``margin_mm`` (mm, >= 0): every voxel whose centre lies
    within ``margin_mm`` of a voxel centre of the mask."""
    if margin_mm < 0:
        raise ValueError(f"expand: margin_mm must be >= 0, got {margin_mm}; use contract() to shrink")
    grid.check_array(mask, "expand")
    mask = np.asarray(mask, dtype=bool)
    if margin_mm == 0 or not mask.any():
        return mask.copy()
    return distance_outside_mm(mask, grid) <= margin_mm + 1e-9


def contract(mask: np.ndarray, grid: Grid, margin_mm: float) -> np.ndarray:
    """Isotropic contraction of ``mask`` by ``margin_mm`` (mm, >= 0): voxels of the mask whose
    centre is farther than ``margin_mm`` from every voxel centre outside the mask (the grid
    border counts as outside)."""
    if margin_mm < 0:
        raise ValueError(f"contract: margin_mm must be >= 0, got {margin_mm}")
    grid.check_array(mask, "contract")
    mask = np.asarray(mask, dtype=bool)
    if margin_mm == 0:
        return mask.copy()
    padded = np.pad(mask, 1, constant_values=False)
    inside = ndimage.distance_transform_edt(padded, sampling=grid.spacing_mm)[1:-1, 1:-1, 1:-1]
    return inside > margin_mm + 1e-9


def ring(mask: np.ndarray, grid: Grid, inner_mm: float, outer_mm: float) -> np.ndarray:
    """Shell of voxels whose distance to ``mask`` is in (inner_mm, outer_mm] mm."""
    d = distance_outside_mm(mask, grid)
    return (d > inner_mm) & (d <= outer_mm)


def recurrent_target_volumes(
    rgtv: np.ndarray,
    body: np.ndarray,
    grid: Grid,
    *,
    ctv_margin_mm: float = 5.0,
    ptv_margin_mm: float = 3.0,
    air: np.ndarray | None = None,
    barriers: list[np.ndarray] | tuple[np.ndarray, ...] = (),
    critical_oars: list[np.ndarray] | tuple[np.ndarray, ...] = (),
    oar_curtail_mm: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """The consensus recipe: returns ``(rCTV, PTV)`` boolean masks.

    rCTV = (rGTV + ``ctv_margin_mm``) within the body, minus air, minus the barrier structures
    (e.g. bone of the skull base), minus every critical OAR grown by ``oar_curtail_mm`` (0 mm
    removes just the OAR itself); the rGTV itself is never edited away.
    PTV = rCTV + ``ptv_margin_mm`` within the body.

    The guideline allows a CTV margin of at most 5 mm and a PTV margin of 2-3 mm; values outside
    0-5 mm (CTV) and 0-5 mm (PTV) raise ValueError rather than being clipped.
    """
    for name, value in (("ctv_margin_mm", ctv_margin_mm), ("ptv_margin_mm", ptv_margin_mm),
                        ("oar_curtail_mm", oar_curtail_mm)):
        if not (0.0 <= value <= 20.0):
            raise ValueError(f"recurrent_target_volumes: {name} must be between 0 and 20 mm, got {value}")
    if not rgtv.any():
        raise ValueError("recurrent_target_volumes: the rGTV mask is empty")
    ctv = expand(rgtv, grid, ctv_margin_mm) & body
    if air is not None:
        ctv &= ~air
    for barrier in barriers:
        ctv &= ~barrier
    for oar in critical_oars:
        ctv &= ~expand(oar, grid, oar_curtail_mm)
    ctv |= rgtv & body
    ptv = expand(ctv, grid, ptv_margin_mm) & body
    return ctv, ptv
