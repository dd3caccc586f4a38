"""The infeasibility diagnosis names what limits an unreachable target, from duals or from caps at their limit."""
from __future__ import annotations

import numpy as np

from reirrad_opt.geometry import Grid
from reirrad_opt.optimize.diagnosis import diagnose_target
from reirrad_opt.optimize.terms import BODY_CEILING_ID, CEILING_ID, Term

GRID = Grid((1, 1, 30), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))      # a row of 30 voxels, 2 mm apart


def _mask(lo: int, hi: int) -> np.ndarray:
    m = np.zeros(GRID.shape, bool)
    m[0, 0, lo:hi] = True
    return m


MASKS = {"rGTV": _mask(0, 10), "Brainstem": _mask(11, 16), "OpticChiasm": _mask(25, 30)}
TARGET = Term("rGTV_D98%", "rGTV", 1, "cvar_lower", np.arange(10), 63.5, fraction=0.98, description="rGTV D98%")


def cap(structure: str, level: float) -> Term:
    rows = np.flatnonzero(MASKS[structure].ravel())
    return Term(f"{structure}_D0.03cc", structure, 1, "voxel_max", rows, np.full(rows.size, level), hard=True,
                tier="acceptable")


def ceiling(goal_id: str) -> Term:
    return Term(goal_id, "rGTV", 1, "voxel_max", np.arange(10), 74.5, hard=True)


def dose_with(brainstem_gy: float, chiasm_gy: float) -> np.ndarray:
    d = np.zeros(GRID.n_voxels)
    d[:10] = np.linspace(64.0, 50.0, 10)     # the rGTV falls below its goal towards the brainstem
    d[11:16] = brainstem_gy
    d[25:30] = chiasm_gy
    return d


def test_an_organ_at_its_cap_next_to_the_cold_target_is_named_without_a_dual():
    terms = [cap("Brainstem", 30.0), cap("OpticChiasm", 40.0), ceiling(CEILING_ID)]
    duals = {terms[2].key: (np.arange(10), np.full(10, 0.5))}          # only the ceiling carries a dual
    lines = diagnose_target(TARGET, dose_with(brainstem_gy=30.0, chiasm_gy=40.0), terms, duals, MASKS, GRID)
    text = "\n".join(lines)
    assert "Brainstem limit (acceptable, cumulative EQD2)" in text and "at the cap" in text
    assert "OpticChiasm" not in text          # at its cap too, but 30 mm from the cold voxels
    assert "ceiling (74.5 Gy) binds" in text


def test_an_organ_below_its_cap_is_not_named_and_nothing_binding_says_so():
    terms = [cap("Brainstem", 30.0), ceiling(CEILING_ID)]
    lines = diagnose_target(TARGET, dose_with(brainstem_gy=25.0, chiasm_gy=0.0), terms, {}, MASKS, GRID)
    assert not any("Brainstem" in line for line in lines)
    assert "no priority-1 cap binds" in lines[-1]


def test_two_binding_ceilings_give_one_line():
    terms = [cap("Brainstem", 30.0), ceiling(CEILING_ID), ceiling(BODY_CEILING_ID)]
    duals = {terms[0].key: (np.arange(5), np.full(5, 1.0)), terms[1].key: (np.arange(10), np.full(10, 0.5)),
             terms[2].key: (np.arange(10), np.full(10, 0.2))}
    lines = diagnose_target(TARGET, dose_with(brainstem_gy=30.0, chiasm_gy=0.0), terms, duals, MASKS, GRID)
    assert sum("ceiling" in line for line in lines) == 1
    assert sum("Brainstem limit" in line for line in lines) == 1 and "binding voxels" in lines[1]
