"""Margins: isotropic expansion/contraction in mm on anisotropic grids, and the consensus recipe
for the recurrent CTV and PTV.

Two methods (``method=``):

* ``'partial-volume'`` (default of :func:`expand`): the margin keeps the *volume* a fine grid would give, on any
  grid. Voxel-centre distances lose a margin smaller than the voxel (a 3 mm margin on a 4 mm grid
  reaches no neighbour, so the PTV equalled the rCTV). Here the mask's box (plus the margin) is
  supersampled into sub-voxels of at most ``subvoxel_mm`` (default 0.5 mm); the mask's surface there
  is the trilinearly interpolated indicator at the level that keeps the mask's own volume; the
  sub-voxels within the margin of that surface (Euclidean distance with the grid spacing) give each
  voxel a covered fraction, and the result keeps the ``round(sum of fractions)`` voxels of largest
  fraction (the mask itself always included for an expansion, never exceeded for a contraction).
  A voxel's centre may therefore lie up to about one voxel beyond ``margin_mm`` of the mask's
  centres: the margin is faithful in volume, not in centre distances. Measured against analytic
  spheres and boxes, expansions are within 8 % of the analytic volume on 1-5 mm grids; a
  contraction follows the dents of a coarse surface inwards (a 15 mm sphere shrunk by 5 mm: 0.99,
  0.89, 0.87 of the analytic core at 1, 3, 5 mm; voxel centres give 1.04, 1.31, 0.90).
* ``'centres'`` (default of :func:`contract`): voxel-centre to voxel-centre Euclidean distances
  (``scipy.ndimage.distance_transform_edt`` with the spacing); exact in mm between centres, but its
  volume depends on the grid (use it on fine grids or to reproduce older results).

:func:`ring` and :func:`distance_outside_mm` are voxel-centre distances (they describe distances,
not volumes).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .grid import Grid

MARGIN_METHODS = ("partial-volume", "centres")
SUBVOXEL_MM = 0.5
# Sub-voxels per call: beyond this the sub-voxel is coarsened (boxes of large structures).
MAX_FINE_VOXELS = 4_000_000


def distance_outside_mm(mask: np.ndarray, grid: Grid) -> np.ndarray:
    """Distance (mm) of every voxel centre to the nearest voxel centre of ``mask`` (0 inside)."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(~mask, sampling=grid.spacing_mm)


def _check(mask: np.ndarray, grid: Grid, margin_mm: float, method: str, what: str) -> np.ndarray:
    if not np.isfinite(margin_mm) or margin_mm < 0:
        raise ValueError(f"{what}: margin_mm must be a finite number >= 0 mm, got {margin_mm}"
                         + ("; use contract() to shrink" if what == "expand" else ""))
    if method not in MARGIN_METHODS:
        raise ValueError(f"{what}: method must be one of {MARGIN_METHODS}, got {method!r}")
    grid.check_array(mask, what)
    return np.asarray(mask, dtype=bool)


def _subdivisions(box_shape: tuple[int, ...], spacing_mm: np.ndarray, subvoxel_mm: float) -> np.ndarray:
    """Sub-voxels per voxel along (z, y, x): sub-voxels of at most ``subvoxel_mm``, coarsened while
    the box would hold more than MAX_FINE_VOXELS of them."""
    if not subvoxel_mm > 0:
        raise ValueError(f"subvoxel_mm must be > 0 mm, got {subvoxel_mm}")
    size = float(subvoxel_mm)
    n_box = int(np.prod(box_shape))
    while True:
        s = np.maximum(1, np.ceil(spacing_mm / size - 1e-9).astype(int))
        if n_box * int(np.prod(s)) <= MAX_FINE_VOXELS or s.max() == 1:
            return s
        size *= 1.25


def _interpolated_indicator(mask: np.ndarray, s: np.ndarray) -> np.ndarray:
    """The mask's indicator (1 inside) interpolated trilinearly at the sub-voxel centres
    (``s`` per voxel and axis); edge voxels are held beyond the box."""
    f = mask.astype(np.float32)
    for axis in range(3):
        n = mask.shape[axis]
        c = (np.arange(n * s[axis]) + 0.5) / s[axis] - 0.5   # sub-voxel centres in voxel units
        i0 = np.floor(c).astype(np.int64)
        w = (c - i0).astype(np.float32)
        shape = [1, 1, 1]
        shape[axis] = -1
        w = w.reshape(shape)
        f = (np.take(f, np.clip(i0, 0, n - 1), axis=axis) * (1 - w)
             + np.take(f, np.clip(i0 + 1, 0, n - 1), axis=axis) * w)
    return f


def _fine_mask(mask: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Sub-voxel mask whose volume equals the mask's (the interpolated indicator above the level
    that keeps ``mask.sum() * prod(s)`` sub-voxels; ties are kept)."""
    f = _interpolated_indicator(mask, s)
    n_fine = int(mask.sum()) * int(np.prod(s))
    if n_fine == 0:
        return np.zeros(f.shape, dtype=bool)
    # Only the partly covered sub-voxels (0 < f < 1) decide the level: sort just those.
    full = f >= 1.0 - 1e-6
    partial = f[(f > 1e-6) & ~full]
    k = n_fine - int(full.sum())
    if k <= 0:
        return full
    if k >= partial.size:
        return f > 1e-6
    level = np.partition(partial, partial.size - k)[partial.size - k]
    return f >= level


def _voxel_fraction(fine: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Fraction of each voxel's sub-voxels that are True."""
    nz, ny, nx = (fine.shape[a] // s[a] for a in range(3))
    return fine.reshape(nz, s[0], ny, s[1], nx, s[2]).mean(axis=(1, 3, 5))


def _largest_fractions(frac: np.ndarray, forced: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The ``round(frac.sum())`` voxels of largest fraction among ``allowed``, ``forced`` first
    (ties in array order)."""
    n = int(round(float(frac[allowed].sum())))
    n = max(n, int(forced.sum()))
    key = np.where(forced, 2.0, np.where(allowed, frac, -1.0)).ravel()
    order = np.argsort(-key, kind="stable")[:n]
    out = np.zeros(frac.size, dtype=bool)
    out[order] = True
    return out.reshape(frac.shape) & (allowed | forced)


def _box(mask: np.ndarray, grid: Grid, margin_mm: float) -> tuple[slice, ...]:
    """The mask's bounding box grown by the margin plus two voxels, within the grid."""
    spacing = np.asarray(grid.spacing_mm)
    pad = np.ceil(margin_mm / spacing).astype(int) + 2
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(axis=0) - pad, 0)
    hi = np.minimum(idx.max(axis=0) + pad + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def expand(mask: np.ndarray, grid: Grid, margin_mm: float, *, method: str = "partial-volume",
           subvoxel_mm: float = SUBVOXEL_MM) -> np.ndarray:
    """Isotropic expansion of ``mask`` by ``margin_mm`` (mm, >= 0); see the module docstring for
    ``method`` ('partial-volume' default, or 'centres') and ``subvoxel_mm`` (mm)."""
    mask = _check(mask, grid, margin_mm, method, "expand")
    if margin_mm == 0 or not mask.any():
        return mask.copy()
    if method == "centres":
        return distance_outside_mm(mask, grid) <= margin_mm + 1e-9
    box = _box(mask, grid, margin_mm)
    sub = mask[box]
    spacing = np.asarray(grid.spacing_mm)
    s = _subdivisions(sub.shape, spacing, subvoxel_mm)
    fine = _fine_mask(sub, s)
    within = ndimage.distance_transform_edt(~fine, sampling=spacing / s) <= margin_mm + 1e-9
    frac = _voxel_fraction(within, s)
    out = np.zeros_like(mask)
    out[box] = _largest_fractions(frac, sub, np.ones(sub.shape, dtype=bool))
    return out


def contract(mask: np.ndarray, grid: Grid, margin_mm: float, *, method: str = "centres",
             subvoxel_mm: float = SUBVOXEL_MM) -> np.ndarray:
    """Isotropic contraction of ``mask`` by ``margin_mm`` (mm, >= 0): what lies farther than
    ``margin_mm`` from everything outside the mask (the grid border counts as outside); see the
    module docstring for ``method`` and ``subvoxel_mm``. The result is a subset of the mask.

    The default is 'centres' (unlike :func:`expand`): a contraction answers "where does a sphere of
    ``margin_mm`` fit inside" (e.g. placing a synthetic recurrence), a question about voxel centres;
    ask for 'partial-volume' to shrink a volume."""
    mask = _check(mask, grid, margin_mm, method, "contract")
    if margin_mm == 0 or not mask.any():
        return mask.copy()
    if method == "centres":
        padded = np.pad(mask, 1, constant_values=False)
        inside = ndimage.distance_transform_edt(padded, sampling=grid.spacing_mm)[1:-1, 1:-1, 1:-1]
        return inside > margin_mm + 1e-9
    # One voxel of outside around the mask's box, so the grid border counts as outside.
    box = _box(mask, grid, 0.0)
    sub = np.pad(mask[box], 1, constant_values=False)
    spacing = np.asarray(grid.spacing_mm)
    s = _subdivisions(sub.shape, spacing, subvoxel_mm)
    fine = _fine_mask(sub, s)
    deep = ndimage.distance_transform_edt(fine, sampling=spacing / s) > margin_mm + 1e-9
    frac = _voxel_fraction(deep, s)
    kept = _largest_fractions(frac, np.zeros(sub.shape, dtype=bool), sub & (frac > 0))
    out = np.zeros_like(mask)
    out[box] = kept[1:-1, 1:-1, 1:-1]
    return out


def ring(mask: np.ndarray, grid: Grid, inner_mm: float, outer_mm: float) -> np.ndarray:
    """Shell of voxels whose centre-to-centre distance to ``mask`` is in (inner_mm, outer_mm] mm."""
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
    method: str = "partial-volume",
) -> tuple[np.ndarray, np.ndarray]:
    """The consensus recipe: returns ``(rCTV, PTV)`` boolean masks.

    rCTV = (rGTV + ``ctv_margin_mm``) within the body, minus air, minus the barrier structures
    (e.g. bone of the skull base), minus every critical OAR grown by ``oar_curtail_mm`` (0 mm
    removes just the OAR itself); the rGTV itself is never edited away.
    PTV = rCTV + ``ptv_margin_mm`` within the body.
    The two margins use ``method`` (see the module docstring); the OAR curtail is a distance from
    the organ and always uses voxel centres (an rCTV voxel is removed when its centre lies within
    ``oar_curtail_mm`` of an organ voxel centre).

    Margins outside 0-20 mm raise ValueError rather than being clipped (the guideline allows a CTV
    margin of at most 5 mm and a PTV margin of 2-3 mm).
    """
    for name, value in (("ctv_margin_mm", ctv_margin_mm), ("ptv_margin_mm", ptv_margin_mm),
                        ("oar_curtail_mm", oar_curtail_mm)):
        if not (0.0 <= value <= 20.0):
            raise ValueError(f"recurrent_target_volumes: {name} must be between 0 and 20 mm, got {value}")
    if not rgtv.any():
        raise ValueError("recurrent_target_volumes: the rGTV mask is empty")
    ctv = expand(rgtv, grid, ctv_margin_mm, method=method) & body
    if air is not None:
        ctv &= ~air
    for barrier in barriers:
        ctv &= ~barrier
    for oar in critical_oars:
        ctv &= ~expand(oar, grid, oar_curtail_mm, method="centres")
    ctv |= rgtv & body
    ptv = expand(ctv, grid, ptv_margin_mm, method=method) & body
    return ctv, ptv
