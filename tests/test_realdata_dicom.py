"""DICOM-RT import on real TPS exports, checked against values the TPSs (or independent tools) report.

Oracles:
* RayStation pelvis: PTV mean 60.1 Gy and D98 58.3 Gy of the PLAN dose (the TPS's plan report for
  this 60 Gy / 20 fx VMAT plan); BEAM and PLAN doses of the single-arc plan agree.
* dicompyler-core example: Heart 440.23 cc and mean 0.6475 Gy (dicompyler-core's own test values).
* Eclipse prostate: mean doses from Eclipse's exported cumulative DVH table.
* RayStation proton set: the two BEAM doses sum to the PLAN dose within 5e-5 Gy (stated with the data).
"""
from __future__ import annotations

import csv
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import require
from reirrad_opt.case import load_case as load_case_folder
from reirrad_opt.cli import main as cli_main
from tps_adapters.dicom import (MissingDataError, MixedInputError, UnsupportedDoseError, load_case, read_ct_series,
                                read_rtdose, read_rtplan, read_structure_set, rasterize_roi)
from tps_adapters.dicom.nrrd import read_nrrd
from tps_adapters.dicom.rtdose import check_embedded_dvhs

pytestmark = pytest.mark.realdata

PELVIS = "raystation_alderson_pelvis_pydosert"
BREAST = "dicompyler_core_example"
ECLIPSE = "slicerrt_eclipse_prostate_phantom_partial"
PROTON = "raystation_proton_waterphantom_aptg"
MIM = "mim_ge_phantom_rtutils"


def _files(folder: Path, pattern: str) -> list[Path]:
    found = sorted(folder.glob(pattern))
    if not found:
        pytest.fail(f"real-data file missing: {folder}/{pattern}")
    return found


@pytest.fixture(scope="module")
def pelvis(realdata):
    folder = require(realdata / PELVIS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean export must import without any warning
        return load_case(folder, interval_months=24)


def test_pelvis_full_import(pelvis, realdata):
    case = pelvis
    assert case.grid.shape == (160, 512, 512)
    assert case.grid.spacing_mm == pytest.approx((2.0, 0.7421875, 0.7421875))
    assert case.grid.origin_mm[0] == pytest.approx(-674.0)  # MANIFEST: CT z range -674 .. -356 mm
    assert set(case.structures) == {"External", "PTV", "Bladder", "Rectum", "Femur_Head_L", "Femur_Head_R"}
    assert case["External"].role == "external" and case["PTV"].role == "target"
    assert (case.prior.n_fractions, case.prior.prescription_gy, case.prior.modality) == (20, 60.0, "photon")
    src = case.source
    ct_files = _files(realdata / PELVIS / "CT", "*.dcm")
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in ct_files]
    by_z = sorted(headers, key=lambda d: float(d.ImagePositionPatient[2]))
    assert src["ct_sop_instance_uids"] == [d.SOPInstanceUID for d in by_z]
    assert src["study_instance_uid"] == by_z[0].StudyInstanceUID
    assert src["frame_of_reference_uid"] == by_z[0].FrameOfReferenceUID
    assert src["ct_series_instance_uid"] == by_z[0].SeriesInstanceUID
    rs = pydicom.dcmread(_files(realdata / PELVIS / "RS", "*.dcm")[0], stop_before_pixels=True)
    assert src["structure_set_sop_instance_uid"] == rs.SOPInstanceUID
    assert src["reference_dir"] == str((realdata / PELVIS).resolve()) and src["patient_id"] == "TRAINING02"
    assert src["dose_summation_type"] == "PLAN" and src["patient_position"] == "HFS"
    # HU: air outside the phantom, tissue-equivalent material inside the PTV
    assert case.ct_hu[80, 0, 0] < -900
    assert -150 < float(np.median(case.ct_hu[case["PTV"].mask])) < 150


def test_pelvis_ptv_dose_matches_the_tps(pelvis):
    from reirrad_opt.evaluate import metric_value

    dose, ptv = pelvis.prior_dose_gy, pelvis["PTV"].mask
    mean = float(dose[ptv].mean())
    d98 = metric_value("D98%", dose, ptv, pelvis.grid, fine=False).value
    assert mean == pytest.approx(60.1, abs=0.3)
    assert d98 == pytest.approx(58.3, abs=0.4)
    assert float(np.percentile(dose[ptv], 2)) == pytest.approx(58.3, abs=0.4)  # plain-numpy cross-check


def test_pelvis_beam_and_plan_doses_agree(realdata):
    doses = [read_rtdose(f) for f in _files(realdata / PELVIS / "RD", "*.dcm")]
    plan = next(d for d in doses if d.summation_type == "PLAN")
    beams = [d for d in doses if d.summation_type == "BEAM"]
    rp = read_rtplan(_files(realdata / PELVIS / "RP", "*.dcm")[0])
    assert rp.treatment_beams == [1] and [b.referenced_beams for b in beams] == [[1]]  # one arc (+3 setup beams)
    assert plan.same_geometry(beams[0])
    assert np.max(np.abs(sum(b.values for b in beams) - plan.values)) <= plan.scaling
    assert plan.max_value == pytest.approx(61.359162228, abs=plan.scaling)  # MANIFEST max_dose


def test_cli_import_writes_the_case_folder(realdata, tmp_path, capsys):
    out = tmp_path / "case"
    rc = cli_main(["import-dicom", str(realdata / PELVIS), "--interval-months", "30", "--voxel-mm", "2", "3", "3",
                   "--out", str(out)])
    assert rc == 0
    case = load_case_folder(out)
    assert case.grid.spacing_mm == (2.0, 3.0, 3.0) and case.prior.interval_months == 30.0
    assert case.source["kind"] == "dicom" and len(case.source["ct_sop_instance_uids"]) == 160
    assert float(case.prior_dose_gy[case["PTV"].mask].mean()) == pytest.approx(60.1, abs=0.5)
    assert "prior course: 60 Gy in 20 fx" in capsys.readouterr().out


def test_cli_import_without_interval_fails_and_writes_nothing(realdata, tmp_path, capsys):
    out = tmp_path / "case"
    assert cli_main(["import-dicom", str(realdata / PELVIS), "--out", str(out)]) == 2
    assert "--interval-months" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- dicompyler-core breast example

def test_breast_heart_volume_and_mean_match_dicompyler(realdata):
    folder = require(realdata / BREAST)
    # dicompyler-core counts whole slabs at the end planes (end_caps='full'); the default half caps
    # against the TPS's own DVHs: tests/test_rasterize_tps_volumes.py
    case = load_case(folder, interval_months=12, grid="dose", assume_hu=-1000, end_caps="full")
    heart = case["Heart"]
    assert heart.volume_cc(case.grid) == pytest.approx(440.23, rel=0.01)
    mean = float(case.prior_dose_gy[heart.mask].mean())
    assert mean == pytest.approx(0.6475, rel=0.02)
    assert (case.prior.n_fractions, case.prior.prescription_gy) == (7, 14.0)
    assert case.source["empty_rois"] == ["Areola"]


def test_breast_embedded_dvhs_are_not_trusted_as_gy(realdata):
    dose = read_rtdose(require(realdata / BREAST / "rtdose.dcm"))
    assert len(dose.embedded_dvhs) == 9
    heart_dvh = next(d for d in dose.embedded_dvhs if d.roi_number == 5)
    # the file says GY but the value is percent of 14 Gy: 4.625 % x 14 Gy = 0.6475 Gy
    assert heart_dvh.declared_units == "GY" and heart_dvh.mean_dose == pytest.approx(4.6254, abs=1e-3)
    statement = check_embedded_dvhs(dose)
    assert "ignored" in statement and "not in the grid's units" in statement


# ---------------------------------------------------------------- Eclipse prostate (NRRD dose)

def _eclipse_table(path: Path) -> dict[str, tuple[float, float]]:
    """{structure: (volume cc, mean dose Gy)} from Eclipse's cumulative DVH export (% volume)."""
    rows = list(csv.reader(path.open()))
    header, body = rows[0], rows[1:]
    out = {}
    for c in range(0, len(header) - 1, 2):
        if "_DvhArray Dose" not in header[c]:
            continue
        name = header[c].split("_DvhArray")[0]
        volume = float(re.search(r"of ([0-9.]+) cc", header[c + 1]).group(1))
        pairs = [(float(r[c]), float(r[c + 1])) for r in body if len(r) > c + 1 and r[c] and r[c + 1]]
        d, v = np.array(pairs).T
        out[name] = (volume, float(np.trapezoid(v / 100.0, d)))  # mean = integral of the cumulative DVH
    return out


@pytest.mark.parametrize("roi,key", [("PTV", "PTV"), ("Bladder", "Bladder"), ("Rectum", "Rectum")])
def test_eclipse_mean_doses_match_eclipse_dvh_table(realdata, roi, key):
    base = require(realdata / ECLIPSE)
    data = base / "from_SlicerRT_TestingData"
    dose, grid = read_nrrd(require(data / "EclipseProstate_Dose.nrrd"))
    ss = read_structure_set(_files(base, "RS.*.dcm")[0])
    table = _eclipse_table(require(data / "EclipseProstate_DvhTable_Eclipse.csv"))
    r = rasterize_roi(ss.roi(roi), grid)
    assert r.fraction_outside == 0.0
    volume, eclipse_mean = table[key]
    assert float(dose[r.mask].mean()) == pytest.approx(eclipse_mean, rel=0.01)
    assert r.volume_cc == pytest.approx(volume, rel=0.02)


def test_eclipse_structure_set_reports_empty_rois(realdata):
    ss = read_structure_set(_files(require(realdata / ECLIPSE), "RS.*.dcm")[0])
    assert len(ss.rois) == 16
    assert sorted(r.name for r in ss.rois if r.is_empty) == sorted(
        ["CTV", "PROS", "Vessels - left", "Vessels - right", "X1", "X2", "X3", "XApprox", "optBladder", "optRectum"])
    plan = read_rtplan(_files(realdata / ECLIPSE, "RP.*.dcm")[0])
    assert (plan.n_fractions, plan.prescription_gy, plan.modality) == (23, 46.0, "photon")


# ---------------------------------------------------------------- RayStation proton (RT Ion Plan, EFFECTIVE)

def test_proton_beam_doses_sum_to_plan_dose(realdata):
    doses = [read_rtdose(f) for f in _files(require(realdata / PROTON), "RD*.dcm")]
    plan = next(d for d in doses if d.summation_type == "PLAN")
    beams = [d for d in doses if d.summation_type == "BEAM"]
    assert len(beams) == 2 and sorted(n for b in beams for n in b.referenced_beams) == [1, 2]
    assert {d.dose_type for d in doses} == {"EFFECTIVE"}
    assert np.max(np.abs(beams[0].values + beams[1].values - plan.values)) <= 5e-5 + plan.scaling


def test_proton_ion_plan_and_mixed_patient_folder(realdata):
    folder = require(realdata / PROTON)
    plan = read_rtplan(require(folder / "ramped_2Gy_ver2_full.dcm"))
    assert plan.is_ion and plan.modality == "proton" and plan.n_fractions == 1 and plan.treatment_beams == [1, 2]
    assert plan.prescription_gy is None  # no target prescription in this (edited) plan
    # the edited RT Ion Plan carries another Patient ID than the RayStation RTSTRUCT/RTDOSE: refused
    with pytest.raises(MixedInputError, match="test_LET_ramp"):
        load_case(folder, interval_months=12, grid="dose", assume_hu=0)


def test_proton_effective_dose_import(realdata, tmp_path):
    folder = require(realdata / PROTON)
    for f in _files(folder, "R[SD]*.dcm"):
        os.symlink(f, tmp_path / f.name)
    with pytest.raises(UnsupportedDoseError, match="EFFECTIVE"):
        load_case(tmp_path, interval_months=12, prior_fractions=1, grid="dose", assume_hu=0)
    case = load_case(tmp_path, interval_months=12, prior_fractions=1, prior_modality="proton", grid="dose", assume_hu=0)
    assert case.prior.modality == "proton" and case.source["dose_type"] == "EFFECTIVE"
    assert any("RBE" in n for n in case.source["notes"])
    cube = case["Cube101010"]
    assert cube.role == "target"
    # RayStation's 10 cm cube: a 10 x 10 cm square on 21 planes 5 mm apart, 100 mm from first to
    # last; with the default half end caps it ends at those planes: 1000 cc (full slabs: 1050 cc)
    assert cube.volume_cc(case.grid) == pytest.approx(1000.0, rel=0.015)
    assert float(case.prior_dose_gy[cube.mask].mean()) == pytest.approx(2.0, rel=0.05)  # a 2 Gy(RBE) plan


# ---------------------------------------------------------------- MIM structure set on GE CT

def test_mim_structure_set_on_ge_ct(realdata):
    folder = require(realdata / MIM)
    ss = read_structure_set(require(folder / "rt.dcm"))
    assert [r.name for r in ss.rois] == ["ROI-1", "ROI-2", "ROI-3", "ROI-4"]
    assert all(r.n_contours == 3 for r in ss.rois)
    ct = read_ct_series(_files(folder, "2.*.dcm"))
    assert ct.grid.shape == (5, 512, 512) and ct.grid.spacing_mm[0] == pytest.approx(5.0)
    assert ct.hu[2, 0, 0] < -900  # air in the corner
    for roi in ss.rois:
        r = rasterize_roi(roi, ct.grid)
        assert r.fraction_outside == 0.0 and r.mask.any()
        assert list(np.flatnonzero(r.mask.any(axis=(1, 2)))) == [0, 1, 2]  # planes z = 60, 65, 70 mm
    with pytest.raises(MissingDataError, match="no RTDOSE.*only with --allow-missing-dose"):
        load_case(folder, interval_months=12, prior_fractions=30)
    case = load_case(folder, interval_months=12, prior_fractions=30, allow_missing_dose=True)
    assert set(case.structures) == {"ROI-1", "ROI-2", "ROI-3", "ROI-4"} and case.prior_dose_gy.max() == 0.0
