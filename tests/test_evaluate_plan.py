"""evaluate_plan on a block phantom whose doses are constant around every structure, so every
expected value follows from the EQD2 formula by hand: verdicts, margins, cumulative summation,
fractionation, recovery, missing structures, the optic-nerve rule, re-irradiation type, reporting."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import brentq

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.evaluate import evaluate_plan, line_verdict
from reirrad_opt.geometry import Grid, Structure
from reirrad_opt.protocol import load_protocol
from reirrad_opt.radiobiology import RecoveryModel

GRID = Grid((10, 44, 44), (2.0, 2.0, 2.0))
CELLS = {  # structure -> (cell row, cell column); each cell is 8 x 8 voxels (y, x), all slices
    "Brainstem": (0, 0), "SpinalCord": (0, 1), "OpticChiasm": (0, 2), "OpticNrv_L": (0, 3), "OpticNrv_R": (0, 4),
    "Lobe_Temporal_L": (1, 0), "Lobe_Temporal_R": (1, 1), "A_Carotid_L": (1, 2), "A_Carotid_R": (1, 3),
    "rGTV": (2, 2), "PTV": (2, 2),
}
PRIOR_FX = 25            # prior course: 2 Gy per fraction at 50 Gy -> EQD2 = physical dose


def eqd2_by_hand(dose, n, ab):
    return dose * (dose / n + ab) / (2.0 + ab)


def cell(name):
    r, c = CELLS[name]
    return slice(None), slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8)


def build(prior=None, new=None, omit=(), interval_months=24.0, names=None):
    """Case with 4x4x4-voxel (0.512 cc) organs, rGTV 4x4x4 and PTV 6x6x6 voxels; ``prior`` and
    ``new`` give the physical dose (Gy) of each structure's whole cell (default 0)."""
    structures = {}
    for name, (r, c) in CELLS.items():
        if name in omit:
            continue
        mask = np.zeros(GRID.shape, bool)
        if name == "PTV":
            mask[2:8, 8 * r + 1:8 * r + 7, 8 * c + 1:8 * c + 7] = True
        else:
            mask[3:7, 8 * r + 2:8 * r + 6, 8 * c + 2:8 * c + 6] = True
        key = (names or {}).get(name, name)
        structures[key] = Structure(key, mask)
    prior_dose = np.zeros(GRID.shape, np.float32)
    new_dose = np.zeros(GRID.shape)
    for name, value in (prior or {}).items():
        prior_dose[cell(name)] = value
    for name, value in (new or {}).items():
        new_dose[cell(name)] = value
    case = Case("blocks", GRID, np.zeros(GRID.shape, np.float32), structures, prior_dose,
                PriorCourse(PRIOR_FX, interval_months, prescription_gy=70.0, description="70 Gy in 35 fx"))
    return case, new_dose


OARS_50 = {n: 50.0 for n in ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R",
                             "Lobe_Temporal_L", "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R")}


@pytest.fixture(scope="module")
def qd():
    return load_protocol(fractionation="qd-2.0")          # Rx 60 Gy in 30 fractions


def test_good_plan_is_desirable(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0})
    ev = evaluate_plan(case, qd, new)
    assert ev.verdict == "desirable", ev.summary
    assert not ev.failed_priority1 and not ev.not_evaluated and not ev.incomplete
    bs = ev.row("Brainstem_D0.03cc")
    assert bs.value == pytest.approx(50.0) and bs.value_coarse == pytest.approx(50.0)   # prior EQD2 only
    assert bs.unit == "Gy" and bs.cumulative and bs.desirable == 70.2 and bs.acceptable == 81.0
    assert bs.margin == pytest.approx(20.2)
    gtv = ev.row("rGTV_D98%")
    assert gtv.value == pytest.approx(60.0) and gtv.desirable == pytest.approx(58.8)       # 98 % of 60 Gy
    assert gtv.margin == pytest.approx(1.2)
    hot = ev.row("PTV_V107%")
    assert hot.value == 0.0 and hot.unit == "%" and hot.desirable == 5.0 and hot.acceptable == 10.0
    json.dumps(ev.to_dict())


def test_cumulative_value_is_the_voxelwise_eqd2_sum(qd):
    # Brainstem: prior 50 Gy in 25 fx (EQD2 50), new 30 Gy in 30 fx at a/b 2.5: EQD2 30 * 3.5 / 4.5.
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": 30.0})
    row = evaluate_plan(case, qd, new).row("Brainstem_D0.03cc")
    expected = 50.0 + 30.0 * (1.0 + 2.5) / 4.5
    assert row.value == pytest.approx(expected) and row.value_coarse == pytest.approx(expected)
    assert row.verdict == "acceptable"
    assert row.margin == pytest.approx(81.0 - expected)
    assert row.margin_desirable == pytest.approx(70.2 - expected)


def test_guideline_worked_example_at_the_desirable_boundary(qd):
    # Prior 50 Gy EQD2: the desirable limit leaves 20.2 Gy EQD2; in 30 fractions the physical dose
    # D solves D (D/30 + 2.5) / 4.5 = 20.2.
    cap = brentq(lambda d: eqd2_by_hand(d, 30, 2.5) - 20.2, 0, 100, xtol=1e-13)
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": cap})
    row = evaluate_plan(case, qd, new).row("Brainstem_D0.03cc")
    assert row.value == pytest.approx(70.2, abs=1e-6) and row.verdict == "desirable"
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": cap + 0.05})
    assert evaluate_plan(case, qd, new).row("Brainstem_D0.03cc").verdict == "acceptable"


def test_priority1_failure_fails_the_plan(qd):
    # Spinal cord: 50 + EQD2(30 Gy / 30 fx) = 73.3 Gy > 67.5 Gy acceptable.
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "SpinalCord": 30.0})
    ev = evaluate_plan(case, qd, new)
    assert ev.verdict == "fail" and ev.failed_priority1 == ["SpinalCord_D0.03cc"]
    row = ev.row("SpinalCord_D0.03cc")
    assert row.verdict == "fail" and row.margin == pytest.approx(67.5 - (50 + 30 * 3.5 / 4.5))
    assert ev.summary.startswith("FAIL") and "SpinalCord D0.03cc (73.33 Gy, desirable <= 58.50 Gy, acceptable <= " \
        "67.50 Gy)" in ev.summary


def test_lower_priority_failure_is_listed_but_does_not_fail_the_plan(qd):
    # Temporal lobe: prior 70 Gy in 25 fx (2.8 Gy/fx) + new 40 Gy in 30 fx, both at a/b 2.5.
    prior = dict(OARS_50, Lobe_Temporal_L=70.0)
    case, new = build(prior=prior, new={"rGTV": 60.0, "Lobe_Temporal_L": 40.0})
    ev = evaluate_plan(case, qd, new)
    expected = eqd2_by_hand(70.0, 25, 2.5) + eqd2_by_hand(40.0, 30, 2.5)
    row = ev.row("Lobe_Temporal_L_D0.03cc")
    assert row.value == pytest.approx(expected) and expected > 105.0 and row.verdict == "fail"
    # priority 1 alone decides: every priority-1 line is desirable; the priority-2 fail is named
    assert ev.verdict == "desirable" and ev.failed_lower_priority == ["Lobe_Temporal_L_D0.03cc"]
    assert "lower-priority goals not met: Lobe_Temporal_L D0.03cc" in ev.summary


def test_sum_of_voxels_not_sum_of_metrics(qd):
    # Brainstem: the prior hot spot (60 Gy in 25 fx) and the new one (40 Gy in 30 fx) lie in
    # different halves. Summing the two maxima would give 65.3 + 34.1 = 99.4 Gy (fail); the
    # voxel-wise sum peaks at 65.3 Gy (desirable).
    case, new = build(prior=OARS_50, new={"rGTV": 60.0})
    cell_y = slice(0, 8)
    case.prior_dose_gy[:, cell_y, 0:4] = 60.0
    case.prior_dose_gy[:, cell_y, 4:8] = 0.0
    new[:, cell_y, 0:4] = 0.0
    new[:, cell_y, 4:8] = 40.0
    row = evaluate_plan(case, qd, new).row("Brainstem_D0.03cc")
    assert row.value == pytest.approx(eqd2_by_hand(60.0, 25, 2.5))
    assert row.verdict == "desirable"
    assert eqd2_by_hand(60.0, 25, 2.5) + eqd2_by_hand(40.0, 30, 2.5) > 81.0


def test_fractionation_sets_rx_and_the_new_course_conversion():
    bid = load_protocol()                                   # default BID: 54 x 1.2 Gy = 64.8 Gy
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": 30.0})
    ev = evaluate_plan(case, bid, new)
    assert ev.rx_gy == pytest.approx(64.8) and ev.fractionation == "bid-1.2"
    assert ev.row("Brainstem_D0.03cc").value == pytest.approx(50.0 + eqd2_by_hand(30.0, 54, 2.5))
    gtv = ev.row("rGTV_D98%")            # 60 Gy < 98 % of 64.8 Gy: the guideline's single level is missed
    assert gtv.desirable == pytest.approx(63.504) and gtv.verdict == "fail"
    assert ev.verdict == "fail"
    ev_qd = evaluate_plan(case, bid, new, fractionation="qd-2.0")
    assert ev_qd.rx_gy == 60.0 and ev_qd.row("rGTV_D98%").verdict == "desirable"


def test_recovery_models(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": 30.0})
    new_eqd2 = eqd2_by_hand(30.0, 30, 2.5)
    ev = evaluate_plan(case, qd, new, recovery=RecoveryModel("constant", fraction=0.3))
    assert ev.row("Brainstem_D0.03cc").value == pytest.approx(0.7 * 50.0 + new_eqd2)
    assert "30 %" in ev.recovery and "30 %" in ev.reporting["recovery"]
    table = RecoveryModel("none", per_structure={"Brainstem": RecoveryModel("table", table=((12, 0.0), (36, 0.5)))})
    ev = evaluate_plan(case, qd, new, recovery=table)        # interval 24 months -> 25 %
    assert ev.row("Brainstem_D0.03cc").value == pytest.approx(0.75 * 50.0 + new_eqd2)
    assert ev.row("Brainstem_D0.03cc").recovered_fraction == pytest.approx(0.25)
    assert ev.row("SpinalCord_D0.03cc").value == pytest.approx(50.0)


def test_missing_priority1_structure_fails_loudly(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0}, omit=("OpticChiasm", "A_Carotid_R"))
    ev = evaluate_plan(case, qd, new)
    chiasm = ev.row("OpticChiasm_D0.03cc")
    assert chiasm.verdict == "not evaluated" and chiasm.value is None
    assert "PRIORITY 1" in chiasm.note and "not in the case" in chiasm.note and "--absent OpticChiasm" in chiasm.note
    assert ev.verdict == "incomplete" and ev.incomplete and not ev.priority1_failed
    assert ev.summary.startswith("INCOMPLETE: OpticChiasm not contoured") and "OpticChiasm_D0.03cc" in ev.summary
    carotid = ev.row("A_Carotid_R_D0.03cc")
    assert carotid.verdict == "not evaluated" and "A_Carotid_R_D0.03cc" in ev.not_evaluated
    json.dumps(ev.to_dict())
    # Only a lower-priority structure missing: listed, the verdict is not failed by it.
    case, new = build(prior=OARS_50, new={"rGTV": 60.0}, omit=("A_Carotid_R",))
    ev = evaluate_plan(case, qd, new)
    assert ev.verdict == "desirable" and ev.not_evaluated == ["A_Carotid_R_D0.03cc"]
    assert "lower-priority lines not evaluated (structure missing or empty): A_Carotid_R_D0.03cc" in ev.summary


def test_empty_structure_is_not_evaluated(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0})
    case.structures["SpinalCord"].mask[:] = False
    ev = evaluate_plan(case, qd, new)
    assert ev.row("SpinalCord_D0.03cc").verdict == "not evaluated" and "empty" in ev.row("SpinalCord_D0.03cc").note
    assert ev.verdict == "incomplete" and ev.summary.startswith("INCOMPLETE: SpinalCord empty in the case")


def test_structures_found_by_alias(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": 30.0},
                      names={"Brainstem": "BRSTEM", "rGTV": "GTV-rP", "OpticNrv_L": "Optic Nerve - Lt"})
    ev = evaluate_plan(case, qd, new)
    assert ev.row("Brainstem_D0.03cc").case_structure == "BRSTEM"
    assert ev.row("rGTV_D98%").verdict == "desirable" and ev.row("OpticNrv_L_D0.03cc").verdict == "desirable"


def test_unilateral_optic_nerve_rule():
    # Optic nerve L: 50 + EQD2(45 Gy / 30 fx) = 86.5 Gy > 81 Gy.
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "OpticNrv_L": 45.0})
    bilateral = evaluate_plan(case, load_protocol(fractionation="qd-2.0"), new)
    assert bilateral.verdict == "fail" and bilateral.failed_priority1 == ["OpticNrv_L_D0.03cc"]
    uni = evaluate_plan(case, load_protocol(fractionation="qd-2.0", optic_nerve_rule="unilateral"), new)
    row = uni.row("OpticNrv_L_D0.03cc")
    assert row.priority == 2 and row.acceptable is None and row.verdict == "not met"
    assert row.margin == pytest.approx(70.2 - (50 + eqd2_by_hand(45.0, 30, 2.5)))
    assert "above the desirable limit by 19.80 Gy" in row.note   # 50 + 45 x (1.5 + 2.5) / 4.5 = 90 Gy, - 70.2 Gy
    # the remaining priority-1 lines are all desirable; the relaxed nerve is named, not counted
    assert uni.verdict == "desirable" and "lower-priority goals not met: OpticNrv_L D0.03cc" in uni.summary


def test_hotspot_goal(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 66.0})      # 110 % of 60 Gy everywhere in the PTV
    ev = evaluate_plan(case, qd, new)
    hot = ev.row("PTV_V107%")
    assert hot.value == pytest.approx(100.0) and hot.verdict == "fail" and hot.priority == 2
    assert ev.verdict == "desirable" and "PTV_V107%" in ev.failed_lower_priority


def test_reirradiation_type_and_reporting_block(qd):
    case, new = build(prior=dict(OARS_50, rGTV=50.0), new={"rGTV": 60.0})
    ev = evaluate_plan(case, qd, new)
    assert ev.reirradiation_type == "Type 1"
    rt = ev.reporting["reirradiation_type"]
    assert rt["overlap_pct_of_ptv"] == pytest.approx(100.0) and rt["threshold_gy"] == 20.0
    rep = ev.reporting
    assert rep["prior_course"]["n_fractions"] == PRIOR_FX and rep["interval_months"] == 24.0
    assert rep["new_course"]["n_fractions"] == 30 and rep["new_course"]["rx_gy"] == 60.0
    assert rep["alpha_beta_gy"]["Brainstem"] == 2.5 and rep["alpha_beta_gy"]["PTV"] == 10.0
    assert "voxel-wise" in rep["summation"] and "none" in rep["recovery"]
    bs = rep["per_structure"]["Brainstem"]["cumulative_eqd2"]
    assert bs["D0.03cc_gy"] == pytest.approx(50.0)
    ptv = rep["per_structure"]["PTV"]
    assert ptv["new_physical"]["D98%_gy"] == pytest.approx(60.0)
    assert ptv["cumulative_eqd2"]["Dmean_gy"] == pytest.approx(eqd2_by_hand(50, 25, 10) + 60.0)
    case2, new2 = build(prior=OARS_50, new={"rGTV": 60.0})
    assert evaluate_plan(case2, qd, new2).reirradiation_type == "Type 2"


def test_eqd2_maps(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "Brainstem": 30.0})
    ev = evaluate_plan(case, qd, new)
    k, j, i = 4, 3, 3                                            # inside the brainstem
    assert ev.cumulative_eqd2_gy[k, j, i] == pytest.approx(50.0 + eqd2_by_hand(30.0, 30, 2.5), rel=1e-6)
    k, j, i = 4, 19, 19                                          # inside the rGTV (a/b 10)
    assert ev.new_eqd2_gy[k, j, i] == pytest.approx(60.0)
    assert ev.prior_eqd2_gy[k, j, i] == 0.0


def test_bad_dose_input(qd):
    case, new = build(prior=OARS_50, new={"rGTV": 60.0})
    with pytest.raises(ValueError, match="shape"):
        evaluate_plan(case, qd, new[:5])
    bad = new.copy()
    bad[0, 0, 0] = -1.0
    with pytest.raises(ValueError, match=">= 0"):
        evaluate_plan(case, qd, bad)
    with pytest.raises(ValueError, match="hypo"):
        evaluate_plan(case, qd, new, fractionation="hypo")


def test_line_verdict_rules():
    assert line_verdict(70.0, "max", 70.2, 81.0)[0] == "desirable"
    assert line_verdict(75.0, "max", 70.2, 81.0)[:2] == ("acceptable", pytest.approx(6.0))
    assert line_verdict(82.0, "max", 70.2, 81.0)[:2] == ("fail", pytest.approx(-1.0))
    assert line_verdict(130.0, "max", 125.0, None)[:2] == ("not met", pytest.approx(-5.0))
    assert line_verdict(60.0, "min", 63.5, None)[0] == "not met"
    assert line_verdict(64.0, "min", 63.5, None)[:2] == ("desirable", pytest.approx(0.5))
    assert line_verdict(7.0, "max", 5.0, 10.0)[0] == "acceptable"


def test_fine_mask_evaluates_a_structure_thinner_than_the_grid(qd):
    from reirrad_opt.evaluate import supersampled_grid

    case, new = build(prior=OARS_50, new={"rGTV": 60.0, "OpticNrv_L": 30.0})
    fine_grid = supersampled_grid(GRID, 4)
    fine = np.zeros(fine_grid.shape, bool)
    fine[4 * 4:4 * 6, 4 * 3:4 * 3 + 1, 4 * 27:4 * 29] = True        # 0.5 mm thin, inside the nerve's cell
    case.structures["OpticNrv_L"].mask[:] = False                   # no voxel centre inside
    ev = evaluate_plan(case, qd, new, fine_masks={"OpticNrv_L": (fine, fine_grid)})
    row = ev.row("OpticNrv_L_D0.03cc")
    assert row.verdict == "acceptable" and row.value_coarse is None and "fine mask only" in row.note
    assert row.value == pytest.approx(50.0 + eqd2_by_hand(30.0, 30, 2.5))
    assert row.volume_cc == pytest.approx(fine.sum() * fine_grid.voxel_volume_cc)
    assert ev.verdict != "fail"
    # without the fine mask the empty nerve is a missing priority-1 line
    assert evaluate_plan(case, qd, new).verdict == "incomplete"


def test_protocol_option_evaluation_fine_factor_sets_where_the_plan_is_read(qd):
    """evaluation_fine_factor = 1 reads every structure on its voxel centres (as matRad/pyRadPlan
    report). In a dose rising across the brainstem the default sub-voxel reading (3 per axis) sees the
    dose half a voxel beyond the outermost centre, higher than any centre; the centres' reading equals
    the coarse value."""
    case, _ = build(prior=OARS_50)
    x_mm = np.arange(GRID.shape[2]) * GRID.spacing_mm[2]
    new = np.broadcast_to(0.5 * x_mm, GRID.shape).copy()          # 0.5 Gy/mm along x
    fine = evaluate_plan(case, qd, new).row("Brainstem_D0.03cc")
    centres = evaluate_plan(case, load_protocol(fractionation="qd-2.0", options={"evaluation_fine_factor": 1}),
                            new).row("Brainstem_D0.03cc")
    assert (fine.fine_factor, centres.fine_factor) == (3, 1)
    assert centres.value == pytest.approx(centres.value_coarse)
    assert fine.value > centres.value + 0.1
