"""Sparse assembly of dose influence columns for one beam or field.

Voxels are binned into lateral cells of the beam's bixel/spot grid (BEV, isocentre plane), so
the voxels a column can reach are found cell by cell, never by scanning the whole body. For each
(column, cell) pair the kernel gives an upper bound ``vmax`` of the dose any voxel of the cell can
receive; with the column's threshold ``T = rel_cutoff * (column maximum)``:

* ``vmax >= T``: every voxel of the cell is evaluated; entries ``>= T`` are stored exactly and
  entries ``v < T`` are kept with probability ``v / T`` at the value ``T`` (Russian roulette);
* ``vmax < T``: the cell's voxels, taken in blocks of up to :data:`BLOCK` neighbours, are
  sampled by Poisson thinning with the stored value ``T_s = TAIL_FACTOR * T``:
  ``K ~ Poisson(n_blocks vmax / T_s)`` blocks drawn uniformly, all voxels of a drawn block
  evaluated, and voxel ``i`` kept at the value ``T_s`` if ``u vmax < v_i`` with one uniform ``u``
  per block. A voxel therefore receives ``T_s`` with probability ``v / T_s`` exactly; the shared
  ``u`` only correlates neighbours' noise;
* pairs whose expected number of drawn blocks is below :data:`MIN_EXPECTED` are skipped (a
  negligible loss: far below one stored entry per column).

Every stored matrix is therefore an unbiased estimate of the full kernel dose (its expected value
equals the direct calculation) while entries below the threshold cost about one stored value per
``T`` (``T_s`` in sampled cells) of dose they carry; the per-voxel noise variance is at most
``v T_s``. On the TG-119 phantom (9 photon beams, 5 mm grid, uniform weights, rel_cutoff 1e-3,
measured with the photon kernel before its electron term) the per-voxel difference from the direct
calculation has a standard deviation of 0.4 % of the maximum dose and a mean below 0.05 %; the
tests hold a small field within 2 % (standard deviation) and 0.2 % (mean) of the maximum. The
random generator is seeded from the beam index, so results are reproducible.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

MIN_EXPECTED = 1e-3
TAIL_FACTOR = 4.0          # stored value of sampled (tail) entries, in units of T
BLOCK = 8
PAIR_CHUNK = 400_000        # (column, cell) pairs per chunk
BLOCK_CHUNK = 8192          # blocks evaluated at once (small arrays stay in cache)
BOUND_SLICE = 262_144       # (column, cell) pairs whose bound is computed at once (bounds the working memory)
RETURN_EVERY_BYTES = 32 << 20   # freed chunk memory handed back to the system every 32 MB while assembling


@dataclass
class CellIndex:
    """Voxels of one beam sorted by lateral cell (and by depth within a cell).

    The cell grid is padded by ``pad`` cells around the columns, so a column's node plus any
    offset up to ``pad`` is a valid cell.

    Attributes:
        order: permutation sorting the beam's voxel arrays by (cell, depth key).
        i0, j0: integer lateral index of cell (0, 0).
        ni, nj: number of cells along u and v.
        start, count: first position (in sorted order) and number of voxels of every cell (flat).
        depth_prefix: optional (n_cells, n_bins + 1) counts of voxels with depth key below each
            bin edge (voxels of a cell are sorted by depth key).
        depth_bin: width of those bins in depth-key units.
    """

    order: np.ndarray
    i0: int
    j0: int
    ni: int
    nj: int
    start: np.ndarray
    count: np.ndarray
    depth_prefix: np.ndarray | None = None
    depth_bin: int = 1

    def cell_of(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return (np.asarray(i, dtype=np.int64) - self.i0) * self.nj + (np.asarray(j, dtype=np.int64) - self.j0)


def lattice(u_mm: np.ndarray, v_mm: np.ndarray, spacing_mm: float) -> tuple[float, float, float]:
    """Offset ``(u0, v0)`` of the square lattice of ``spacing_mm`` that best holds the column
    positions, and the largest distance ``slack`` (mm, per axis) of a column from its node
    (0 for the bixel/spot grids made by :mod:`.beams`)."""
    def fit(x):
        if x.size == 0:
            return 0.0, 0.0
        off = float(x[0] - spacing_mm * np.rint(x[0] / spacing_mm))
        dev = x - off - spacing_mm * np.rint((x - off) / spacing_mm)
        return off, float(np.abs(dev).max())
    (u0, su), (v0, sv) = fit(np.asarray(u_mm, float)), fit(np.asarray(v_mm, float))
    return u0, v0, max(su, sv)


def build_cells(a_mm: np.ndarray, b_mm: np.ndarray, cell_mm: float, col_i: np.ndarray, col_j: np.ndarray,
                pad: int, depth_key: np.ndarray | None = None, depth_bin: int = 1,
                origin_mm: tuple[float, float] = (0.0, 0.0)) -> CellIndex:
    """Bin lateral positions into square cells of side ``cell_mm`` centred on the lattice
    ``origin_mm + integer multiples``, on a grid that holds every column node plus ``pad`` cells;
    within a cell, voxels are sorted by ``depth_key`` (non-negative integers) when given."""
    ia = np.rint((a_mm - origin_mm[0]) / cell_mm).astype(np.int64)
    ib = np.rint((b_mm - origin_mm[1]) / cell_mm).astype(np.int64)
    i0 = int(min(ia.min(), col_i.min() - pad))
    j0 = int(min(ib.min(), col_j.min() - pad))
    ni = int(max(ia.max(), col_i.max() + pad)) - i0 + 1
    nj = int(max(ib.max(), col_j.max() + pad)) - j0 + 1
    cell = (ia - i0) * nj + (ib - j0)
    n_cells = ni * nj
    if depth_key is None:
        order = np.argsort(cell, kind="stable")
    else:
        dk = np.asarray(depth_key, dtype=np.int64)
        order = np.argsort(cell * (int(dk.max()) + 1) + dk, kind="stable")
    count = np.bincount(cell, minlength=n_cells).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    prefix = None
    if depth_key is not None:
        nb = int(np.asarray(depth_key).max()) // depth_bin + 1
        hist = np.zeros((n_cells, nb + 1), dtype=np.int32)
        np.add.at(hist, (cell, np.asarray(depth_key) // depth_bin + 1), 1)
        prefix = np.cumsum(hist, axis=1, dtype=np.int32)
    return CellIndex(order, i0, j0, ni, nj, start, count, prefix, depth_bin)


@dataclass
class ColumnBlock:
    """Sparse columns of one beam: grid rows and values grouped by column (column-major order,
    rows unsorted and possibly repeated within a column; repeats add up). ``row_map`` lists the
    beam's voxels in cell order."""

    rows: list             # chunks of grid row indices (flat voxel index)
    values: list           # chunks of float32 values, Gy per unit weight
    counts: np.ndarray     # int64 entries per column
    row_map: np.ndarray | None = None   # local row -> flat grid voxel index

    @property
    def nnz(self) -> int:
        return int(self.counts.sum())


def assemble(row_map: np.ndarray, cells: CellIndex, col_i: np.ndarray, col_j: np.ndarray,
             threshold: np.ndarray, offsets: np.ndarray, bound: Callable, evaluate: Callable,
             rng: np.random.Generator, depth_edges: Callable | None = None) -> ColumnBlock:
    """Build the sparse columns of one beam.

    Args:
        row_map: grid row (flat voxel index) of the beam's voxels, in cell order (the local
            rows of the result); the kernel's per-voxel arrays must be padded by :data:`BLOCK`
            (:func:`block_rows` pads them and reads a block as one row).
        cells: the cell index of the beam's voxels (padded by the largest offset).
        col_i, col_j: integer lateral node of every column.
        threshold: ``T`` of every column (Gy per unit weight).
        offsets: (n_off, 2) integer cell offsets to visit around a column.
        bound: ``bound(col, offset_id, cell, segment) -> vmax`` (Gy per unit weight) for pairs
            (``segment`` is the depth segment, always 0 without ``depth_edges``).
        evaluate: ``evaluate(start, col) -> (n, BLOCK) dose`` for blocks of :data:`BLOCK`
            consecutive sorted voxel positions from ``start`` and the block's column (entries
            past a block's end are ignored, so the voxel arrays must be padded).
        rng: random generator for the sampling of sub-threshold entries.
        depth_edges: optional ``depth_edges(cols) -> (n, S + 1)`` depth-key bin edges splitting a
            cell's depth-sorted voxels into S segments per column (bounded separately); voxels at
            or beyond the last edge receive no dose from the column (uses ``cells.depth_prefix``).
    """
    n_cols = col_i.size
    n_off = offsets.shape[0]
    off_flat = offsets[:, 0].astype(np.int64) * cells.nj + offsets[:, 1].astype(np.int64)
    col_cell = cells.cell_of(col_i, col_j)
    start_all = cells.start.astype(np.int32 if cells.start.size and cells.start[-1] < 2 ** 31 - BLOCK else np.int64)
    lane = np.arange(BLOCK, dtype=start_all.dtype)
    thr32 = threshold.astype(np.float32)
    prefix_flat = None if cells.depth_prefix is None else cells.depth_prefix.ravel()
    out_rows: list[np.ndarray] = []
    out_vals: list[np.ndarray] = []
    counts = np.zeros(n_cols, dtype=np.int64)
    # the chunks hold the rows until the matrix is assembled: 4 bytes per entry, not 8, where the grid allows
    rows_out = block_rows(row_map.astype(np.int32) if row_map.size and int(row_map.max()) < 2 ** 31 - 1 else row_map)
    cols_per_chunk = max(1, PAIR_CHUNK // max(n_off, 1))
    for c0 in range(0, n_cols, cols_per_chunk):
        cols = np.arange(c0, min(n_cols, c0 + cols_per_chunk), dtype=np.int32)
        cell2 = col_cell[cols, None] + off_flat[None, :]
        if depth_edges is None:
            cnt2 = cells.count[cell2]
            pc, po = (_index32(a) for a in np.nonzero(cnt2))
            cell = _index32(cell2[pc, po])
            cnt = _index32(cnt2[pc, po])
            seg = np.zeros(cell.size, dtype=np.int32)
            pstart = start_all[cell]
        else:
            nk = cells.depth_prefix.shape[1]
            edges = np.minimum(depth_edges(cols), nk - 1)                                 # (nc, S + 1)
            n_seg = edges.shape[1] - 1
            flat = (cell2 * nk)[:, :, None] + edges[:, None, :]                            # (nc, n_off, S + 1)
            below = np.take(prefix_flat, flat)
            del flat
            cnt3 = below[:, :, 1:] - below[:, :, :-1]
            nz = np.flatnonzero(cnt3)
            cnt = cnt3.ravel()[nz]
            seg = _index32(nz % n_seg)
            pair = nz // n_seg
            del nz
            pc, po = (_index32(a) for a in np.divmod(pair, n_off))
            cell = _index32(cell2.ravel()[pair])
            pstart = start_all[cell] + below.reshape(-1, n_seg + 1)[pair, seg].astype(start_all.dtype)
            del below, cnt3, pair
        del cell2
        col = cols[pc]
        # the bound's temporaries a slice at a time (elementwise: the same values as in one go)
        p = np.concatenate([bound(col[a:a + BOUND_SLICE], po[a:a + BOUND_SLICE], cell[a:a + BOUND_SLICE],
                                  seg[a:a + BOUND_SLICE]) / threshold[col[a:a + BOUND_SLICE]]
                            for a in range(0, max(col.size, 1), BOUND_SLICE)])
        nblk = (cnt + (BLOCK - 1)) // BLOCK
        exact = p >= 1.0
        # exact cells: every block
        e_nblk = nblk[exact]
        owner = np.repeat(_index32(np.flatnonzero(exact)), e_nblk)
        j = _index32(np.arange(owner.size)) - np.repeat(_index32(np.cumsum(e_nblk) - e_nblk), e_nblk)
        e_start = pstart[owner] + (j * BLOCK).astype(start_all.dtype)
        e_n = np.minimum(cnt[owner] - j * BLOCK, BLOCK)
        e_col = col[owner]
        # sampled cells: Poisson thinning over blocks
        s_ = ~exact
        lam = nblk[s_] * p[s_] / TAIL_FACTOR
        ok = lam >= MIN_EXPECTED
        idx = _index32(np.flatnonzero(s_)[ok])
        k = rng.poisson(lam[ok])
        owner = np.repeat(idx, k)
        first = (rng.random(owner.size) * nblk[owner]).astype(owner.dtype) * BLOCK
        s_start = pstart[owner] + first.astype(start_all.dtype)
        s_n = np.minimum(cnt[owner] - first, BLOCK)
        s_col = col[owner]
        s_u = (rng.random(owner.size) * p[owner] * threshold[s_col]).astype(np.float32)  # u * vmax
        del owner, first, j
        # both kinds in column order: exact blocks first within a column, then sampled ones
        b_col = np.concatenate([e_col, s_col])
        order = np.argsort(b_col, kind="stable")
        b_col = b_col[order]
        b_start = np.concatenate([e_start, s_start])[order]
        b_n = np.concatenate([e_n, s_n])[order]
        b_u = np.concatenate([np.full(e_col.size, -1.0, dtype=np.float32), s_u])[order]
        del order, e_col, e_start, e_n, s_col, s_start, s_n, s_u
        kept = np.empty(b_col.size, dtype=np.int64)    # entries kept per block
        for s in range(0, b_col.size, BLOCK_CHUNK):
            st, cc, nn, uu = b_start[s:s + BLOCK_CHUNK], b_col[s:s + BLOCK_CHUNK], b_n[s:s + BLOCK_CHUNK], \
                b_u[s:s + BLOCK_CHUNK]
            v = evaluate(st, cc)
            t = thr32[cc][:, None]
            srow = uu >= 0
            # cut: exact blocks keep v >= T, and v < T with probability v / T (stored as T);
            # sampled blocks keep v > u vmax (stored as T)
            cut = rng.random(v.shape, dtype=np.float32)
            cut *= t
            cut[srow] = uu[srow, None]
            keep = v > cut
            partial = nn < BLOCK
            if partial.any():
                keep[partial] &= lane[None, :] < nn[partial, None]
            np.maximum(v, t, out=v)
            v[srow] = t[srow] * TAIL_FACTOR
            out_rows.append(rows_out[st][keep])
            out_vals.append(v[keep])
            kept[s:s + BLOCK_CHUNK] = keep.sum(axis=1)
        counts += np.bincount(b_col, weights=kept, minlength=n_cols).astype(np.int64)
        # the chunk's working arrays back to the system before the next chunk: the beam threads' heaps
        # would keep them, and the process's peak would carry every thread's largest chunk at once (the
        # last slice's names hold views of the block arrays, so they go too)
        st = cc = nn = uu = v = t = cut = keep = srow = partial = None
        del b_col, b_start, b_n, b_u, kept
        return_freed_memory()
    return ColumnBlock(out_rows, out_vals, counts, row_map)


def block_rows(values: np.ndarray, fill=0) -> np.ndarray:
    """``values`` padded by :data:`BLOCK` entries of ``fill`` and seen as overlapping rows: row ``i`` is
    ``values[i:i + BLOCK]`` (a view of the padded copy). The values of a block of consecutive voxels are then
    one row, gathered as ``rows[start]``, instead of :data:`BLOCK` gathers of single entries; a block that
    starts near the end reads the padding."""
    padded = np.concatenate([values, np.full(BLOCK, fill, dtype=values.dtype)])
    return np.lib.stride_tricks.sliding_window_view(padded, BLOCK)


def _index32(a: np.ndarray) -> np.ndarray:
    """``a`` as 4-byte integers when its values allow (indices and counts within one chunk): the chunk's
    (column, cell, segment) arrays are the assembly's working memory."""
    if a.size and (int(a.max()) > np.iinfo(np.int32).max or int(a.min()) < np.iinfo(np.int32).min):
        return a
    return a.astype(np.int32, copy=False)


def to_csc(blocks: list[ColumnBlock], n_rows: int) -> sp.csc_matrix:
    """Concatenate the column blocks of several beams into one CSC matrix over the grid rows
    (``n_rows``), freeing the blocks' chunks as they are copied."""
    nnz = sum(b.nnz for b in blocks)
    n_cols = sum(b.counts.size for b in blocks)
    idx_dtype = np.int32 if max(nnz, n_rows) < 2 ** 31 - 1 else np.int64
    rows = np.empty(nnz, dtype=idx_dtype)
    vals = np.empty(nnz, dtype=np.float32)
    indptr = np.zeros(n_cols + 1, dtype=np.int64)
    pos, col, freed = 0, 0, 0
    for b in blocks:
        indptr[col + 1:col + 1 + b.counts.size] = np.cumsum(b.counts) + pos
        b.rows.reverse()
        b.values.reverse()
        while b.rows:   # each chunk freed once copied: the copy's pages fill as the chunks' pages go
            r, v = b.rows.pop(), b.values.pop()
            rows[pos:pos + r.size] = r
            vals[pos:pos + r.size] = v
            pos += r.size
            freed += r.nbytes + v.nbytes
            del r, v
            if freed > RETURN_EVERY_BYTES:
                return_freed_memory()
                freed = 0
        col += b.counts.size
    return sp.csc_matrix((vals, rows, indptr.astype(idx_dtype)), shape=(n_rows, n_cols))


def return_freed_memory() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; elsewhere nothing). The beams'
    chunks are many arrays of a few MB, allocated in the worker threads' heaps, which keep what is freed
    for reuse: without this, the matrix's arrays come on top of them in the process's peak memory."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


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
