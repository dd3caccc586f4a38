"""tps-run end to end on a real TPS export, driven by the emitted RayStation script.

The exchange folder is what the script's ScriptableDicomExport produces in the test double of
RayStation: the RayStation Alderson pelvis export (CT, RTPLAN, RTDOSE as the prior course: 60 Gy in
20 fractions), with its RTSTRUCT rewritten so that the rectum is called 'Rectum TPS' (the TPS's own
name, mapped to TG-263 'Rectum' in request.json). No recurrence is contoured, so the request asks
for a synthetic rGTV next to the rectum (12 mm sphere in the prior PTV). The protocol is a small
pelvic one with cumulative-EQD2 limits on rectum and bladder (alpha/beta 3 Gy), so the cap map and
the cumulative goals have organs to act on. A head-and-neck case (an OpenKBP patient exported as a
TPS would) is in tests/test_tps_run_openkbp.py.
"""
from __future__ import annotations

import json
import runpy
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pydicom
import pytest

from conftest import require
from reirrad_opt.case import load_case
from reirrad_opt.cli import main as cli_main
from tps_adapters.dicom import read_rtdose
from tps_adapters.raystation import ScriptSettings, emit

sys.path.insert(0, str(Path(__file__).parent / "raystation_fake"))
import connect as fake  # noqa: E402

PELVIS = "raystation_alderson_pelvis_pydosert"
PROTOCOL = """
[protocol]
name = "pelvis_reirradiation_test"
schema_version = 1
description = "test protocol: cumulative rectum and bladder limits"

[prescription]
eqd2_gy = 60.0
eqd2_range_gy = [60.0, 66.0]
alpha_beta_gy = 10.0
default_fractionation = "qd-2.0"

[fractionations."qd-2.0"]
dose_per_fraction_gy = 2.0
n_fractions = 30
fractions_per_day = 1

[slips]
1 = "1 %"
2 = "1 %"

[[goal]]
structure = "Rectum"
priority = 1
metric = "D0.03cc"
sense = "max"
desirable = "110 Gy"
acceptable = "120 Gy"
cumulative = true
alpha_beta_gy = 3.0

[[goal]]
structure = "Bladder"
priority = 2
metric = "D0.03cc"
sense = "max"
desirable = "120 Gy"
cumulative = true
alpha_beta_gy = 3.0

[[goal]]
structure = "rGTV"
priority = 1
metric = "D98%"
sense = "min"
desirable = "95 %Rx"
cumulative = false
alpha_beta_gy = 10.0

[[goal]]
structure = "PTV"
priority = 2
metric = "V107%"
sense = "max"
desirable = "5 %"
acceptable = "10 %"
cumulative = false
alpha_beta_gy = 10.0
"""
RESULT_FILES = ["case.json", "case.npz", "dicom/RD_cumulative_EQD2.dcm", "dicom/RD_new_course_cap.dcm",
                "dicom/RD_new_course_physical.dcm", "dicom/RS_new_course_targets.dcm", "dose.npz", "dose.png",
                "dvh.png", "evaluation_samples.npz", "fluence.npz", "plan.json", "report.html", "status.json",
                "tps_goals.json"]


def _eqd2(dose_gy, n, ab):
    """EQD2 (Gy) of a dose in n equal fractions, written out here: D (d + ab) / (2 + ab), d = D / n."""
    dose_gy = np.asarray(dose_gy, dtype=float)
    return dose_gy * (dose_gy / n + ab) / (2.0 + ab)


def _export_files(realdata: Path, tmp: Path) -> tuple[list[Path], list[str]]:
    """The pelvis files a RayStation export would write, with the rectum renamed in the RTSTRUCT."""
    src = require(realdata / PELVIS)
    files = [p for d in ("CT", "RD", "RP") for p in sorted((src / d).iterdir()) if p.is_file()]
    rs_src = next(p for p in sorted((src / "RS").iterdir()) if p.is_file())
    ds = pydicom.dcmread(rs_src)
    for item in ds.StructureSetROISequence:
        if item.ROIName == "Rectum":
            item.ROIName = "Rectum TPS"
    rs = tmp / "RS_renamed.dcm"
    ds.save_as(rs)
    return files + [rs], [item.ROIName for item in ds.StructureSetROISequence]


@pytest.fixture(scope="module")
def run(realdata, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tps")
    files, roi_names = _export_files(realdata, tmp)
    protocol = tmp / "pelvis.toml"
    protocol.write_text(PROTOCOL)
    root = tmp / "exchange"
    script = tmp / "reirrad_raystation.py"
    script.write_text(emit(ScriptSettings(
        raystation_version="2024B", reirrad_command=(sys.executable, "-m", "reirrad_opt.cli"),
        exchange_root=str(root), timeout_s=600, protocol=str(protocol), fractionation="qd-2.0", beam_count=5,
        prior_beam_set="Prior:BS1", prior_n_fractions=20, interval_months=24.0,
        roi_map={"Rectum TPS": "Rectum", "Bladder": "Bladder"}, voxel_mm=6.0,
        synthetic_recurrence={"near": "Rectum"})))
    fake.configure(version="2024B", roi_names=roi_names, export_files=files)
    sys.modules["connect"] = fake
    runpy.run_path(str(script), run_name="__main__")
    folder = next(root.iterdir())
    result = folder / "result"
    return {"folder": folder, "result": result, "roi_names": roi_names, "calls": list(fake.CALLS),
            "status": json.loads((result / "status.json").read_text()),
            "goals": json.loads((result / "tps_goals.json").read_text()),
            "plan": json.loads((result / "plan.json").read_text())}


@pytest.mark.realdata
def test_every_result_file_and_a_complete_status(run):
    files = sorted(str(p.relative_to(run["result"])) for p in run["result"].rglob("*")
                   if p.is_file() and not p.name.startswith("."))
    assert files == RESULT_FILES
    status = run["status"]
    assert status["state"] == "complete" and status["files"] == RESULT_FILES
    verdict = run["plan"]["verdict"]
    assert status["verdict"] == verdict and status["exit_code"] == {"fail": 3, "incomplete": 4}.get(verdict, 0)
    assert status["tps"]["system"] == "RayStation" and status["tps"]["prior_beam_set"] == "Prior:BS1"
    schema = json.loads(resources.files("reirrad_opt.tps").joinpath("tps_goals_schema.json").read_text())
    jsonschema.validate(run["goals"], schema)


@pytest.mark.realdata
def test_goals_carry_the_tps_roi_names_and_the_script_created_exactly_them(run):
    goals = {g["line_id"]: g for g in run["goals"]["goals"]}
    assert set(goals) == {"Rectum_D0.03cc", "Bladder_D0.03cc", "rGTV_D98%", "PTV_V107%"}
    assert goals["Rectum_D0.03cc"]["roi_name"] == "Rectum TPS" and not goals["Rectum_D0.03cc"]["roi_generated"]
    assert goals["Bladder_D0.03cc"]["roi_name"] == "Bladder" and not goals["Bladder_D0.03cc"]["roi_generated"]
    # the synthetic rGTV and the new PTV are reirrad-opt's (the TPS's own 'PTV' is the prior target)
    assert goals["rGTV_D98%"]["roi_generated"] and goals["PTV_V107%"]["roi_generated"]
    created = [kw for name, kw in run["calls"] if name == "AddClinicalGoal"]
    expected = [g for g in run["goals"]["goals"] if not g["roi_generated"]]
    assert [(c["RoiName"], c["PrimaryAcceptanceLevel"], c["ParameterValue"], c["Priority"]) for c in created] == \
        [(g["roi_name"], g["level_cgy"], g["volume_cc"], g["priority"]) for g in expected]
    assert all(c["RoiName"] in run["roi_names"] for c in created)
    functions = [(kw["FunctionType"], kw["RoiName"], kw["IsConstraint"]) for name, kw in run["calls"]
                 if name == "AddOptimizationFunction"]
    assert functions == [("MaxDose", "Rectum TPS", True), ("MaxDose", "Bladder", False)]


@pytest.mark.realdata
def test_goal_values_agree_with_the_plan_evaluation(run):
    """Non-cumulative lines: the achieved level is the evaluation's value x 100 cGy. Cumulative lines:
    the achieved level is the evaluation's new-course D0.03cc; the goal's level is the tightest cap,
    and a new-course dose at a voxel's cap gives exactly the cumulative limit there (EQD2 summed by
    hand): the cap map read back from its RTDOSE separates the voxels within the limit from those over it."""
    rows = {r["goal_id"]: r for r in run["plan"]["evaluation"]}
    goals = {g["line_id"]: g for g in run["goals"]["goals"]}
    assert goals["rGTV_D98%"]["achieved_cgy"] == pytest.approx(rows["rGTV_D98%"]["value"] * 100, abs=0.006)
    assert goals["rGTV_D98%"]["level_cgy"] == pytest.approx(0.95 * 6000, abs=0.01)        # 95 % of 30 x 2 Gy
    assert goals["PTV_V107%"]["achieved_pct"] == pytest.approx(rows["PTV_V107%"]["value"], abs=1e-3)
    assert goals["PTV_V107%"]["level_cgy"] == pytest.approx(1.07 * 6000, abs=0.01)

    case = load_case(run["result"])
    new = np.load(run["result"] / "dose.npz")["new_course_gy"].astype(float)
    rectum = case.structures["Rectum"].mask
    prior = case.prior_dose_gy[rectum].astype(float)
    g = goals["Rectum_D0.03cc"]
    limit = {"desirable": 110.0, "acceptable": 120.0}[run["plan"]["limit_tier"].get("Rectum_D0.03cc", "desirable")]
    assert g["cumulative_limit_gy"] == limit
    budget = limit - _eqd2(prior, 20, 3.0)                      # EQD2 left per voxel
    # the cap solves EQD2(cap in 30 fractions) = budget; check it against the hand formula
    cap_min = g["level_cgy"] / 100.0
    tight = int(np.argmin(budget))
    assert _eqd2(cap_min, 30, 3.0) == pytest.approx(budget[tight], abs=2e-3)
    assert _eqd2(g["cap_max_cgy"] / 100.0, 30, 3.0) == pytest.approx(budget.max(), abs=2e-3)
    # the achieved level is the evaluation's own new-course D0.03cc of the rectum (its reporting block)
    reported = run["plan"]["reporting"]["per_structure"]["Rectum"]["new_physical"]["D0.03cc_gy"]
    assert g["achieved_cgy"] == pytest.approx(reported * 100, abs=0.02)
    # a voxel meets the cumulative limit exactly when its new dose is within its cap (the cap map)
    cap_map = read_rtdose(run["result"] / "dicom" / "RD_new_course_cap.dcm")
    assert cap_map.dose_type == "PHYSICAL"
    from tps_adapters.dicom import resample_dose

    cap_on_case, _ = resample_dose(cap_map, case.grid)
    cap_here = cap_on_case[rectum].astype(float)
    for scale in (1.0, 1.6):   # the plan itself keeps every voxel within its cap; 1.6 x its dose does not
        dose = scale * new[rectum]
        cumulative = _eqd2(prior, 20, 3.0) + _eqd2(dose, 30, 3.0)
        far = np.abs(dose - cap_here) > 0.01                    # away from the boundary (scaling, rounding)
        assert np.array_equal((dose <= cap_here)[far], (cumulative <= limit)[far])
    assert 0 < np.count_nonzero(cumulative > limit) < rectum.sum()
    assert cap_here.min() == pytest.approx(cap_min, abs=0.01)


@pytest.mark.realdata
def test_roi_name_not_in_the_rtstruct_is_a_named_error(run, tmp_path):
    folder = tmp_path / "ex"
    (folder / "dicom").mkdir(parents=True)
    for p in (run["folder"] / "dicom").iterdir():
        (folder / "dicom" / p.name).symlink_to(p.resolve())
    request = json.loads((run["folder"] / "request.json").read_text())
    request["roi_map"] = {"rectum tps": "Rectum"}
    (folder / "request.json").write_text(json.dumps(request))
    assert cli_main(["tps-run", str(folder), "--quiet"]) == 2
    status = json.loads((folder / "result" / "status.json").read_text())
    assert status["state"] == "failed" and status["key"] == "roi_map['rectum tps']"
    assert "no ROI named 'rectum tps' in the RTSTRUCT (did you mean 'Rectum TPS'?" in status["message"]
