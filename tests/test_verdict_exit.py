"""Exit codes from overall verdicts (plan and compare) and --absent on `reirrad-opt compare`: refused
before any planning when the name is unknown or the organ is contoured."""
from __future__ import annotations

import pytest

from reirrad_opt.cli import EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_OK, EXIT_PRIORITY1_FAIL, build_parser, main
from reirrad_opt.commands.plan import absent_from_args, exit_code


@pytest.mark.parametrize("verdicts, code", [
    (["desirable"], EXIT_OK), (["acceptable"], EXIT_OK), (["fail"], EXIT_PRIORITY1_FAIL),
    (["incomplete"], EXIT_INCOMPLETE), (["desirable", "incomplete"], EXIT_INCOMPLETE),
    (["incomplete", "fail"], EXIT_PRIORITY1_FAIL),             # a breach in either plan wins
    (["acceptable", "desirable"], EXIT_OK),
])
def test_exit_code_of_one_or_two_plans(verdicts, code):
    assert exit_code(verdicts) == code
    assert (EXIT_OK, EXIT_BAD_INPUT, EXIT_PRIORITY1_FAIL, EXIT_INCOMPLETE) == (0, 2, 3, 4)


def test_absent_option_on_plan_and_compare():
    for command in ("plan", "compare"):
        args = build_parser().parse_args([command, "--phantom", "npc", "--absent", "OpticChiasm", "OpticNrv_L",
                                          "--out", "x"])
        assert absent_from_args(args) == {"OpticChiasm": "--absent", "OpticNrv_L": "--absent"}
        args = build_parser().parse_args([command, "--phantom", "npc", "--out", "x"])
        assert absent_from_args(args) is None


def test_compare_refuses_a_contoured_or_unknown_absent_organ_before_planning(tmp_path, capsys):
    code = main(["compare", "--phantom", "npc", "--resolution-mm", "5", "--absent", "Brainstem", "--quiet",
                 "--out", str(tmp_path / "cmp")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "Brainstem is declared absent (--absent) but case" in err
    assert not (tmp_path / "cmp").exists()
    code = main(["compare", "--phantom", "npc", "--resolution-mm", "5", "--absent", "Optic_Nerve_L", "--quiet",
                 "--out", str(tmp_path / "cmp")])
    assert code == EXIT_BAD_INPUT and "did you mean OpticNrv_L?" in capsys.readouterr().err


def test_comparison_sentences_never_call_an_incomplete_plan_the_one_that_meets_priority_1():
    from reirrad_opt.compare.narrative import comparison_summary
    from reirrad_opt.compare.summary import Criterion

    crit = [Criterion("CI", "conformity index", "higher", 0.02, "")]
    metrics = {"photon": {"CI": 0.70}, "proton": {"CI": 0.80}}
    _, text = comparison_summary({"photon": "fail", "proton": "incomplete"}, metrics, crit, {})
    joined = " ".join(text)
    assert "Only the" not in joined
    assert "The photon plan fails at least one priority-1 limit and cannot be used as is." in joined
    assert "The proton plan is incomplete: a priority-1 organ is not contoured" in joined
    _, text = comparison_summary({"photon": "incomplete", "proton": "incomplete"}, metrics, crit, {})
    assert "The photon and proton plans are incomplete" in " ".join(text)
    _, text = comparison_summary({"photon": "fail", "proton": "acceptable"}, metrics, crit, {})
    assert "Only the proton plan meets every priority-1 limit" in " ".join(text)
