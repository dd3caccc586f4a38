"""Sample points of a structure for dose-volume metrics: voxel centres, or sub-voxel points with
trilinearly interpolated dose (the "fine" evaluation that resolves D0.03cc and Dmax on structures
of 0.1-1 cc).

* Coarse: one sample per voxel of the mask, at the voxel centre, with the voxel's volume.
* Supersampled (``fine_factor`` f > 1): every voxel of the mask is split into f^3 sub-voxels; each
  sub-voxel centre is a sample of volume voxel/f^3 whose dose is interpolated trilinearly from the
  voxel-centre doses. The structure's volume is exactly the mask's; what is resolved is the dose
  variation inside boundary voxels.
* Fine mask: a finer rasterisation of the structure (``fine_mask`` on ``fine_grid``, e.g. from the
  contours at CT resolution) gives the samples directly: each fine voxel centre inside it, with the
  fine voxel's volume, the dose interpolated at its patient position. This also resolves the
  structure's boundary, which the coarse mask cannot.

A float mask (values in [0, 1]) is read as partial-volume occupancy: each voxel's samples carry
that fraction of its volume.

Shared by the optimizer (its caps' and coverage goals' points are the evaluation's samples) and the
evaluation, so it lives with the geometry: the optimizer never imports the evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .grid import Grid

DEFAULT_MAX_SAMPLES = 2_000_000


@dataclass
class SamplePoints:
    """Where a structure is sampled.

    Attributes:
        index_kji: fractional (k, j, i) indices on the case grid, shape (N, 3); None when the
            samples are exactly the voxel centres of ``mask`` (coarse).
        volume_cc: volume of each sample (cc), shape (N,).
        mask: the coarse mask (used when ``index_kji`` is None).
        fine_factor: sub-division per axis (1 = voxel centres).
        method: human description.
    """

    index_kji: np.ndarray | None
    volume_cc: np.ndarray
    mask: np.ndarray
    fine_factor: int
    method: str

    @property
    def n(self) -> int:
        return int(self.volume_cc.size)

    @property
    def total_cc(self) -> float:
        return float(self.volume_cc.sum())

    def values(self, array: np.ndarray) -> np.ndarray:
        """Values of ``array`` (on the case grid) at the samples: exact at voxel centres,
        trilinear elsewhere (nearest value beyond the grid's outer voxel centres)."""
        if self.index_kji is None:
            return np.asarray(array[self.mask], dtype=float)
        pts = self.index_kji
        lo = np.maximum(np.floor(pts.min(axis=0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(pts.max(axis=0)).astype(int) + 2, np.asarray(array.shape))
        sub = np.asarray(array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=float)
        out = np.empty(pts.shape[0])
        chunk = 1_000_000
        for s in range(0, pts.shape[0], chunk):
            p = (pts[s:s + chunk] - lo).T
            out[s:s + chunk] = ndimage.map_coordinates(sub, p, order=1, mode="nearest")
        return out


def supersampled_grid(grid: Grid, factor: int) -> Grid:
    """The grid that splits every voxel of ``grid`` into ``factor``^3 sub-voxels (same extent);
    rasterise a structure's contours on it to give :func:`sample_points` a ``fine_mask``."""
    f = int(factor)
    if f < 1:
        raise ValueError(f"supersampled_grid: factor must be >= 1, got {factor}")
    return Grid(tuple(n * f for n in grid.shape), tuple(s / f for s in grid.spacing_mm),
                tuple(o - s / 2 + s / (2 * f) for o, s in zip(grid.origin_mm, grid.spacing_mm)))


def _occupancy(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bool support, occupancy per support voxel)."""
    m = np.asarray(mask)
    if m.dtype == bool:
        return m, np.ones(int(m.sum()))
    if not np.issubdtype(m.dtype, np.floating) and not np.issubdtype(m.dtype, np.integer):
        raise ValueError(f"mask must be boolean or a float occupancy in [0, 1], got dtype {m.dtype}")
    m = m.astype(float)
    if np.any(m < 0) or np.any(m > 1) or not np.all(np.isfinite(m)):
        raise ValueError("an occupancy mask must hold values in [0, 1]")
    support = m > 0
    return support, m[support]


def sample_points(mask: np.ndarray, grid: Grid, fine_factor: int = 1, *, fine_mask: np.ndarray | None = None,
                  fine_grid: Grid | None = None, max_samples: int = DEFAULT_MAX_SAMPLES) -> SamplePoints:
    """Samples of the structure ``mask`` on ``grid`` (see the module docstring).

    ``fine_factor`` is lowered for large structures so that at most ``max_samples`` samples are
    made (large structures' metrics do not need sub-voxel sampling); the factor used is recorded.
    """
    grid.check_array(np.asarray(mask), "structure mask")
    if fine_mask is not None:
        if fine_grid is None:
            raise ValueError("fine_mask needs its fine_grid")
        fine_grid.check_array(np.asarray(fine_mask), "fine mask")
        support, occ = _occupancy(fine_mask)
        idx = np.argwhere(support)
        if idx.size == 0:
            raise ValueError("fine mask is empty")
        kji = grid.patient_to_index(fine_grid.index_to_patient(idx))
        outside = np.any((kji < -0.5 - 1e-6) | (kji > np.asarray(grid.shape) - 0.5 + 1e-6), axis=1)
        if outside.any():
            raise ValueError(f"fine mask: {int(outside.sum())} fine voxels lie outside the dose grid")
        return SamplePoints(kji, occ * fine_grid.voxel_volume_cc, np.asarray(mask, dtype=bool), 0,
                            f"fine mask on a {fine_grid.spacing_mm} mm grid (z, y, x), trilinear dose")
    support, occ = _occupancy(mask)
    n_vox = int(support.sum())
    if n_vox == 0:
        raise ValueError("structure mask is empty")
    f = int(fine_factor)
    if f < 1:
        raise ValueError(f"fine_factor must be >= 1, got {fine_factor}")
    while f > 1 and n_vox * f ** 3 > max_samples:
        f -= 1
    if f == 1:
        if occ.min() == 1.0:
            return SamplePoints(None, np.full(n_vox, grid.voxel_volume_cc), support, 1, "voxel centres")
        return SamplePoints(np.argwhere(support).astype(float), occ * grid.voxel_volume_cc, support, 1,
                            "voxel centres, partial-volume weights")
    off1 = (np.arange(f) + 0.5) / f - 0.5
    off = np.stack(np.meshgrid(off1, off1, off1, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = np.argwhere(support).astype(float)
    pts = (idx[:, None, :] + off[None, :, :]).reshape(-1, 3)
    vol = np.repeat(occ * grid.voxel_volume_cc / f ** 3, f ** 3)
    return SamplePoints(pts, vol, support, f, f"supersampled {f}x{f}x{f} per voxel, trilinear dose")


@dataclass
class Samples:
    """Dose samples of a structure: ``dose_gy`` and ``volume_cc`` per sample."""

    dose_gy: np.ndarray
    volume_cc: np.ndarray
    fine_factor: int
    method: str


def structure_samples(dose_gy: np.ndarray, mask: np.ndarray, grid: Grid, fine_factor: int = 1, *,
                      fine_mask: np.ndarray | None = None, fine_grid: Grid | None = None,
                      max_samples: int = DEFAULT_MAX_SAMPLES) -> Samples:
    """Dose samples of ``dose_gy`` (Gy, on ``grid``) in a structure."""
    grid.check_array(np.asarray(dose_gy), "dose")
    pts = sample_points(mask, grid, fine_factor, fine_mask=fine_mask, fine_grid=fine_grid, max_samples=max_samples)
    return Samples(pts.values(dose_gy), pts.volume_cc, pts.fine_factor, pts.method)
