"""The plausibility checks, safe names, option types and protocol-name check on analytic inputs."""
from __future__ import annotations

import numpy as np
import pytest

from reirrad_opt.cli import main as cli_main
from reirrad_opt.plausibility import (ImplausibleInputError, OverrideRequiredError, PlausibilityBounds,
                                      ResourceLimitError, check_ct_hu, check_prior_dose, check_prior_fractionation,
                                      check_spacing_mm, check_voxel_count)
from reirrad_opt.protocol import PROTOCOL_DIR, ProtocolError, load_protocol
from reirrad_opt.protocol_names import ProtocolNameError, check_protocol_names
from reirrad_opt.safe_names import printable, structure_key


def slab_dose(rx_gy=60.0):
    """A 10 x 10 x 10 grid: 1.05 x Rx in the target cube [3:7]^3, 20 % of Rx elsewhere."""
    dose = np.full((10, 10, 10), 0.2 * rx_gy, dtype=np.float32)
    target = np.zeros(dose.shape, bool)
    target[3:7, 3:7, 3:7] = True
    dose[target] = 1.05 * rx_gy
    return dose, {"PTV": target}


def test_a_plausible_prior_dose_passes_without_overrides():
    dose, targets = slab_dose()
    assert check_prior_dose(dose, 60.0, targets, "where") == []


@pytest.mark.parametrize("scale,match", [(1000.0, r"reaches 63,000.0 Gy, above the plausible maximum of 150 Gy"),
                                         (1.5, r"reaches 94.5 Gy, 1.57 x the prescription of 60 Gy")])
def test_prior_maximum_above_the_bounds_is_an_error(scale, match):
    dose, targets = slab_dose()
    with pytest.raises(ImplausibleInputError, match=match):
        check_prior_dose(dose * scale, 60.0, targets, "where")


def test_prior_maximum_just_under_1_5_rx_passes():
    dose, targets = slab_dose()
    dose[targets["PTV"]] = 89.9
    assert check_prior_dose(dose, 60.0, targets, "where") == []


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_prior_dose_is_an_error(bad):
    dose, targets = slab_dose()
    dose[0, 0, 0] = bad
    with pytest.raises(ImplausibleInputError, match="1 non-finite voxel"):
        check_prior_dose(dose, 60.0, targets, "where")


def test_zero_and_nearly_zero_prior_need_the_flag_and_are_recorded():
    dose, targets = slab_dose()
    with pytest.raises(OverrideRequiredError, match="zero everywhere") as exc:
        check_prior_dose(np.zeros_like(dose), 60.0, targets, "f.dcm")
    assert exc.value.flag == "--accept-zero-prior"
    # a per-fraction dose exported as the plan dose of 30 fractions: 2.1 Gy for a 60 Gy course
    with pytest.raises(OverrideRequiredError, match=r"reaches only 2.1 Gy, below 10 % of the 60 Gy prescription"):
        check_prior_dose(dose / 30, 60.0, targets, "f.dcm")
    records = check_prior_dose(dose / 30, 60.0, targets, "f.dcm", accept={"zero_prior"})
    assert records == [{"flag": "--accept-zero-prior", "reason": records[0]["reason"]}]
    assert "f.dcm" in records[0]["reason"] and "2.1 Gy" in records[0]["reason"]
    # without a prescription the bound is 0.5 Gy
    assert check_prior_dose(dose / 60 * 0.6, None, targets, "f") == []
    with pytest.raises(OverrideRequiredError):
        check_prior_dose(dose / 60 * 0.4, None, targets, "f")


def test_a_prior_dose_beside_every_target_needs_the_flag():
    dose, targets = slab_dose()
    shifted = {"PTV": np.roll(targets["PTV"], 4, axis=2)}  # now in the 12 Gy region
    with pytest.raises(OverrideRequiredError, match=r"covers none of the contoured targets \(mean prior dose 'PTV' "
                                                    r"12 Gy; each below 50 % of the prior maximum 63 Gy\)"):
        check_prior_dose(dose, 60.0, shifted, "f")
    assert check_prior_dose(dose, 60.0, {**shifted, "GTV": targets["PTV"]}, "f") == []  # one target covered is enough
    assert check_prior_dose(dose, 60.0, {}, "f") == []  # no target: nothing to test


def test_prior_fractionation_bounds():
    check_prior_fractionation(1, 0.5, "w")
    check_prior_fractionation(100, 150.0, "w")
    for n, rx, match in [(0, 60.0, "0 fractions"), (101, 60.0, "101 fractions"), (100000, 60.0, "100000 fractions"),
                         (30, -70.0, "-70 Gy"), (30, 0.0, "0 Gy"), (30, 150.5, "150.5 Gy")]:
        with pytest.raises(ImplausibleInputError, match=match):
            check_prior_fractionation(n, rx, "w")


def test_ct_numbers_rule():
    hu = np.full((4, 10, 10), 40.0)
    hu[0] = -1000.0
    assert check_ct_hu(hu, "ct") == []
    hu[0, 0, :4] = -3024.0  # scanner padding: kept, stated
    assert check_ct_hu(hu, "ct") == ["CT: 4 voxel(s) below -1100 HU (minimum -3024 HU; scanner padding outside the field "
                                     "of view) kept as read"]
    hu[1, 0, :4] = 20000.0  # 4 of 400 voxels = 1 %: metal, kept
    assert "4 voxel(s) above 4000 HU" in check_ct_hu(hu, "ct")[0]
    hu[1, 0, 4] = 20000.0  # 5 of 400 > 1 %
    with pytest.raises(ImplausibleInputError, match=r"1.25 % of the CT voxels are above 4000 HU"):
        check_ct_hu(hu, "ct")
    for value, match in [(1e33, "to 1e\\+33 HU"), (np.inf, "not finite"), (-5000.0, "from -5000")]:
        bad = np.full((2, 3, 3), 40.0)
        bad[0, 0, 0] = value
        with pytest.raises(ImplausibleInputError, match=match):
            check_ct_hu(bad, "ct")
    with pytest.raises(ImplausibleInputError, match="every CT value is -1024 HU"):
        check_ct_hu(np.full((2, 3, 3), -1024.0), "ct")


def test_voxel_sizes_and_counts():
    check_spacing_mm([0.1, 50.0], "ok")
    for bad in (0.0, -1.0, 50.01, 1e200, np.nan):
        with pytest.raises(ImplausibleInputError, match="voxel size"):
            check_spacing_mm([1.0, bad], "PixelSpacing")
    check_voxel_count((400, 400, 400), "grid", 8)  # exactly 64 M
    with pytest.raises(ResourceLimitError, match=r"401 x 400 x 400 = 64,160,000 voxels \(about 0.5 GB of memory\) "
                                                 r"exceeds the limit of 64,000,000 voxels; use a coarser"):
        check_voxel_count((401, 400, 400), "grid", 8, fix="use a coarser --voxel-mm")
    with pytest.raises(ResourceLimitError, match="limit of 10 voxels"):
        check_voxel_count((2, 2, 3), "grid", 8, PlausibilityBounds(max_voxels=10))


def test_printable_names():
    assert printable("Brainstem") == "'Brainstem'"
    assert printable("Hypophyse_ü") == "'Hypophyse_ü'"
    assert printable("a\x00b") == "'a\\x00b'"
    assert printable("\x1b[31mred\nFAKE line") == "'\\x1b[31mred\\nFAKE line'"
    assert printable("C:\\x00") == "'C:\\\\x00'"  # a literal backslash is not confused with an escape
    assert printable("it's") == "'it\\'s'"
    for name in ("a\x00b", "\x1b[2J", "x\ny", "\u202eevil"):
        assert printable(name).isprintable()
    assert structure_key("Rect\x00um") == "Rect_um" and structure_key("Bladder") == "Bladder"
    assert structure_key(" \x00 ") == "_"


def test_protocol_path_that_is_a_folder(tmp_path):
    with pytest.raises(ProtocolError, match=f"{tmp_path}: is a folder; expected a protocol TOML file"):
        load_protocol(tmp_path)


def _protocol_with(tmp_path, old: str, new: str):
    text = (PROTOCOL_DIR / "npc_reirradiation_2021.toml").read_text()
    assert text.count(old) == 1
    path = tmp_path / "protocol.toml"
    path.write_text(text.replace(old, new))
    return load_protocol(path)


@pytest.fixture(scope="module")
def phantom():
    from phantoms.npc import make_npc_phantom

    return make_npc_phantom(5.0)


def test_misspelled_protocol_structure_is_flagged_with_the_near_miss(tmp_path, phantom):
    protocol = _protocol_with(tmp_path, 'structure = "Brainstem"\naliases = ["BRSTEM", "Brain Stem"]\n',
                              'structure = "Brianstem"\n')
    with pytest.raises(ProtocolNameError, match="no structure 'Brianstem' in the case; did you mean 'Brainstem'"):
        check_protocol_names(phantom, protocol)
    from reirrad_opt.planning import plan

    with pytest.raises(ProtocolNameError, match="'Brianstem'"):
        plan(phantom, protocol)  # before any dose is computed


def test_spelling_check_stays_quiet_for_the_right_names_and_for_uncontoured_structures(tmp_path, phantom):
    check_protocol_names(phantom, load_protocol())
    # OpticNrv_L not contoured: a near miss of OpticNrv_R, which the protocol names itself; not a misspelling
    from reirrad_opt.case import Case

    structures = {k: v for k, v in phantom.structures.items() if k != "OpticNrv_L"}
    case = Case(phantom.name, phantom.grid, phantom.ct_hu, structures, phantom.prior_dose_gy, phantom.prior,
                dict(phantom.source))
    check_protocol_names(case, load_protocol())
    # a misspelled goal whose aliases reach the case's structure is found by the evaluation: quiet
    protocol = _protocol_with(tmp_path, 'structure = "Brainstem"\n', 'structure = "Brianstem"\n')
    check_protocol_names(phantom, protocol)


@pytest.mark.parametrize("command,option,value", [
    ("import-dicom", "--voxel-mm", "0"), ("import-dicom", "--voxel-mm", "-2"), ("import-dicom", "--prior-fractions", "0"),
    ("import-dicom", "--max-voxels", "0"), ("import-dicom", "--relative-dose-gy", "0"),
    ("import-dicom", "--interval-months", "-1"), ("import-dicom", "--recurrence-radius-mm", "0"),
    ("import-openkbp", "--coarsen", "0"), ("import-openkbp", "--prior-prescription-gy", "-70"),
    ("import-openkbp", "--prior-fractions", "-3"),
])
def test_options_that_must_be_positive_are_refused_naming_the_option(tmp_path, capsys, command, option, value):
    with pytest.raises(SystemExit) as exc:
        cli_main([command, str(tmp_path), "--out", str(tmp_path / "out"), option, value])
    assert exc.value.code == 2
    assert f"argument {option}: invalid value '{value}'" in capsys.readouterr().err


def test_near_miss_rule():
    from reirrad_opt.protocol_names import edit_distance, near_miss

    assert edit_distance("brianstem", "brainstem") == 1 and edit_distance("acarotidl", "parotidl") == 2
    assert near_miss("Brianstem", ["Brainstem", "SpinalCord"]) == "Brainstem"
    assert near_miss("SpinalCrd", ["Spinal_Cord"]) == "Spinal_Cord"
    assert near_miss("Lobe_Temporl_R", ["Lobe_Temporal_R"]) == "Lobe_Temporal_R"
    assert near_miss("Lobe_Tmporl_R", ["Lobe_Temporal_R"]) == "Lobe_Temporal_R"  # 13 letters: two edits
    assert near_miss("A_Carotid_L", ["Parotid_L", "Parotid_R"]) is None  # two edits in 9 letters
    assert near_miss("Brainstem", ["BRAIN_STEM"]) is None  # the same name is not a misspelling


SMALL_PROTOCOL = """
[protocol]
name = "input_overrides_test"

[prescription]
eqd2_gy = 60.0
alpha_beta_gy = 10.0
default_fractionation = "qd-2.0"

[fractionations."qd-2.0"]
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


def test_plan_json_carries_the_input_overrides_of_the_case(tmp_path):
    from reirrad_opt.case import Case, PriorCourse
    from reirrad_opt.geometry import Grid, Structure
    from reirrad_opt.planning import plan

    h = 5.0
    grid = Grid((9, 17, 17), (h, h, h), (-20.0, -40.0, -40.0))
    z, y, x = np.meshgrid(*grid.axis_coordinates_mm(), indexing="ij")
    body = x ** 2 + y ** 2 <= 38 ** 2
    ptv = x ** 2 + (y + 8) ** 2 + z ** 2 <= 9 ** 2
    stem = (x ** 2 + (y - 12) ** 2 <= 6 ** 2) & (np.abs(z) <= 15)
    structures = {"External": Structure("External", body, "external"), "PTV": Structure("PTV", ptv, "target"),
                  "Brainstem": Structure("Brainstem", stem, "oar")}
    record = {"flag": "--accept-zero-prior", "reason": "f.dcm: the prior dose is zero everywhere"}
    case = Case("tiny", grid, np.where(body, 0.0, -1000.0).astype(np.float32), structures,
                np.zeros(grid.shape, np.float32), PriorCourse(30, 24.0), {"input_overrides": [record]})
    (tmp_path / "p.toml").write_text(SMALL_PROTOCOL)
    result = plan(case, load_protocol(tmp_path / "p.toml"), gantry_angles_deg=[0, 120, 240], bixel_mm=10.0)
    assert result.to_dict()["input_overrides"] == [record]
