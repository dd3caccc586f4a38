"""Implausible command-line values are refused before any work, with exit code 2, no traceback and a
message naming the option, the bound and its unit; the bounds' edges are still accepted.

Bounds (one constant each): beamlet size and spot spacing 1-20 mm and at most 36 beams (as a study
accepts), gantry angles 0 to below 360 degrees each given once, intervals 0-600 months (50 years),
the robust-scenario sizes 0-20 (mm, %), budget inputs (prior EQD2 <= 200 Gy, <= 100 fractions, <= 30 Gy
per fraction, alpha/beta <= 100 Gy), a synthetic recurrence radius <= 40 mm, an OpenKBP coarsening
that keeps every structure and a --structure-map that names a structure of the folder.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import require
from reirrad_opt.cli import build_parser, main
from reirrad_opt.commands import _args
from tps_adapters.openkbp import SHAPE
from tps_adapters.recurrence import MAX_RADIUS_MM, check_radius_mm


def _refused_by_argparse(capsys, argv) -> str:
    """argparse refuses ``argv``: exit code 2; returns stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _refused_by_command(capsys, argv) -> str:
    """The command refuses ``argv`` (its own error): exit code 2; returns stderr."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1
    return err


def _parsed(argv) -> argparse.Namespace:
    return build_parser().parse_args(argv)


PLAN = ["plan", "--phantom", "npc", "--resolution-mm", "5"]
COMPARE = ["compare", "--phantom", "npc", "--resolution-mm", "5"]


# ----------------------------------------------------------------------- 1. beamlet size and spot spacing

@pytest.mark.parametrize("argv, option", [
    ([*PLAN, "--bixel-mm", "1e6"], "--bixel-mm"),
    ([*PLAN, "--bixel-mm", "0.01"], "--bixel-mm"),
    ([*PLAN, "--modality", "proton", "--spot-spacing-mm", "1e6"], "--spot-spacing-mm"),
    ([*PLAN, "--modality", "proton", "--spot-spacing-mm", "0.01"], "--spot-spacing-mm"),
    ([*COMPARE, "--bixel-mm", "21"], "--bixel-mm"),
    ([*COMPARE, "--spot-spacing-mm", "0.5"], "--spot-spacing-mm"),
])
def test_spacing_outside_1_to_20_mm_is_refused(tmp_path, capsys, argv, option):
    err = _refused_by_argparse(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert f"argument {option}: invalid value" in err and "size in mm from 1 to 20" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["plan", "compare"])
def test_spacing_edges_are_accepted(command):
    args = _parsed([command, "--phantom", "npc", "--bixel-mm", "1", "--spot-spacing-mm", "20", "--out", "x"])
    assert (args.bixel_mm, args.spot_spacing_mm) == (1.0, 20.0)


def test_a_study_takes_the_spacing_range_of_the_command_line():
    from reirrad_opt.study.variants import check_value

    lo, hi = _args.SPACING_MM_RANGE
    for name in ("bixel_mm", "spot_spacing_mm"):
        assert check_value(name, lo, None) == lo and check_value(name, hi, None) == hi
        for bad in (lo - 0.01, hi + 0.01):
            with pytest.raises(ValueError, match=f"from {lo:g} to {hi:g}"):
                check_value(name, bad, None)


# ----------------------------------------------------------------------------------- 2. gantry angles

@pytest.mark.parametrize("argv, option", [
    ([*PLAN, "--gantry-angles", "1e6", "-400"], "--gantry-angles"),
    ([*PLAN, "--gantry-angles", "0", "-30"], "--gantry-angles"),
    ([*PLAN, "--gantry-angles", "360"], "--gantry-angles"),
    ([*PLAN, "--gantry-angles", "nan"], "--gantry-angles"),
    ([*COMPARE, "--photon-beams", "0", "400"], "--photon-beams"),
    ([*COMPARE, "--particle-fields", "-90"], "--particle-fields"),
])
def test_gantry_angles_outside_0_to_360_degrees_are_refused(tmp_path, capsys, argv, option):
    err = _refused_by_argparse(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert f"argument {option}: invalid value" in err and "degrees from 0 to below 360" in err


@pytest.mark.parametrize("argv, option, said", [
    ([*PLAN, "--gantry-angles", "0", "0", "0"], "--gantry-angles", "0 degrees 3 times"),
    ([*PLAN, "--gantry-angles", "40", "120.5", "40"], "--gantry-angles", "40 degrees 2 times"),
    ([*COMPARE, "--photon-beams", "0", "72", "72"], "--photon-beams", "72 degrees 2 times"),
    ([*COMPARE, "--particle-fields", "90", "90"], "--particle-fields", "90 degrees 2 times"),
])
def test_the_same_gantry_angle_twice_is_refused_naming_it(tmp_path, capsys, argv, option, said):
    err = _refused_by_argparse(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert f"argument {option}: the same gantry angle more than once ({said})" in err


def test_more_angles_than_beams_allowed_are_refused(tmp_path, capsys):
    angles = [str(k * 5) for k in range(37)]
    err = _refused_by_argparse(capsys, [*PLAN, "--gantry-angles", *angles, "--out", str(tmp_path / "out")])
    assert "argument --gantry-angles: 37 angles: expected at most 36 beams" in err


def test_gantry_angles_in_range_are_accepted():
    assert _parsed(["plan", "--phantom", "npc", "--gantry-angles", "0", "359.5", "--out", "x"]).gantry_angles \
        == [0.0, 359.5]
    args = _parsed(["compare", "--phantom", "npc", "--photon-beams", "0", "72", "--particle-fields", "90", "270",
                    "--out", "x"])
    assert (args.photon_beams, args.particle_fields) == ([0.0, 72.0], [90.0, 270.0])


# ------------------------------------------------------------------------------------ 3. number of beams

@pytest.mark.parametrize("argv, option", [
    ([*PLAN, "--beams", "1000"], "--beams"),
    ([*PLAN, "--beams", "37"], "--beams"),
    ([*COMPARE, "--photon-n-beams", "37"], "--photon-n-beams"),
    ([*COMPARE, "--photon-n-beams", "0"], "--photon-n-beams"),
])
def test_beams_outside_1_to_36_are_refused(tmp_path, capsys, argv, option):
    err = _refused_by_argparse(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert f"argument {option}: invalid value" in err and "whole number of beams from 1 to 36" in err


def test_36_beams_are_accepted():
    assert _parsed(["plan", "--phantom", "npc", "--beams", "36", "--out", "x"]).beams == 36
    assert _parsed(["compare", "--phantom", "npc", "--photon-n-beams", "36", "--out", "x"]).photon_n_beams == 36


# ----------------------------------------------------------------------------------- 4. interval (months)

@pytest.mark.parametrize("argv", [
    [*PLAN, "--interval-months", "1e9"],
    [*COMPARE, "--interval-months", "601"],
    ["phantom", "npc", "--interval-months", "1e9"],
    ["phantom", "npc", "--interval-months", "-1"],
    ["import-openkbp", "pt_0", "--interval-months", "1e9"],
])
def test_interval_above_600_months_is_refused(tmp_path, capsys, argv):
    err = _refused_by_argparse(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert "argument --interval-months: invalid value" in err and "months from 0 to 600 (50 years)" in err


def test_interval_of_600_months_is_accepted(tmp_path, capsys):
    assert _parsed(["plan", "--phantom", "npc", "--interval-months", "600", "--out", "x"]).interval_months == 600
    assert _parsed(["import-openkbp", "pt_0", "--interval-months", "600", "--out", "x"]).interval_months == 600
    assert main(["phantom", "npc", "--resolution-mm", "5", "--interval-months", "600", "--no-figure",
                 "--out", str(tmp_path / "case")]) == 0
    assert json.loads((tmp_path / "case" / "case.json").read_text())["prior_course"]["interval_months"] == 600


# ------------------------------------------------------------------------ 5. robust-scenario sizes, always

@pytest.mark.parametrize("argv, option", [
    ([*PLAN, "--setup-error-mm", "1e6"], "--setup-error-mm (mm)"),                       # photons, robust off
    ([*PLAN, "--no-robust-evaluation", "--modality", "proton", "--setup-error-mm", "21"], "--setup-error-mm (mm)"),
    ([*PLAN, "--range-error-pct", "1e6"], "--range-error-pct (% of the range)"),
    ([*PLAN, "--range-error-mm", "50"], "--range-error-mm (mm of water)"),
    ([*COMPARE, "--no-robust-evaluation", "--range-error-pct", "1e6"], "--range-error-pct (% of the range)"),
    ([*COMPARE, "--setup-error-mm", "1e6"], "--setup-error-mm (mm)"),
])
def test_robust_scenario_sizes_are_checked_even_without_robust_evaluation(tmp_path, capsys, argv, option):
    err = _refused_by_command(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert f"{option} must be a number from 0 to 20" in err
    assert "setup_mm" not in err and "range_pct" not in err and "range_mm" not in err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- 6. budget

BUDGET = ["budget", "--structure", "Brainstem"]


@pytest.mark.parametrize("extra, said", [
    (["--prior-eqd2-gy", "50", "--fractions", "30", "--interval-months", "-1"],
     "--interval-months must be from 0 to 600 months"),
    (["--prior-eqd2-gy", "50", "--fractions", "30", "--interval-months", "1e9"],
     "--interval-months must be from 0 to 600 months"),
    (["--prior-eqd2-gy", "1e6", "--fractions", "30"], "--prior-eqd2-gy must be from 0 to 200 Gy"),
    (["--prior-eqd2-gy", "50", "--fractions", "100000"], "--fractions must be from 1 to 100"),
    (["--prior-eqd2-gy", "50", "--fractions", "30", "--dose-per-fraction-gy", "1e6"],
     "--dose-per-fraction-gy must be > 0 and at most 30 Gy"),
    (["--prior-eqd2-gy", "50", "--fractions", "30", "--alpha-beta-gy", "1e9"],
     "--alpha-beta-gy must be > 0 and at most 100 Gy"),
])
def test_budget_refuses_implausible_values(capsys, extra, said):
    assert said in _refused_by_command(capsys, [*BUDGET, *extra])


def test_budget_accepts_the_edges(capsys):
    assert main([*BUDGET, "--prior-eqd2-gy", "200", "--fractions", "100", "--alpha-beta-gy", "100",
                 "--interval-months", "600", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_fractions"] == 100
    assert main([*BUDGET, "--prior-eqd2-gy", "0", "--fractions", "1", "--dose-per-fraction-gy", "24", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["dose_per_fraction_gy"] == 24


def table_recovery_protocol() -> str:
    """The shipped protocol with a time-dependent recovery table (none credited at 6 months, half at 12)."""
    from reirrad_opt.protocol import DEFAULT_PROTOCOL

    text = Path(DEFAULT_PROTOCOL).read_text(encoding="utf-8")
    assert text.count('\nkind = "none"\n') == 1
    return text.replace('\nkind = "none"\n', '\nkind = "table"\ntable = [[6, 0.0], [12, 0.5]]\n')


def test_budget_with_a_table_recovery_asks_for_the_interval(tmp_path, capsys):
    protocol = tmp_path / "table.toml"
    protocol.write_text(table_recovery_protocol())
    argv = [*BUDGET, "--prior-eqd2-gy", "50", "--fractions", "30", "--protocol", str(protocol)]
    err = _refused_by_command(capsys, argv)
    assert "--interval-months is needed" in err and "time-dependent table" in err and "None" not in err
    assert main([*argv, "--interval-months", "12", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recovered_fraction"] == 0.5


# ------------------------------------------------------- 7.-9. import-openkbp (small synthetic patient)

def _write_sparse(path: Path, flat, values=None) -> None:
    rows = [",data"] + [f"{int(i)},{'' if values is None else repr(float(values[k]))}" for k, i in enumerate(flat)]
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def openkbp_patient(tmp_path) -> Path:
    """A 0 HU block of 20^3 voxels; PTV70 an 8^3 cube at 70 Gy; Brainstem a single voxel."""
    d = tmp_path / "pt_1"
    d.mkdir()
    (d / "voxel_dimensions.csv").write_text("3.0\n3.0\n3.0\n")
    block = np.ravel_multi_index(np.meshgrid(*[np.arange(50, 70)] * 3, indexing="ij"), SHAPE).ravel()
    _write_sparse(d / "ct.csv", np.sort(block), np.full(block.size, 1024.0))
    cube = np.sort(np.ravel_multi_index(np.meshgrid(*[np.arange(56, 64)] * 3, indexing="ij"), SHAPE).ravel())
    _write_sparse(d / "dose.csv", cube, np.full(cube.size, 70.0))
    _write_sparse(d / "PTV70.csv", cube)
    _write_sparse(d / "Brainstem.csv", [np.ravel_multi_index((53, 60, 60), SHAPE)])
    return d


def test_structure_map_to_a_name_the_folder_lacks_is_refused(tmp_path, capsys, openkbp_patient):
    err = _refused_by_command(capsys, ["import-openkbp", str(openkbp_patient), "--interval-months", "24",
                                       "--structure-map", "Brainstem=Nope", "--out", str(tmp_path / "case")])
    assert "--structure-map Brainstem=Nope" in err and "no structure 'Nope'" in err
    assert "Brainstem, PTV70" in err   # the structures the folder has
    assert not (tmp_path / "case").exists()
    # an entry naming a structure of the folder (any case and separators) is used
    assert main(["import-openkbp", str(openkbp_patient), "--interval-months", "24",
                 "--structure-map", "BrainStemX=brain_stem", "--out", str(tmp_path / "case")]) == 0
    names = [s["name"] for s in json.loads((tmp_path / "case" / "case.json").read_text())["structures"]]
    assert "BrainStemX" in names and "Brainstem" not in names


def test_coarsening_that_empties_a_structure_is_refused(tmp_path, capsys, openkbp_patient):
    err = _refused_by_command(capsys, ["import-openkbp", str(openkbp_patient), "--interval-months", "24",
                                       "--coarsen", "2", "--out", str(tmp_path / "case")])
    assert "--coarsen 2" in err and "Brainstem (0.03 cc)" in err and "PTV70" not in err.split("(a structure")[0]
    assert "smaller --coarsen (1 keeps every structure)" in err
    assert not (tmp_path / "case").exists()


@pytest.mark.parametrize("radius", ["1e6", "40.5"])
def test_recurrence_radius_above_40_mm_is_refused_before_reading(tmp_path, capsys, radius):
    err = _refused_by_command(capsys, ["import-openkbp", str(tmp_path / "no_such_patient"), "--interval-months",
                                       "24", "--recurrence-near", "Brainstem", "--recurrence-radius-mm", radius,
                                       "--out", str(tmp_path / "case")])
    assert "--recurrence-radius-mm" in err and "at most 40 mm" in err


def test_recurrence_radius_of_40_mm_is_accepted():
    assert MAX_RADIUS_MM == 40.0
    check_radius_mm(40.0)
    check_radius_mm(12)
    with pytest.raises(ValueError, match="at most 40 mm"):
        check_radius_mm(0.0)


@pytest.mark.realdata
def test_openkbp_structure_map_and_coarsening_on_a_real_patient(realdata, tmp_path, capsys):
    folder = require(realdata / "openkbp_hn" / "pt_201")
    base = ["import-openkbp", str(folder), "--interval-months", "24", "--out", str(tmp_path / "case")]
    err = _refused_by_command(capsys, [*base, "--coarsen", "4", "--structure-map", "Brainstem=Nope"])
    assert "no structure 'Nope'" in err and "SpinalCord" in err and "PTV70" in err
    err = _refused_by_command(capsys, [*base, "--coarsen", "4"])
    for name in ("SpinalCord", "Esophagus", "Larynx", "PTV56", "PTV63"):
        assert name in err
    assert "--coarsen 4" in err and "smaller --coarsen (2 keeps every structure)" in err
    err = _refused_by_command(capsys, [*base, "--recurrence-near", "Brainstem", "--recurrence-radius-mm", "1e6"])
    assert "--recurrence-radius-mm" in err and "at most 40 mm" in err
    assert not (tmp_path / "case").exists()


# ------------------------------------------------------------ 10. the option, not the library keyword

@pytest.mark.parametrize("argv, said, keyword", [
    (["phantom", "npc", "--rgtv-gap-mm", "-4"], "--rgtv-gap-mm must be between 0.5 and 30 mm", "rgtv_gap"),
    (["phantom", "npc", "--rgtv-radius-mm", "100"], "--rgtv-radius-mm must be between 3 and 30 mm", "rgtv_radius"),
    (["phantom", "npc", "--resolution-mm", "1e6"], "--resolution-mm must be between 1.0 and 5.0 mm", "resolution_mm"),
    (["phantom", "npc", "--prior-level", "Brainstem=90"], "--prior-level 'Brainstem' must be in (0, 70", "prior_"),
    (["plan", "--phantom", "npc", "--resolution-mm", "1e6"], "--resolution-mm must be between 1.0 and 5.0 mm",
     "resolution_mm"),
    (["compare", "--phantom", "npc", "--resolution-mm", "0.5"], "--resolution-mm must be between 1.0 and 5.0 mm",
     "resolution_mm"),
])
def test_library_keywords_are_reported_as_options(tmp_path, capsys, argv, said, keyword):
    err = _refused_by_command(capsys, [*argv, "--out", str(tmp_path / "out")])
    assert said in err and keyword not in err


def test_distal_margin_must_be_positive(tmp_path, capsys):
    err = _refused_by_argparse(capsys, [*COMPARE, "--distal-margin-mm", "0", "--out", str(tmp_path / "out")])
    assert "argument --distal-margin-mm: invalid value '0': expected a number > 0" in err


# ---------------------------------------------------------------------- 11.-12. folders and files

def test_settings_that_is_a_folder_is_named_so(tmp_path, capsys):
    err = _refused_by_command(capsys, [*PLAN, "--settings", str(tmp_path), "--out", str(tmp_path / "out")])
    assert f"{tmp_path}: a folder, not a settings file" in err and "not found" not in err


@pytest.mark.parametrize("command", ["plan", "compare"])
def test_cache_dir_that_is_a_file_is_refused_before_the_work(tmp_path, capsys, command):
    somefile = tmp_path / "somefile"
    somefile.write_text("x")
    argv = [command, "--phantom", "npc", "--resolution-mm", "5", "--out", str(tmp_path / "out")]
    err = _refused_by_command(capsys, [*argv, "--cache-dir", str(somefile)])
    assert f"--cache-dir {somefile}: is a file; expected a folder" in err and "Errno" not in err
    err = _refused_by_command(capsys, [*argv, "--cache-dir", str(somefile / "cache")])
    assert f"lies inside {somefile}, which is a file; expected a folder" in err


@pytest.mark.parametrize("argv", [
    ["import-matrad", "x.mat", "--interval-months", "1e9", "--out", "o"],
    ["import-dicom", "d", "--interval-months", "700", "--out", "o"],
    ["tps-script", "raystation", "--interval-months", "-1", "--out", "o.py"],
])
def test_every_command_bounds_the_interval(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "--interval-months" in capsys.readouterr().err


def test_a_tps_script_has_at_most_36_beams(capsys):
    with pytest.raises(SystemExit) as info:
        main(["tps-script", "raystation", "--beams", "37", "--out", "o.py"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--beams" in err and "1 to 36" in err
