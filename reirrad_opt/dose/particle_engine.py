"""Influence block of one particle field: voxel selection, ray trace (stopping-power ratio),
tabulated spot kernels per energy layer.

Within a lateral cell the voxels are sorted by water-equivalent depth, so a spot only visits the
voxels shallower than the end of its kernel table (range + straggling tail), and the cell's
voxels are split into depth segments (entrance, proximal, Bragg peak) with their own dose bounds,
so that low-dose segments are sampled rather than evaluated voxel by voxel (see :mod:`.engine`).
Voxels farther from a spot's axis than sqrt(2 ln 1e4) = 4.3 lateral sigmas (plus a spot
spacing) are not visited: at most 0.01 % of the spot's dose lies there."""
from __future__ import annotations

import dataclasses

import numpy as np

from ..geometry import Grid
from .beams import ParticleField
from .engine import ColumnBlock, assemble, block_rows, build_cells, lattice
from .particle import spot_kernel
from .raytrace import radiological_depth

BOUND_BLOCK = 20        # depth samples per block when bounding a kernel over depth
DEPTH_KEY_MM = 1.0      # depth resolution of the per-cell depth index (mm)
SEGMENT_EDGES_MM = (60.0, 20.0)   # depth segments end this far before the range (bounded separately)
LATERAL_TAIL = 1e-4     # fraction of a spot's dose (at any depth) outside the lateral reach, neglected
PARALLEL_SOURCE_MM = 1000.0   # a parallel field's virtual source lies this far upstream of the isocentre (geometry)


def particle_block(field: ParticleField, beam_index: int, grid: Grid, spr: np.ndarray, voxels: np.ndarray,
                   rel_cutoff: float, depth_offset_mm: float = 0.0) -> ColumnBlock:
    """Sparse dose columns (Gy per unit weight) of one particle field.

    Args:
        field: the field.
        beam_index: its position in the plan (seeds the sampling).
        grid: the dose grid.
        spr: stopping-power ratio on the grid, zero outside the body.
        voxels: flat indices of the voxels that may receive dose (body).
        rel_cutoff: relative threshold (see :mod:`.engine`).
        depth_offset_mm: water-equivalent depth (mm) taken off every ray's depth: the absolute part of
            a range error (see :mod:`.range_shift`); 0 for the planned range.
    """
    n_cols = field.n_columns
    empty = ColumnBlock([], [], np.zeros(n_cols, np.int64), np.zeros(0, np.int64))
    if n_cols == 0:
        return empty
    # one kernel per energy layer (an energy with and without the range shifter: two layers)
    pairs, layer_of_col = np.unique(np.stack([field.spot_energy_mev, field.spot_rs_wet_mm], axis=1), axis=0,
                                    return_inverse=True)
    layer_of_col = layer_of_col.ravel()
    energies = pairs[:, 0]
    model = field.beam_model
    kernels = [spot_kernel(float(e), field.ion, beam=model, rs_wet_mm=float(r)) for e, r in pairs]
    step = kernels[0].step_mm
    frame = field.frame
    a, b, w = frame.fan_coordinates(grid.voxel_centres_xyz(voxels))
    growth = model.sigma_growth_mm_per_mm
    if growth != 0.0:
        # in-air sigma varies with the distance downstream of the isocentre: per-layer kernels
        # with the smallest and largest in-air sigma over the body bound the dose (see bounds below)
        w_iso = w - PARALLEL_SOURCE_MM
        kernels_lo, kernels_hi = _air_sigma_variants(kernels, energies, model, float(w_iso.min()), float(w_iso.max()))
    else:
        kernels_lo = kernels_hi = kernels
    # lateral reach: beyond it a Gaussian spot carries less than LATERAL_TAIL of its dose
    sig_max = max(float(k.sigma.max()) for k in kernels_hi)
    reach = sig_max * np.sqrt(2.0 * np.log(1.0 / LATERAL_TAIL)) + field.spot_spacing_mm
    zmax = max(k.idd.size * k.step_mm for k in kernels)
    near = ((a >= field.spot_u_mm.min() - reach) & (a <= field.spot_u_mm.max() + reach)
            & (b >= field.spot_v_mm.min() - reach) & (b <= field.spot_v_mm.max() + reach))
    vox = voxels[near]
    if vox.size == 0:
        return empty
    rt = radiological_depth(frame, grid, spr, vox, (a[near], b[near], w[near]))
    w_near = w[near]
    del a, b, w
    if depth_offset_mm:
        rt.depth_mm = np.maximum(rt.depth_mm - depth_offset_mm, 0.0)
    within = rt.depth_mm < zmax
    vox, a_v, b_v, d_v = vox[within], rt.a_mm[within], rt.b_mm[within], rt.depth_mm[within]
    w_v = w_near[within] - PARALLEL_SOURCE_MM
    del rt, w_near
    if vox.size == 0:
        return empty
    h = field.spot_spacing_mm
    kk = int(np.ceil(reach / h)) + 1
    u0, v0, slack = lattice(field.spot_u_mm, field.spot_v_mm, h)
    ci = np.rint((field.spot_u_mm - u0) / h).astype(np.int64)
    cj = np.rint((field.spot_v_mm - v0) / h).astype(np.int64)
    dkey = np.floor(d_v / DEPTH_KEY_MM).astype(np.int64)
    cells = build_cells(a_v, b_v, h, ci, cj, pad=kk, depth_key=dkey, depth_bin=1, origin_mm=(u0, v0))
    o = cells.order
    rows_s = vox[o].astype(np.int32 if grid.n_voxels < 2 ** 31 else np.int64)
    a_s = block_rows(a_v[o].astype(np.float32))
    b_s = block_rows(b_v[o].astype(np.float32))
    k_s = block_rows(np.rint(d_v[o] / step).astype(np.int32), np.iinfo(np.int32).max // 2)
    w_s = block_rows(w_v[o].astype(np.float32)) if growth != 0.0 else None
    del a_v, b_v, d_v, dkey, w_v
    # concatenated per-layer tables: amplitude idd/(2 pi sigma^2) and 1/(2 sigma^2); one zero
    # entry after each layer's table is where depths beyond the table point
    lengths = np.array([k.idd.size for k in kernels], dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(lengths + 1)[:-1]])
    amp = np.concatenate([np.append(k.idd / (2 * np.pi * k.sigma.astype(np.float64) ** 2), 0.0)
                          for k in kernels]).astype(np.float32)
    inv2s2 = np.concatenate([np.append(0.5 / k.sigma.astype(np.float64) ** 2, 0.0) for k in kernels]).astype(np.float32)
    if growth != 0.0:
        # per entry: the IDD and the scattering variance; the in-air sigma is added per voxel
        idd_t = np.concatenate([np.append(k.idd.astype(np.float64), 0.0) for k in kernels]).astype(np.float32)
        s_air = np.array([k.sigma_air_mm for k in kernels])
        mcs2_t = np.concatenate([np.append(np.maximum(k.sigma.astype(np.float64) ** 2 - s_air[i] ** 2, 0.0), 1.0)
                                 for i, k in enumerate(kernels)]).astype(np.float32)
        s_air_c = s_air[layer_of_col].astype(np.float32)
    # offsets and per-layer lateral bounds (maximum over depth)
    di, dj = np.mgrid[-kk:kk + 1, -kk:kk + 1]
    rmin2 = (np.maximum(np.abs(di) * h - 0.5 * h - slack, 0.0) ** 2
             + np.maximum(np.abs(dj) * h - 0.5 * h - slack, 0.0) ** 2)       # nearest voxel of the cell
    inside = rmin2 <= reach ** 2
    offsets = np.stack([di[inside], dj[inside]], axis=1)
    rmin2 = rmin2[inside]
    # depth segments of each layer (depth-key bins of 1 mm): entrance, proximal, peak and beyond;
    # each gets its own lateral bound (maximum over its depths)
    limit_l = np.array([int(np.ceil(k.idd.size * step / DEPTH_KEY_MM)) + 1 for k in kernels], dtype=np.int64)
    range_l = np.array([k.range_mm for k in kernels])
    cut_l = np.stack([np.zeros(len(kernels)), range_l - SEGMENT_EDGES_MM[0], range_l - SEGMENT_EDGES_MM[1]], axis=1)
    edges_l = np.concatenate([np.clip(np.floor(cut_l / DEPTH_KEY_MM), 0, limit_l[:, None]).astype(np.int64),
                              limit_l[:, None]], axis=1)                               # (n_layers, S + 1)
    n_seg = edges_l.shape[1] - 1
    lat_bound = np.zeros((len(kernels), n_seg, offsets.shape[0]), dtype=np.float32)
    for li, (k, k_lo, k_hi) in enumerate(zip(kernels, kernels_lo, kernels_hi)):
        n = k.idd.size
        nb = int(np.ceil(n / BOUND_BLOCK))
        pad = nb * BOUND_BLOCK - n
        a_blk = np.pad(k.idd / (2 * np.pi * k_lo.sigma.astype(np.float64) ** 2), (0, pad)).reshape(nb, -1).max(axis=1)
        s_blk = np.pad(0.5 / k_hi.sigma.astype(np.float64) ** 2, (0, pad), mode="edge").reshape(nb, -1).min(axis=1)
        blk_lo = np.arange(nb) * BOUND_BLOCK * step / DEPTH_KEY_MM        # depth key at each block start
        blk_hi = (np.arange(nb) + 1) * BOUND_BLOCK * step / DEPTH_KEY_MM
        per_blk = a_blk[:, None] * np.exp(-rmin2[None, :] * s_blk[:, None])          # (nb, n_off)
        for sg in range(n_seg):
            sel = (blk_hi > edges_l[li, sg]) & (blk_lo < edges_l[li, sg + 1] + 1)
            if np.any(sel):
                lat_bound[li, sg] = per_blk[sel].max(axis=0)
    peak = np.array([k.peak_axis_gy for k in kernels])
    threshold = rel_cutoff * peak[layer_of_col]
    u_c = field.spot_u_mm.astype(np.float32)
    v_c = field.spot_v_mm.astype(np.float32)
    layer_c = layer_of_col.astype(np.int64)
    start_c = start[layer_c]
    len_c = lengths[layer_c]
    edges_c = edges_l[layer_c]
    n_off = offsets.shape[0]
    bound_flat = lat_bound.ravel()
    bound_base_c = layer_c * (n_seg * n_off)

    def bound(col, off, cell, seg):
        return np.take(bound_flat, bound_base_c[col] + seg * n_off + off)

    def depth_edges(cols):
        return edges_c[cols]

    def evaluate(st, col):
        kd = np.minimum(k_s[st], len_c[col][:, None])           # beyond the table -> the zero entry
        flat = kd + start_c[col][:, None]
        da = a_s[st]
        da -= u_c[col][:, None]
        db = b_s[st]
        db -= v_c[col][:, None]
        da *= da
        db *= db
        da += db
        if w_s is not None:
            return _evaluate_with_growth(da, flat, st, col)
        da *= -np.take(inv2s2, flat)
        np.exp(da, out=da)
        da *= np.take(amp, flat)
        return da

    def _evaluate_with_growth(r2, flat, st, col):
        sa = w_s[st] * np.float32(growth)
        sa += s_air_c[col][:, None]
        s2 = sa * sa
        s2 += np.take(mcs2_t, flat)
        s2 *= 2.0
        r2 /= -s2
        np.exp(r2, out=r2)
        r2 *= np.take(idd_t, flat)
        r2 /= np.float32(np.pi) * s2
        return r2

    rng = np.random.default_rng(2_000_003 * (beam_index + 1))
    return assemble(rows_s, cells, ci, cj, threshold, offsets, bound, evaluate, rng, depth_edges=depth_edges)


def _air_sigma_variants(kernels, energies, model, w_min: float, w_max: float):
    """Copies of the kernels with the smallest and the largest in-air sigma that the beam model's
    growth gives between ``w_min`` and ``w_max`` mm downstream of the isocentre (dose bounds)."""
    lo, hi = [], []
    for k, e in zip(kernels, energies):
        mcs2 = np.maximum(k.sigma.astype(np.float64) ** 2 - k.sigma_air_mm ** 2, 0.0)
        ends = [k.sigma_air_mm + model.sigma_growth_mm_per_mm * w for w in (w_min, w_max)]
        if min(ends) <= 0:
            raise ValueError(f"beam model {model.source}: sigma_growth_mm_per_mm {model.sigma_growth_mm_per_mm:g} "
                             f"makes the {e:g} MeV spot sigma {min(ends):.2f} mm within the body "
                             f"({w_min:.0f} to {w_max:.0f} mm from the isocentre); expected > 0")
        lo.append(dataclasses.replace(k, sigma=np.sqrt(mcs2 + min(ends) ** 2).astype(np.float32)))
        hi.append(dataclasses.replace(k, sigma=np.sqrt(mcs2 + max(ends) ** 2).astype(np.float32)))
    return lo, hi
