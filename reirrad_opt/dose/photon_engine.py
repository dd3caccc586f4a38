"""Influence block of one photon beam: voxel selection, ray trace, kernel lookup tables."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..geometry import Grid
from .beams import PhotonBeam
from .engine import assemble, build_cells
from .photon import SIX_MV, PhotonKernelParams, build_up_attenuation, component_weights, normalisation, photon_tables
from .raytrace import radiological_depth

DEPTH_STEP_MM = 2.0
LATERAL_STEP_MM = 0.25


def kernel_reach_mm(bixel_mm: float, rel_cutoff: float, p: PhotonKernelParams = SIX_MV,
                    max_depth_mm: float = 400.0) -> float:
    """Lateral distance (mm, iso plane) beyond which the bixel kernel is below
    ``rel_cutoff * 1e-3`` of its central value at every depth up to ``max_depth_mm``."""
    tab = photon_tables(bixel_mm, max_depth_mm, 400.0, p, depth_step_mm=20.0, lateral_step_mm=1.0)
    lat = np.einsum("ikq,ik->kq", tab.profile_x, tab.profile_y[:, :, tab.q0])  # (nd, nq): y offset 0
    centre = lat[:, tab.q0].max()
    rel = lat.max(axis=0) / centre
    x = tab.lateral_step_mm * (np.arange(lat.shape[1]) - tab.q0)
    far = (x >= 0) & (rel >= rel_cutoff * 1e-3)
    return float(x[far].max()) + bixel_mm


def photon_block(beam: PhotonBeam, beam_index: int, grid: Grid, red: np.ndarray, voxels: np.ndarray,
                 rel_cutoff: float, p: PhotonKernelParams = SIX_MV) -> sp.csc_matrix:
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
        return sp.csc_matrix((grid.n_voxels, beam.n_columns), dtype=np.float32)
    rt = radiological_depth(frame, grid, red, vox, (a[near], b[near], w[near]))
    depth = rt.depth_mm.astype(np.float64)
    tab = photon_tables(h, float(depth.max()) + DEPTH_STEP_MM, reach + 2 * h, p, DEPTH_STEP_MM, LATERAL_STEP_MM)
    nd, nq = tab.profile_x.shape[1], tab.profile_x.shape[2]
    F = (normalisation(p) * (beam.sad_mm / rt.w_mm) ** 2 * build_up_attenuation(depth, p)).astype(np.float32)
    cells = build_cells(rt.a_mm, rt.b_mm, h)
    o = cells.order
    rows_s = vox[o].astype(np.int32 if grid.n_voxels < 2 ** 31 else np.int64)
    F_s = F[o]
    dbin_s = np.minimum(np.rint(depth[o] / DEPTH_STEP_MM).astype(np.int32), nd - 1) * nq
    qa_s = np.rint(rt.a_mm[o] / LATERAL_STEP_MM).astype(np.int32)
    qb_s = np.rint(rt.b_mm[o] / LATERAL_STEP_MM).astype(np.int32)
    del a, b, w, rt, depth, F
    # per-cell maxima of F * W_i(d) for the three kernel components
    W = component_weights(np.arange(nd) * DEPTH_STEP_MM, p)            # (3, nd)
    dbin_v = dbin_s // nq
    nonempty = np.flatnonzero(cells.count > 0)
    cell_max = np.zeros((3, cells.count.size), dtype=np.float64)
    for i in range(3):
        fw = F_s * W[i, dbin_v].astype(np.float32)
        cell_max[i, nonempty] = np.maximum.reduceat(fw, cells.start[nonempty])
    del dbin_v, fw
    fmax_cell = cell_max[0]
    # cell offsets to visit and the lateral bound of each component there (max over depth)
    k = int(np.ceil(reach / h)) + 1
    di, dj = np.mgrid[-k:k + 1, -k:k + 1]
    xmin = np.maximum(np.abs(di) * h - 0.5 * h, 0.0)
    ymin = np.maximum(np.abs(dj) * h - 0.5 * h, 0.0)
    inside = xmin ** 2 + ymin ** 2 <= reach ** 2
    offsets = np.stack([di[inside], dj[inside]], axis=1)
    qx = tab.q0 + np.rint(xmin[inside] / LATERAL_STEP_MM).astype(int)
    qy = tab.q0 + np.rint(ymin[inside] / LATERAL_STEP_MM).astype(int)
    comp_bound = (tab.profile_y[:, :, qx] * tab.profile_y[:, :, qy]).max(axis=1)   # (3, n_off), without W
    centre = float(np.einsum("ik,ik->k", tab.profile_x[:, :, tab.q0], tab.profile_y[:, :, tab.q0]).max())
    # column positions and thresholds
    ci = np.rint(beam.bixel_u_mm / h).astype(np.int64)
    cj = np.rint(beam.bixel_v_mm / h).astype(np.int64)
    qa_c = np.rint(beam.bixel_u_mm / LATERAL_STEP_MM).astype(np.int32)
    qb_c = np.rint(beam.bixel_v_mm / LATERAL_STEP_MM).astype(np.int32)
    fmax_col = np.zeros(ci.size)
    for ddi in (-1, 0, 1):
        for ddj in (-1, 0, 1):
            ii, jj = ci + ddi - cells.i0, cj + ddj - cells.j0
            ok = (ii >= 0) & (ii < cells.ni) & (jj >= 0) & (jj < cells.nj)
            fmax_col[ok] = np.maximum(fmax_col[ok], fmax_cell[ii[ok] * cells.nj + jj[ok]])
    fmax_col[fmax_col == 0] = normalisation(p)
    threshold = rel_cutoff * centre * fmax_col
    px = [tab.profile_x[i].ravel() for i in range(3)]
    py = [tab.profile_y[i].ravel() for i in range(3)]
    q0 = np.int32(tab.q0)

    def bound(col, off, cell):
        return (cell_max[0, cell] * comp_bound[0, off] + cell_max[1, cell] * comp_bound[1, off]
                + cell_max[2, cell] * comp_bound[2, off])

    def evaluate(pos, col):
        base = dbin_s[pos] + q0
        ia = base + (qa_s[pos] - qa_c[col])
        ib = base + (qb_s[pos] - qb_c[col])
        val = px[0][ia] * py[0][ib]
        val += px[1][ia] * py[1][ib]
        val += px[2][ia] * py[2][ib]
        val *= F_s[pos]
        return val

    rng = np.random.default_rng(1_000_003 * (beam_index + 1))
    return assemble(grid.n_voxels, rows_s, cells, ci, cj, threshold, offsets, bound, evaluate, rng)
