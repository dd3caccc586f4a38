"""tps-run end to end on an OpenKBP head-and-neck patient exported as a TPS would export it.

The exchange folder is written by tests/openkbp_exchange.py from OpenKBP pt_201: a CT series (one
CT Image Storage file per slice), an RTSTRUCT with TPS-style ROI names ('BrainStem', 'Spinal Cord',
'BODY', ...) and a synthetic recurrence 'GTV_recur' next to the brainstem, and an RTDOSE of the
OpenKBP dose as the prior course (70 Gy in 35 fractions). The request uses the shipped NPC protocol
(bid-1.2), maps the TPS names with roi_map, declares the protocol organs OpenKBP does not contour
(optic structures, temporal lobes, carotids) absent, and plans on a 6 mm grid with 5 beams.
"""
from __future__ import annotations

import json
from importlib import resources

import jsonschema
import numpy as np
import pydicom
import pytest
from scipy.interpolate import RegularGridInterpolator

from conftest import require
from openkbp_exchange import NOT_IN_OPENKBP, write_exchange
from reirrad_opt.case import load_case as load_case_folder
from reirrad_opt.cli import main as cli_main
from tps_adapters.dicom import load_case, read_structure_set
from tps_adapters.openkbp import SHAPE

pytestmark = pytest.mark.realdata

PATIENT = "pt_201"
ROI_MAP = {"BrainStem": "Brainstem", "Spinal Cord": "SpinalCord", "GTV_recur": "rGTV", "BODY": "External",
           "Parotid Lt": "Parotid_L", "Parotid Rt": "Parotid_R"}
REQUEST = {"schema_version": 1, "fractionation": "bid-1.2", "modality": "photon", "beams": {"count": 5},
           "prior_course": {"n_fractions": 35, "modality": "photon", "interval_months": 24},
           "roi_map": ROI_MAP, "absent": list(NOT_IN_OPENKBP), "voxel_mm": 6,
           "tps": {"system": "test exporter", "patient": f"OpenKBP {PATIENT}"}}
RESULT_FILES = ["case.json", "case.npz", "dicom/RD_cumulative_EQD2.dcm", "dicom/RD_new_course_cap.dcm",
                "dicom/RD_new_course_physical.dcm", "dicom/RS_new_course_targets.dcm", "dose.npz", "dose.png",
                "dvh.png", "evaluation_samples.npz", "fluence.npz", "plan.json", "report.html", "status.json",
                "tps_goals.json"]


@pytest.fixture(scope="module")
def patient_dir(realdata):
    return require(realdata / "openkbp_hn" / PATIENT)


@pytest.fixture(scope="module")
def exchange(patient_dir, tmp_path_factory):
    return write_exchange(patient_dir, tmp_path_factory.mktemp("okbp") / "exchange", REQUEST)


@pytest.fixture(scope="module")
def run(exchange):
    code = cli_main(["tps-run", str(exchange.folder), "--quiet"])
    result = exchange.folder / "result"
    return {"code": code, "result": result, "status": json.loads((result / "status.json").read_text()),
            "goals": json.loads((result / "tps_goals.json").read_text()),
            "plan": json.loads((result / "plan.json").read_text())}


def test_the_export_is_a_tps_style_dicom_folder(exchange):
    cts = [pydicom.dcmread(p) for p in exchange.ct_files]
    rs, rd = pydicom.dcmread(exchange.rtstruct), pydicom.dcmread(exchange.rtdose)
    assert len(cts) == SHAPE[0] and {ds.SOPClassUID for ds in cts} == {"1.2.840.10008.5.1.4.1.1.2"}
    everything = cts + [rs, rd]
    for attr in ("StudyInstanceUID", "PatientID"):
        assert len({str(ds.get(attr)) for ds in everything}) == 1
    assert len({ds.FrameOfReferenceUID for ds in cts + [rd]} | {
        item.FrameOfReferenceUID for item in rs.ReferencedFrameOfReferenceSequence}) == 1
    assert len({ds.SeriesInstanceUID for ds in cts}) == 1
    assert (rd.DoseSummationType, rd.DoseType, rd.DoseUnits) == ("PLAN", "PHYSICAL", "GY")
    assert sorted(item.ROIName for item in rs.StructureSetROISequence) == sorted(exchange.roi_names.values())
    types = {item.ROIName: obs.RTROIInterpretedType for item, obs in zip(rs.StructureSetROISequence,
                                                                         rs.RTROIObservationsSequence)}
    assert types["BODY"] == "EXTERNAL" and types["GTV_recur"] == "GTV" and types["BrainStem"] == "ORGAN"
    # the contours refer to the CT slices of the series
    ct_uids = {ds.SOPInstanceUID for ds in cts}
    refs = {c.ContourImageSequence[0].ReferencedSOPInstanceUID for rc in rs.ROIContourSequence for c in rc.ContourSequence}
    assert refs and refs <= ct_uids
    # HU via RescaleSlope/Intercept: the stored value of the first slice's corner is air
    assert float(cts[0].pixel_array[0, 0]) * float(cts[0].RescaleSlope) + float(cts[0].RescaleIntercept) == -1024.0


def test_import_at_the_ct_grid_gives_back_the_openkbp_case(exchange, patient_dir):
    """Independent of tps-run: the DICOM import of the folder at the CT grid returns the OpenKBP CT,
    masks and dose; the dose within the RTDOSE's scaling (half a quantum, plus the float32 rounding
    of the imported value), and the raw dose.csv rows land where the OpenKBP axes put them."""
    with pytest.warns(Warning, match="outside the prior dose grid"):
        case = load_case(exchange.folder / "dicom", prior_fractions=35, interval_months=24,
                         structure_map={v: k for k, v in ROI_MAP.items()}, end_caps="full")
    source = exchange.case
    assert case.grid.shape == source.grid.shape
    assert np.allclose(case.grid.spacing_mm, source.grid.spacing_mm, atol=1e-6)
    # OpenKBP's grid is centred on (0, 0, 0) mm; the CT series puts it there
    assert np.allclose(case.grid.origin_mm, [-(n - 1) / 2 * s for n, s in zip(SHAPE, case.grid.spacing_mm)], atol=1e-3)
    assert np.array_equal(case.ct_hu, source.ct_hu)
    # every voxel slice is drawn as its own contour plane: with full end caps the masks come back exactly
    assert set(case.structures) == set(source.structures)
    for name, s in source.structures.items():
        assert np.array_equal(case.structures[name].mask, s.mask), name
    scaling = float(pydicom.dcmread(exchange.rtdose).DoseGridScaling)
    got, want = case.prior_dose_gy.astype(np.float64), source.prior_dose_gy.astype(np.float64)
    tolerance = scaling / 2 + np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(got - want) <= tolerance)
    assert float(want.max()) > 70.0
    # raw OpenKBP rows: index -> (i0 rows -> +y, i1 columns -> +x, i2 slices -> -z)
    table = np.loadtxt(patient_dir / "dose.csv", delimiter=",", skiprows=1, ndmin=2)
    i0, i1, i2 = np.unravel_index(table[:, 0].astype(np.int64), SHAPE)
    raw = table[:, 1]
    at = case.prior_dose_gy[SHAPE[2] - 1 - i2, i0, i1].astype(np.float64)
    assert np.max(np.abs(at - raw)) <= scaling / 2 + np.spacing(np.float32(raw.max()))
    # and nowhere else: unlisted voxels stay below half a quantum (trilinear weights of exactly 0 or 1
    # at the same voxel centres leave at most rounding residues there)
    assert np.count_nonzero(case.prior_dose_gy > scaling / 2) == np.count_nonzero(raw)


def test_every_result_file_and_a_complete_status(run):
    result = run["result"]
    files = sorted(str(p.relative_to(result)) for p in result.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert files == RESULT_FILES
    status = run["status"]
    assert status["state"] == "complete" and status["files"] == RESULT_FILES and status["key"] is None
    verdict = run["plan"]["verdict"]
    assert status["verdict"] == verdict and status["exit_code"] == run["code"]
    assert run["code"] == {"fail": 3, "incomplete": 4}.get(verdict, 0)
    assert status["tps"] == REQUEST["tps"]
    # the undeclared lines are all evaluated: the absent organs are exactly the declared ones
    assert sorted(run["plan"]["absent_structures"]) == sorted(NOT_IN_OPENKBP)
    schema = json.loads(resources.files("reirrad_opt.tps").joinpath("tps_goals_schema.json").read_text())
    jsonschema.validate(run["goals"], schema)
    for name in ("RD_new_course_physical.dcm", "RD_cumulative_EQD2.dcm", "RD_new_course_cap.dcm"):
        ds = pydicom.dcmread(result / "dicom" / name)
        assert ds.Modality == "RTDOSE" and float(ds.DoseGridScaling) > 0
    assert "<html" in (result / "report.html").read_text(encoding="utf-8").lower()


def test_goals_carry_the_roi_names_as_written_in_the_rtstruct(run, exchange):
    goals = {g["line_id"]: g for g in run["goals"]["goals"]}
    assert set(goals) == {"Brainstem_D0.03cc", "SpinalCord_D0.03cc", "rGTV_D98%", "PTV_D98%", "PTV_V107%"}
    assert goals["Brainstem_D0.03cc"]["roi_name"] == "BrainStem"
    assert goals["SpinalCord_D0.03cc"]["roi_name"] == "Spinal Cord"
    assert goals["rGTV_D98%"]["roi_name"] == "GTV_recur"          # the TPS's recurrence contour, not generated
    written = {roi.name for roi in read_structure_set(exchange.rtstruct).rois}
    generated = {roi.name for roi in read_structure_set(run["result"] / "dicom" / "RS_new_course_targets.dcm").rois}
    for g in goals.values():
        assert g["roi_name"] in (generated if g["roi_generated"] else written), g
    assert [g["line_id"] for g in goals.values() if g["roi_generated"]] == ["PTV_D98%", "PTV_V107%"]
    unmapped = {u["canonical_name"] for u in run["goals"]["unmapped"]}
    assert unmapped == set(NOT_IN_OPENKBP)


def test_goal_values_are_the_plan_evaluation_in_cgy(run):
    """Each goal's achieved value is plan.json's: the evaluation row's value x 100 (cGy) for a
    new-course line; for a cumulative line (whose row holds the cumulative EQD2) the new-course
    physical D0.03cc of the evaluation's reporting block x 100; V107% in percent as in the row."""
    plan = run["plan"]
    rows = {r["goal_id"]: r for r in plan["evaluation"]}
    for g in run["goals"]["goals"]:
        row = rows[g["line_id"]]
        assert g["verdict"] == row["verdict"]
        if g["goal_type"] == "volume_at_dose":
            assert row["unit"] == "%" and g["achieved_pct"] == pytest.approx(row["value"], abs=1e-3)
        elif row["cumulative"]:
            reported = plan["reporting"]["per_structure"][row["structure"]]["new_physical"]["D0.03cc_gy"]
            assert g["achieved_cgy"] == pytest.approx(reported * 100, abs=0.02)
            assert g["level_basis"] == "cumulative_cap_min" and g["achieved_cgy"] <= g["level_cgy"] + 0.02
        else:
            assert row["unit"] == "Gy" and g["achieved_cgy"] == pytest.approx(row["value"] * 100, abs=0.006)
    # bid-1.2: 54 x 1.2 Gy = 64.8 Gy; the rGTV line asks for 98 % of it, in cGy
    rgtv = next(g for g in run["goals"]["goals"] if g["line_id"] == "rGTV_D98%")
    assert rgtv["level_cgy"] == pytest.approx(0.98 * 6480, abs=0.01) == rows["rGTV_D98%"]["desirable"] * 100


def test_the_planned_case_carries_the_openkbp_prior_dose(run, exchange):
    """On the 6 mm case grid of the run the prior dose is the OpenKBP dose interpolated trilinearly
    (scipy here, the importer's own resampling there) within the RTDOSE's scaling."""
    case = load_case_folder(run["result"])
    assert case.grid.spacing_mm == (6.0, 6.0, 6.0)
    src = exchange.case
    interp = RegularGridInterpolator(src.grid.axis_coordinates_mm(), src.prior_dose_gy.astype(np.float64),
                                     bounds_error=False, fill_value=None)
    z, y, x = np.meshgrid(*case.grid.axis_coordinates_mm(), indexing="ij")
    want = interp(np.column_stack([z.ravel(), y.ravel(), x.ravel()])).reshape(case.grid.shape)
    assert np.max(np.abs(case.prior_dose_gy.astype(np.float64) - want)) < 1e-4
    assert float(case.prior_dose_gy.max()) > 65.0


@pytest.mark.parametrize("roi, hint", [("Spinal_Cord", ""), ("Brainstem", " (did you mean 'BrainStem'?")])
def test_a_roi_map_name_not_in_the_rtstruct_is_a_named_error(exchange, tmp_path, roi, hint):
    folder = tmp_path / "ex"
    (folder / "dicom").mkdir(parents=True)
    for p in (exchange.folder / "dicom").iterdir():
        (folder / "dicom" / p.name).symlink_to(p.resolve())
    request = dict(REQUEST, roi_map={**ROI_MAP, roi: "SpinalCord" if roi == "Spinal_Cord" else "Brainstem"})
    if roi == "Spinal_Cord":
        del request["roi_map"]["Spinal Cord"]
    else:
        del request["roi_map"]["BrainStem"]
    (folder / "request.json").write_text(json.dumps(request))
    assert cli_main(["tps-run", str(folder), "--quiet"]) == 2
    status = json.loads((folder / "result" / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 2 and status["key"] == f"roi_map[{roi!r}]"
    assert f"no ROI named {roi!r} in the RTSTRUCT{hint}" in status["message"]
    assert "'Spinal Cord'" in status["message"] and "'BrainStem'" in status["message"]   # its ROIs are listed
    assert sorted(p.name for p in (folder / "result").iterdir() if not p.name.startswith(".")) == ["status.json"]
