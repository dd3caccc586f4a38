"""`reirrad-opt compare --rbe`: the particle plan is compared in Gy(RBE) and every output says so.

Runs one comparison on the small water head of test_compare_run (4 mm, 5 photon beams, 2 proton
fields) with a non-default RBE of 1.2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reirrad_opt.case import save_case
from reirrad_opt.cli import main
from test_compare_run import PROTOCOL, small_head


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp_rbe")
    save_case(small_head(), root / "case")
    (root / "protocol.toml").write_text(PROTOCOL)
    out = root / "out"
    code = main(["compare", "--case", str(root / "case"), "--protocol", str(root / "protocol.toml"),
                 "--photon-beams", "0", "72", "144", "216", "288", "--particle-fields", "90", "270", "--rbe", "1.2",
                 "--quiet", "--out", str(out)])
    return code, out, json.loads((out / "comparison.json").read_text())


def test_comparison_states_each_plans_dose(run):
    code, out, c = run
    worst = set(c["verdicts"].values())
    assert code == (3 if "fail" in worst else 4 if "incomplete" in worst else 0)   # follows the verdicts
    assert c["dose"]["photon"] == {"quantity": "physical", "unit": "Gy", "rbe": 1.0, "rbe_model": "none"}
    assert c["dose"]["proton"] == {"quantity": "RBE-weighted", "unit": "Gy(RBE)", "rbe": 1.2, "rbe_model": "constant"}
    assert c["parameters"]["rbe"] == 1.2 and c["parameters"]["rbe_source"] == "given explicitly (--rbe)"
    assert any("Gy(RBE) = 1.2 x physical dose" in n for n in c["notes"])
    assert c["plans"]["proton"]["dose"]["rbe"] == 1.2
    assert "constant RBE 1.2" in (out / "comparison.html").read_text()
    assert c["distal_end"]["proton"]["dose_unit"] == "Gy(RBE)" and c["distal_end"]["proton"]["rbe"] == 1.2


def test_gy_rbe_rows_stay_in_the_criteria_and_the_budget(run):
    _, _, c = run
    proton_rows = {r["goal_id"]: r for r in c["plans"]["proton"]["evaluation"]}
    organ_lines = [g for g, r in proton_rows.items() if r["cumulative"] and r["unit"] == "Gy(RBE)"]
    assert organ_lines, "the proton plan's cumulative rows are in Gy(RBE)"
    budget = {b["goal_id"]: b for b in c["priority1_budget"]["proton"]}
    assert budget and set(budget) == {b["goal_id"] for b in c["priority1_budget"]["photon"]}
    for g, b in budget.items():
        assert b["cumulative_eqd2_gy"] == pytest.approx(proton_rows[g]["value"], abs=1e-3)
    criteria = {r["key"]: r for r in c["criteria"]}
    for g in organ_lines:
        assert criteria[g]["unit"] == "Gy(RBE)" and criteria[g]["values"]["proton"] is not None


def test_new_course_dose_is_the_evaluated_gy_rbe(run):
    """The proton folder's dose.npz is the dose the rows were read on: rGTV D98% on voxel centres
    (value_coarse) recomputed from it (a step DVH here, within one voxel's dose step)."""
    _, out, c = run
    dose = np.load(out / "proton" / "dose.npz")["new_course_gy"]
    mask = np.load(out / "proton" / "case.npz")["mask_rGTV"]
    row = next(r for r in c["plans"]["proton"]["evaluation"] if r["goal_id"] == "rGTV_D98%")
    assert row["unit"] == "Gy(RBE)"
    hottest = np.sort(dose[mask].astype(float))[::-1]
    d98 = hottest[int(np.ceil(0.98 * hottest.size)) - 1]
    assert row["value_coarse"] == pytest.approx(d98, abs=0.3)
