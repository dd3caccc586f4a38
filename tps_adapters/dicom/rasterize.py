"""ROI contours -> boolean masks on an axis-aligned grid.

Rules (stated once):

* In a plane, a voxel belongs to a ROI when its **centre** lies inside the ROI's closed planar
  contours. Edges are half-open (a centre exactly on a left or lower edge is inside, on a right or
  upper edge outside), so two ROIs that share an edge never share a voxel. All contours of one ROI
  on one plane combine by the **even-odd rule** (a contour inside another is a hole, a contour
  inside a hole an island).
* Along z, each contour plane stands for a slab: between two neighbouring planes the boundary is
  half-way (nearest plane). Planes more than 1.5 plane spacings apart belong to separate parts and
  the gap between them stays empty. At the two ends of every part the **end cap** decides how far
  the ROI reaches (``end_caps``):

  - ``'half'`` (default): the ROI ends at its end contour planes (the end planes count half a slab).
    Volume = sum of plane areas x spacing minus half of the two end areas x spacing. This is what
    the TPS volumes shipped with the test data show: Eclipse 8.1's prostate phantom (BODY 10593.0 cc
    stated; half 10589.8, full 10697.2), the breast example's embedded TPS DVHs, and RayStation's
    ``Cube101010`` (21 planes 5 mm apart spanning 100 mm: 1000 cc with half caps, a 10 cm cube).
  - ``'full'``: the end planes count a whole slab (the ROI reaches half a spacing beyond them);
    dicompyler-core's convention (its Heart 440.23 cc). Small structures on few planes come out far
    larger (a chiasm on 3 planes: 3/2 of 'half').
  - ``'none'``: the end planes add no volume (the ROI starts half a spacing inside them).

  A ROI with a single contour plane has a slab of one spacing ('full'), half a spacing centred
  on it ('half') or nothing ('none'). The spacing of a one-plane ROI is the grid's slice spacing.
* A grid slice takes the contours of the plane whose slab overlaps it most; when the slabs cover
  only a fraction ``f`` of the slice's thickness (an end cap, or a grid coarser than the planes)
  the slice keeps the ``round(f * n)`` of its ``n`` in-plane voxels that lie deepest inside the
  contour, so the mask keeps the volume of the convention (a centred, shrunken end cap).
* Parts of a ROI outside the grid are reported as ``fraction_outside`` (by volume), never silently
  dropped; ROIs without contours are reported as empty.
* Every contour must lie within the images present (``extent_mm``: by default the grid; the
  importer passes the CT and the case grid) plus ``tolerance_mm`` (default 10 mm); in z the extent
  also follows the structure set's contiguous stack of planes (planes at most 10 mm apart), since a
  structure set may be drawn on more CT slices than were exported. A contour beyond is an error
  naming the ROI, the plane and the extent (a coordinate in the wrong unit, or corrupted), so work
  and memory are bounded by the images and the contoured stack, never by bogus coordinates.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from reirrad_opt.geometry import Grid

from .errors import GeometryError

if TYPE_CHECKING:
    from .rtstruct import RoiContours

END_CAPS = ("half", "full", "none")
DEFAULT_END_CAPS = "half"
END_CAP_TEXT = {"half": "ends at its first and last contour planes",
                "full": "reaches half a plane spacing beyond its first and last contour planes",
                "none": "starts half a plane spacing inside its first and last contour planes"}
CONTOUR_TOLERANCE_MM = 10.0
PLANE_TOLERANCE_MM = 1e-3
# Neighbouring planes farther apart than this many plane spacings belong to separate parts.
PART_GAP_SPACINGS = 1.5

Extent = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


def grid_edge_extent(grid: Grid) -> Extent:
    """(min, max) of the grid's voxel *edges* along (z, y, x), mm."""
    return tuple((lo - s / 2, hi + s / 2) for (lo, hi), s in zip(grid.extent_mm(), grid.spacing_mm))  # type: ignore[return-value]


def union_extent(*extents: Extent) -> Extent:
    """The smallest box holding every given (z, y, x) extent."""
    return tuple((min(e[a][0] for e in extents), max(e[a][1] for e in extents)) for a in range(3))  # type: ignore[return-value]


def stack_extent(rois: "list[RoiContours]", image_extent: Extent, tolerance_mm: float = CONTOUR_TOLERANCE_MM) -> Extent:
    """``image_extent`` ((z, y, x) min/max, mm) with its z range grown along the structure set's
    stack of contour planes, as long as each next plane lies within ``tolerance_mm`` of the range:
    a structure set drawn on more CT slices than were exported reaches beyond the images in z
    (its volume there is reported as outside the grid), but a plane cut off from the stack is not."""
    z = np.unique(np.array([p for r in rois for p in r.planes], dtype=float))
    z = z[np.isfinite(z)]
    lo, hi = image_extent[0]
    for value in z[z > hi]:
        if value - hi > tolerance_mm:
            break
        hi = float(value)
    for value in z[z < lo][::-1]:
        if lo - value > tolerance_mm:
            break
        lo = float(value)
    return ((lo, hi), image_extent[1], image_extent[2])


def rasterize_polygons(polygons: list[np.ndarray], x0: float, dx: float, nx: int,
                       y0: float, dy: float, ny: int) -> np.ndarray:
    """Even-odd fill of closed polygons ((n, 2) arrays of x, y in mm) on pixel centres
    ``x0 + i*dx`` (i < nx), ``y0 + j*dy`` (j < ny). Returns a bool array ``[ny, nx]``.

    A centre is inside when an odd number of polygon edges cross the row to its left; an edge
    covers the rows with ``y_min <= y_centre < y_max`` and a crossing at ``x`` toggles every
    centre with ``x_centre >= x``. Work is proportional to the rows inside the box, whatever the
    vertices' coordinates.
    """
    toggles = np.zeros((ny, nx + 1), dtype=np.int32)
    xs = np.concatenate([p[:, 0] for p in polygons])
    ys = np.concatenate([p[:, 1] for p in polygons])
    xe = np.concatenate([np.roll(p[:, 0], -1) for p in polygons])
    ye = np.concatenate([np.roll(p[:, 1], -1) for p in polygons])
    # Row indices as exact functions of the vertex coordinates, so that two edges sharing a
    # vertex agree on it.
    jv_s = np.ceil((ys - y0) / dy)
    jv_e = np.ceil((ye - y0) / dy)
    j_lo = np.clip(np.minimum(jv_s, jv_e), 0, ny).astype(np.int64)
    j_hi = np.clip(np.maximum(jv_s, jv_e), 0, ny).astype(np.int64)
    counts = j_hi - j_lo
    keep = counts > 0
    if not keep.any():
        return np.zeros((ny, nx), dtype=bool)
    xs, ys, xe, ye, j_lo, counts = xs[keep], ys[keep], xe[keep], ye[keep], j_lo[keep], counts[keep]
    edge = np.repeat(np.arange(len(xs)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    j = j_lo[edge] + offsets
    yc = y0 + j * dy
    t = (yc - ys[edge]) / (ye[edge] - ys[edge])
    x = xs[edge] + t * (xe[edge] - xs[edge])
    i = np.clip(np.ceil((x - x0) / dx), 0, nx).astype(np.int64)
    np.add.at(toggles, (j, i), 1)
    return (np.cumsum(toggles[:, :nx], axis=1) & 1).astype(bool)


@dataclass
class RasterizedRoi:
    """A ROI on a grid.

    Attributes:
        mask: bool array, grid shape.
        fraction_outside: fraction of the ROI's voxelised volume that lies outside the grid.
        volume_cc: volume inside the grid (cc).
        end_caps: the end-cap convention used ('half', 'full' or 'none').
    """

    mask: np.ndarray
    fraction_outside: float
    volume_cc: float
    end_caps: str = DEFAULT_END_CAPS


def check_contour_bounds(roi: "RoiContours", extent_mm: Extent, tolerance_mm: float = CONTOUR_TOLERANCE_MM) -> None:
    """GeometryError naming the ROI, the plane and the extent when a contour lies more than
    ``tolerance_mm`` outside ``extent_mm`` ((z, y, x) min/max, mm) or holds a non-finite coordinate."""
    (z_lo, z_hi), (y_lo, y_hi), (x_lo, x_hi) = extent_mm
    where = (f"the images' extent x {x_lo:.1f} to {x_hi:.1f}, y {y_lo:.1f} to {y_hi:.1f}, z {z_lo:.1f} to "
             f"{z_hi:.1f} mm")
    for z, polys in roi.planes.items():
        pts = np.concatenate(polys)
        if not (np.isfinite(z) and np.all(np.isfinite(pts))):
            raise GeometryError(f"ROI {roi.name!r}: a contour on plane z = {z} mm holds a non-finite coordinate")
        (x_min, y_min), (x_max, y_max) = pts.min(axis=0), pts.max(axis=0)
        beyond = max(z_lo - z, z - z_hi, x_lo - x_min, x_max - x_hi, y_lo - y_min, y_max - y_hi)
        if beyond > tolerance_mm:
            raise GeometryError(
                f"ROI {roi.name!r}: the contour on plane z = {z:g} mm (x {x_min:.4g} to {x_max:.4g}, y {y_min:.4g} to "
                f"{y_max:.4g} mm) lies {beyond:.4g} mm outside {where} (tolerance {tolerance_mm:g} mm); a contour "
                "there is no anatomy of these images (a coordinate in the wrong unit, or corrupted): correct or "
                "delete it in the TPS")


def plane_slabs(planes: np.ndarray, spacing_mm: float, end_caps: str) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) z (mm) of the slab of each sorted contour plane under ``end_caps`` (see the
    module docstring); an empty slab has lower >= upper."""
    if end_caps not in END_CAPS:
        raise ValueError(f"end_caps must be one of {END_CAPS}, got {end_caps!r}")
    t = float(spacing_mm)
    n = planes.size
    lower = np.empty(n)
    upper = np.empty(n)
    gaps = np.diff(planes)
    joined = gaps <= PART_GAP_SPACINGS * t + PLANE_TOLERANCE_MM   # plane i joined to plane i + 1
    mid = planes[:-1] + gaps / 2
    lower[1:] = np.where(joined, mid, planes[1:] - t / 2)
    upper[:-1] = np.where(joined, mid, planes[:-1] + t / 2)
    lower[0], upper[-1] = planes[0] - t / 2, planes[-1] + t / 2
    first = np.concatenate([[True], ~joined])
    last = np.concatenate([~joined, [True]])
    single = first & last
    shift = {"full": 0.0, "half": t / 2, "none": t}[end_caps]
    lower[first] = planes[first] - t / 2 + shift
    upper[last] = planes[last] + t / 2 - shift
    if end_caps == "half":   # a lone plane keeps half a slab, centred
        lower[single], upper[single] = planes[single] - t / 4, planes[single] + t / 4
    return lower, upper


def _deepest(mask_2d: np.ndarray, n_keep: int, spacing_yx: tuple[float, float]) -> np.ndarray:
    """The ``n_keep`` voxels of ``mask_2d`` farthest from its outside (ties in array order)."""
    if n_keep <= 0:
        return np.zeros_like(mask_2d)
    depth = ndimage.distance_transform_edt(np.pad(mask_2d, 1), sampling=spacing_yx)[1:-1, 1:-1]
    order = np.argsort(-depth.ravel(), kind="stable")[:n_keep]
    out = np.zeros(mask_2d.size, dtype=bool)
    out[order] = True
    return out.reshape(mask_2d.shape) & mask_2d


def rasterize_roi(roi: "RoiContours", grid: Grid, *, end_caps: str = DEFAULT_END_CAPS,
                  extent_mm: Extent | None = None, tolerance_mm: float = CONTOUR_TOLERANCE_MM) -> RasterizedRoi:
    """Rasterise ``roi`` on ``grid`` (see the module docstring for the rules).

    Args:
        end_caps: 'half' (default), 'full' or 'none'.
        extent_mm: (z, y, x) min/max (mm) within which the contours must lie (default: the grid's
            voxel edges, in z grown along the ROI's own planes, see :func:`stack_extent`); the
            importer passes the CT and the case grid, grown along the structure set's planes.
        tolerance_mm: how far (mm) beyond ``extent_mm`` a contour may reach.

    Raises:
        GeometryError: a contour outside ``extent_mm`` by more than ``tolerance_mm``.
    """
    if end_caps not in END_CAPS:
        raise ValueError(f"end_caps must be one of {END_CAPS}, got {end_caps!r}")
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    z0, y0, x0 = grid.origin_mm
    mask = np.zeros(grid.shape, dtype=bool)
    if roi.is_empty:
        return RasterizedRoi(mask, 0.0, 0.0, end_caps)
    check_contour_bounds(roi, extent_mm or stack_extent([roi], grid_edge_extent(grid), tolerance_mm), tolerance_mm)
    planes = np.array(sorted(roi.planes))
    lower, upper = plane_slabs(planes, roi.plane_spacing_mm(default=dz), end_caps)
    # Index range (possibly beyond the grid, bounded by the checked extent) of slices and of the
    # in-plane bounding box.
    k_lo = int(np.floor((lower.min() - z0) / dz - 0.5))
    k_hi = int(np.ceil((upper.max() - z0) / dz + 0.5)) + 1
    allpts = np.concatenate([p for polys in roi.planes.values() for p in polys])
    i_lo = int(np.floor((allpts[:, 0].min() - x0) / dx))
    i_hi = int(np.ceil((allpts[:, 0].max() - x0) / dx)) + 1
    j_lo = int(np.floor((allpts[:, 1].min() - y0) / dy))
    j_hi = int(np.ceil((allpts[:, 1].max() - y0) / dy)) + 1
    ja, jb = max(j_lo, 0), min(j_hi, ny)
    ia, ib = max(i_lo, 0), min(i_hi, nx)
    last_plane, last_box = -1, np.zeros((0, 0), dtype=bool)
    n_total = 0
    n_inside = 0
    for k in range(k_lo, k_hi):
        zc = z0 + k * dz
        overlap = np.clip(np.minimum(upper, zc + dz / 2) - np.maximum(lower, zc - dz / 2), 0.0, None)
        coverage = min(float(overlap.sum()) / dz, 1.0)
        if coverage <= PLANE_TOLERANCE_MM / dz:
            continue
        candidates = np.flatnonzero(overlap >= overlap.max() - PLANE_TOLERANCE_MM)
        best = int(candidates[np.argmin(np.abs(planes[candidates] - zc))])
        if best != last_plane:
            last_plane, last_box = best, rasterize_polygons(roi.planes[float(planes[best])], x0 + i_lo * dx, dx,
                                                            i_hi - i_lo, y0 + j_lo * dy, dy, j_hi - j_lo)
        box = last_box
        if coverage < 1.0 - PLANE_TOLERANCE_MM / dz:
            box = _deepest(box, int(round(coverage * int(box.sum()))), (dy, dx))
        n_total += int(box.sum())
        if 0 <= k < nz and ja < jb and ia < ib:
            crop = box[ja - j_lo:jb - j_lo, ia - i_lo:ib - i_lo]
            mask[k, ja:jb, ia:ib] = crop
            n_inside += int(crop.sum())
    fraction_outside = 0.0 if n_total == 0 else 1.0 - n_inside / n_total
    return RasterizedRoi(mask, float(fraction_outside), n_inside * grid.voxel_volume_cc, end_caps)
