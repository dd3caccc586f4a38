"""The emitted RayStation script, run against a test double of RayStation's ``connect`` module
(tests/raystation_fake/connect.py, built from the documented signatures) and a stand-in for
``reirrad-opt tps-run`` that validates the request and returns a known tps_goals.json.

What is checked: the script exports with ScriptableDicomExport into a new exchange folder, writes a
request that the real validator accepts, and creates exactly the clinical goals and optimization
functions of tps_goals.json (ROI names as given, levels in cGy, volumes as RayStation takes them) for
every RayStation version of the call table; generated ROIs and unmapped lines are reported, not
created. Not checked: anything a live RayStation would do.
"""
from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest

from reirrad_opt.cli import main as cli_main
from tps_adapters.raystation import CALLS, ScriptSettings, emit

sys.path.insert(0, str(Path(__file__).parent / "raystation_fake"))
import connect as fake  # noqa: E402  (the test double, importable as RayStation's module name)

GOALS = {
    "schema_version": 1, "protocol": "npc_reirradiation_2021",
    "fractionation": {"name": "bid-1.2", "n_fractions": 54, "dose_per_fraction_gy": 1.2, "prescription_cgy": 6480.0},
    "modality": "photon", "dose_unit": "cGy", "dose_kind": "physical", "rbe": None, "limit_level": "planned",
    "goals": [
        {"line_id": "Brainstem_D0.03cc", "roi_name": "BS_tps", "roi_generated": False, "canonical_name": "Brainstem",
         "priority": 1, "goal_type": "dose_at_absolute_volume", "direction": "at_most", "volume_cc": 0.03,
         "level_cgy": 1234.5, "level_basis": "cumulative_cap_min", "cumulative_limit_gy": 70.2, "cap_max_cgy": 3000.0,
         "protocol_level_cgy": None, "role": "constraint", "achieved_cgy": 1100.0, "achieved_pct": None,
         "verdict": "desirable", "note": ""},
        {"line_id": "rGTV_D98%", "roi_name": "GTV recur", "roi_generated": False, "canonical_name": "rGTV",
         "priority": 1, "goal_type": "dose_at_volume", "direction": "at_least", "volume_pct": 98.0,
         "level_cgy": 6350.4, "level_basis": "new_course_limit", "cumulative_limit_gy": None, "cap_max_cgy": None,
         "protocol_level_cgy": 6350.4, "role": "objective", "achieved_cgy": 6401.2, "achieved_pct": None,
         "verdict": "desirable", "note": ""},
        {"line_id": "PTV_V107%", "roi_name": "PTV", "roi_generated": True, "canonical_name": "PTV", "priority": 2,
         "goal_type": "volume_at_dose", "direction": "at_most", "volume_pct": 5.0, "level_cgy": 6933.6,
         "level_basis": "new_course_limit", "cumulative_limit_gy": None, "cap_max_cgy": None,
         "protocol_level_cgy": 6933.6, "role": "objective", "achieved_cgy": None, "achieved_pct": 1.5,
         "verdict": "desirable", "note": ""},
        {"line_id": "Lobe_Temporal_L_D0.03cc", "roi_name": "TL_L", "roi_generated": False,
         "canonical_name": "Lobe_Temporal_L", "priority": 2, "goal_type": "dose_at_absolute_volume",
         "direction": "at_most", "volume_cc": 0.03, "level_cgy": 4321.0, "level_basis": "cumulative_cap_min",
         "cumulative_limit_gy": 91.0, "cap_max_cgy": 5000.0, "protocol_level_cgy": None, "role": "objective",
         "achieved_cgy": 3000.0, "achieved_pct": None, "verdict": "desirable", "note": ""},
    ],
    "unmapped": [{"line_id": "OpticChiasm_D0.03cc", "canonical_name": "OpticChiasm",
                  "reason": "absent: declared absent"}],
}

STAND_IN = r'''
import json, os, sys
from pathlib import Path
from reirrad_opt.tps.request import load_request
folder = Path(sys.argv[2])
assert sys.argv[1] == "tps-run", sys.argv
request = load_request(folder)             # the real validator: the script's request must pass it
exported = sorted(p.name for p in (folder / "dicom").iterdir())
assert exported == ["CT1.dcm", "RS1.dcm"], exported
(folder / "result").mkdir()
goals = json.loads(Path(os.environ["FAKE_GOALS"]).read_text())
(folder / "result" / "tps_goals.json").write_text(json.dumps(goals))
(folder / "result" / "request_seen.json").write_text(json.dumps(json.loads((folder / "request.json").read_text())))
(folder / "result" / "status.json").write_text(json.dumps({"state": "complete", "exit_code": 0,
    "message": "plan desirable", "verdict": "desirable"}))
print("stand-in planned", request.fractionation)
'''


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    exe = tmp_path / "stand_in.py"
    exe.write_text(STAND_IN)
    goals = tmp_path / "goals.json"
    goals.write_text(json.dumps(GOALS))
    monkeypatch.setenv("FAKE_GOALS", str(goals))
    exports = []
    for name in ("CT1.dcm", "RS1.dcm"):
        (tmp_path / name).write_bytes(b"")
        exports.append(tmp_path / name)
    return {"exe": exe, "root": tmp_path / "exchange", "exports": exports}


def _run_script(setup, version: str, capsys, **overrides) -> tuple[str, Path]:
    settings = dict(raystation_version=version, reirrad_command=(sys.executable, str(setup["exe"])),
                    exchange_root=str(setup["root"]), prior_beam_set="Prior:BS1", prior_n_fractions=33,
                    interval_months=30.0, roi_map={"BS_tps": "Brainstem", "GTV recur": "rGTV"},
                    absent=("OpticChiasm",), timeout_s=120)
    settings.update(overrides)
    script = setup["root"].parent / f"rs_{version}.py"
    script.write_text(emit(ScriptSettings(**settings)))
    fake.configure(version=version, roi_names=["BS_tps", "GTV recur", "PTV", "External"], export_files=setup["exports"])
    sys.modules["connect"] = fake
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    folders = list(setup["root"].iterdir())
    assert len(folders) == 1
    return out, folders[0]


@pytest.mark.parametrize("version", list(CALLS))
def test_script_creates_exactly_the_goals_of_tps_goals(setup, capsys, version):
    out, folder = _run_script(setup, version, capsys)
    calls = fake.CALLS
    export = [kw for name, kw in calls if name == "ScriptableDicomExport"]
    assert export == [{"ExportFolderPath": str(folder / "dicom"), "Examinations": ["CT 1"],
                       "RtStructureSetsForExaminations": ["CT 1"], "PhysicalBeamSetDoseForBeamSets": ["Prior:BS1"],
                       "IgnorePreConditionWarnings": True}]
    request = json.loads((folder / "result" / "request_seen.json").read_text())
    assert request["roi_map"] == {"BS_tps": "Brainstem", "GTV recur": "rGTV"}
    assert request["prior_course"] == {"n_fractions": 33, "modality": "photon", "interval_months": 30.0}
    assert request["absent"] == ["OpticChiasm"] and request["tps"]["raystation_version"] == version

    level = CALLS[version].goal_level_keyword
    goals = [kw for name, kw in calls if name == "AddClinicalGoal"]
    # the generated PTV is not in the TPS yet and TL_L is not in this case: two goals, on the TPS's own names
    assert [(g["RoiName"], g["GoalCriteria"], g["GoalType"], g[level], g["ParameterValue"], g["Priority"])
            for g in goals] == [("BS_tps", "AtMost", "DoseAtAbsoluteVolume", 1234.5, 0.03, 1),
                                ("GTV recur", "AtLeast", "DoseAtVolume", 6350.4, 0.98, 1)]
    functions = [kw for name, kw in calls if name == "AddOptimizationFunction"]
    assert [(f["FunctionType"], f["RoiName"], f["IsConstraint"]) for f in functions] == [
        ("MaxDose", "BS_tps", True), ("MinDvh", "GTV recur", False)]
    params = [(name.split(".")[1], kw["function"], kw["value"]) for name, kw in calls
              if name.startswith("DoseFunctionParameters.")]
    # the cap at its level; coverage at the level the reirrad-opt plan achieved (6401.2 cGy), weighted
    assert params == [("DoseLevel", 0, 1234.5), ("DoseLevel", 1, 6401.2), ("PercentVolume", 1, 98.0),
                      ("Weight", 1, 100.0)]
    assert "PTV_V107% on PTV: ROI made by reirrad-opt" in out
    assert "Lobe_Temporal_L_D0.03cc on TL_L: no ROI of that name in the case" in out
    assert "OpticChiasm_D0.03cc: absent: declared absent" in out


def test_generated_rois_once_imported(setup, capsys):
    """With USE_GENERATED_ROIS the PTV hotspot line becomes a VolumeAtDose goal (volume as a fraction,
    dose as the parameter) and a MaxDvh objective at the volume the plan achieved."""
    _run_script(setup, "2024B", capsys, use_generated_rois=True)
    goals = [kw for name, kw in fake.CALLS if name == "AddClinicalGoal" and kw["RoiName"] == "PTV"]
    assert goals == [{"RoiName": "PTV", "GoalCriteria": "AtMost", "GoalType": "VolumeAtDose", "Priority": 2,
                      "PrimaryAcceptanceLevel": 0.05, "ParameterValue": 6933.6, "IsComparativeGoal": False,
                      "AssociateToPlan": False}]
    functions = [kw for name, kw in fake.CALLS if name == "AddOptimizationFunction" and kw["RoiName"] == "PTV"]
    assert [f["FunctionType"] for f in functions] == ["MaxDvh"]
    params = {name.split(".")[1]: kw["value"] for name, kw in fake.CALLS
              if name.startswith("DoseFunctionParameters.") and kw["function"] == 2}
    assert params == {"DoseLevel": 6933.6, "PercentVolume": 1.5, "Weight": 10.0}


def test_the_fake_rejects_what_a_version_does_not_document(setup):
    """The test double is not a rubber stamp: the other version's level keyword, a wrong type, a
    missing keyword and an unknown ROI are refused."""
    fake.configure(version="2024B", roi_names=["A"])
    es = fake.get_current("Plan").TreatmentCourse.EvaluationSetup
    with pytest.raises(TypeError, match="unknown keyword 'AcceptanceLevel'"):
        es.AddClinicalGoal(RoiName="A", GoalCriteria="AtMost", GoalType="AverageDose", AcceptanceLevel=100.0)
    with pytest.raises(TypeError, match="Priority expects int"):
        es.AddClinicalGoal(RoiName="A", GoalCriteria="AtMost", GoalType="AverageDose", PrimaryAcceptanceLevel=1.0,
                           Priority="1")
    with pytest.raises(TypeError, match="missing required keyword"):
        es.AddClinicalGoal(RoiName="A", GoalCriteria="AtMost", GoalType="AverageDose")
    with pytest.raises(ValueError, match="ROI does not exist"):
        es.AddClinicalGoal(RoiName="B", GoalCriteria="AtMost", GoalType="AverageDose", PrimaryAcceptanceLevel=1.0)
    fake.configure(version="9A", roi_names=["A"])
    es = fake.get_current("Plan").TreatmentCourse.EvaluationSetup
    with pytest.raises(TypeError, match="unknown keyword 'PrimaryAcceptanceLevel'"):
        es.AddClinicalGoal(RoiName="A", GoalCriteria="AtMost", GoalType="AverageDose", PrimaryAcceptanceLevel=1.0)
    f = fake.get_current("Plan").PlanOptimizations[0].AddOptimizationFunction(FunctionType="MaxDose", RoiName="A")
    with pytest.raises(AttributeError):
        f.DoseFunctionParameters.DoseLevelCGy = 100.0


def test_script_reports_a_failed_run_and_creates_nothing(setup, capsys, tmp_path):
    failing = tmp_path / "failing.py"
    failing.write_text("import json, sys, pathlib\nf = pathlib.Path(sys.argv[2]) / 'result'\nf.mkdir()\n"
                       "(f / 'status.json').write_text(json.dumps({'state': 'failed', 'exit_code': 2, "
                       "'message': 'request.json roi_map[\\'X\\']: no ROI', 'key': \"roi_map['X']\"}))\n"
                       "sys.exit(2)\n")
    out, _ = _run_script(setup, "12A", capsys, reirrad_command=(sys.executable, str(failing)))
    assert "reirrad-opt did not plan (exit code 2): request.json roi_map['X']: no ROI" in out
    assert "fix request key roi_map['X']" in out
    assert [name for name, _ in fake.CALLS] == ["ScriptableDicomExport"]


def test_tps_script_command_writes_a_script_for_the_version(tmp_path, capsys):
    out = tmp_path / "reirrad_raystation.py"
    assert cli_main(["tps-script", "raystation", "--out", str(out), "--raystation-version", "9A",
                     "--prior-fractions", "33", "--interval-months", "30", "--roi-map", "GTV_recur=rGTV"]) == 0
    text = out.read_text()
    compile(text, str(out), "exec")
    assert "'goal_level_keyword': 'AcceptanceLevel'" in text and "PRIOR_N_FRACTIONS = 33" in text
    assert "ROI_MAP = {'GTV_recur': 'rGTV'}" in text
    assert cli_main(["tps-script", "raystation", "--out", str(out)]) == 2          # exists, no --overwrite
    assert "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["tps-script", "raystation", "--out", str(out), "--raystation-version", "7"])


def test_script_stops_a_silent_run_at_the_timeout(setup, capsys, tmp_path):
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(60)\n")
    out, _ = _run_script(setup, "2024B", capsys, reirrad_command=(sys.executable, str(hang)), timeout_s=1)
    assert "did not finish within 1 s (TIMEOUT_S); stopped" in out
    assert [name for name, _ in fake.CALLS] == ["ScriptableDicomExport"]


def test_script_reports_a_missing_program_and_a_run_without_status(setup, capsys, tmp_path):
    out, _ = _run_script(setup, "2024B", capsys, reirrad_command=(str(tmp_path / "no-such-program"),))
    assert "cannot start" in out and "(set REIRRAD_COMMAND)" in out
    for folder in setup["root"].iterdir():
        shutil.rmtree(folder)
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nprint('boom')\nsys.exit(1)\n")
    out, _ = _run_script(setup, "2024B", capsys, reirrad_command=(sys.executable, str(crash)))
    assert "boom" in out and "ended with exit code 1 and wrote no status.json" in out
