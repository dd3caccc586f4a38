"""The normal-tissue stage's inputs: sampled body voxels, the dose fall-off ring around the PTV, the
fluence-roughness operator and the PTV's homogeneity window (:class:`~.stage.NormalTissue`)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..case import Case
from ..geometry import distance_outside_mm
from ..planning_settings import ProblemSettings
from .stage import NormalTissue


def _stride_sample(indices: np.ndarray, n_max: int) -> np.ndarray:
    if indices.size <= n_max:
        return indices
    return indices[:: int(np.ceil(indices.size / n_max))]


def normal_tissue_setup(case: Case, ptv: np.ndarray, rx_gy: float, influence, *, homogeneity_weight: float = 1.0,
                        floor_pct_rx: float = 0.0, sampling: ProblemSettings | None = None) -> NormalTissue:
    """Sampled body voxels, the fall-off ring around the PTV, the fluence-roughness operator, and the
    PTV's homogeneity term: ``homogeneity_weight`` (1/Gy^2) on its dose outside [``floor_pct_rx`` % of
    Rx, Rx] (the planning settings ``target_homogeneity_weight`` and ``target_floor_pct_rx``). The ring's
    width, reference fall-off and sample counts are ``sampling``'s (default: ProblemSettings())."""
    sampling = sampling or ProblemSettings()
    grid = case.grid
    dist = distance_outside_mm(ptv, grid).ravel()
    body = case.body.ravel()
    ring = np.flatnonzero(body & (dist > 0) & (dist <= sampling.ring_mm))
    ring = _stride_sample(ring, sampling.ring_samples)
    reference = rx_gy * np.maximum(0.25, 1.0 - 0.5 * dist[ring] / sampling.ring_half_dose_mm)
    far = _stride_sample(np.flatnonzero(body & (dist > 0)), sampling.normal_tissue_samples)
    return NormalTissue(far, ring, reference, roughness_operator(influence), target_rows=np.flatnonzero(ptv.ravel()),
                        target_reference_gy=rx_gy, hot_weight=float(homogeneity_weight),
                        target_floor_gy=float(floor_pct_rx) / 100.0 * rx_gy)


def roughness_operator(influence) -> sp.csr_matrix | None:
    """Differences between laterally neighbouring bixels/spots of the same beam and energy layer."""
    cols = getattr(influence, "columns", None)
    if cols is None:
        return None
    get = (lambda k: cols[k]) if isinstance(cols, dict) else (lambda k: getattr(cols, k))
    try:
        beam = np.asarray(get("beam"))
        u = np.asarray(get("u_mm"), dtype=float)
        v = np.asarray(get("v_mm"), dtype=float)
    except (KeyError, AttributeError):
        return None
    try:
        layer = np.asarray(get("energy_mev"), dtype=float)
    except (KeyError, AttributeError):
        layer = np.zeros_like(u)
    pairs = []
    for key in np.unique(np.stack([beam, layer], axis=1), axis=0):
        idx = np.flatnonzero((beam == key[0]) & (layer == key[1]))
        if idx.size < 2:
            continue
        pu, pv = u[idx], v[idx]
        step = np.min(np.diff(np.unique(pu))) if np.unique(pu).size > 1 else np.inf
        for a_pos, a in enumerate(idx):
            near = idx[(np.abs(pu - pu[a_pos]) + np.abs(pv - pv[a_pos]) > 0) &
                       (np.abs(pu - pu[a_pos]) + np.abs(pv - pv[a_pos]) <= step * 1.01)]
            pairs.extend((a, b) for b in near if b > a)
    if not pairs:
        return None
    p = np.asarray(pairs)
    n = len(p)
    data = np.concatenate([np.ones(n), -np.ones(n)])
    rows = np.concatenate([np.arange(n), np.arange(n)])
    return sp.csr_matrix((data, (rows, np.concatenate([p[:, 0], p[:, 1]]))), shape=(n, beam.size))
