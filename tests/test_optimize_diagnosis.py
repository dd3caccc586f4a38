"""The infeasibility diagnosis names what limits an unreachable target, from duals or from caps at their limit."""
from __future__ import annotations

import re

import numpy as np

from reirrad_opt.geometry import Grid
from reirrad_opt.optimize.diagnosis import diagnose_target
from reirrad_opt.optimize.terms import BODY_CEILING_ID, CEILING_ID, Term

GRID = Grid((1, 1, 30), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))      # a row of 30 voxels, 2 mm apart


def _mask(lo: int, hi: int) -> np.ndarray:
    m = np.zeros(GRID.shape, bool)
    m[0, 0, lo:hi] = True
    return m


MASKS = {"rGTV": _mask(0, 10), "Brainstem": _mask(11, 16), "OpticChiasm": _mask(25, 30), "SpinalCord": _mask(11, 30)}
TARGET = Term("rGTV_D98%", "rGTV", 1, "cvar_lower", np.arange(10), 63.5, fraction=0.98, description="rGTV D98%")


def cap(structure: str, level: float, kind: str = "voxel_max") -> Term:
    rows = np.flatnonzero(MASKS[structure].ravel())
    return Term(f"{structure}_{kind}", structure, 1, kind, rows, np.full(rows.size, level) if kind == "voxel_max"
                else level, hard=True, tier="acceptable", cumulative=True,
                description=f"{structure} <= {level:g} Gy (acceptable, cumulative EQD2)")


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
    assert "Brainstem limit (acceptable, cumulative EQD2)" in text and "at or above the cap" in text
    assert "OpticChiasm" not in text          # at its cap too, but 30 mm from the cold voxels
    assert "ceiling (74.5 Gy) binds" in text


def test_a_particle_plans_findings_read_in_gy_rbe():
    terms = [cap("Brainstem", 30.0), cap("OpticChiasm", 40.0), ceiling(CEILING_ID)]
    duals = {terms[2].key: (np.arange(10), np.full(10, 0.5))}
    dose = dose_with(brainstem_gy=30.0, chiasm_gy=40.0)
    photon = "\n".join(diagnose_target(TARGET, dose, terms, duals, MASKS, GRID))
    particle = "\n".join(diagnose_target(TARGET, dose, terms, duals, MASKS, GRID, dose_unit="Gy(RBE)"))
    assert "Gy(RBE)" not in photon
    assert "ceiling (74.5 Gy(RBE)) binds" in particle and "(goal 63.5 Gy(RBE))" in particle
    # every dose in the particle findings carries the RBE (a/b is not among them)
    assert not re.search(r"\d Gy(?!\(RBE\))", particle), particle


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


def test_a_mean_or_dose_volume_limit_is_not_read_voxel_by_voxel():
    """A hard mean-dose limit is not 'at its cap' because one voxel exceeds the mean's level."""
    terms = [cap("Brainstem", 26.0, kind="mean_max")]
    dose = dose_with(brainstem_gy=16.0, chiasm_gy=0.0)
    dose[11] = 40.0                                  # mean 20.8 Gy, below 26 Gy; one voxel above it
    lines = diagnose_target(TARGET, dose, terms, {}, MASKS, GRID)
    assert not any("Brainstem" in line for line in lines)


def test_an_organ_next_to_the_target_but_at_its_cap_far_away_is_not_named():
    """The cord runs from beside the rGTV to 40 mm away; only its far end is at the cap."""
    terms = [cap("SpinalCord", 30.0)]
    dose = dose_with(brainstem_gy=0.0, chiasm_gy=0.0)
    dose[11:30] = 10.0
    dose[29] = 30.0
    lines = diagnose_target(TARGET, dose, terms, {}, MASKS, GRID)
    assert not any("SpinalCord" in line for line in lines)


def test_a_binding_limit_on_an_organ_off_the_grid_is_named_not_denied():
    terms = [cap("Brainstem", 30.0)]
    duals = {terms[0].key: (np.arange(5), np.full(5, 1.0))}
    masks = {k: v for k, v in MASKS.items() if k != "Brainstem"}
    lines = diagnose_target(TARGET, dose_with(brainstem_gy=30.0, chiasm_gy=0.0), terms, duals, masks, GRID)
    assert any("Brainstem limit (acceptable, cumulative EQD2) binds" in line for line in lines)
    assert not any("no priority-1 cap binds" in line for line in lines)


def test_the_ceiling_line_gives_the_lower_of_two_binding_ceilings():
    terms = [ceiling(CEILING_ID), Term(BODY_CEILING_ID, "rGTV", 1, "voxel_max", np.arange(10), 70.0, hard=True)]
    duals = {terms[0].key: (np.arange(10), np.full(10, 0.5)), terms[1].key: (np.arange(10), np.full(10, 0.2))}
    lines = diagnose_target(TARGET, dose_with(brainstem_gy=0.0, chiasm_gy=0.0), terms, duals, MASKS, GRID)
    assert [line for line in lines if "ceiling" in line] == [
        "rGTV: the plan's maximum-dose ceiling (70.0 Gy) binds; coverage next to the organ caps would need a hotter plan"]


def test_sub_voxel_cap_points_are_located_through_their_stencil():
    """A cap held at interpolated points (as the evaluation samples an organ's edge): the points at the
    cap are located by the voxels their own stencil reads, not by their position in the point list."""
    from reirrad_opt.optimize.points import trilinear_stencil

    # point 0 beside the rGTV (it reads voxels 10-11), point 1 at the cord's far end (voxels 28-29)
    rows, interp = trilinear_stencil(np.array([[0.0, 0.0, 10.5], [0.0, 0.0, 28.5]]), GRID.shape)
    cord = Term("SpinalCord_D0.03cc", "SpinalCord", 1, "voxel_max", rows, np.array([30.0, 30.0]), hard=True,
                tier="acceptable", interp=interp, cumulative=True,
                description="SpinalCord <= 30 Gy (acceptable, cumulative EQD2)")
    dose = dose_with(brainstem_gy=0.0, chiasm_gy=0.0)
    dose[11:30] = 10.0
    dose[10:12] = 30.0          # at its cap where it touches the rGTV
    near = diagnose_target(TARGET, dose, [cord], {}, MASKS, GRID)
    assert any("SpinalCord limit" in line and "at or above the cap" in line for line in near)
    dose[10:12] = 10.0
    dose[28:30] = 30.0          # at its cap only at the far end, 34 mm away
    far = diagnose_target(TARGET, dose, [cord], {}, MASKS, GRID)
    assert not any("SpinalCord" in line for line in far)
