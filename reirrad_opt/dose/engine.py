"""Sparse assembly of dose influence columns for one beam or field.

Voxels are binned into lateral cells of the beam's bixel/spot grid (BEV, isocentre plane), so
the voxels a column can reach are found cell by cell, never by scanning the whole body. For each
(column, cell) pair the kernel gives an upper bound ``vmax`` of the dose any voxel of the cell can
receive; with the column's threshold ``T = rel_cutoff * (column maximum)``:

* ``vmax >= T``: every voxel of the cell is evaluated; entries ``>= T`` are stored exactly and
  entries ``v < T`` are kept with probability ``v / T`` at the value ``T`` (Russian roulette);
* ``vmax < T``: the cell is sampled by Poisson thinning: ``K ~ Poisson(n p)`` voxels drawn
  uniformly from its ``n`` voxels (``p = vmax / T``); each drawn voxel is kept with probability
  ``v / vmax`` at the value ``T``, so a voxel receives ``T`` with probability ``v / T``;
* pairs whose expected number of stored entries ``n p`` is below 1e-3 are skipped.

Every stored matrix is therefore an unbiased estimate of the full kernel dose (its expected value
equals the direct calculation) while entries below the threshold cost about one stored value per
``T`` of dose they carry. The random generator is seeded from the beam index, so results are
reproducible. The per-entry noise has variance at most ``v T``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

MIN_EXPECTED_ENTRIES = 1e-3
PAIR_CHUNK = 2_000_000      # (column, cell) pairs per chunk
ENTRY_CHUNK = 8_000_000     # evaluated entries per chunk


@dataclass
class CellIndex:
    """Voxels of one beam sorted by lateral cell.

    Attributes:
        order: permutation sorting the beam's voxel arrays by cell.
        i0, j0: integer lateral index of cell (0, 0).
        ni, nj: number of cells along u and v.
        start, count: first position (in sorted order) and number of voxels of every cell (flat).
    """

    order: np.ndarray
    i0: int
    j0: int
    ni: int
    nj: int
    start: np.ndarray
    count: np.ndarray


def build_cells(a_mm: np.ndarray, b_mm: np.ndarray, cell_mm: float) -> CellIndex:
    """Bin lateral positions into square cells of side ``cell_mm`` centred on integer multiples."""
    ia = np.rint(a_mm / cell_mm).astype(np.int64)
    ib = np.rint(b_mm / cell_mm).astype(np.int64)
    i0, j0 = int(ia.min()), int(ib.min())
    ni, nj = int(ia.max()) - i0 + 1, int(ib.max()) - j0 + 1
    cell = (ia - i0) * nj + (ib - j0)
    order = np.argsort(cell, kind="stable")
    count = np.bincount(cell, minlength=ni * nj).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    return CellIndex(order, i0, j0, ni, nj, start, count)


def expand_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``arange(s, s + c)`` for every pair; returns (positions, pair index of each)."""
    counts = counts.astype(np.int64)
    total = int(counts.sum())
    owner = np.repeat(np.arange(counts.size), counts)
    offs = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offs, owner


def assemble(n_rows: int, rows_sorted: np.ndarray, cells: CellIndex, col_i: np.ndarray, col_j: np.ndarray,
             threshold: np.ndarray, offsets: np.ndarray, bound: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
             evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray], rng: np.random.Generator) -> sp.csc_matrix:
    """Build the sparse (n_rows x n_columns) block of one beam.

    Args:
        n_rows: number of rows of the full matrix (grid voxels).
        rows_sorted: grid row (flat voxel index) of the beam's voxels, in cell order.
        cells: the cell index of the beam's voxels.
        col_i, col_j: integer lateral node of every column.
        threshold: ``T`` of every column (Gy per unit weight).
        offsets: (n_off, 2) integer cell offsets to visit around a column.
        bound: ``bound(col, offset_id, cell) -> vmax`` (Gy per unit weight) for pairs.
        evaluate: ``evaluate(pos, col) -> dose`` for sorted voxel positions ``pos`` and columns.
        rng: random generator for the sampling of sub-threshold entries.

    Returns a CSC matrix whose columns may hold a voxel more than once (duplicates add up);
    rows within a column are not sorted.
    """
    n_cols = col_i.size
    rows_out, cols_out, vals_out = [], [], []
    n_off = offsets.shape[0]
    cols_per_chunk = max(1, PAIR_CHUNK // max(n_off, 1))
    off_i = offsets[:, 0].astype(np.int64)
    off_j = offsets[:, 1].astype(np.int64)
    for c0 in range(0, n_cols, cols_per_chunk):
        cols = np.arange(c0, min(n_cols, c0 + cols_per_chunk))
        ci = (col_i[cols, None] - cells.i0) + off_i[None, :]
        cj = (col_j[cols, None] - cells.j0) + off_j[None, :]
        inside = (ci >= 0) & (ci < cells.ni) & (cj >= 0) & (cj < cells.nj)
        pc, po = np.nonzero(inside)
        cell = ci[pc, po] * cells.nj + cj[pc, po]
        del ci, cj, inside
        cnt = cells.count[cell]
        keep = cnt > 0
        pc, po, cell, cnt = pc[keep], po[keep], cell[keep], cnt[keep]
        col = cols[pc]
        p = bound(col, po, cell) / threshold[col]
        keep = cnt * p >= MIN_EXPECTED_ENTRIES
        col, cell, cnt, p = col[keep], cell[keep], cnt[keep], p[keep]
        exact = p >= 1.0
        parts_r, parts_c, parts_v = [], [], []
        # --- exact cells: evaluate every voxel; Russian roulette below T
        e_col, e_cell, e_cnt = col[exact], cell[exact], cnt[exact]
        for s in _chunks_by_total(e_cnt, ENTRY_CHUNK):
            pos, owner = expand_ranges(cells.start[e_cell[s]], e_cnt[s])
            cc = e_col[s][owner]
            v = evaluate(pos, cc)
            t = threshold[cc].astype(v.dtype)
            small = v < t
            keep_e = ~small
            keep_e[small] = rng.random(int(small.sum()), dtype=np.float32) * t[small] < v[small]
            v = np.where(small, t, v)[keep_e]
            parts_r.append(pos[keep_e])
            parts_c.append(cc[keep_e])
            parts_v.append(v)
        # --- sampled cells: Poisson thinning with acceptance v / (p T), stored value T
        s_col, s_cell, s_cnt, s_p = col[~exact], cell[~exact], cnt[~exact], p[~exact]
        k = rng.poisson(s_cnt * s_p)
        has = k > 0
        if np.any(has):
            s_col, s_cell, s_cnt, s_p, k = s_col[has], s_cell[has], s_cnt[has], s_p[has], k[has]
            owner = np.repeat(np.arange(k.size), k)
            cnt_o = s_cnt[owner]
            pick = np.minimum((rng.random(owner.size) * cnt_o).astype(np.int64), cnt_o - 1)
            pos = cells.start[s_cell[owner]] + pick
            cc = s_col[owner]
            v = evaluate(pos, cc)
            t = threshold[cc].astype(v.dtype)
            acc = rng.random(v.size, dtype=np.float32) * (s_p[owner] * t) < v
            parts_r.append(pos[acc])
            parts_c.append(cc[acc])
            parts_v.append(t[acc])
        if parts_r:
            pos = np.concatenate(parts_r)
            cc = np.concatenate(parts_c)
            v = np.concatenate(parts_v)
            order = np.argsort(cc, kind="stable")
            rows_out.append(rows_sorted[pos[order]])
            cols_out.append(cc[order])
            vals_out.append(v[order].astype(np.float32))
    rows = np.concatenate(rows_out) if rows_out else np.zeros(0, np.int32)
    colsa = np.concatenate(cols_out) if cols_out else np.zeros(0, np.int64)
    vals = np.concatenate(vals_out) if vals_out else np.zeros(0, np.float32)
    del rows_out, cols_out, vals_out
    indptr = np.concatenate([[0], np.cumsum(np.bincount(colsa, minlength=n_cols))])
    idx_dtype = np.int32 if max(rows.size, n_rows) < 2 ** 31 - 1 else np.int64
    return sp.csc_matrix((vals, rows.astype(idx_dtype, copy=False), indptr.astype(idx_dtype)),
                         shape=(n_rows, n_cols))


def _chunks_by_total(counts: np.ndarray, limit: int):
    """Slices of consecutive items whose counts sum to about ``limit``."""
    if counts.size == 0:
        return
    csum = np.cumsum(counts)
    start = 0
    while start < counts.size:
        base = csum[start - 1] if start > 0 else 0
        stop = int(np.searchsorted(csum, base + limit, side="right"))
        stop = max(stop, start + 1)
        yield slice(start, stop)
        start = stop
