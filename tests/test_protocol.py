"""The protocol schema: the shipped NPC consensus protocol line by line against the guideline's
Table 2, the optic-nerve switch, fractionations, and validation errors that name file, key and line."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from reirrad_opt.protocol import (
    DEFAULT_PROTOCOL, Limit, ProtocolError, Slip, load_protocol, parse_metric, shipped_protocols,
)

# The guideline's Table 2 (consensus reference): structure -> (priority, tolerance, desirable, acceptable).
TABLE2_OARS = {
    "Brainstem": (1, 54.0, 70.2, 81.0),
    "SpinalCord": (1, 45.0, 58.5, 67.5),
    "OpticChiasm": (1, 54.0, 70.2, 81.0),
    "OpticNrv_L": (1, 54.0, 70.2, 81.0),
    "OpticNrv_R": (1, 54.0, 70.2, 81.0),
    "Lobe_Temporal_L": (2, 70.0, 91.0, 105.0),
    "Lobe_Temporal_R": (2, 70.0, 91.0, 105.0),
}


# ----------------------------------------------------------------------------- shipped protocol

def test_default_is_the_shipped_npc_protocol():
    p = load_protocol()
    assert p.path == DEFAULT_PROTOCOL and p.name == "npc_reirradiation_2021"
    assert "npc_reirradiation_2021" in shipped_protocols()
    assert load_protocol("npc_reirradiation_2021").name == p.name


def test_every_table2_oar_line_is_encoded():
    p = load_protocol()
    for structure, (prio, tol, des, acc) in TABLE2_OARS.items():
        [g] = [g for g in p.goals if g.structure == structure]
        assert g.priority == prio, structure
        assert g.metric == "D0.03cc" and g.sense == "max" and g.cumulative
        # desirable = 130 %, acceptable = 150 % of the single-course tolerance
        assert g.desirable == Limit(des, "Gy") and g.acceptable == Limit(acc, "Gy")
        assert des == pytest.approx(1.3 * tol) and acc == pytest.approx(1.5 * tol)
        assert g.tolerance_gy == tol
        assert g.alpha_beta_gy == 2.5          # neural structures, as for the lifetime-BED limits
        assert "Table 2" in g.provenance and "%" in g.provenance
    for side in ("L", "R"):
        [g] = [g for g in p.goals if g.structure == f"A_Carotid_{side}"]
        assert g.priority == 3 and g.cumulative and g.sense == "max"
        assert g.desirable == Limit(125.0, "Gy") and g.acceptable is None


def test_target_goals():
    p = load_protocol()
    rgtv = p.goal("rGTV_D98%")
    assert rgtv.priority == 1 and rgtv.sense == "min" and not rgtv.cumulative
    # the guideline's single rGTV level is both limits: missing it fails priority 1
    assert rgtv.desirable == Limit(98.0, "%Rx") and rgtv.acceptable == Limit(98.0, "%Rx")
    ptv = p.goal("PTV_D98%")
    assert ptv.priority == 2 and ptv.desirable == Limit(95.0, "%Rx")
    hot = p.goal("PTV_V107%")
    assert hot.priority == 2 and hot.sense == "max" and not hot.cumulative
    assert hot.desirable == Limit(5.0, "%") and hot.acceptable == Limit(10.0, "%")
    # %Rx limits convert with the chosen fractionation's physical total.
    assert rgtv.limit_gy("desirable", p.rx_gy) == pytest.approx(0.98 * 64.8)
    assert rgtv.limit_gy("acceptable", p.rx_gy) == pytest.approx(0.98 * p.rx_gy)
    with pytest.raises(ValueError, match="volume"):
        hot.limit_gy("desirable", p.rx_gy)


def test_priorities_and_goals_at():
    p = load_protocol()
    assert p.priorities() == [1, 2, 3]
    assert {g.structure for g in p.goals_at(1)} == {"Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L",
                                                     "OpticNrv_R", "rGTV"}
    assert {g.structure for g in p.goals_at(3)} == {"A_Carotid_L", "A_Carotid_R"}
    assert [g.id for g in p.goals_for("BRSTEM")] == ["Brainstem_D0.03cc"]


def test_prescription_and_fractionations():
    p = load_protocol()
    assert p.prescription.eqd2_gy == 60.0 and p.prescription.alpha_beta_gy == 10.0
    bid, qd = p.fractionations["bid-1.2"], p.fractionations["qd-2.0"]
    assert p.fractionation == bid                     # hyperfractionation preferred (71 %)
    assert bid.total_gy == pytest.approx(64.8) and bid.n_fractions == 54 and bid.fractions_per_day == 2
    assert bid.eqd2_gy(10.0) == pytest.approx(60.48)
    assert qd.total_gy == pytest.approx(60.0) and qd.eqd2_gy(10.0) == pytest.approx(60.0)
    assert p.rx_gy == pytest.approx(64.8)
    q = p.with_fractionation("qd-2.0")
    assert q.rx_gy == pytest.approx(60.0) and p.rx_gy == pytest.approx(64.8)   # original untouched
    assert load_protocol(fractionation="qd-2.0").rx_gy == pytest.approx(60.0)
    assert "twice daily" in bid.schedule and "6 h" in bid.schedule
    with pytest.raises(ValueError, match="bid-1.2"):
        p.with_fractionation("hypo-3")


def test_slips_and_options():
    p = load_protocol()
    assert p.slips[1] == Slip(1.0, "%") and p.slips[1].to_gy(64.8) == pytest.approx(0.648)
    assert Slip(0.5, "Gy").to_gy(64.8) == 0.5
    assert p.options["optic_nerve_rule"] == "bilateral"
    assert p.options["limit_choice"] == "desirable_then_acceptable"
    assert "d003cc_as_voxel_max" not in p.options   # retired: D0.03cc limits are always voxel maxima
    assert p.recovery.kind == "none"


def test_unilateral_optic_nerve_rule():
    u = load_protocol(optic_nerve_rule="unilateral")
    for side in ("L", "R"):
        g = u.goal(f"OpticNrv_{side}_D0.03cc")
        assert g.priority == 2 and g.desirable == Limit(70.2, "Gy") and g.acceptable is None
    assert u.goal("OpticChiasm_D0.03cc").priority == 1     # the chiasm stays priority 1
    one = load_protocol(optic_nerve_rule="unilateral-L")
    assert one.goal("OpticNrv_L_D0.03cc").priority == 2
    assert one.goal("OpticNrv_R_D0.03cc").priority == 1 and one.goal("OpticNrv_R_D0.03cc").acceptable == Limit(81, "Gy")
    with pytest.raises(ProtocolError, match="optic_nerve_rule"):
        load_protocol(optic_nerve_rule="none")


def test_parse_metric_grammar():
    assert parse_metric("D0.03cc").name == "D0.03cc"
    assert parse_metric("d 0.03 cc").name == "D0.03cc"
    assert parse_metric("D98%").kind == "D_pct" and parse_metric("D98%").x == 98.0
    assert parse_metric("dmax").name == "Dmax" and parse_metric("Dmean").kind == "Dmean"
    assert parse_metric("V20Gy").threshold_gy(None) == 20.0
    assert parse_metric("V107%").threshold_gy(64.8) == pytest.approx(69.336)
    assert parse_metric("near-min").kind == "near-min"
    for bad in ("D150%", "Dfoo", "V20", "D0cc", "Dmaxx"):
        with pytest.raises(ValueError):
            parse_metric(bad)


# ----------------------------------------------------------------------------- validation

MINIMAL = """\
[protocol]
name = "mini"

[prescription]
eqd2_gy = 60.0
alpha_beta_gy = 10.0
default_fractionation = "qd"

[fractionations.qd]
dose_per_fraction_gy = 2.0
n_fractions = 30

[slips]
1 = "1 %"

[[goal]]
structure = "Brainstem"
priority = 1
metric = "D0.03cc"
sense = "max"
desirable = "70.2 Gy"
acceptable = "81 Gy"
cumulative = true
alpha_beta_gy = 2.5

[[goal]]
structure = "PTV"
priority = 2
metric = "D98%"
sense = "min"
desirable = "95 %Rx"
cumulative = false
alpha_beta_gy = 10.0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "proto.toml"
    path.write_text(text)
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    return lines[occurrence - 1]


def test_minimal_protocol_loads(tmp_path):
    p = load_protocol(write(tmp_path, MINIMAL))
    assert [g.id for g in p.goals] == ["Brainstem_D0.03cc", "PTV_D98%"]
    assert p.goal("PTV_D98%").acceptable is None
    assert p.rx_gy == 60.0


def expect_error(tmp_path, text, *patterns):
    path = write(tmp_path, text)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for pat in patterns:
        assert re.search(pat, msg), f"{pat!r} not in {msg!r}"
    return msg


def test_unknown_metric(tmp_path):
    text = MINIMAL.replace('metric = "D0.03cc"', 'metric = "D0.03ccm"')
    expect_error(tmp_path, text, r"goal\[0\]", "metric", "unknown metric 'D0.03ccm'",
                 rf"line {line_of(text, 'D0.03ccm')}")


def test_limit_without_unit(tmp_path):
    text = MINIMAL.replace('desirable = "70.2 Gy"', "desirable = 70.2")
    expect_error(tmp_path, text, "desirable", "no unit", rf"line {line_of(text, 'desirable = 70.2')}")
    text = MINIMAL.replace('desirable = "70.2 Gy"', 'desirable = "70.2"')
    expect_error(tmp_path, text, "desirable", "no unit")
    text = MINIMAL.replace('desirable = "70.2 Gy"', 'desirable = "70.2 Gray"')
    expect_error(tmp_path, text, "desirable", "cannot read limit")


def test_acceptable_tighter_than_desirable(tmp_path):
    text = MINIMAL.replace('acceptable = "81 Gy"', 'acceptable = "65 Gy"')
    expect_error(tmp_path, text, r"goal\[0\]", "acceptable", "tighter than desirable",
                 rf"line {line_of(text, 'acceptable = ')}")
    # For a coverage goal ('min') acceptable must not be higher than desirable.
    text = MINIMAL.replace('desirable = "95 %Rx"', 'desirable = "95 %Rx"\nacceptable = "97 %Rx"')
    expect_error(tmp_path, text, r"goal\[1\]", "tighter")


def test_priority_missing(tmp_path):
    text = MINIMAL.replace("priority = 2\n", "")
    expect_error(tmp_path, text, r"goal\[1\]", "'priority' is missing", rf"line {line_of(text, '[[goal]]', 2)}")


def test_bad_priority_and_sense(tmp_path):
    expect_error(tmp_path, MINIMAL.replace("priority = 2", "priority = 0"), "priority", ">= 1")
    expect_error(tmp_path, MINIMAL.replace('sense = "max"', 'sense = "upper"'), "sense", "'max'")


def test_unknown_key_is_a_typo(tmp_path):
    text = MINIMAL.replace('sense = "max"', 'sense = "max"\ndesireable = "70 Gy"')
    expect_error(tmp_path, text, "desireable", rf"line {line_of(text, 'desireable')}")
    expect_error(tmp_path, MINIMAL + "\n[extras]\nx = 1\n", "unknown table", "extras")


def test_units_must_fit_the_metric(tmp_path):
    expect_error(tmp_path, MINIMAL.replace('desirable = "95 %Rx"', 'desirable = "95 %"'),
                 "D98% is a dose", "dose unit")
    text = MINIMAL.replace('metric = "D98%"', 'metric = "V107%"').replace('desirable = "95 %Rx"', 'desirable = "5 Gy"')
    expect_error(tmp_path, text, "V107% is a volume")
    # A cumulative limit cannot be in % of Rx.
    text = MINIMAL.replace('desirable = "70.2 Gy"', 'desirable = "100 %Rx"').replace('acceptable = "81 Gy"', 'acceptable = "120 %Rx"')
    expect_error(tmp_path, text, "cumulative-EQD2 limit must be in Gy")


def test_alias_instead_of_tg263_name(tmp_path):
    expect_error(tmp_path, MINIMAL.replace('structure = "Brainstem"', 'structure = "BRSTEM"'),
                 "alias", "'Brainstem'")


def test_duplicate_goal_id(tmp_path):
    text = MINIMAL.replace('structure = "PTV"', 'id = "Brainstem_D0.03cc"\nstructure = "PTV"')
    expect_error(tmp_path, text, "duplicate id")


def test_missing_slip_for_an_earlier_priority(tmp_path):
    expect_error(tmp_path, MINIMAL.replace('1 = "1 %"', ""), r"\[slips\] 1", "needs a slip")
    expect_error(tmp_path, MINIMAL.replace('1 = "1 %"', '1 = "1 mm"'), r"\[slips\] 1")


def test_fractionation_and_prescription_checks(tmp_path):
    expect_error(tmp_path, MINIMAL.replace('default_fractionation = "qd"', 'default_fractionation = "bid"'),
                 "default_fractionation", "'bid'")
    # 30 x 2.5 Gy = 75 Gy has EQD2 78.1 Gy at a/b 10: not the prescription's 60 Gy.
    expect_error(tmp_path, MINIMAL.replace("dose_per_fraction_gy = 2.0", "dose_per_fraction_gy = 2.5"),
                 r"fractionations\.qd", "EQD2 78.12 Gy", rf"line {line_of(MINIMAL, '[fractionations.qd]')}")
    expect_error(tmp_path, MINIMAL.replace("n_fractions = 30", "n_fractions = 30.5"), "n_fractions", "whole number")
    text = MINIMAL.replace("n_fractions = 30", "n_fractions = 30\nfractions_per_day = 2")
    expect_error(tmp_path, text, "min_interval_h")


def test_bad_toml_and_missing_sections(tmp_path):
    expect_error(tmp_path, MINIMAL.replace('name = "mini"', 'name = "mini'), "not valid TOML", "line")
    expect_error(tmp_path, MINIMAL.replace("[slips]\n1 = \"1 %\"\n", ""), r"\[slips\]", "missing")
    with pytest.raises(FileNotFoundError):
        load_protocol(tmp_path / "nope.toml")


def test_options_and_recovery_validation(tmp_path):
    expect_error(tmp_path, MINIMAL + '\n[options]\nlimit_choice = "whatever"\n', "limit_choice", "desirable_then_acceptable")
    expect_error(tmp_path, MINIMAL + '\n[options]\nfoo = 1\n', "unknown option")
    # the retired d003cc_as_voxel_max: false was silently ignored before; now refused, true only warned
    expect_error(tmp_path, MINIMAL + '\n[options]\nd003cc_as_voxel_max = false\n', "d003cc_as_voxel_max",
                 "voxel maxima")
    (tmp_path / "retired.toml").write_text(MINIMAL + '\n[options]\nd003cc_as_voxel_max = true\n')
    with pytest.warns(FutureWarning, match="no longer an option"):
        assert "d003cc_as_voxel_max" not in load_protocol(tmp_path / "retired.toml").options
    expect_error(tmp_path, MINIMAL + '\n[options]\nengine = "simplex"\n', "engine", "first-order")
    (tmp_path / "engine.toml").write_text(MINIMAL + '\n[options]\nengine = "lp"\n')
    assert load_protocol(tmp_path / "engine.toml").options["engine"] == "lp"
    expect_error(tmp_path, MINIMAL + '\n[options]\ntarget_homogeneity_weight = -1\n', "target_homogeneity_weight",
                 ">= 0")
    expect_error(tmp_path, MINIMAL + '\n[options]\ntarget_floor_pct_rx = 120\n', "target_floor_pct_rx", "0 to 100")
    (tmp_path / "window.toml").write_text(MINIMAL + '\n[options]\ntarget_homogeneity_weight = 100\n'
                                          'target_floor_pct_rx = 95\n')
    options = load_protocol(tmp_path / "window.toml").options
    assert (options["target_homogeneity_weight"], options["target_floor_pct_rx"]) == (100, 95)
    defaults = load_protocol(write(tmp_path, MINIMAL)).options
    assert (defaults["target_homogeneity_weight"], defaults["target_floor_pct_rx"]) == (1.0, 0.0)
    for bad in ("0", "2.5", "true", "7"):
        expect_error(tmp_path, MINIMAL + f'\n[options]\nevaluation_fine_factor = {bad}\n', "evaluation_fine_factor",
                     r"from 1 \(voxel centres\) to 6")
    (tmp_path / "centres.toml").write_text(MINIMAL + '\n[options]\nevaluation_fine_factor = 1\n')
    assert load_protocol(tmp_path / "centres.toml").options["evaluation_fine_factor"] == 1
    assert defaults["evaluation_fine_factor"] == 3
    expect_error(tmp_path, MINIMAL + '\n[options]\noptic_nerve_rule = "both"\n', "optic_nerve_rule", "bilateral")
    with pytest.raises(ProtocolError, match="given by the caller"):
        load_protocol(write(tmp_path, MINIMAL), optic_nerve_rule="left")
    expect_error(tmp_path, MINIMAL + '\n[recovery]\nkind = "constant"\nfraction = 1.5\n', r"\[recovery\]", r"\[0, 1\]")
    p = load_protocol(write(tmp_path, MINIMAL + '\n[recovery]\nkind = "table"\ntable = [[6, 0.0], [12, 0.5]]\n'
                                                 '[recovery.per_structure.SpinalCord]\nkind = "constant"\nfraction = 0.5\n'))
    assert p.recovery.fraction_for("Brainstem", 9) == pytest.approx(0.25)
    assert p.recovery.fraction_for("SpinalCord", 3) == 0.5


def test_variant_can_disable_a_goal(tmp_path):
    text = MINIMAL + '\n[goal.variants.optic_nerve_rule.unilateral]\nenabled = false\n'
    assert len(load_protocol(write(tmp_path, text)).goals) == 2
    assert [g.id for g in load_protocol(write(tmp_path, text), optic_nerve_rule="unilateral").goals] == ["Brainstem_D0.03cc"]
