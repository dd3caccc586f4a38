"""The optimizer and the evaluation read the same effective prior EQD2 when a case has several prior
courses. Known truth: EQD2 = D (d + a/b) / (2 + a/b) is linear in D at a fixed dose per fraction d,
so a prior course split into two courses with the same dose per fraction in every voxel and the
same interval is, in LQ, the same prior course.

* The NPC phantom's course (70 Gy in 33 fx) as 16 + 17 fx with 16/33 and 17/33 of the dose: the
  optimizer's caps and the evaluation of a dose equal the single course's up to the float32 rounding
  of the split doses.
* The same dose declared as one course of 32 fx, against two courses of half the dose in 16 fx each:
  halving is exact in binary floating point, so the plan (optimizer, evaluation, report) must be the
  single course's bit for bit.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.case import PriorDose
from reirrad_opt.evaluate import evaluate_plan
from reirrad_opt.optimize.build import build_terms
from reirrad_opt.planning import plan
from reirrad_opt.protocol import load_protocol
from reirrad_opt.report.plan_folder import write_plan_folder

ANGLES = [0.0, 72.0, 144.0, 216.0, 288.0]


def split(case, n_first: int):
    """``case`` with its prior course as two courses of n_first and n - n_first fractions, the dose
    shared in proportion (the same dose per fraction in every voxel), the same interval."""
    n, d = case.prior.n_fractions, case.prior_dose_gy.astype(np.float64)
    rx = case.prior.prescription_gy
    first = dataclasses.replace(case.prior, n_fractions=n_first, prescription_gy=rx * n_first / n,
                                description=f"first part, {n_first} fx")
    second = dataclasses.replace(case.prior, n_fractions=n - n_first, prescription_gy=rx * (n - n_first) / n,
                                 description=f"second part, {n - n_first} fx")
    return dataclasses.replace(case, prior_dose_gy=(d * n_first / n).astype(np.float32), prior=first,
                               further_priors=(PriorDose(second, (d * (n - n_first) / n).astype(np.float32)),),
                               source=dict(case.source))


@pytest.fixture(scope="module")
def cases():
    one = make_npc_phantom(5.0)
    assert one.prior.n_fractions == 33
    return one, split(one, 16)


@pytest.fixture(scope="module")
def plans():
    phantom = make_npc_phantom(5.0)
    one = dataclasses.replace(phantom, prior=dataclasses.replace(phantom.prior, n_fractions=32))
    halves = split(one, 16)
    assert np.array_equal(halves.prior_dose_gy * 2, one.prior_dose_gy)
    return (plan(one, gantry_angles_deg=ANGLES, engine="first-order"),
            plan(halves, gantry_angles_deg=ANGLES, engine="first-order"))


def test_the_optimizer_s_caps_are_the_single_course_s(cases):
    one, two = cases
    protocol = load_protocol()
    frac = protocol.fractionation
    a = build_terms(one, protocol, frac.n_fractions, frac.total_gy)
    b = build_terms(two, protocol, frac.n_fractions, frac.total_gy)
    capped = [(ta, tb) for ta, tb in zip(a.terms, b.terms) if ta.hard and ta.goal_id.startswith("Brainstem")]
    assert capped, "no brainstem cap in the problem"
    for ta, tb in zip(a.terms, b.terms):
        assert (ta.goal_id, ta.tier, ta.kind) == (tb.goal_id, tb.tier, tb.kind)
        assert np.allclose(np.asarray(tb.level_gy, float), np.asarray(ta.level_gy, float), atol=1e-4, rtol=0), ta.goal_id
    # the caps are the prior-EQD2 budget: somewhere the brainstem's prior dose already takes a part of it
    ta = capped[0][0]
    assert float(np.min(ta.level_gy)) < float(np.max(ta.level_gy))


def test_a_dose_evaluates_the_same_on_the_split_case(cases):
    one, two = cases
    protocol = load_protocol()
    dose = np.zeros(one.grid.shape)
    dose[one.structures["rGTV"].mask] = 60.0
    dose[one.structures["Brainstem"].mask] = 20.0
    a, b = evaluate_plan(one, protocol, dose), evaluate_plan(two, protocol, dose)
    assert [r.verdict for r in a.rows] == [r.verdict for r in b.rows]
    for ra, rb in zip(a.rows, b.rows):
        if ra.value is not None:
            assert rb.value == pytest.approx(ra.value, abs=1e-4), ra.goal_id
    assert np.allclose(b.cumulative_eqd2_gy, a.cumulative_eqd2_gy, atol=1e-3)
    assert b.row("Brainstem_D0.03cc").value > 60        # the brainstem's prior EQD2 counts


def test_a_plan_on_two_half_courses_is_the_single_course_plan(plans, tmp_path):
    p_one, p_two = plans
    assert len(p_two.case.prior_courses) == 2
    assert np.array_equal(p_two.new_dose_gy, p_one.new_dose_gy)
    assert np.array_equal(p_two.evaluation.cumulative_eqd2_gy, p_one.evaluation.cumulative_eqd2_gy)
    for ra, rb in zip(p_one.evaluation.rows, p_two.evaluation.rows):
        assert (ra.goal_id, ra.value, ra.verdict) == (rb.goal_id, rb.value, rb.verdict)
    bs = p_two.evaluation.row("Brainstem_D0.03cc")
    assert bs.cumulative and bs.value <= bs.acceptable + 1e-6     # the optimizer held what the evaluation reads
    # plan.json and report.html show each course and the summed prior EQD2 of the priority-1 organs
    out = write_plan_folder(p_two, tmp_path / "plan")
    doc = json.loads((out / "plan.json").read_text())
    courses = doc["reporting"]["prior_courses"]
    assert [c["n_fractions"] for c in courses] == [16, 16] and [c["interval_months"] for c in courses] == [24.0, 24.0]
    entry = doc["reporting"]["per_structure"]["Brainstem"]
    by_course, summed = entry["prior_eqd2_by_course"], entry["prior_eqd2_after_recovery"]
    assert by_course[0]["Dmax_gy"] == by_course[1]["Dmax_gy"]
    assert 2 * by_course[0]["Dmax_gy"] == pytest.approx(summed["Dmax_gy"], abs=2e-4)     # rounded to 1e-4 Gy
    page = (out / "report.html").read_text()
    assert "Prior courses (2)" in page and "second part, 16 fx" in page
