"""Dose at the evaluator's sample points as a linear map of voxel doses.

The evaluation (:mod:`reirrad_opt.evaluate.sampling`) resolves maxima of small organs at
sub-voxel points with trilinearly interpolated dose. A maximum-type goal is enforced on exactly
those points, so what the optimizer caps is what the evaluation measures: the dose at a point is
``sum_c w_c d_c`` over the 8 voxel centres ``c`` around it (weights ``w_c`` >= 0, summing to 1).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def trilinear_stencil(index_kji: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, sp.csr_matrix]:
    """Trilinear interpolation of fractional indices (N, 3) on a grid of ``shape``.

    Returns ``(rows, interp)``: ``rows`` the flat C-order indices of every voxel the stencils touch
    (sorted, unique) and ``interp`` (N x len(rows)) with the interpolation weights, so that the
    dose at the points is ``interp @ dose.ravel()[rows]``. Beyond the outer voxel centres the
    nearest value is used (as ``scipy.ndimage.map_coordinates(mode='nearest')`` does).
    """
    pts = np.asarray(index_kji, dtype=float)
    n = pts.shape[0]
    upper = np.asarray(shape) - 1
    p = np.clip(pts, 0, upper)
    base = np.minimum(np.floor(p).astype(np.int64), np.maximum(upper - 1, 0))
    t = p - base
    cols, weights = [], []
    for a in (0, 1):
        for b in (0, 1):
            for c in (0, 1):
                corner = np.minimum(base + np.array([a, b, c]), upper)
                w = ((t[:, 0] if a else 1 - t[:, 0]) * (t[:, 1] if b else 1 - t[:, 1]) *
                     (t[:, 2] if c else 1 - t[:, 2]))
                cols.append(np.ravel_multi_index(corner.T, shape))
                weights.append(w)
    flat = np.concatenate(cols)
    wts = np.concatenate(weights)
    point = np.tile(np.arange(n), 8)
    keep = wts > 1e-12
    flat, wts, point = flat[keep], wts[keep], point[keep]
    rows, local = np.unique(flat, return_inverse=True)
    interp = sp.csr_matrix((wts, (point, local)), shape=(n, rows.size))
    interp.sum_duplicates()
    return rows, interp
