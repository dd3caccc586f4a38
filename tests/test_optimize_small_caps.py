"""Organ caps that leave little or no new dose (re-irradiation: the prior course used most of the limit).

* A small cap next to the target, with the LP's rows truncated: the correction's constant (the dropped
  scatter at the reference fluence) alone exceeded the cap, the first priority came out infeasible and
  the plan empty. The point now gets an exact row, and the plan matches the untruncated one.
* An exhausted point (cap 0: the prior dose alone reaches the limit) cannot be held by any cap that is
  aimed inside it: its new dose is minimised first instead, and the rest of the organ stays capped.
"""
import dataclasses

import numpy as np
import pytest

from test_optimize_core import beamlet_matrix, run, terms_for
from test_optimize_truncation import scatter_matrix, solver


@pytest.mark.parametrize("cap_gy", [2.0, 0.5])
def test_small_cap_with_truncated_rows_is_met_as_without_truncation(cap_gy):
    results = {}
    for truncation in (0.0, 0.01):
        d96, s = solver(truncation, cap_gy=cap_gy)
        stage = s.solve_priority(1)
        assert stage.status == "optimal"
        dose = scatter_matrix().astype(float) @ s.weights
        assert dose[46:52].max() <= cap_gy                        # the cap, in the full-matrix dose
        results[truncation] = dose[20:45].min()
    assert results[0.01] > 1.0                                    # not an empty plan
    assert results[0.01] == pytest.approx(results[0.0], abs=0.1)  # the coverage the cap allows


def exhausted_terms(lo, hi, point=3, cap_gy=10.0):
    ts = terms_for(lo, hi, cap_des=cap_gy)
    levels = np.full(hi - lo, cap_gy)
    levels[point] = 0.0
    ts.terms[0] = dataclasses.replace(ts.terms[0], level_gy=levels)
    return ts


def test_exhausted_point_far_from_the_beams_changes_nothing():
    plain = run(terms_for(60, 66, cap_des=10.0))
    out = run(exhausted_terms(60, 66))
    assert all(s.status == "optimal" for s in out.stages)
    dose, plain_dose = (beamlet_matrix().astype(float) @ o.weights for o in (out, plain))
    assert dose[63] == 0.0
    assert np.abs(dose - plain_dose).max() < 0.05


def test_exhausted_point_next_to_the_target_is_minimised_and_the_rest_stays_capped():
    plain = run(terms_for(49, 55, cap_des=10.0))
    out = run(exhausted_terms(49, 55, point=2))                 # voxel 51: 1.2 Gy in the plain plan
    assert all(s.status == "optimal" for s in out.stages)
    dose, plain_dose = (beamlet_matrix().astype(float) @ o.weights for o in (out, plain))
    assert plain_dose[51] > 1.0
    assert dose[51] < 0.7 * plain_dose[51]                      # pushed down, not left where it was
    others = np.r_[49:51, 52:55]
    assert dose[others].max() <= 10.0                           # the other points keep their cap
    assert np.sort(dose[25:45])[0] >= 0.98 * 60.0 - 0.7         # the target is still covered (within its slip)
    first = out.stages[0]
    assert "OAR_Dmax@exhausted" in first.achieved
    # its own stage's value; later stages may give back at most the first priority's slip (0.6 Gy)
    assert first.achieved["OAR_Dmax@exhausted"] <= dose[51] + 1e-6
    assert dose[51] <= first.achieved["OAR_Dmax@exhausted"] + 0.6 + 1e-3


def test_points_subset_keeps_each_points_stencil_and_level():
    import scipy.sparse as sp
    from reirrad_opt.optimize import Term
    interp = sp.csr_matrix(np.array([[1, 0, 0], [0.5, 0.5, 0], [0, 0.25, 0.75], [0, 0, 1]]))
    t = Term("OAR_Dmax", "OAR", 1, "voxel_max", np.array([7, 8, 9]), np.array([1.0, 2.0, 3.0, 4.0]), hard=True,
             interp=interp)
    sub = t.points_subset(np.array([1, 2]), hard=False, tier="exhausted")
    dose = np.array([10.0, 20.0, 40.0])
    assert np.allclose(sub.point_values(dose), t.point_values(dose)[[1, 2]])
    assert np.allclose(sub.level_gy, [2.0, 3.0]) and not sub.hard and sub.key == "OAR_Dmax@exhausted"
    assert t.hard and t.n_points == 4                        # the original is untouched
