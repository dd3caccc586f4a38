"""Influence block of one particle field: voxel selection, ray trace (stopping-power ratio),
tabulated spot kernels per energy layer."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..geometry import Grid
from .beams import ParticleField
from .engine import assemble, build_cells
from .particle import spot_kernel
from .raytrace import radiological_depth

BOUND_BLOCK = 20   # depth samples per block when bounding a kernel over depth


def particle_block(field: ParticleField, beam_index: int, grid: Grid, spr: np.ndarray, voxels: np.ndarray,
                   rel_cutoff: float) -> sp.csc_matrix:
    """Sparse (n_voxels x n_spots) dose block (Gy per unit weight) of one particle field.

    Args:
        field: the field.
        beam_index: its position in the plan (seeds the sampling).
        grid: the dose grid.
        spr: stopping-power ratio on the grid, zero outside the body.
        voxels: flat indices of the voxels that may receive dose (body).
        rel_cutoff: relative threshold (see :mod:`.engine`).
    """
    n_cols = field.n_columns
    if n_cols == 0:
        return sp.csc_matrix((grid.n_voxels, 0), dtype=np.float32)
    energies, layer_of_col = np.unique(field.spot_energy_mev, return_inverse=True)
    kernels = [spot_kernel(float(e), field.ion) for e in energies]
    step = kernels[0].step_mm
    floor = rel_cutoff * 1e-3
    # lateral reach: where the widest Gaussian of the layer falls below floor of its peak
    sig_max = max(float(k.sigma.max()) for k in kernels)
    reach = sig_max * np.sqrt(2.0 * np.log(1.0 / floor)) + field.spot_spacing_mm
    zmax = max(k.idd.size * k.step_mm for k in kernels)
    frame = field.frame
    a, b, w = frame.fan_coordinates(grid.voxel_centres_xyz(voxels))
    near = ((a >= field.spot_u_mm.min() - reach) & (a <= field.spot_u_mm.max() + reach)
            & (b >= field.spot_v_mm.min() - reach) & (b <= field.spot_v_mm.max() + reach))
    vox = voxels[near]
    if vox.size == 0:
        return sp.csc_matrix((grid.n_voxels, n_cols), dtype=np.float32)
    rt = radiological_depth(frame, grid, spr, vox, (a[near], b[near], w[near]))
    reach_d = rt.depth_mm < zmax
    vox, a_v, b_v, d_v = vox[reach_d], rt.a_mm[reach_d], rt.b_mm[reach_d], rt.depth_mm[reach_d]
    del a, b, w, rt
    if vox.size == 0:
        return sp.csc_matrix((grid.n_voxels, n_cols), dtype=np.float32)
    h = field.spot_spacing_mm
    cells = build_cells(a_v, b_v, h)
    o = cells.order
    rows_s = vox[o].astype(np.int32 if grid.n_voxels < 2 ** 31 else np.int64)
    a_s = a_v[o].astype(np.float32)
    b_s = b_v[o].astype(np.float32)
    k_s = np.rint(d_v[o] / step).astype(np.int32)
    nonempty = np.flatnonzero(cells.count > 0)
    kmin_cell = np.full(cells.count.size, np.iinfo(np.int32).max, dtype=np.int64)
    kmin_cell[nonempty] = np.minimum.reduceat(k_s, cells.start[nonempty])
    # concatenated per-layer tables: amplitude idd/(2 pi sigma^2) and 1/(2 sigma^2)
    lengths = np.array([k.idd.size for k in kernels])
    start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    amp = np.concatenate([k.idd / (2 * np.pi * k.sigma.astype(np.float64) ** 2) for k in kernels]).astype(np.float32)
    inv2s2 = np.concatenate([0.5 / k.sigma.astype(np.float64) ** 2 for k in kernels]).astype(np.float32)
    # offsets and per-layer bounds
    kk = int(np.ceil(reach / h)) + 1
    di, dj = np.mgrid[-kk:kk + 1, -kk:kk + 1]
    rmin2 = np.maximum(np.abs(di) * h - 0.5 * h, 0.0) ** 2 + np.maximum(np.abs(dj) * h - 0.5 * h, 0.0) ** 2
    inside = rmin2 <= reach ** 2
    offsets = np.stack([di[inside], dj[inside]], axis=1)
    rmin2 = rmin2[inside]
    lat_bound = np.zeros((len(kernels), offsets.shape[0]))
    for li, k in enumerate(kernels):
        n = k.idd.size
        nb = int(np.ceil(n / BOUND_BLOCK))
        pad = nb * BOUND_BLOCK - n
        a_blk = np.pad(k.idd / (2 * np.pi * k.sigma.astype(np.float64) ** 2), (0, pad)).reshape(nb, -1).max(axis=1)
        s_blk = np.pad(0.5 / k.sigma.astype(np.float64) ** 2, (0, pad), constant_values=np.inf).reshape(nb, -1).min(axis=1)
        lat_bound[li] = (a_blk[:, None] * np.exp(-rmin2[None, :] * s_blk[:, None])).max(axis=0)
    peak = np.array([k.peak_axis_gy for k in kernels])
    threshold = rel_cutoff * peak[layer_of_col]
    ci = np.rint(field.spot_u_mm / h).astype(np.int64)
    cj = np.rint(field.spot_v_mm / h).astype(np.int64)
    u_c = field.spot_u_mm.astype(np.float32)
    v_c = field.spot_v_mm.astype(np.float32)
    layer_c = layer_of_col.astype(np.int64)
    start_c = start[layer_c]
    len_c = lengths[layer_c]

    def bound(col, off, cell):
        lay = layer_c[col]
        vb = lat_bound[lay, off]
        return np.where(kmin_cell[cell] < lengths[lay], vb, 0.0)

    def evaluate(pos, col):
        kd = k_s[pos]
        ln = len_c[col]
        ok = kd < ln
        flat = start_c[col] + np.minimum(kd, ln - 1)
        da = a_s[pos] - u_c[col]
        db = b_s[pos] - v_c[col]
        r2 = da * da + db * db
        val = amp[flat] * np.exp(-r2 * inv2s2[flat])
        val[~ok] = 0.0
        return val

    rng = np.random.default_rng(2_000_003 * (beam_index + 1))
    return assemble(grid.n_voxels, rows_s, cells, ci, cj, threshold, offsets, bound, evaluate, rng)
