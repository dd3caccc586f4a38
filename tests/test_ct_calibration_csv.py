"""A user scanner calibration (``--ct-calibration FILE``): the CSV rules, each refusal naming the
file, line and column; the range it gives a proton beam; and where a plan records it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from phantoms.water import Slab, water_box
from reirrad_opt.cli import main
from reirrad_opt.dose import ParticleField, compute_influence
from reirrad_opt.dose.ct_calibration import CTCalibrationError, load_ct_calibration
from reirrad_opt.dose.particle import r80_mm

GOOD = """# generic test scanner, 120 kVp
HU,SPR,RED
-1024,0.001,0.001
-1000,0.001,0.001
0,1.0,1.0
1000,1.5,1.55
3071,2.4,2.5
"""


def write(tmp_path, text: str, name: str = "scanner.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_table_is_read_with_its_hash(tmp_path):
    path = write(tmp_path, GOOD)
    cal = load_ct_calibration(path)
    assert cal.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    np.testing.assert_allclose(cal.spr(np.array([-1024.0, 0.0, 500.0, 3071.0])), [0.001, 1.0, 1.25, 2.4], rtol=1e-6)
    np.testing.assert_allclose(cal.red(np.array([1000.0])), [1.55], rtol=1e-6)
    record = cal.to_dict()
    assert record["sha256"] == cal.sha256 and record["columns"] == ["SPR", "RED"]
    assert record["hu_range"] == [-1024.0, 3071.0]


def test_columns_in_any_order_and_case_and_red_optional(tmp_path):
    cal = load_ct_calibration(write(tmp_path, "spr , hu\n0.001,-1000\n1.0,0\n2.4,3000\n"))
    assert cal.red is None
    assert float(cal.spr(np.array([1500.0]))[0]) == pytest.approx(1.7)
    with pytest.raises(CTCalibrationError, match="no RED column, but a photon plan"):
        cal.red_curve()


@pytest.mark.parametrize("text, where, what", [
    (GOOD.replace("1000,1.5,1.55", "1000,1.5x,1.55"), "line 6 column SPR", "'1.5x' is not a number"),
    (GOOD.replace("1000,1.5,1.55", "1000,nan,1.55"), "line 6 column SPR", "not a finite number"),
    (GOOD.replace("HU,SPR,RED", "HU,RED"), "line 2", "missing column SPR"),
    (GOOD.replace("HU,SPR,RED", "HU,SPR,RED,density"), "line 2", "unknown column 'density'"),
    (GOOD.replace("HU,SPR,RED", "HU;SPR;RED"), "line 2", "the separator is a comma"),
    (GOOD.replace("1000,1.5,1.55", "1000,1.5"), "line 6", "2 values, expected 3"),
    (GOOD.replace("1000,1.5,1.55", "1000,0.9,1.55"), "line 6 column SPR", "must not decrease with HU"),
    (GOOD.replace("3071,2.4,2.5", "3071,2.4,1.5"), "line 7 column RED", "1.5 at 3071 HU is below 1.55"),
    (GOOD.replace("1000,1.5,1.55", "-1000,1.5,1.55"), "line 6 column HU", "strictly increasing"),
    (GOOD.replace("3071,2.4,2.5", "3071,3.5,2.5"), "line 7 column SPR", "outside the plausible 0 to 3"),
    (GOOD.replace("-1024,0.001,0.001", "-1024,-0.1,0.001"), "line 3 column SPR", "outside the plausible"),
    (GOOD.replace("3071,2.4,2.5\n", ""), "covers -1024 to 1000 HU", "at least -1000 to 3000 HU"),
    (GOOD.replace("0,1.0,1.0", "0,1.2,1.0"), "column SPR", "1.2 at 0 HU (water)"),
    ("# only a comment\n", "empty", "header line"),
    ("HU,SPR\n0,1\n", "1 data row", "at least two"),
])
def test_bad_tables_are_refused_naming_file_line_and_column(tmp_path, text, where, what):
    path = write(tmp_path, text)
    with pytest.raises(CTCalibrationError) as exc:
        load_ct_calibration(path)
    message = str(exc.value)
    assert message.startswith(str(path)), message
    assert where in message and what in message, message


def test_padding_below_minus_1000_hu_need_not_be_monotonic(tmp_path):
    cal = load_ct_calibration(write(tmp_path, GOOD.replace("-1024,0.001,0.001", "-1024,0.05,0.05")))
    assert float(cal.spr(np.array([-1024.0]))[0]) == pytest.approx(0.05)


def test_ct_numbers_outside_the_table_are_refused_not_clipped(tmp_path):
    cal = load_ct_calibration(write(tmp_path, "HU,SPR,RED\n-1000,0.001,0.001\n0,1,1\n3000,2.4,2.5\n"))
    case = water_box(20.0, 40.0, 20.0, spacing_mm=(5.0, 5.0, 5.0), slabs=(Slab(10.0, 20.0, 3050.0),))
    field = ParticleField(0.0, 0.0, (0.0, 0.0, 0.0), "proton", 5.0, [0.0], [0.0], [100.0])
    with pytest.raises(ValueError, match=r"scanner\.csv.*-1000 to 3000 HU, got -1000 to 3050 HU.*refused, not clipped"):
        compute_influence(case.grid, case.ct_hu, case.body, [field], spr_curve=cal.spr)


def _r80(case, spr_curve):
    field = ParticleField(0.0, 0.0, (0.0, 0.0, 0.0), "proton", 5.0, [0.0], [0.0], [150.0])
    inf = compute_influence(case.grid, case.ct_hu, case.body, [field], rel_cutoff=1e-4, spr_curve=spr_curve)
    dose = inf.dose(np.ones(inf.n_columns))
    g = case.grid
    return r80_mm(g.axis_coordinates_mm()[1], dose.sum(axis=(0, 2)))


def test_a_user_table_moves_the_proton_range_by_the_spr_change_of_the_slab(tmp_path):
    """A 150 MeV proton beam crosses 20 mm of a 1000 HU slab in water. Two tables that differ only
    in the SPR they give 1000 HU move the water-equivalent thickness of the slab, so the distal R80
    (in water, behind the slab) moves by thickness x (SPR_old - SPR_new), the geometric form of
    thickness x SPR_old x (1 - SPR_new / SPR_old)."""
    thickness = 20.0
    case = water_box(30.0, 200.0, 30.0, spacing_mm=(3.0, 0.5, 3.0), slabs=(Slab(30.0, 30.0 + thickness, 1000.0),))
    old = load_ct_calibration(write(tmp_path, GOOD, "old.csv"))
    new = load_ct_calibration(write(tmp_path, GOOD.replace("1000,1.5,1.55", "1000,1.3,1.55"), "new.csv"))
    spr_old, spr_new = (float(c.spr(np.array([1000.0]))[0]) for c in (old, new))
    assert (spr_old, spr_new) == pytest.approx((1.5, 1.3))
    shift = _r80(case, new.spr) - _r80(case, old.spr)
    assert shift == pytest.approx(thickness * (spr_old - spr_new), abs=0.3)


def test_the_cli_refuses_a_bad_table_with_exit_2_before_any_work(tmp_path, capsys):
    bad = write(tmp_path, GOOD.replace("1000,1.5,1.55", "1000,0.9,1.55"))
    code = main(["plan", "--phantom", "npc", "--modality", "proton", "--ct-calibration", str(bad),
                 "--out", str(tmp_path / "plan")])
    assert code == 2
    err = capsys.readouterr().err
    assert "scanner.csv line 6 column SPR" in err
    assert not (tmp_path / "plan").exists()


def test_a_photon_plan_refuses_a_table_without_red(tmp_path):
    from reirrad_opt.planning import plan

    cal = load_ct_calibration(write(tmp_path, "HU,SPR\n-1024,0.001\n0,1\n3071,2.4\n"))
    with pytest.raises(CTCalibrationError, match="no RED column, but a photon plan needs"):
        plan(water_box(20.0, 40.0, 20.0, spacing_mm=(5.0, 5.0, 5.0)), ct_calibration=cal)


def test_a_proton_plan_records_its_calibration(tmp_path):
    """plan.json names the file and its SHA-256, report.html shows them, and the plan.json schema
    accepts the record; the default calibration is recorded as such."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.case import save_case

    case_dir = tmp_path / "case"
    save_case(make_npc_phantom(5.0), case_dir)
    table = write(tmp_path, GOOD)
    code = main(["plan", "--case", str(case_dir), "--modality", "proton", "--ct-calibration", str(table),
                 "--out", str(tmp_path / "plan"), "--quiet"])
    assert code in (0, 3, 4)
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    digest = hashlib.sha256(table.read_bytes()).hexdigest()
    assert doc["ct_calibration"]["sha256"] == digest
    assert doc["ct_calibration"]["source"].endswith("scanner.csv")
    assert digest[:16] in (tmp_path / "plan" / "report.html").read_text()
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parents[1] / "reirrad_opt/report/plan_schema.json").read_text())
    jsonschema.validate(doc, schema)


def test_robust_scenario_matrices_use_the_plans_calibration(tmp_path):
    """A setup / range scenario's dose is computed with the nominal plan's CT calibration."""
    from reirrad_opt.geometry import Structure
    from reirrad_opt.robust.evaluation import scenario_influence
    from reirrad_opt.robust.scenarios import ScenarioSettings, scenario_set

    cal = load_ct_calibration(write(tmp_path, GOOD))
    case = water_box(20.0, 60.0, 20.0, spacing_mm=(5.0, 5.0, 5.0))
    case.structures["PTV"] = Structure("PTV", case.body.copy(), "target")
    field = ParticleField(0.0, 0.0, (0.0, 30.0, 0.0), "proton", 5.0, [0.0], [0.0], [100.0])
    scenario = scenario_set(ScenarioSettings(), "proton")[1]
    inf = scenario_influence(case, [field], scenario, rel_cutoff=1e-3, ct_calibration=cal)
    assert inf.meta["spr"]["source"] == cal.spr.source
