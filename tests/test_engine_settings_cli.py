"""reirrad-opt plan --settings FILE: a [settings] table onto the plan's PlanningSettings."""
import json

from phantoms.npc import make_npc_phantom
from reirrad_opt.case import save_case
from reirrad_opt.cli import main

ANGLES = [0.0, 72.0, 144.0, 216.0, 288.0]


def test_cli_reads_a_settings_file_and_refuses_a_bad_one(tmp_path):
    save_case(make_npc_phantom(5.0), tmp_path / "case")
    bad = tmp_path / "bad.toml"
    bad.write_text('[settings]\ntruncation = 1.5\n')
    code = main(["plan", "--case", str(tmp_path / "case"), "--settings", str(bad), "--quiet",
                 "--out", str(tmp_path / "plan")])
    assert code == 2 and not (tmp_path / "plan").exists()
    good = tmp_path / "good.toml"
    good.write_text('[settings]\nengine = "lp"\n')
    code = main(["plan", "--case", str(tmp_path / "case"), "--settings", str(good), "--gantry-angles",
                 *map(str, ANGLES), "--quiet", "--out", str(tmp_path / "plan")])
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert doc["engine"] == "lp"
    assert code == {"fail": 3, "incomplete": 4}.get(doc["verdict"], 0)   # the exit code follows the verdict
