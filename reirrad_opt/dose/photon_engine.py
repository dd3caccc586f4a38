"""Influence block of one photon beam: voxel selection, ray trace, kernel evaluation.

Because the component widths are constant in the isocentre plane, a bixel's dose at a voxel is
``sum_i F_i(voxel) E_i(dx) E_i(dy)`` with per-voxel factors ``F_i = N (SAD/w)^2 f_i(d)`` (exact
radiological depth) and one lateral table of the four ``E_i`` (0.05 mm steps) shared by all
bixels of the beam.
"""
from __future__ import annotations

import numpy as np

from ..geometry import Grid
from .beams import PhotonBeam
from .engine import ColumnBlock, assemble, block_rows, build_cells, lattice
from .photon import (N_COMPONENTS, SIX_MV, PhotonKernelParams, component_depth_factors, lateral_table,
                     normalisation)
from .raytrace import radiological_depth

LATERAL_STEP_MM = 0.05     # lateral table step (mm): rounding an offset to it moves a dose by <= 0.6 % of a broad
                           # field's maximum, <= 0.9 % of a single bixel's
MAX_DEPTH_MM = 500.0


def kernel_reach_mm(bixel_mm: float, rel_cutoff: float, p: PhotonKernelParams = SIX_MV) -> float:
    """Lateral distance (mm, iso plane) beyond which every component of the bixel kernel, at any
    depth up to 500 mm, is below ``rel_cutoff * 1e-3`` of the kernel's central value at d_max."""
    tab, q0 = lateral_table(bixel_mm, 400.0, 1.0, p)
    # scatter relative to the primary at the deepest point; electrons relative to the primary's maximum
    depth = np.linspace(0.0, MAX_DEPTH_MM, 5001)
    f = component_depth_factors(depth, p)
    W = np.array([1.0, f[1, -1] / f[0, -1], f[2, -1] / f[0, -1], f[3].max() / f[0].max()])
    centre = float(tab[q0, 0])
    rel = (W[:, None] * tab.T * tab[q0][:, None]).max(axis=0) / centre
    x = np.arange(tab.shape[0]) - q0
    far = (x >= 0) & (rel >= rel_cutoff * 1e-3)
    return float(x[far].max()) + bixel_mm


def photon_block(beam: PhotonBeam, beam_index: int, grid: Grid, red: np.ndarray, voxels: np.ndarray,
                 rel_cutoff: float, p: PhotonKernelParams = SIX_MV) -> ColumnBlock:
    """Sparse (n_voxels x n_bixels) dose block (Gy per unit weight) of one photon beam.

    Args:
        beam: the beam.
        beam_index: its position in the plan (seeds the sampling).
        grid: the dose grid.
        red: relative electron density on the grid, zero outside the body.
        voxels: flat indices of the voxels that may receive dose (body).
        rel_cutoff: relative threshold (see :mod:`.engine`).
    """
    h = beam.bixel_mm
    frame = beam.frame
    reach = kernel_reach_mm(h, rel_cutoff, p)
    a, b, w = frame.fan_coordinates(grid.voxel_centres_xyz(voxels))
    near = ((a >= beam.bixel_u_mm.min() - reach) & (a <= beam.bixel_u_mm.max() + reach)
            & (b >= beam.bixel_v_mm.min() - reach) & (b <= beam.bixel_v_mm.max() + reach) & (w > 0))
    vox = voxels[near]
    if vox.size == 0 or beam.n_columns == 0:
        return ColumnBlock([], [], np.zeros(beam.n_columns, np.int64), np.zeros(0, np.int64))
    rt = radiological_depth(frame, grid, red, vox, (a[near], b[near], w[near]), step_fraction=1.0)
    del a, b, w
    depth = rt.depth_mm.astype(np.float64)
    k = int(np.ceil(reach / h)) + 1
    table, q0 = lateral_table(h, (k + 1) * h, LATERAL_STEP_MM, p)
    u0, v0, slack = lattice(beam.bixel_u_mm, beam.bixel_v_mm, h)
    ci = np.rint((beam.bixel_u_mm - u0) / h).astype(np.int64)
    cj = np.rint((beam.bixel_v_mm - v0) / h).astype(np.int64)
    cells = build_cells(rt.a_mm, rt.b_mm, h, ci, cj, pad=k, origin_mm=(u0, v0))
    o = cells.order
    rows_s = vox[o].astype(np.int32 if grid.n_voxels < 2 ** 31 else np.int64)
    F = normalisation(p) * (beam.sad_mm / rt.w_mm[o]) ** 2
    Fi = (component_depth_factors(depth[o], p) * F[None, :]).astype(np.float32)      # (4, n)
    qa_s = block_rows((q0 + np.rint(rt.a_mm[o] / LATERAL_STEP_MM)).astype(np.int32), q0)
    qb_s = block_rows((q0 + np.rint(rt.b_mm[o] / LATERAL_STEP_MM)).astype(np.int32), q0)
    del rt, depth, F
    # per-cell maxima of F_i
    nonempty = np.flatnonzero(cells.count > 0)
    cell_max = np.zeros((N_COMPONENTS, cells.count.size), dtype=np.float32)
    for i in range(N_COMPONENTS):
        cell_max[i, nonempty] = np.maximum.reduceat(Fi[i], cells.start[nonempty])
    # cell offsets to visit and the lateral bound of each component there
    di, dj = np.mgrid[-k:k + 1, -k:k + 1]
    xmin = np.maximum(np.abs(di) * h - 0.5 * h - slack, 0.0)     # nearest voxel of the cell
    ymin = np.maximum(np.abs(dj) * h - 0.5 * h - slack, 0.0)
    inside = xmin ** 2 + ymin ** 2 <= reach ** 2
    offsets = np.stack([di[inside], dj[inside]], axis=1)
    qx = q0 + np.rint(xmin[inside] / LATERAL_STEP_MM).astype(int)
    qy = q0 + np.rint(ymin[inside] / LATERAL_STEP_MM).astype(int)
    comp_bound = (table[qx] * table[qy]).T.astype(np.float32)                  # (4, n_off)
    # column thresholds: rel_cutoff times the column's maximum (own and neighbouring cells)
    col_cell = cells.cell_of(ci, cj)
    fmax = np.zeros(ci.size, dtype=np.float64)
    for ddi in (-1, 0, 1):
        for ddj in (-1, 0, 1):
            fmax = np.maximum(fmax, cell_max[0, col_cell + ddi * cells.nj + ddj])
    fmax[fmax == 0] = normalisation(p)
    threshold = rel_cutoff * float(table[q0, 0] ** 2) * fmax
    qa_c = np.rint(beam.bixel_u_mm / LATERAL_STEP_MM).astype(np.int32)
    qb_c = np.rint(beam.bixel_v_mm / LATERAL_STEP_MM).astype(np.int32)
    tabs = [np.ascontiguousarray(table[:, i], dtype=np.float32) for i in range(N_COMPONENTS)]
    fis = [block_rows(np.ascontiguousarray(Fi[i])) for i in range(N_COMPONENTS)]
    del Fi

    def bound(col, off, cell, seg):
        return sum(cell_max[i, cell] * comp_bound[i, off] for i in range(N_COMPONENTS))

    def evaluate(start, col):
        ia = qa_s[start]
        ia -= qa_c[col][:, None]
        ib = qb_s[start]
        ib -= qb_c[col][:, None]
        out = np.take(tabs[0], ia, mode="clip")
        out *= np.take(tabs[0], ib, mode="clip")
        out *= fis[0][start]
        for i in range(1, N_COMPONENTS):
            x = np.take(tabs[i], ia, mode="clip")
            x *= np.take(tabs[i], ib, mode="clip")
            x *= fis[i][start]
            out += x
        return out

    rng = np.random.default_rng(1_000_003 * (beam_index + 1))
    return assemble(rows_s, cells, ci, cj, threshold, offsets, bound, evaluate, rng)
