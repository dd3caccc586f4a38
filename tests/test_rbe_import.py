"""The prior course's dose type at import: DoseType PHYSICAL / EFFECTIVE, the modality of the RT (Ion)
Plan, and the constant RBE that brings a PHYSICAL particle dose to Gy(RBE).

Synthetic folders use the analytic dose field of test_dicom_synthetic (so the expected prior dose
is known exactly); the real-data tests read the RayStation proton (EFFECTIVE) and pelvis (PHYSICAL)
exports."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import require
from reirrad_opt.case import CaseFormatError, PriorCourse, load_case as load_case_folder, save_case
from reirrad_opt.cli import main as cli_main
from reirrad_opt.rbe import RBE_ALREADY_APPLIED
from test_dicom_synthetic import check_ct_and_dose, write_ct, write_rtdose, write_rtplan
from tps_adapters.dicom import PriorCourseError, UnsupportedDoseError, load_case

PROTON = "raystation_proton_waterphantom_aptg"
PELVIS = "raystation_alderson_pelvis_pydosert"


def _folder(tmp_path: Path, *, radiation: str | None, dose_type: str = "PHYSICAL", atomic_number: int | None = None):
    """CT + RTDOSE (+ an RT (Ion) Plan of ``radiation``, 30 fx) in ``tmp_path``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_ct(tmp_path)
    uid = ""
    if radiation is not None:
        path, uid = write_rtplan(tmp_path, ion=radiation != "PHOTON", radiation=radiation)
        if atomic_number is not None:
            ds = pydicom.dcmread(path)
            for beam in ds.IonBeamSequence:
                beam.RadiationAtomicNumber = atomic_number
            ds.save_as(path, enforce_file_format=True)
    write_rtdose(tmp_path, dose_type=dose_type, plan_uid=uid)
    return tmp_path


def test_photon_prior_is_gy_with_rbe_one(tmp_path):
    case = load_case(_folder(tmp_path, radiation="PHOTON"), interval_months=6)
    assert (case.prior.modality, case.prior.dose_type, case.prior.rbe) == ("photon", "PHYSICAL", 1.0)
    check_ct_and_dose(case, 1.0)
    with pytest.raises(PriorCourseError, match="--prior-rbe 1.1 given for a photon"):
        load_case(tmp_path, interval_months=6, prior_rbe=1.1)


def test_physical_proton_prior_is_multiplied_by_its_rbe(tmp_path):
    folder = _folder(tmp_path, radiation="PROTON")
    case = load_case(folder, interval_months=6)
    assert (case.prior.modality, case.prior.dose_type, case.prior.rbe) == ("proton", "PHYSICAL", 1.1)
    check_ct_and_dose(case, 1.1)   # the analytic physical dose x 1.1
    assert any("multiplied by a constant RBE of 1.1" in n for n in case.source["notes"])
    case = load_case(folder, interval_months=6, prior_rbe=1.25)
    assert case.prior.rbe == 1.25 and any("--prior-rbe" in n for n in case.source["notes"])
    check_ct_and_dose(case, 1.25)
    with pytest.raises(ValueError, match="outside 0.5-5"):
        load_case(folder, interval_months=6, prior_rbe=7.0)


def test_physical_carbon_prior_needs_an_explicit_rbe(tmp_path):
    folder = _folder(tmp_path, radiation="ION", atomic_number=6)
    with pytest.raises(PriorCourseError, match=r"PHYSICAL carbon dose.*--prior-rbe"):
        load_case(folder, interval_months=6)
    case = load_case(folder, interval_months=6, prior_rbe=3.0)
    assert (case.prior.modality, case.prior.rbe) == ("carbon", 3.0)
    check_ct_and_dose(case, 3.0)


def test_effective_prior_is_taken_as_is(tmp_path):
    folder = _folder(tmp_path, radiation="PROTON", dose_type="EFFECTIVE")
    case = load_case(folder, interval_months=6)
    assert (case.prior.dose_type, case.prior.rbe) == ("EFFECTIVE", RBE_ALREADY_APPLIED)
    check_ct_and_dose(case, 1.0)
    with pytest.raises(PriorCourseError, match="second time"):
        load_case(folder, interval_months=6, prior_rbe=1.1)
    # EFFECTIVE for a photon course stays refused (it is not an RBE-weighted particle dose)
    with pytest.raises(UnsupportedDoseError, match="EFFECTIVE"):
        load_case(folder, interval_months=6, prior_modality="photon")


def test_case_json_records_the_dose_type_and_old_files_load_as_physical_photon(tmp_path):
    case = load_case(_folder(tmp_path / "dcm", radiation="PROTON"), interval_months=6)
    save_case(case, tmp_path / "case")
    meta = json.loads((tmp_path / "case" / "case.json").read_text())
    assert meta["prior_course"]["dose_type"] == "PHYSICAL" and meta["prior_course"]["rbe"] == 1.1
    back = load_case_folder(tmp_path / "case")
    assert (back.prior.dose_type, back.prior.rbe) == ("PHYSICAL", 1.1)
    np.testing.assert_array_equal(back.prior_dose_gy, case.prior_dose_gy)
    # a case.json written before dose types existed: PHYSICAL with RBE 1, and the notes say so
    del meta["prior_course"]["dose_type"], meta["prior_course"]["rbe"]
    meta["prior_course"]["modality"] = "photon"
    (tmp_path / "case" / "case.json").write_text(json.dumps(meta))
    old = load_case_folder(tmp_path / "case")
    assert (old.prior.dose_type, old.prior.rbe) == ("PHYSICAL", 1.0)
    assert any("records no dose type" in n for n in old.source["notes"])
    meta["prior_course"]["dose_type"] = "BIOLOGICAL"
    (tmp_path / "case" / "case.json").write_text(json.dumps(meta))
    with pytest.raises(CaseFormatError, match="dose_type must be 'PHYSICAL' or 'EFFECTIVE'"):
        load_case_folder(tmp_path / "case")


def test_prior_course_validation():
    with pytest.raises(ValueError, match="photon dose has RBE 1"):
        PriorCourse(30, 12, modality="photon", rbe=1.1)
    with pytest.raises(ValueError, match="already applied"):
        PriorCourse(30, 12, modality="proton", dose_type="EFFECTIVE", rbe=1.1)
    with pytest.raises(ValueError, match="as a number"):
        PriorCourse(30, 12, modality="proton", rbe=RBE_ALREADY_APPLIED)
    assert PriorCourse(30, 12, modality="proton", dose_type="EFFECTIVE", rbe=RBE_ALREADY_APPLIED).rbe_factor == 1.0


def test_cli_import_dicom_prior_rbe(tmp_path, capsys):
    folder = _folder(tmp_path / "dcm", radiation="ION", atomic_number=6)
    assert cli_main(["import-dicom", str(folder), "--interval-months", "6", "--out", str(tmp_path / "c1")]) == 2
    assert "--prior-rbe" in capsys.readouterr().err
    assert cli_main(["import-dicom", str(folder), "--interval-months", "6", "--prior-rbe", "2.5",
                     "--out", str(tmp_path / "c2")]) == 0
    assert load_case_folder(tmp_path / "c2").prior.rbe == 2.5


# ------------------------------------------------------------------------------------ real data

@pytest.mark.realdata
def test_raystation_proton_rtdose_is_effective(realdata, tmp_path):
    folder = require(realdata / PROTON)
    for f in sorted(folder.rglob("R[SD]*.dcm")):
        os.symlink(f, tmp_path / f.name)
    case = load_case(tmp_path, interval_months=12, prior_fractions=1, prior_modality="proton", grid="dose",
                     assume_hu=0)
    assert (case.prior.modality, case.prior.dose_type, case.prior.rbe) == ("proton", "EFFECTIVE", RBE_ALREADY_APPLIED)
    # a 2 Gy(RBE) plan: taken as is, not multiplied by 1.1 again
    assert float(case.prior_dose_gy[case["Cube101010"].mask].mean()) == pytest.approx(2.0, rel=0.05)


@pytest.mark.realdata
def test_raystation_pelvis_rtdose_is_physical_and_scaled_as_a_particle_dose(realdata):
    folder = require(realdata / PELVIS)
    photon = load_case(folder, interval_months=24, voxel_mm=6.0)
    assert pydicom.dcmread(require(folder / photon.source["rtdose_files"][0]), stop_before_pixels=True).DoseType \
        == "PHYSICAL"
    assert (photon.prior.modality, photon.prior.dose_type, photon.prior.rbe) == ("photon", "PHYSICAL", 1.0)
    # the same PHYSICAL dose declared a proton course: x 1.1 voxel by voxel
    proton = load_case(folder, interval_months=24, voxel_mm=6.0, prior_modality="proton")
    assert (proton.prior.modality, proton.prior.rbe) == ("proton", 1.1)
    np.testing.assert_allclose(proton.prior_dose_gy, 1.1 * photon.prior_dose_gy, rtol=1e-6, atol=1e-6)
    assert float(photon.prior_dose_gy.max()) > 60.0   # a 60 Gy plan: the scaled values are real doses
