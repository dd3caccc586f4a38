"""Carbon ions with an explicit constant RBE: planned, and every output says loudly that the constant
was assumed (the refusal without one is in test_rbe_settings). Small water head of
test_compare_run, 4 mm, two carbon fields, RBE 3."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reirrad_opt.commands.plan import summary_text
from reirrad_opt.planning import plan
from reirrad_opt.report.plan_folder import write_plan_contents
from test_compare_run import PROTOCOL, small_head


@pytest.fixture(scope="module")
def carbon(tmp_path_factory):
    root = tmp_path_factory.mktemp("carbon")
    (root / "protocol.toml").write_text(PROTOCOL)
    result = plan(small_head(), root / "protocol.toml", modality="carbon", rbe=3.0, gantry_angles_deg=[90, 270])
    folder = root / "plan"
    folder.mkdir()
    write_plan_contents(result, folder)
    return result, folder


def test_carbon_dose_is_the_assumed_rbe_times_the_physical_dose(carbon):
    result, _ = carbon
    physical = (result.influence.matrix @ result.weights).reshape(result.case.grid.shape)
    assert result.influence.modality == "carbon"
    np.testing.assert_allclose(result.new_dose_gy, 3.0 * physical, rtol=1e-5, atol=1e-5)
    assert {r.unit for r in result.evaluation.rows} <= {"Gy(RBE)", "%", "cc"}


def test_the_assumption_is_stated_in_plan_json_the_terminal_and_the_report(carbon):
    result, folder = carbon
    content = json.loads((folder / "plan.json").read_text())
    assert content["dose"] == {"quantity": "RBE-weighted", "unit": "Gy(RBE)", "rbe": 3.0, "rbe_model": "constant"}
    warning = [n for n in content["notes"] if n.startswith("WARNING: a CONSTANT RBE of 3 was ASSUMED for carbon")]
    assert len(warning) == 1 and "LEM" in warning[0]
    assert "!! WARNING: a CONSTANT RBE of 3 was ASSUMED" in summary_text(result, folder)
    assert "CONSTANT RBE of 3 was ASSUMED" in (folder / "report.html").read_text()
