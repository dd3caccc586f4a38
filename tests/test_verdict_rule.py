"""The verdict rule on hand-made rows: every row verdict of line_verdict (with margins and the
shortfall in the line's unit), and the overall verdict decided by the priority-1 lines alone."""
from __future__ import annotations

import pytest

from reirrad_opt.evaluate import EvaluationRow, OVERALL_VERDICTS, ROW_VERDICTS, line_verdict, overall_verdict


def row(structure, metric, priority, verdict, value=None, desirable=70.2, acceptable=81.0, sense="max", unit="Gy",
        case_structure="same"):
    return EvaluationRow(structure=structure, goal_id=f"{structure}_{metric}", metric=metric, priority=priority,
                         cumulative=True, value=value, unit=unit, value_coarse=value, desirable=desirable,
                         acceptable=acceptable, verdict=verdict, margin=None, sense=sense,
                         case_structure=structure if case_structure == "same" else case_structure)


# ------------------------------------------------------------------------------------- row verdicts

def test_desirable_acceptable_fail_with_signed_margins_in_the_line_unit():
    assert line_verdict(70.0, "max", 70.2, 81.0, "Gy")[:2] == ("desirable", pytest.approx(0.2))
    verdict, margin, note = line_verdict(75.0, "max", 70.2, 81.0, "Gy")
    assert (verdict, margin) == ("acceptable", pytest.approx(6.0))          # to the acceptable limit
    assert "above the desirable limit by 4.80 Gy" in note
    verdict, margin, note = line_verdict(82.0, "max", 70.2, 81.0, "Gy")
    assert (verdict, margin) == ("fail", pytest.approx(-1.0)) and "above the acceptable limit by 1.00 Gy" in note
    # a minimum (coverage) line, in Gy(RBE)
    assert line_verdict(64.0, "min", 63.5, 60.0, "Gy(RBE)")[:2] == ("desirable", pytest.approx(0.5))
    verdict, margin, note = line_verdict(59.0, "min", 63.5, 60.0, "Gy(RBE)")
    assert (verdict, margin) == ("fail", pytest.approx(-1.0)) and "below the acceptable limit by 1.00 Gy(RBE)" in note
    # a volume line in %
    assert line_verdict(7.0, "max", 5.0, 10.0, "%")[:2] == ("acceptable", pytest.approx(3.0))


def test_no_acceptable_limit_and_desirable_missed_is_not_met_with_its_shortfall():
    # the NPC protocol's PTV D98% >= 95 % of Rx (61.56 Gy for 64.8 Gy) with no acceptable limit
    verdict, margin, note = line_verdict(44.1, "min", 61.56, None, "Gy")
    assert verdict == "not met" and margin == pytest.approx(44.1 - 61.56)
    assert "below the desirable limit by 17.46 Gy" in note and "no acceptable limit" in note
    verdict, margin, note = line_verdict(130.0, "max", 125.0, None, "Gy")   # carotid, 125 Gy, no acceptable limit
    assert verdict == "not met" and margin == pytest.approx(-5.0) and "above the desirable limit by 5.00 Gy" in note
    assert line_verdict(125.0, "max", 125.0, None, "Gy")[0] == "desirable"   # at the limit is inside


def test_acceptable_only_line_and_bad_arguments():
    assert line_verdict(80.0, "max", None, 81.0, "Gy")[:2] == ("acceptable", pytest.approx(1.0))
    assert line_verdict(82.0, "max", None, 81.0, "Gy")[0] == "fail"
    with pytest.raises(ValueError, match="at least one limit"):
        line_verdict(1.0, "max", None, None)
    with pytest.raises(ValueError, match="sense must be 'max' or 'min'"):
        line_verdict(1.0, "below", 2.0, None)


def test_the_word_lists():
    assert ROW_VERDICTS == ("desirable", "acceptable", "not met", "fail", "not evaluated", "absent")
    assert OVERALL_VERDICTS == ("desirable", "acceptable", "fail", "incomplete")
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        overall_verdict([row("Brainstem", "D0.03cc", 1, "maybe", 50.0)])


# ------------------------------------------------------------------------------------- overall

P1_DESIRABLE = [row("Brainstem", "D0.03cc", 1, "desirable", 50.0), row("rGTV", "D98%", 1, "desirable", 64.0,
                                                                          63.5, 63.5, "min")]


def test_priority1_alone_decides_desirable_and_a_priority2_fail_is_named_not_counted():
    ptv = row("PTV", "D98%", 2, "not met", 44.1, 49.4, None, "min")
    lobe = row("Lobe_Temporal_L", "D0.03cc", 2, "fail", 110.0, 91.0, 105.0)
    carotid = row("A_Carotid_L", "D0.03cc", 3, "acceptable", 120.0, 125.0, 130.0)
    out = overall_verdict(P1_DESIRABLE + [ptv, lobe, carotid])
    assert out.verdict == "desirable"
    assert out.failed_lower_priority == ["Lobe_Temporal_L_D0.03cc"]
    assert out.missed_lower_priority == ["PTV_D98%", "Lobe_Temporal_L_D0.03cc", "A_Carotid_L_D0.03cc"]
    assert out.detail == (
        "DESIRABLE: every priority-1 line meets its desirable limit; lower-priority goals not met: "
        "PTV D98% (44.10 Gy, desirable >= 49.40 Gy, no acceptable limit), "
        "Lobe_Temporal_L D0.03cc (110.00 Gy, desirable <= 91.00 Gy, acceptable <= 105.00 Gy) beyond the acceptable "
        "limit, A_Carotid_L D0.03cc (120.00 Gy, desirable <= 125.00 Gy, acceptable <= 130.00 Gy).")


def test_acceptable_when_a_priority1_line_is_only_acceptable():
    rows = [row("Brainstem", "D0.03cc", 1, "acceptable", 75.0), P1_DESIRABLE[1],
            row("PTV", "D98%", 2, "not met", 44.1, 49.4, None, "min")]
    out = overall_verdict(rows)
    assert out.verdict == "acceptable"
    assert out.detail.startswith("ACCEPTABLE: every priority-1 line within its acceptable limit (below the "
                                 "desirable limit: Brainstem D0.03cc (75.00 Gy, desirable <= 70.20 Gy, acceptable "
                                 "<= 81.00 Gy)); lower-priority goals not met: PTV D98% (44.10 Gy, desirable >= "
                                 "49.40 Gy, no acceptable limit)")


def test_priority1_fail_and_priority1_not_met_both_fail_the_plan():
    out = overall_verdict(P1_DESIRABLE + [row("SpinalCord", "D0.03cc", 1, "fail", 73.3, 58.5, 67.5)])
    assert out.verdict == "fail" and out.failed_priority1 == ["SpinalCord_D0.03cc"]
    assert out.detail.startswith("FAIL: priority-1 line(s) beyond the acceptable limit: SpinalCord D0.03cc "
                                 "(73.30 Gy, desirable <= 58.50 Gy, acceptable <= 67.50 Gy)")
    # a priority-1 line with no acceptable limit that misses its desirable level
    out = overall_verdict(P1_DESIRABLE + [row("OpticNrv_L", "D0.03cc", 1, "not met", 75.0, 70.2, None)])
    assert out.verdict == "fail" and out.not_met_priority1 == ["OpticNrv_L_D0.03cc"] and not out.failed_priority1
    assert "below their desirable level with no acceptable limit: OpticNrv_L D0.03cc (75.00 Gy" in out.detail


def test_priority1_not_evaluated_is_incomplete_naming_every_organ_not_contoured():
    rows = P1_DESIRABLE + [row(n, "D0.03cc", 1, "not evaluated", case_structure=None)
                           for n in ("OpticChiasm", "OpticNrv_L")] + [
        row("SpinalCord", "D0.03cc", 1, "not evaluated", case_structure="Cord"),      # in the case, empty
        row("A_Carotid_R", "D0.03cc", 3, "not evaluated", case_structure=None)]
    out = overall_verdict(rows)
    assert out.verdict == "incomplete"
    assert out.not_contoured == ["OpticChiasm", "OpticNrv_L", "SpinalCord"]
    assert out.detail.startswith("INCOMPLETE: OpticChiasm, OpticNrv_L not contoured; Cord empty in the case "
                                 "(priority-1 line(s) OpticChiasm_D0.03cc, OpticNrv_L_D0.03cc, SpinalCord_D0.03cc "
                                 "not evaluated)")
    assert "lower-priority lines not evaluated (structure missing or empty): A_Carotid_R_D0.03cc" in out.detail
    assert out.not_evaluated == ["OpticChiasm_D0.03cc", "OpticNrv_L_D0.03cc", "SpinalCord_D0.03cc",
                                 "A_Carotid_R_D0.03cc"]


def test_a_known_breach_wins_over_incomplete_and_says_both():
    rows = [row("Brainstem", "D0.03cc", 1, "fail", 85.0), row("OpticChiasm", "D0.03cc", 1, "not evaluated",
                                                                case_structure=None)]
    out = overall_verdict(rows)
    assert out.verdict == "fail" and out.missing_priority1 == ["OpticChiasm_D0.03cc"]
    assert "; incomplete: OpticChiasm not contoured" in out.detail


def test_absent_lines_do_not_count_but_are_named():
    rows = P1_DESIRABLE + [row(n, "D0.03cc", 1, "absent", case_structure=None) for n in ("OpticChiasm", "OpticNrv_L")]
    out = overall_verdict(rows)
    assert out.verdict == "desirable" and out.absent == ["OpticChiasm_D0.03cc", "OpticNrv_L_D0.03cc"]
    assert out.detail == ("DESIRABLE: every priority-1 line meets its desirable limit; declared absent: OpticChiasm, "
                          "OpticNrv_L.")
    # nothing of priority 1 left to judge: never a pass
    out = overall_verdict([row("OpticChiasm", "D0.03cc", 1, "absent"), row("PTV", "D98%", 2, "desirable", 62.0)])
    assert out.verdict == "incomplete" and "no priority-1 line was evaluated" in out.detail
