"""Several prior courses summed in EQD2: the hand-computed LQ sum (each course with its own dose per
fraction and its own interval), EQD2 not additive in physical dose, the evaluation's rows and
reporting block, the case folder format (several courses; old single-course folders), and the
report's prior-course section.

Every expected number is written out from the LQ formula EQD2 = D (D/n + a/b) / (2 + a/b)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from reirrad_opt.case import Case, CaseFormatError, PriorCourse, PriorDose, load_case, save_case
from reirrad_opt.evaluate import evaluate_plan
from reirrad_opt.geometry import Grid, Structure
from reirrad_opt.prior_eqd2 import describe_recovery, effective_prior_eqd2_sum, recovered_fractions
from reirrad_opt.protocol import load_protocol
from reirrad_opt.radiobiology import RecoveryModel, eqd2
from reirrad_opt.report.html_report import render_report_html

GRID = Grid((6, 20, 20), (2.0, 2.0, 2.0))


@pytest.fixture(scope="module")
def qd():
    return load_protocol(fractionation="qd-2.0")          # Rx 60 Gy in 30 fractions


# ----------------------------------------------------------------------------- the formula

def test_two_courses_give_the_hand_computed_sum():
    # a/b 2 Gy. Course A: 30 Gy in 15 fx (2 Gy/fx): 30 (2 + 2) / (2 + 2) = 30 Gy EQD2.
    # Course B: 24 Gy in 4 fx (6 Gy/fx): 24 (6 + 2) / (2 + 2) = 48 Gy EQD2.
    # Voxel 2: A 10 Gy (10/15 Gy/fx): 10 (2/3 + 2) / 4 = 6.6667; B 8 Gy (2 Gy/fx): 8 Gy.
    a = np.array([30.0, 0.0, 10.0])
    b = np.array([24.0, 24.0, 8.0])
    total = effective_prior_eqd2_sum([a, b], [15, 4], [0.0, 0.0], 2.0)
    assert total == pytest.approx([78.0, 48.0, 20.0 / 3.0 + 8.0], rel=1e-12)
    # each course discounted at its own interval: A after 48 months 50 % recovered, B after 12 months 10 %
    total = effective_prior_eqd2_sum([a, b], [15, 4], [0.5, 0.1], 2.0)
    assert total == pytest.approx([0.5 * 30.0 + 0.9 * 48.0, 0.9 * 48.0, 0.5 * 20.0 / 3.0 + 0.9 * 8.0], rel=1e-12)


def test_eqd2_is_not_additive_in_physical_dose():
    """Two courses of 30 Gy in 15 fx (a/b 3 Gy): each 30 (2 + 3) / (2 + 3) = 30 Gy, together 60 Gy
    EQD2; the summed physical dose 60 Gy taken as one course of 15 fx would be 60 (4 + 3) / 5 = 84 Gy."""
    two = effective_prior_eqd2_sum([30.0, 30.0], [15, 15], [0.0, 0.0], 3.0)
    assert float(two) == pytest.approx(60.0, rel=1e-12)
    assert float(eqd2(60.0, 15, 3.0)) == pytest.approx(84.0, rel=1e-12)
    # the same dose per fraction is what makes a split exact: 70 Gy / 35 fx = 40 Gy / 20 fx + 30 Gy / 15 fx
    assert float(effective_prior_eqd2_sum([40.0, 30.0], [20, 15], [0, 0], 3.0)) == pytest.approx(70.0, rel=1e-12)


def test_recovery_is_read_at_each_course_s_own_interval():
    model = RecoveryModel("table", table=((12.0, 0.0), (48.0, 0.5)))
    early = PriorCourse(35, 60.0)         # ended 60 months ago: 50 % (the table's last value, held)
    late = PriorCourse(5, 30.0)           # ended 30 months ago: halfway between 0 and 50 %: 25 %
    assert recovered_fractions(model, "Brainstem", [early, late]) == pytest.approx((0.5, 0.25))
    text = describe_recovery(model, [early, late])
    assert "course 1 (35 fx, 60 months): 50 %" in text and "course 2 (5 fx, 30 months): 25 %" in text
    assert describe_recovery(model, [early]) == model.describe(60.0)


def test_a_count_mismatch_is_refused():
    with pytest.raises(ValueError, match="one dose, one number of fractions and one recovered fraction per course"):
        effective_prior_eqd2_sum([30.0, 30.0], [15], [0.0, 0.0], 3.0)


# ----------------------------------------------------------------------------- the evaluation

def blocks(courses, new_rgtv_gy=60.0):
    """A small case: Brainstem and SpinalCord blocks (4 x 4 x 4 voxels), rGTV and PTV; ``courses``
    is a list of (PriorCourse, {structure: uniform dose in its block})."""
    boxes = {"Brainstem": (slice(1, 5), slice(2, 6), slice(2, 6)), "SpinalCord": (slice(1, 5), slice(2, 6), slice(12, 16)),
             "rGTV": (slice(1, 5), slice(12, 16), slice(7, 11)), "PTV": (slice(0, 6), slice(11, 17), slice(6, 12))}
    structures = {}
    for name, box in boxes.items():
        m = np.zeros(GRID.shape, bool)
        m[box] = True
        structures[name] = Structure(name, m, "target" if name in ("rGTV", "PTV") else "oar")
    doses = []
    for _, values in courses:
        d = np.zeros(GRID.shape, np.float32)
        for name, v in values.items():
            d[boxes[name]] = v
        doses.append(d)
    first = courses[0][0]
    further = tuple(PriorDose(c, d) for (c, _), d in zip(courses[1:], doses[1:]))
    case = Case("two_courses", GRID, np.zeros(GRID.shape, np.float32), structures, doses[0], first, {}, further)
    new = np.zeros(GRID.shape)
    new[boxes["PTV"]] = new_rgtv_gy
    return case, new


COURSE_A = PriorCourse(15, 60.0, prescription_gy=30.0, description="30 Gy in 15 fx")
COURSE_B = PriorCourse(4, 12.0, prescription_gy=24.0, description="24 Gy in 4 fx")


def test_evaluation_sums_the_courses_in_eqd2(qd):
    # Brainstem (a/b 2.5 Gy): A 30 Gy / 15 fx -> 30 (2 + 2.5) / 4.5 = 30 Gy; B 24 Gy / 4 fx -> 24 (6 + 2.5) / 4.5
    # = 45.3333 Gy; sum 75.3333 Gy. SpinalCord (a/b 2.5 Gy): A 20 Gy -> 20 (4/3 + 2.5) / 4.5 = 17.037 Gy only.
    case, new = blocks([(COURSE_A, {"Brainstem": 30.0, "SpinalCord": 20.0}), (COURSE_B, {"Brainstem": 24.0})])
    ev = evaluate_plan(case, qd, new)
    bs = ev.row("Brainstem_D0.03cc")
    assert bs.value == pytest.approx(30.0 + 24.0 * 8.5 / 4.5, rel=1e-5)
    assert bs.recovered_fractions == (0.0, 0.0) and bs.recovered_fraction == 0.0
    assert "2 prior courses of 15 + 4 fx" in bs.note
    cord = ev.row("SpinalCord_D0.03cc")
    assert cord.value == pytest.approx(20.0 * (20.0 / 15.0 + 2.5) / 4.5, rel=1e-5)
    # with recovery at each course's interval (A: 60 months 50 %, B: 12 months 0 %): 15 + 45.3333
    model = RecoveryModel("table", table=((12.0, 0.0), (48.0, 0.5)))
    ev = evaluate_plan(case, qd, new, recovery=model)
    bs = ev.row("Brainstem_D0.03cc")
    assert bs.value == pytest.approx(0.5 * 30.0 + 24.0 * 8.5 / 4.5, rel=1e-5)
    assert bs.recovered_fractions == (0.5, 0.0) and bs.recovered_fraction is None
    assert "each prior course at its own interval" in ev.recovery


def test_reporting_block_lists_the_courses_and_their_contributions(qd):
    case, new = blocks([(COURSE_A, {"Brainstem": 30.0, "PTV": 30.0}), (COURSE_B, {"Brainstem": 24.0})])
    rep = evaluate_plan(case, qd, new).reporting
    assert rep["prior_course"]["n_fractions"] == 15                     # the first course, as before
    courses = rep["prior_courses"]
    assert [c["n_fractions"] for c in courses] == [15, 4] and [c["interval_months"] for c in courses] == [60.0, 12.0]
    assert courses[1]["dose_per_fraction_gy"] == pytest.approx(6.0) and courses[1]["max_dose_gy"] == pytest.approx(24.0)
    assert "supplied on the planning grid" in courses[0]["mapping"]
    assert rep["interval_months"] == 12.0                               # the most recent course
    by_course = rep["per_structure"]["Brainstem"]["prior_eqd2_by_course"]
    assert by_course[0]["Dmax_gy"] == pytest.approx(30.0, rel=1e-5)
    assert by_course[1]["Dmax_gy"] == pytest.approx(24.0 * 8.5 / 4.5, rel=1e-5)
    assert rep["per_structure"]["Brainstem"]["prior_eqd2_after_recovery"]["Dmax_gy"] == pytest.approx(
        30.0 + 24.0 * 8.5 / 4.5, rel=1e-5)
    assert "prior_eqd2_by_course" not in rep["per_structure"]["PTV"]    # priority-1 organs only
    assert "own number of fractions (never from the summed physical dose)" in rep["summation"]
    assert rep["reirradiation_type"]["type"] == "Type 1" and "2 prior courses" in rep["reirradiation_type"]["note"]
    page = render_report_html({"verdict": "desirable", "evaluation": [], "reporting": rep}, [])
    assert "Prior courses (2)" in page and "course 2: 4 fx, 12.0 months" in page
    assert "all prior courses (voxel-wise sum)" in page


def test_the_optimizer_s_brainstem_cap_is_the_hand_computed_one(qd):
    """The cap on the new dose where both courses' full dose lies: limit L (cumulative EQD2), prior
    E = 30 + 45.3333 Gy (above), n = 30 new fractions, a/b 2.5 Gy:
    d = (n/2) (-(a/b) + sqrt((a/b)^2 + 4 (L - E)(2 + a/b) / n))."""
    from reirrad_opt.optimize.build import build_terms

    case, _ = blocks([(COURSE_A, {"Brainstem": 30.0}), (COURSE_B, {"Brainstem": 24.0})])
    terms = [t for t in build_terms(case, qd, 30, 60.0).terms if t.goal_id == "Brainstem_D0.03cc"]
    prior = 30.0 + 24.0 * 8.5 / 4.5
    for t in terms:
        limit = {"desirable": 70.2, "acceptable": 81.0}[t.tier]
        expected = 0.0 if limit <= prior else 15.0 * (-2.5 + math.sqrt(2.5 ** 2 + 4 * (limit - prior) * 4.5 / 30))
        assert float(np.min(t.level_gy)) == pytest.approx(expected, abs=1e-5), t.tier
    assert {t.tier for t in terms} == {"desirable", "acceptable"}


def test_type1_counts_a_volume_irradiated_by_two_courses(qd):
    # 12 Gy + 12 Gy in the PTV: neither course reaches the 20 Gy threshold alone, together they do
    case, new = blocks([(COURSE_A, {"PTV": 12.0}), (COURSE_B, {"PTV": 12.0})])
    assert evaluate_plan(case, qd, new).reirradiation_type == "Type 1"
    case, new = blocks([(COURSE_A, {"PTV": 12.0})])
    assert evaluate_plan(case, qd, new).reirradiation_type == "Type 2"


def test_one_course_split_in_two_with_the_same_dose_per_fraction_evaluates_the_same(qd):
    """50 Gy in 25 fx = 20 Gy in 10 fx + 30 Gy in 15 fx (2 Gy per fraction in both): every row equal."""
    one, new = blocks([(PriorCourse(25, 24.0), {"Brainstem": 50.0, "SpinalCord": 40.0})])
    two, _ = blocks([(PriorCourse(10, 24.0), {"Brainstem": 20.0, "SpinalCord": 16.0}),
                     (PriorCourse(15, 24.0), {"Brainstem": 30.0, "SpinalCord": 24.0})])
    a, b = evaluate_plan(one, qd, new), evaluate_plan(two, qd, new)
    for ra, rb in zip(a.rows, b.rows):
        assert (ra.value is None) == (rb.value is None) and ra.verdict == rb.verdict
        if ra.value is not None:
            assert rb.value == pytest.approx(ra.value, abs=1e-5), ra.goal_id


# ----------------------------------------------------------------------------- the case folder

def test_a_case_with_two_courses_round_trips(tmp_path):
    case, _ = blocks([(dataclasses.replace(COURSE_A, mapping="rigid, 1.2 mm"), {"Brainstem": 30.0}),
                      (COURSE_B, {"Brainstem": 24.0})])
    folder = save_case(case, tmp_path / "c")
    meta = json.loads((folder / "case.json").read_text())
    assert meta["format_version"] == 2 and "prior_course" not in meta        # a one-course reader refuses it
    assert [c["n_fractions"] for c in meta["prior_courses"]] == [15, 4]
    assert meta["prior_courses"][0]["mapping"] == "rigid, 1.2 mm" and "mapping" not in meta["prior_courses"][1]
    with np.load(folder / "case.npz") as npz:
        assert {"prior_dose_gy", "prior_dose_gy_2"} <= set(npz.files)
    back = load_case(folder)
    assert [p.course for p in back.prior_courses] == [p.course for p in case.prior_courses]
    for p, q in zip(back.prior_courses, case.prior_courses):
        assert np.array_equal(p.dose_gy, q.dose_gy)


def test_an_old_single_course_folder_loads_unchanged(tmp_path):
    """A case folder as written before several courses existed (format 1, key prior_course, written
    here by hand): one course, its values as written, and it is written back in the same layout."""
    folder = tmp_path / "old"
    folder.mkdir()
    mask = np.zeros(GRID.shape, bool)
    mask[1:3, 1:3, 1:3] = True
    dose = np.full(GRID.shape, 12.5, np.float32)
    np.savez_compressed(folder / "case.npz", ct_hu=np.zeros(GRID.shape, np.float32), prior_dose_gy=dose,
                        spacing_mm=np.array(GRID.spacing_mm), origin_mm=np.array(GRID.origin_mm), mask_Brainstem=mask)
    meta = {"format_version": 1, "name": "old", "grid": GRID.to_dict(),
            "structures": [{"name": "Brainstem", "role": "oar", "volume_cc": 0.064}],
            "prior_course": {"n_fractions": 33, "interval_months": 24.0, "modality": "photon", "prescription_gy": 70.0,
                             "description": "70 Gy in 33 fx", "dose_type": "PHYSICAL", "rbe": 1.0},
            "source": {"kind": "test"}}
    (folder / "case.json").write_text(json.dumps(meta))
    case = load_case(folder)
    assert len(case.prior_courses) == 1 and case.further_priors == ()
    assert (case.prior.n_fractions, case.prior.interval_months, case.prior.mapping) == (33, 24.0, "")
    assert np.array_equal(case.prior_dose_gy, dose)
    again = save_case(case, tmp_path / "again")
    written = json.loads((again / "case.json").read_text())
    assert written["format_version"] == 1 and written["prior_course"] == meta["prior_course"]
    assert "prior_courses" not in written


def test_case_folder_errors_name_the_key(tmp_path):
    case, _ = blocks([(COURSE_A, {"Brainstem": 30.0}), (COURSE_B, {"Brainstem": 24.0})])
    folder = save_case(case, tmp_path / "c")
    meta = json.loads((folder / "case.json").read_text())
    (folder / "case.json").write_text(json.dumps(dict(meta, format_version=3)))
    with pytest.raises(CaseFormatError, match=r"case.json: format_version 3 is not one this version reads"):
        load_case(folder)
    (folder / "case.json").write_text(json.dumps(dict(meta, prior_courses=[meta["prior_courses"][0]] * 3)))
    with pytest.raises(CaseFormatError, match=r"case.npz: array 'prior_dose_gy_3' is missing"):
        load_case(folder)
    bad = [meta["prior_courses"][0], dict(meta["prior_courses"][1], n_fractions=0)]
    (folder / "case.json").write_text(json.dumps(dict(meta, prior_courses=bad)))
    with pytest.raises(CaseFormatError, match=r"prior_courses\[1\]: prior course: n_fractions must be a whole number from 1 to 100, got 0"):
        load_case(folder)


def test_a_course_dose_must_fit_the_grid():
    with pytest.raises(ValueError, match="prior course 2 dose_gy"):
        Case("c", GRID, np.zeros(GRID.shape, np.float32), {}, np.zeros(GRID.shape, np.float32), COURSE_A, {},
             (PriorDose(COURSE_B, np.zeros((2, 2, 2), np.float32)),))
    with pytest.raises(ValueError, match="prior course 2 dose_gy must be finite and >= 0"):
        Case("c", GRID, np.zeros(GRID.shape, np.float32), {}, np.zeros(GRID.shape, np.float32), COURSE_A, {},
             (PriorDose(COURSE_B, np.full(GRID.shape, -1.0, np.float32)),))
