"""Robust priority-1 caps: each organ cap held in every uncertainty scenario (minimax).

A scenario's new-course dose is another influence matrix with the same columns (the plan's spots or
bixels, see :mod:`reirrad_opt.robust.scenarios`). The prior dose is fixed in the patient, so a cap point
keeps its new-course cap in every scenario; only the dose reaching it changes. A robust cap is therefore
the nominal cap term with its points repeated once per scenario, each copy reading the scenario matrix's
rows. The problem's matrix gains those rows below the grid's (``grid.n_voxels`` onwards): only the cap
points' voxels of each scenario, not whole matrices. Every engine then holds the longer cap term as it
holds any cap: no engine knows about scenarios.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from .terms import CEILING_IDS, Term


def is_robust_cap(t: Term) -> bool:
    """The caps made robust: priority-1 organ maxima (hard voxel_max terms), not the plan ceilings."""
    return t.hard and t.kind == "voxel_max" and t.goal_id not in CEILING_IDS


def robust_cap_rows(matrix: sp.csr_matrix, terms: Sequence[Term], scenario_matrices: Sequence[sp.csr_matrix],
                    scenario_names: Sequence[str] | None = None) -> tuple[sp.csr_matrix, tuple[Term, ...], np.ndarray]:
    """(the matrix with every scenario's cap rows appended, the terms with each robust cap extended to every
    scenario, the voxel rows that were appended per scenario). ``matrix`` and the scenario matrices are in the
    same unit (Gy or Gy(RBE) per unit weight) with the same columns; ``scenario_names`` name them (the
    diagnosis says which scenario binds)."""
    n_vox = matrix.shape[0]
    for k, m in enumerate(scenario_matrices):
        if m.shape != matrix.shape:
            raise ValueError(f"scenario matrix {k}: shape {m.shape}, expected the nominal {matrix.shape}")
    names = tuple(scenario_names) if scenario_names is not None else tuple(
        f"scenario {k + 1}" for k in range(len(scenario_matrices)))
    if len(names) != len(scenario_matrices):
        raise ValueError(f"{len(names)} scenario names for {len(scenario_matrices)} scenario matrices")
    caps = [t for t in terms if is_robust_cap(t)]
    if not scenario_matrices or not caps:
        return matrix, tuple(terms), np.zeros(0, dtype=np.int64)
    voxels = np.unique(np.concatenate([t.rows for t in caps]))
    blocks = [sp.csr_matrix(m)[voxels] for m in scenario_matrices]
    stacked = sp.vstack([matrix, *blocks], format="csr").astype(matrix.dtype, copy=False)
    out = []
    for t in terms:
        if not is_robust_cap(t):
            out.append(t)
            continue
        local = np.searchsorted(voxels, t.rows)
        rows = np.concatenate([t.rows] + [n_vox + k * voxels.size + local for k in range(len(scenario_matrices))])
        copies = len(scenario_matrices) + 1
        interp = None if t.interp is None else sp.block_diag([t.interp] * copies, format="csr")
        n_points = t.n_points
        level = np.tile(np.broadcast_to(np.asarray(t.level_gy, dtype=float), (n_points,)), copies)
        out.append(dataclasses.replace(t, rows=rows, interp=interp, level_gy=level, scenarios=("nominal", *names),
                                       description=f"{t.description}, in each of {copies} scenarios"))
    return stacked, tuple(out), voxels

