"""An OpenKBP patient (no optic structures in the data set) planned at a coarse grid with its optic
structures declared absent: no priority-1 line is left 'not evaluated', and the exit code follows
the priority-1 rows that were evaluated."""
from __future__ import annotations

import json

import pytest

from conftest import require
from reirrad_opt.cli import EXIT_OK, EXIT_PRIORITY1_FAIL, main

pytestmark = pytest.mark.realdata

OPTICS = ["OpticChiasm", "OpticNrv_L", "OpticNrv_R"]


def test_openkbp_patient_with_optics_declared_absent_has_every_priority1_line_evaluated(realdata, tmp_path, capsys):
    case_dir, plan_dir = tmp_path / "case", tmp_path / "plan"
    assert main(["import-openkbp", str(require(realdata / "openkbp_hn" / "pt_66")), "--interval-months", "24",
                 "--coarsen", "2", "--recurrence-near", "Brainstem", "--out", str(case_dir)]) == 0
    capsys.readouterr()
    code = main(["plan", "--case", str(case_dir), "--beams", "5", "--bixel-mm", "10", "--quiet",
                 "--absent", *OPTICS, "--out", str(plan_dir)])
    out = capsys.readouterr().out
    doc = json.loads((plan_dir / "plan.json").read_text())
    p1 = [r for r in doc["evaluation"] if r["priority"] == 1]
    assert not [r["structure"] for r in p1 if r["verdict"] == "not evaluated"]
    assert sorted(r["structure"] for r in p1 if r["verdict"] == "absent") == sorted(OPTICS)
    assert doc["absent_structures"] == {name: "--absent" for name in OPTICS}
    evaluated = {r["structure"]: r for r in p1 if r["verdict"] != "absent"}
    assert set(evaluated) == {"Brainstem", "SpinalCord", "rGTV"}
    assert all(r["value"] is not None for r in evaluated.values())
    verdicts = {r["verdict"] for r in evaluated.values()}
    assert code == (EXIT_PRIORITY1_FAIL if verdicts & {"fail", "not met"} else EXIT_OK)
    assert doc["verdict"] != "incomplete" and "INCOMPLETE" not in out
    # OpenKBP has no temporal lobes or carotids either: lower priority, named but not blocking
    assert "lower-priority lines not evaluated (structure missing or empty): Lobe_Temporal_L_D0.03cc" \
        in doc["verdict_detail"]
