"""The optimizer and the evaluation read the same effective prior EQD2 when a case has several prior
courses. Known truth: the NPC phantom's prior course (70 Gy in 33 fx, 24 months) split into two
courses with the same dose per fraction and the same interval (16 fx with 16/33 of the dose, 17 fx
with 17/33) is the same prior course in LQ, since EQD2 = D (d + a/b) / (2 + a/b) is linear in D at a
fixed dose per fraction d. So the optimizer's brainstem caps, the evaluation of any dose, and a plan
must be those of the single course (up to float32 rounding of the split doses)."""
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
def plans(cases):
    one, two = cases
    return (plan(one, gantry_angles_deg=ANGLES, engine="first-order"),
            plan(two, gantry_angles_deg=ANGLES, engine="first-order"))


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


def test_a_plan_on_the_split_case_equals_the_single_course_plan(cases, plans, tmp_path):
    one, two = cases
    p_one, p_two = plans
    assert len(p_two.case.prior_courses) == 2
    for ra, rb in zip(p_one.evaluation.rows, p_two.evaluation.rows):
        assert ra.goal_id == rb.goal_id and ra.verdict == rb.verdict, ra.goal_id
        if ra.structure == "Brainstem" and ra.value is not None:
            assert ra.cumulative and rb.value == pytest.approx(ra.value, abs=0.05), ra.goal_id
    # the evaluation of one dose: the split case and the single course give the same rows
    again = evaluate_plan(one, p_two.protocol, p_two.new_dose_gy, fractionation=p_two.fractionation)
    for ra, rb in zip(again.rows, p_two.evaluation.rows):
        if ra.value is not None:
            assert rb.value == pytest.approx(ra.value, abs=1e-4), ra.goal_id
    assert np.allclose(p_two.evaluation.cumulative_eqd2_gy, again.cumulative_eqd2_gy, atol=1e-3)
    # the optimizer held the brainstem's cumulative limit that the evaluation reads
    bs = p_two.evaluation.row("Brainstem_D0.03cc")
    assert bs.value <= bs.acceptable + 1e-6
    # plan.json and report.html show each course and the summed prior EQD2 of the priority-1 organs
    out = write_plan_folder(p_two, tmp_path / "plan")
    doc = json.loads((out / "plan.json").read_text())
    courses = doc["reporting"]["prior_courses"]
    assert [c["n_fractions"] for c in courses] == [16, 17] and [c["interval_months"] for c in courses] == [24.0, 24.0]
    by_course = doc["reporting"]["per_structure"]["Brainstem"]["prior_eqd2_by_course"]
    summed = doc["reporting"]["per_structure"]["Brainstem"]["prior_eqd2_after_recovery"]
    assert by_course[0]["Dmax_gy"] + by_course[1]["Dmax_gy"] == pytest.approx(summed["Dmax_gy"], abs=1e-3)
    assert by_course[0]["Dmax_gy"] / by_course[1]["Dmax_gy"] == pytest.approx(16 / 17, rel=1e-4)
    page = (out / "report.html").read_text()
    assert "Prior courses (2)" in page and "second part, 17 fx" in page
