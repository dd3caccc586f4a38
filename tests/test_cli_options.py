"""Command-line options: positive values refused with the option named, phantom-only options refused
with --case, one phantom resolution for 'phantom' and 'plan --phantom', the optic-nerve rules as
documented, help text on every option without reStructuredText markup."""
from __future__ import annotations

import argparse
import json

import pytest

from reirrad_opt.cli import build_parser, main
from reirrad_opt.commands.phantom import PHANTOM_RESOLUTION_MM


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("argv, option", [
    (["plan", "--phantom", "npc", "--beams", "0"], "--beams"),
    (["plan", "--phantom", "npc", "--bixel-mm", "0"], "--bixel-mm"),
    (["plan", "--phantom", "npc", "--spot-spacing-mm", "-5"], "--spot-spacing-mm"),
    (["plan", "--phantom", "npc", "--resolution-mm", "0"], "--resolution-mm"),
    (["plan", "--phantom", "npc", "--interval-months", "-1"], "--interval-months"),
    (["compare", "--phantom", "npc", "--photon-n-beams", "0"], "--photon-n-beams"),
    (["compare", "--phantom", "npc", "--bixel-mm", "0"], "--bixel-mm"),
    (["compare", "--phantom", "npc", "--min-spot-weight", "2"], "--min-spot-weight"),
    (["phantom", "npc", "--resolution-mm", "0"], "--resolution-mm"),
])
def test_values_that_must_be_positive_are_refused_naming_the_option(tmp_path, capsys, argv, option):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: invalid value" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, value", [("--resolution-mm", "3"), ("--interval-months", "12")])
@pytest.mark.parametrize("command", ["plan", "compare"])
def test_phantom_only_options_are_refused_with_a_case(tmp_path, capsys, command, option, value):
    case = tmp_path / "case"
    case.mkdir()
    assert main([command, "--case", str(case), option, value, "--out", str(tmp_path / "out")]) == 2
    assert f"{option} applies to --phantom only" in capsys.readouterr().err


def test_phantom_and_plan_phantom_use_the_same_resolution(tmp_path, monkeypatch):
    import phantoms.npc

    seen: list[float] = []

    def fake(resolution_mm, **kwargs):
        seen.append(resolution_mm)
        raise ValueError("stop")

    monkeypatch.setattr(phantoms.npc, "make_npc_phantom", fake)
    assert main(["phantom", "npc", "--out", str(tmp_path / "a")]) == 2
    assert main(["plan", "--phantom", "npc", "--out", str(tmp_path / "b")]) == 2
    assert main(["compare", "--phantom", "npc", "--out", str(tmp_path / "c")]) == 2
    assert seen == [PHANTOM_RESOLUTION_MM] * 3


@pytest.mark.parametrize("rule", ["unilateral-L", "unilateral-R"])
def test_one_sided_optic_nerve_rule_reaches_the_planner(tmp_path, monkeypatch, rule):
    got = {}

    def fake_plan(case, protocol, **kwargs):
        got.update(kwargs)
        raise ValueError("stop")

    monkeypatch.setattr("reirrad_opt.planning.plan", fake_plan)
    assert main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--optic-nerve-rule", rule,
                 "--out", str(tmp_path / "p")]) == 2
    assert got["optic_nerve_rule"] == rule


@pytest.mark.parametrize("rule, relaxed, kept", [("unilateral-L", "OpticNrv_L", "OpticNrv_R"),
                                                 ("unilateral-R", "OpticNrv_R", "OpticNrv_L")])
def test_one_sided_rule_relaxes_only_that_nerve(capsys, rule, relaxed, kept):
    def budget(structure):
        assert main(["budget", "--structure", structure, "--prior-eqd2-gy", "40", "--fractions", "30",
                     "--optic-nerve-rule", rule, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    assert budget(relaxed)["limit_acceptable_eqd2_gy"] is None   # priority 2, no acceptable limit
    assert budget(kept)["limit_acceptable_eqd2_gy"] == 81.0       # still priority 1: 150 % of 54 Gy


def test_every_option_has_help_and_no_markup():
    for name, sub in _subparsers().items():
        text = sub.format_help()
        for mark in ("``", ":func:", ":class:", "::\n"):
            assert mark not in text, f"{name} --help shows {mark!r}"
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"reirrad-opt {name} {'/'.join(action.option_strings) or action.dest}: no help"
