"""A sparse matrix-vector product split over row blocks, run in parallel threads.

scipy's CSR product runs on one core and releases the GIL, so the rows of a large matrix can be
shared between threads: each block of rows is a view of the matrix's own arrays (no copy), and every
row's sum is computed exactly as in the unsplit product, so the result is the same to the last bit.
"""
from __future__ import annotations

from concurrent.futures import Executor

import numpy as np
import scipy.sparse as sp

# below this many stored entries a product takes well under a millisecond, and handing half of it
# to another thread costs about as much as it saves
MIN_SPLIT_NNZ = 400_000


class RowSplit:
    """``matrix @ x`` over ``n_parts`` blocks of rows with about equal numbers of entries.

    Args:
        matrix: the CSR matrix (kept by reference; the blocks are views of its arrays).
        n_parts: the number of row blocks (the threads that may share a product); one, or a matrix
            of fewer than :data:`MIN_SPLIT_NNZ` entries, is not split.
    """

    def __init__(self, matrix: sp.csr_matrix, n_parts: int) -> None:
        if not (sp.issparse(matrix) and matrix.format == "csr"):
            raise TypeError(f"RowSplit: expected a CSR matrix, got {type(matrix).__name__}")
        self.matrix = matrix
        self.shape = matrix.shape
        self.parts: list[tuple[int, int, sp.csr_matrix]] = []
        if n_parts > 1 and matrix.nnz >= MIN_SPLIT_NNZ:
            indptr = matrix.indptr
            cuts = np.searchsorted(indptr, np.linspace(0, matrix.nnz, n_parts + 1)[1:-1])
            bounds = [0] + sorted(set(int(c) for c in cuts) - {0, matrix.shape[0]}) + [matrix.shape[0]]
            for a, b in zip(bounds[:-1], bounds[1:]):
                self.parts.append((a, b, _row_view(matrix, a, b)))

    def __call__(self, x: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """``matrix @ x``; the blocks in ``pool``'s threads (the first in this one) when the matrix is
        split and a pool is given, else the plain product."""
        if pool is None or len(self.parts) < 2:
            return self.matrix @ x
        out = np.empty(self.shape[0], dtype=np.result_type(self.matrix.dtype, x.dtype))
        futures = [pool.submit(part.__matmul__, x) for _, _, part in self.parts[1:]]
        a, b, first = self.parts[0]
        out[a:b] = first @ x
        for (a, b, _), future in zip(self.parts[1:], futures):
            out[a:b] = future.result()
        return out


def _row_view(matrix: sp.csr_matrix, a: int, b: int) -> sp.csr_matrix:
    """Rows ``a:b`` of ``matrix`` as a CSR matrix whose data and indices are views of ``matrix``'s.

    The arrays are set after construction: scipy's constructor copies a view that is less than half of
    the array it views, which would double the memory of the matrix being split."""
    lo, hi = int(matrix.indptr[a]), int(matrix.indptr[b])
    view = sp.csr_matrix((b - a, matrix.shape[1]), dtype=matrix.dtype)
    view.indptr = matrix.indptr[a:b + 1] - matrix.indptr.dtype.type(lo)
    view.indices = matrix.indices[lo:hi]
    view.data = matrix.data[lo:hi]
    return view
