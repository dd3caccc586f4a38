"""The LP's dose rows: the influence matrix, its truncated copy, and the pool of dose variables.

Photon bixels reach most of the body with a low scatter tail, which makes every influence row dense.
The LP reads the dose through ``d_v = A'_v w + c_v``: ``A'`` drops the entries below a fraction of
their column's maximum, and ``c_v`` adds the dropped dose back at the last solved fluence (the
*correction*). Every check of a solved plan uses the full matrix.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ..threads import n_threads
from .lp import LinearProgram
from .split_product import RowSplit


# entries per block of truncate_columns: its temporaries stay a few MB instead of one array the size of
# the matrix (on the 57 M entries of TG-119 at 3 mm, 0.4 s against 1.2 s in a fresh process, where every
# new large array is first paid for in page faults)
_BLOCK_ENTRIES = 1 << 22


def truncate_columns(matrix: sp.csr_matrix, rel_threshold: float) -> sp.csr_matrix:
    """Copy of ``matrix`` (CSR, its own dtype) without the entries below ``rel_threshold`` times their
    column's maximum magnitude (the low scatter tails of photon bixels, which make every row dense).

    Works in the matrix's own precision, skips the magnitudes of a non-negative matrix (every influence
    matrix), and reads the entries in blocks of :data:`_BLOCK_ENTRIES`."""
    if rel_threshold <= 0:
        return matrix
    matrix = sp.csr_matrix(matrix)
    data, indices = matrix.data, matrix.indices
    non_negative = data.size == 0 or data.min() >= 0
    col_max = np.zeros(matrix.shape[1], dtype=data.dtype)
    np.maximum.at(col_max, indices, data if non_negative else np.abs(data))
    floor = (rel_threshold * col_max).astype(data.dtype)
    kept = [np.zeros(0, dtype=np.int64)]
    for lo in range(0, data.size, _BLOCK_ENTRIES):
        part = data[lo:lo + _BLOCK_ENTRIES]
        keep = (part if non_negative else np.abs(part)) >= floor[indices[lo:lo + _BLOCK_ENTRIES]]
        kept.append(np.flatnonzero(keep) + lo)
    kept = np.concatenate(kept)
    # a row's entries are consecutive, so its kept ones start where the kept positions pass its first entry
    indptr = np.searchsorted(kept, matrix.indptr).astype(np.int64)
    return sp.csr_matrix((data[kept], indices[kept], indptr), shape=matrix.shape)


def as_float64(matrix: sp.spmatrix) -> sp.csr_matrix:
    """``matrix`` as float64 CSR; a CSR matrix keeps its index arrays (shared, not copied: half the
    memory and a fifth of the time of a full copy on TG-119 at 3 mm, 57 M entries)."""
    if sp.issparse(matrix) and matrix.format == "csr":
        if matrix.dtype == np.float64:
            return matrix
        return sp.csr_matrix((matrix.data.astype(np.float64), matrix.indices, matrix.indptr), shape=matrix.shape)
    return sp.csr_matrix(matrix, dtype=np.float64)


class DoseRows:
    """The influence matrix (true dose) and its truncated copy for the LP's dose rows.

    ``threads``: how many threads the large products may share (default :func:`~reirrad_opt.threads.n_threads`);
    with more than one, ``pool`` holds the other threads (:class:`~.split_product.RowSplit`)."""

    def __init__(self, matrix: sp.csr_matrix, truncation: float = 0.0, threads: int | None = None) -> None:
        # float64 once: a float32 matrix times float64 weights is upcast on every product (NPC phantom
        # at 2.5 mm, 27 M entries: 0.17 s a dose against 0.03 s, and a plan computes it dozens of times)
        self.matrix = as_float64(matrix)
        self.truncated = truncation > 0
        # truncated from the matrix as given (float32 from the dose engine: half the memory traffic)
        self.matrix_opt = sp.csr_matrix(truncate_columns(matrix, truncation), dtype=np.float64) \
            if self.truncated else self.matrix
        self._cache: dict[int, tuple[np.ndarray, sp.csr_matrix]] = {}
        self.threads = n_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"DoseRows: threads must be at least 1, got {threads!r}")
        # the pool's threads end when this object is collected (ThreadPoolExecutor holds them by weak reference)
        self.pool = ThreadPoolExecutor(max_workers=self.threads - 1) if self.threads > 1 else None
        self._full = RowSplit(self.matrix, self.threads)
        self._last: tuple[np.ndarray, np.ndarray] | None = None   # (weights, dose) of the last dose()

    def block(self, rows: np.ndarray) -> sp.csr_matrix:
        """Full-matrix rows (float64 CSR) of ``rows``: the true dose."""
        cached = self._cache.get(id(rows))
        if cached is None or cached[0] is not rows:
            cached = (rows, self.matrix[rows].tocsr())
            self._cache[id(rows)] = cached
        return cached[1]

    def dose(self, weights: np.ndarray) -> np.ndarray:
        """Dose (Gy) on every voxel of the grid for ``weights`` (read-only). The last one is kept: a stage's
        end, its holds and the next stage's start all read the dose of the same fluence."""
        w = np.asarray(weights, dtype=float)
        if self._last is None or not np.array_equal(self._last[0], w):
            dose = self._full(w, self.pool)
            dose.flags.writeable = False
            self._last = (w.copy(), dose)
        return self._last[1]


class DosePool:
    """LP variables equal to the new-course dose in chosen voxels (created on first use).

    Rows ``d_v - A'_v w = c_v`` with ``c_v`` the dose of the dropped entries at the correction fluence
    (row bounds updated by :meth:`set_correction`); ``d_v - A_v w = 0`` when nothing is truncated.

    The truncated rows are what makes the LP small: photon bixels reach most of the body with a low
    scatter tail, and on the TG-119 phantom at 3 mm 93 % of the influence entries are below 1 % of
    their column's maximum. The first TG-119 LP (19,670 rows) has 4.4 M non-zeros with exact rows and
    0.46 M with truncated ones; HiGHS's interior point solves it in 62 s and 7.7 s. The dose the LP
    sees is exact at the correction fluence, and off by the dropped entries' share of the fluence
    change since (:meth:`lp_dose`); every round checks the full-matrix dose and re-solves with the
    correction at the new fluence."""

    def __init__(self, lp: LinearProgram, rows: DoseRows, w_idx: np.ndarray) -> None:
        self.lp, self.rows, self.w_idx = lp, rows, w_idx
        self.exact = not rows.truncated
        self.var = np.full(rows.matrix.shape[0], -1, dtype=np.int64)
        self.position = np.full(rows.matrix.shape[0], -1, dtype=np.int64)   # voxel -> index in self.voxels
        self.voxels = np.zeros(0, dtype=np.int64)
        self.eq_rows = np.zeros(0, dtype=np.int64)
        self.offsets = np.zeros(0)   # c_v of each pool voxel (Gy), in the order of self.voxels
        self.w_corr = np.zeros(rows.matrix.shape[1])

    def _offset(self, voxels: np.ndarray) -> np.ndarray:
        if self.exact or not self.w_corr.any():
            return np.zeros(voxels.size)
        return self.rows.matrix[voxels] @ self.w_corr - self.rows.matrix_opt[voxels] @ self.w_corr

    def variables(self, voxels: np.ndarray) -> np.ndarray:
        """LP variable indices of the dose in ``voxels`` (flat grid indices)."""
        voxels = np.asarray(voxels, dtype=np.int64)
        missing = np.unique(voxels[self.var[voxels] < 0])
        if missing.size:
            source = self.rows.matrix if self.exact else self.rows.matrix_opt
            block = source[missing].astype(np.float64)
            d = self.lp.add_variables(missing.size, 0.0, np.inf)   # dose >= 0 (A >= 0, w >= 0)
            offset = self._offset(missing)
            eq = self.lp.add_rows([(self.w_idx, block), (d, -sp.identity(missing.size, format="csr"))],
                                  -offset, -offset)
            self.lp.swap_into_basis(d, eq)
            self.var[missing] = d
            self.position[missing] = self.voxels.size + np.arange(missing.size)
            self.voxels = np.concatenate([self.voxels, missing])
            self.eq_rows = np.concatenate([self.eq_rows, eq])
            self.offsets = np.concatenate([self.offsets, offset])
        return self.var[voxels]

    def lp_dose(self, dose: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Copy of the full-matrix ``dose`` (Gy, every voxel, at ``weights``) with each pool voxel's dose as
        its LP row reads it: ``A'_v w + c_v``. Equal to ``dose`` at the correction fluence."""
        out = np.array(dose, dtype=float, copy=True)
        if not self.exact and self.voxels.size:
            out[self.voxels] = self.rows.matrix_opt[self.voxels] @ np.asarray(weights, dtype=float) + self.offsets
        return out

    def constants(self, voxels: np.ndarray) -> np.ndarray:
        """``c_v`` (Gy) of each of ``voxels`` as the LP's dose rows read it now (for a voxel with no dose
        variable yet: as its row will be built, at the current correction; see :meth:`variables`)."""
        voxels = np.asarray(voxels, dtype=np.int64)
        out = np.zeros(voxels.size)
        if self.exact:
            return out
        where = self.position[voxels]
        known = where >= 0
        out[known] = self.offsets[where[known]]
        if (~known).any():
            out[~known] = self._offset(voxels[~known])
        return out

    def set_correction(self, weights: np.ndarray) -> None:
        """Re-evaluate the dropped entries at ``weights`` (truncated pool only)."""
        if self.exact:
            return
        self.w_corr = np.asarray(weights, dtype=float).copy()
        if self.voxels.size:
            self.offsets = self._offset(self.voxels)
            self.lp.set_row_bounds(self.eq_rows, -self.offsets, -self.offsets)
