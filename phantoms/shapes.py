"""Analytic solids for synthetic phantoms and their volume-preserving voxelisation.

A solid is anything with ``contains(x, y, z) -> bool array`` (patient LPS coordinates in mm,
broadcastable arrays) and ``bounds() -> ((xmin, xmax), (ymin, ymax), (zmin, zmax))`` in mm.
Solids combine with :class:`Union`, :class:`Intersection` and :class:`Difference`.

:func:`rasterize` turns a solid into a boolean mask on a :class:`~reirrad_opt.geometry.Grid`.
Small solids are super-sampled and the mask keeps the solid's volume (the voxels with the
largest covered fraction are taken until the voxel count matches the covered volume), so a
0.1 cc cochlea is 0.1 cc at 1 mm and at 3 mm; large solids are sampled at voxel centres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from reirrad_opt.geometry import Grid

Bounds = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


class Solid(Protocol):
    def contains(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray: ...

    def bounds(self) -> Bounds: ...


def rot_x(deg: float) -> np.ndarray:
    """Rotation about the patient x axis (left-right) by ``deg`` degrees; positive turns +z
    towards -y (a long axis tilted so that its superior end moves anterior)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_z(deg: float) -> np.ndarray:
    """Rotation about the patient z axis (inferior-superior) by ``deg`` degrees (+x towards +y)."""
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Ellipsoid:
    """Ellipsoid with centre ``(x, y, z)`` mm and semi-axes ``(a, b, c)`` mm along its own axes;
    ``rotation`` (3x3) maps its own axes to patient axes (columns = its axes in LPS)."""

    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    rotation: np.ndarray | None = field(default=None, compare=False)

    def level(self, x, y, z) -> np.ndarray:
        """Squared normalised radius: < 1 inside, 1 on the surface."""
        u = (np.asarray(x, float) - self.centre[0], np.asarray(y, float) - self.centre[1],
             np.asarray(z, float) - self.centre[2])
        if self.rotation is not None:
            r = self.rotation
            u = tuple(r[0, k] * u[0] + r[1, k] * u[1] + r[2, k] * u[2] for k in range(3))
        a, b, c = self.semi_axes
        return (u[0] / a) ** 2 + (u[1] / b) ** 2 + (u[2] / c) ** 2

    def contains(self, x, y, z) -> np.ndarray:
        return self.level(x, y, z) <= 1.0

    def bounds(self) -> Bounds:
        r = np.eye(3) if self.rotation is None else np.asarray(self.rotation)
        # half-extent along patient axis i of a rotated ellipsoid: sqrt(sum_k (R_ik a_k)^2)
        half = np.sqrt(((r * np.asarray(self.semi_axes)[None, :]) ** 2).sum(axis=1))
        return tuple((self.centre[i] - half[i], self.centre[i] + half[i]) for i in range(3))  # type: ignore

    @property
    def volume_cc(self) -> float:
        a, b, c = self.semi_axes
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0

    def surface_points(self, n_theta: int = 181, n_phi: int = 360) -> np.ndarray:
        """Points on the surface, ``(n, 3)`` LPS mm (for distance computations)."""
        t = np.linspace(0.0, math.pi, n_theta)[:, None]
        p = np.linspace(0.0, 2 * math.pi, n_phi, endpoint=False)[None, :]
        a, b, c = self.semi_axes
        local = np.stack([a * np.sin(t) * np.cos(p), b * np.sin(t) * np.sin(p), c * np.cos(t) * np.ones_like(p)],
                         axis=-1).reshape(-1, 3)
        if self.rotation is not None:
            local = local @ np.asarray(self.rotation).T
        return local + np.asarray(self.centre)


@dataclass(frozen=True)
class Tube:
    """All points within ``radius`` mm of a polyline through ``points`` (LPS mm)."""

    points: tuple[tuple[float, float, float], ...]
    radius: float

    def distance(self, x, y, z) -> np.ndarray:
        """Distance (mm) to the polyline (the tube's axis)."""
        x, y, z = (np.asarray(v, float) for v in (x, y, z))
        best = None
        for p, q in zip(self.points[:-1], self.points[1:]):
            d = np.subtract(q, p)
            dd = float(d @ d)
            t = ((x - p[0]) * d[0] + (y - p[1]) * d[1] + (z - p[2]) * d[2]) / dd
            t = np.clip(t, 0.0, 1.0)
            dist2 = (x - p[0] - t * d[0]) ** 2 + (y - p[1] - t * d[1]) ** 2 + (z - p[2] - t * d[2]) ** 2
            best = dist2 if best is None else np.minimum(best, dist2)
        return np.sqrt(best)

    def contains(self, x, y, z) -> np.ndarray:
        return self.distance(x, y, z) <= self.radius

    def bounds(self) -> Bounds:
        p = np.asarray(self.points, float)
        return tuple((p[:, i].min() - self.radius, p[:, i].max() + self.radius) for i in range(3))  # type: ignore

    @property
    def length_mm(self) -> float:
        p = np.asarray(self.points, float)
        return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


@dataclass(frozen=True)
class EllipticCylinder:
    """Cylinder along z with elliptic cross-section (centre ``(x, y)``, semi-axes ``(a, b)`` mm)
    between ``z_min`` and ``z_max`` mm."""

    centre_xy: tuple[float, float]
    semi_axes_xy: tuple[float, float]
    z_min: float
    z_max: float

    def contains(self, x, y, z) -> np.ndarray:
        x, y, z = (np.asarray(v, float) for v in (x, y, z))
        a, b = self.semi_axes_xy
        r = ((x - self.centre_xy[0]) / a) ** 2 + ((y - self.centre_xy[1]) / b) ** 2
        return (r <= 1.0) & (z >= self.z_min) & (z <= self.z_max)

    def bounds(self) -> Bounds:
        (cx, cy), (a, b) = self.centre_xy, self.semi_axes_xy
        return ((cx - a, cx + a), (cy - b, cy + b), (self.z_min, self.z_max))


@dataclass(frozen=True)
class Region:
    """A solid given by a predicate ``inside(x, y, z)`` and explicit bounds (mm)."""

    inside: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    box: Bounds

    def contains(self, x, y, z) -> np.ndarray:
        return np.asarray(self.inside(x, y, z), dtype=bool)

    def bounds(self) -> Bounds:
        return self.box


@dataclass(frozen=True)
class Union:
    parts: tuple

    def contains(self, x, y, z) -> np.ndarray:
        out = self.parts[0].contains(x, y, z)
        for p in self.parts[1:]:
            out = out | p.contains(x, y, z)
        return out

    def bounds(self) -> Bounds:
        bs = [p.bounds() for p in self.parts]
        return tuple((min(b[i][0] for b in bs), max(b[i][1] for b in bs)) for i in range(3))  # type: ignore


@dataclass(frozen=True)
class Intersection:
    parts: tuple

    def contains(self, x, y, z) -> np.ndarray:
        out = self.parts[0].contains(x, y, z)
        for p in self.parts[1:]:
            out = out & p.contains(x, y, z)
        return out

    def bounds(self) -> Bounds:
        bs = [p.bounds() for p in self.parts]
        return tuple((max(b[i][0] for b in bs), min(b[i][1] for b in bs)) for i in range(3))  # type: ignore


@dataclass(frozen=True)
class Difference:
    """``base`` minus every solid in ``minus``."""

    base: object
    minus: tuple

    def contains(self, x, y, z) -> np.ndarray:
        out = self.base.contains(x, y, z)
        for p in self.minus:
            out = out & ~p.contains(x, y, z)
        return out

    def bounds(self) -> Bounds:
        return self.base.bounds()


def union(*parts) -> Union:
    return Union(tuple(parts))


def half_space(axis: str, minimum: float | None = None, maximum: float | None = None) -> Region:
    """All points whose coordinate ``axis`` ('x', 'y' or 'z') lies in [minimum, maximum] mm."""
    a = "xyz".index(axis)
    lo = -1e4 if minimum is None else float(minimum)
    hi = 1e4 if maximum is None else float(maximum)

    def inside(x, y, z):
        v = np.asarray((x, y, z)[a], dtype=float)
        return (v >= lo) & (v <= hi)

    box = [(-1e4, 1e4)] * 3
    box[a] = (lo, hi)
    return Region(inside, tuple(box))  # type: ignore[arg-type]


def _index_range(lo: float, hi: float, origin: float, spacing: float, n: int) -> tuple[int, int]:
    """Half-open index range of voxels whose extent can meet [lo, hi] mm (clipped to the grid)."""
    i0 = int(math.floor((lo - origin) / spacing - 0.5)) - 1
    i1 = int(math.ceil((hi - origin) / spacing + 0.5)) + 2
    return max(i0, 0), min(i1, n)


def covered_fraction(solid, grid: Grid, subsamples: int) -> tuple[tuple[slice, slice, slice], np.ndarray]:
    """Fraction of each voxel covered by ``solid`` (``subsamples``^3 points per voxel), on the
    sub-box of the grid that holds the solid's bounds. Returns ``(slices, fraction)``."""
    b = solid.bounds()
    zr = _index_range(b[2][0], b[2][1], grid.origin_mm[0], grid.spacing_mm[0], grid.shape[0])
    yr = _index_range(b[1][0], b[1][1], grid.origin_mm[1], grid.spacing_mm[1], grid.shape[1])
    xr = _index_range(b[0][0], b[0][1], grid.origin_mm[2], grid.spacing_mm[2], grid.shape[2])
    slices = (slice(*zr), slice(*yr), slice(*xr))
    sub_shape = tuple(max(r[1] - r[0], 0) for r in (zr, yr, xr))
    if min(sub_shape) == 0:
        return slices, np.zeros(sub_shape)
    s = int(subsamples)
    offsets = (np.arange(s) + 0.5) / s - 0.5
    axes = []
    for a, r in enumerate((zr, yr, xr)):
        centres = grid.origin_mm[a] + grid.spacing_mm[a] * np.arange(r[0], r[1], dtype=float)
        axes.append((centres[:, None] + offsets[None, :] * grid.spacing_mm[a]).ravel())
    zc, yc, xc = axes
    frac = np.empty(sub_shape)
    nk = sub_shape[0]
    # evaluate slab by slab to bound memory (about 2 M points at a time)
    per_slice = len(yc) * len(xc) * s
    step = max(1, int(2_000_000 // max(per_slice, 1)))
    for k0 in range(0, nk, step):
        k1 = min(nk, k0 + step)
        zz = zc[k0 * s:k1 * s][:, None, None]
        inside = solid.contains(xc[None, None, :], yc[None, :, None], zz)
        inside = np.broadcast_to(inside, (len(zz), len(yc), len(xc)))
        frac[k0:k1] = inside.reshape(k1 - k0, s, sub_shape[1], s, sub_shape[2], s).mean(axis=(1, 3, 5))
    return slices, frac


def rasterize(solid, grid: Grid, *, max_subvoxel_mm: float = 0.75, max_points: int = 2_000_000) -> np.ndarray:
    """Boolean mask of ``solid`` on ``grid``.

    Each voxel is split into ``s^3`` sub-voxels with ``s = ceil(largest spacing / max_subvoxel_mm)``
    (reduced, down to 1 = voxel-centre sampling, while the solid's box would need more than
    ``max_points`` samples). With ``s > 1`` the mask holds the ``round(covered volume / voxel
    volume)`` voxels of largest covered fraction (ties among partly covered voxels broken by a
    second estimate with ``(s + 1)^3`` sub-voxels, then by array order), so its volume equals the solid's to within half
    a voxel at any resolution; with ``s = 1`` it is the set of voxels whose centre lies inside.
    """
    s = max(1, int(math.ceil(max(grid.spacing_mm) / max_subvoxel_mm))) if math.isfinite(max_subvoxel_mm) else 1
    b = solid.bounds()
    n_box = 1.0
    for a, ax in enumerate((2, 1, 0)):
        n_box *= max((b[a][1] - b[a][0]) / grid.spacing_mm[ax] + 4, 1)
    while s > 1 and n_box * (s + 1) ** 3 > max_points:
        s -= 1
    slices, frac = covered_fraction(solid, grid, s)
    mask = np.zeros(grid.shape, dtype=bool)
    if frac.size == 0:
        return mask
    if s == 1:
        mask[slices] = frac > 0.5
        return mask
    tie_break = frac.copy()
    partial = (frac > 0) & (frac < 1)
    if partial.any():
        tie_break[partial] = _fraction_at(solid, grid, slices, np.argwhere(partial), s + 1)
    mask[slices] = _volume_preserving_selection(frac, tie_break)
    return mask


def _fraction_at(solid, grid: Grid, slices, kji: np.ndarray, subsamples: int) -> np.ndarray:
    """Covered fraction of the listed voxels (indices within ``slices``) with ``subsamples``^3 points."""
    start = np.array([sl.start for sl in slices], dtype=float)
    spacing = np.asarray(grid.spacing_mm)
    centres = np.asarray(grid.origin_mm) + (kji + start) * spacing  # (n, 3) in z, y, x
    o = (np.arange(subsamples) + 0.5) / subsamples - 0.5
    offsets = np.stack(np.meshgrid(o, o, o, indexing="ij"), axis=-1).reshape(-1, 3) * spacing
    out = np.empty(len(centres))
    step = max(1, 1_000_000 // len(offsets))
    for a in range(0, len(centres), step):
        pts = centres[a:a + step, None, :] + offsets[None, :, :]
        out[a:a + step] = solid.contains(pts[..., 2], pts[..., 1], pts[..., 0]).mean(axis=1)
    return out


def _volume_preserving_selection(frac: np.ndarray, tie_break: np.ndarray) -> np.ndarray:
    """The ``round(frac.sum())`` voxels with the largest ``frac`` (then ``tie_break``); at least one
    voxel if anything is covered."""
    target = float(frac.sum())
    out = np.zeros(frac.shape, dtype=bool)
    if target <= 0:
        return out
    n = max(1, int(round(target)))
    flat = np.flatnonzero(frac > 0)
    order = np.lexsort((flat, -tie_break.ravel()[flat], -frac.ravel()[flat]))
    out.ravel()[flat[order[:n]]] = True
    return out


def points_min_distance(points: np.ndarray, solid_points: np.ndarray) -> float:
    """Smallest Euclidean distance (mm) between two point sets ``(n, 3)`` and ``(m, 3)``."""
    best = math.inf
    for chunk in np.array_split(points, max(1, len(points) // 2000 + 1)):
        d = np.linalg.norm(chunk[:, None, :] - solid_points[None, :, :], axis=-1)
        best = min(best, float(d.min()))
    return best


def tube_axis_points(tube: Tube, step_mm: float = 0.25) -> np.ndarray:
    """Points along a tube's axis every ``step_mm`` (LPS mm), ``(n, 3)``."""
    pts = []
    for p, q in zip(tube.points[:-1], tube.points[1:]):
        p, q = np.asarray(p, float), np.asarray(q, float)
        n = max(2, int(math.ceil(np.linalg.norm(q - p) / step_mm)) + 1)
        pts.append(p[None, :] + np.linspace(0, 1, n)[:, None] * (q - p)[None, :])
    return np.concatenate(pts)
