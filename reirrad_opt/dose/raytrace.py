"""Radiological (water-equivalent) depth along the rays of a beam.

Method (vectorised, no per-ray loop): the relative density volume (electron density for
photons, stopping-power ratio for particles; zero outside the body) is resampled by trilinear
interpolation onto a beam-aligned grid whose lines are the rays of the beam: iso-plane
coordinates ``(a, b)`` (lateral) and the distance ``w`` from the source along the central axis
(see :mod:`.geometry`). Along each ray the density is integrated with the trapezoidal rule,
``depth(w) = integral of rho dl`` with ``dl = dw * sqrt(1 + (a^2 + b^2) / SAD^2)`` for divergent
beams, and the cumulative depth is interpolated (trilinearly) back at the voxel centres.

The integration is exact for densities that are linear between samples, so an interface
(air-tissue, tissue-bone) contributes its thickness times its density whatever its position;
the step along the ray is half the smallest voxel spacing (photons: one spacing) and the lateral step the smallest
voxel spacing (half the largest one on strongly anisotropic grids).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..geometry import Grid
from .geometry import BeamFrame


@dataclass
class RayTrace:
    """Beam coordinates and radiological depth of a set of voxels.

    Attributes:
        voxels: flat C-order voxel indices (int64) of the full grid.
        a_mm, b_mm: iso-plane lateral BEV coordinates (mm) of the voxel centres.
        w_mm: distance from the source along the central axis (mm).
        depth_mm: radiological (water-equivalent) depth from where the ray enters the body (mm).
    """

    voxels: np.ndarray
    a_mm: np.ndarray
    b_mm: np.ndarray
    w_mm: np.ndarray
    depth_mm: np.ndarray


def beam_coordinates(frame: BeamFrame, grid: Grid, voxels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iso-plane ``(a, b)`` and source distance ``w`` (mm, float64) of voxel centres."""
    return frame.fan_coordinates(grid.voxel_centres_xyz(voxels))


def _sample_density(density: np.ndarray, grid: Grid, points_xyz: np.ndarray) -> np.ndarray:
    idx = grid.patient_to_index(points_xyz)  # (..., 3) in (k, j, i)
    coords = np.moveaxis(idx, -1, 0).reshape(3, -1)
    out = ndimage.map_coordinates(density, coords, order=1, mode="constant", cval=0.0, prefilter=False)
    return out.reshape(idx.shape[:-1])


def _ray_lines(frame: BeamFrame, grid: Grid, ag: np.ndarray, bg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index-space lines ``idx(w) = A + w B`` (k, j, i) of the rays through iso-plane points
    (a, b) on the grid ``ag x bg`` (flattened a-major)."""
    d, u, v = frame.axes
    src = frame.source_xyz
    a = np.repeat(ag, bg.size)
    b = np.tile(bg, ag.size)
    if frame.sad_mm is None:   # parallel: point = src + a u + b v + w d
        start = src[None, :] + a[:, None] * u[None, :] + b[:, None] * v[None, :]
        direction = np.broadcast_to(d, start.shape)
    else:                      # divergent: point = src + w (d + (a u + b v) / SAD)
        start = np.broadcast_to(src, (a.size, 3))
        direction = d[None, :] + (a[:, None] * u[None, :] + b[:, None] * v[None, :]) / frame.sad_mm
    origin = np.asarray(grid.origin_mm)[::-1]      # (x, y, z)
    spacing = np.asarray(grid.spacing_mm)[::-1]
    A = ((start - origin) / spacing)[:, ::-1].T     # (3, n) in (k, j, i)
    B = (direction / spacing)[:, ::-1].T
    return np.ascontiguousarray(A), np.ascontiguousarray(B)


def radiological_depth(frame: BeamFrame, grid: Grid, density: np.ndarray, voxels: np.ndarray,
                       coords: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                       step_fraction: float = 0.5) -> RayTrace:
    """Radiological depth (mm, water-equivalent) of ``voxels`` for the beam ``frame``.

    Args:
        frame: the beam geometry.
        grid: the voxel grid of ``density``.
        density: relative density (to water) on the grid, zero outside the body (float32).
        voxels: flat C-order indices of the voxels wanted.
        coords: their ``(a, b, w)`` if already known (see :func:`beam_coordinates`).
        step_fraction: integration step along the ray as a fraction of the smallest voxel spacing.
    """
    grid.check_array(density, "radiological_depth density")
    voxels = np.asarray(voxels, dtype=np.int64)
    a, b, w = beam_coordinates(frame, grid, voxels) if coords is None else coords
    if voxels.size == 0:
        empty = np.zeros(0, dtype=np.float32)
        return RayTrace(voxels, a, b, w, empty)
    h = float(min(grid.spacing_mm))
    step_lat = max(h, 0.5 * float(max(grid.spacing_mm)))
    step_w = step_fraction * h
    pad = 2.0 * step_lat
    # ray grid nodes at fixed multiples of the steps (not tied to the voxels asked for), so a
    # voxel gets the same depth whatever other voxels are traced with it
    a0 = step_lat * np.floor((a.min() - pad) / step_lat)
    a1 = a.max() + pad
    b0 = step_lat * np.floor((b.min() - pad) / step_lat)
    b1 = b.max() + pad
    # the ray starts where it can first meet the density: the nearest corner of its bounding box
    lo_hi = []
    for axis in range(3):
        nz = np.flatnonzero(density.any(axis=tuple(x for x in range(3) if x != axis)))
        lo_hi.append((nz[0] - 1, nz[-1] + 1) if nz.size else (-1, grid.shape[axis]))
    corners_idx = np.array([[k, j, i] for k in lo_hi[0] for j in lo_hi[1] for i in lo_hi[2]], dtype=float)
    _, _, w_corner = frame.fan_coordinates(grid.index_to_patient(corners_idx))
    w0 = step_w * np.floor(max(float(w_corner.min()), 1.0) / step_w)
    w1 = float(w.max()) + 2 * step_w
    na = int(np.ceil((a1 - a0) / step_lat)) + 1
    nb = int(np.ceil((b1 - b0) / step_lat)) + 1
    nw = int(np.ceil((w1 - w0) / step_w)) + 1
    ag = a0 + step_lat * np.arange(na)
    bg = b0 + step_lat * np.arange(nb)
    wg = w0 + step_w * np.arange(nw)
    # sample the density along the rays: in index space each ray is idx = A + w * B (linear in w)
    A, B = _ray_lines(frame, grid, ag, bg)                                   # (3, na*nb) each
    rho = np.empty((na * nb, nw), dtype=np.float32)
    chunk = max(1, int(2_000_000 // max(nw, 1)))
    for s in range(0, na * nb, chunk):
        coords = A[:, s:s + chunk, None] + B[:, s:s + chunk, None] * wg[None, None, :]
        rho[s:s + chunk] = ndimage.map_coordinates(density, coords.reshape(3, -1), order=1, mode="constant",
                                                   cval=0.0, prefilter=False).reshape(-1, nw)
    rho = rho.reshape(na, nb, nw)
    # cumulative trapezoid along w, times the path length per unit w of each ray
    cum = np.zeros((na, nb, nw), dtype=np.float32)
    np.cumsum(0.5 * step_w * (rho[:, :, 1:] + rho[:, :, :-1]), axis=2, out=cum[:, :, 1:])
    cum *= frame.path_stretch(ag[:, None], bg[None, :]).astype(np.float32)[:, :, None]
    fi = np.stack([(a - a0) / step_lat, (b - b0) / step_lat, (w - w0) / step_w])
    depth = ndimage.map_coordinates(cum, fi, order=1, mode="nearest", prefilter=False).astype(np.float32)
    return RayTrace(voxels, a, b, w, depth)
