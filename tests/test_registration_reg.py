"""Two-CT import with DICOM Spatial Registration objects and the named refusals (real data: the
RayStation pelvis as the prior course; the "new" CT is written by the tests, see registration_data)."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

from registration_data import PELVIS, known_truth_case, write_new_course, write_reg  # noqa: F401 (fixture)
from reirrad_opt.case import load_case as load_case_folder
from reirrad_opt.cli import main as cli_main
from tps_adapters.dicom import MixedInputError, PriorCourseError, scan_folder
from tps_adapters.dicom.two_ct import load_two_ct_case
from tps_adapters.registration import RegistrationError, affine_transform

pytestmark = pytest.mark.realdata


def _linked_copy(src: Path, dst: Path) -> Path:
    """``dst`` holding symbolic links to every file of ``src`` (the data stay where they are)."""
    for f in src.rglob("*"):
        if f.is_file():
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, target)
    return dst


@pytest.fixture(scope="module")
def with_reg(known_truth_case, tmp_path_factory):
    """The new folder plus a REG linking its frame to the prior frame (the known transform)."""
    folder = _linked_copy(known_truth_case.new_dir, tmp_path_factory.mktemp("new_with_reg"))
    prior_frame = scan_folder(known_truth_case.prior_dir).identity()["frame_of_reference_uid"]
    write_reg(folder / "REG" / "reg.dcm", known_truth_case.new_frame, prior_frame,
              np.linalg.inv(known_truth_case.matrix), "TRAINING02")
    return folder, prior_frame


def test_reg_in_the_folder_gives_the_transform_exactly(with_reg, known_truth_case):
    folder, prior_frame = with_reg
    result = load_two_ct_case(folder, known_truth_case.prior_dir, interval_months=24)
    reg = result.registration
    assert reg.method == "reg" and reg.source == "reg.dcm"
    assert np.allclose(reg.matrix, known_truth_case.matrix, atol=1e-6)
    m = result.case.source["prior_mapping"]
    assert m["margin_mm"] == 0.0 and m["margin_source"].startswith("default")  # no margin for a REG
    assert m["prior_frame_of_reference_uid"] == prior_frame
    assert "DICOM Spatial Registration reg.dcm" in result.case.source["registration"]


def test_reg_of_other_frames_is_refused_by_name(known_truth_case, tmp_path):
    reg = tmp_path / "wrong.dcm"
    write_reg(reg, generate_uid(), generate_uid(), np.eye(4), "TRAINING02")
    with pytest.raises(RegistrationError, match=r"wrong\.dcm: this Spatial Registration links the frames .* not the new CT"):
        load_two_ct_case(known_truth_case.new_dir, known_truth_case.prior_dir, interval_months=24,
                         registration=str(reg))


def test_prior_folder_of_another_patient_is_refused(known_truth_case, tmp_path):
    ct = known_truth_case.prior_ct
    other, _ = write_new_course(tmp_path / "other", known_truth_case.prior_dir, ct,
                                affine_transform(np.eye(4)), np.eye(4), patient_id="SOMEONE_ELSE")
    with pytest.raises(MixedInputError, match=r"Patient ID 'TRAINING02' is not the new CT's 'SOMEONE_ELSE'"):
        load_two_ct_case(other, known_truth_case.prior_dir, interval_months=24)


def test_prior_dose_without_its_ct_is_refused(known_truth_case, tmp_path):
    prior = tmp_path / "prior_no_ct"
    for sub in ("RD", "RP"):
        _linked_copy(known_truth_case.prior_dir / sub, prior / sub)
    with pytest.raises(PriorCourseError, match=r"prior_no_ct: the prior RTDOSE comes without its CT; a rigid registration"):
        load_two_ct_case(known_truth_case.new_dir, prior, interval_months=24)


def test_cli_two_ct_import_writes_the_record_and_the_qa_figure(with_reg, known_truth_case, tmp_path, capsys):
    folder, _ = with_reg
    out = tmp_path / "case"
    rc = cli_main(["import-dicom", str(folder), "--prior", str(known_truth_case.prior_dir), "--interval-months", "24",
                   "--prior-dose-margin-mm", "4", "--out", str(out)])
    assert rc == 0
    case = load_case_folder(out)
    meta = json.loads((out / "case.json").read_text())
    assert meta["source"]["prior_mapping"]["margin_mm"] == 4.0
    assert meta["source"]["prior_mapping"]["margin_source"] == "as given"
    assert "margin 4 mm (as given)" in case.source["registration"]
    png = out / "registration_qa.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert (case.prior.n_fractions, case.prior.prescription_gy) == (20, 60.0)
    # a margin can only raise a voxel's prior dose; 4 mm on 4 mm voxels reaches the 6 face neighbours
    no_margin = load_two_ct_case(folder, known_truth_case.prior_dir, interval_months=24).case.prior_dose_gy
    assert np.all(case.prior_dose_gy >= no_margin - 1e-4)
    assert float(case.prior_dose_gy.max()) == pytest.approx(float(no_margin.max()), abs=1e-3)
    assert float((case.prior_dose_gy - no_margin).max()) > 1.0
    printed = capsys.readouterr().out
    assert "DICOM Spatial Registration reg.dcm" in printed


def test_cli_refuses_an_unknown_registration_method(known_truth_case, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["import-dicom", str(known_truth_case.new_dir), "--prior", str(known_truth_case.prior_dir),
                  "--interval-months", "24", "--registration", "elastic", "--out", str(tmp_path / "c")])
    assert exc.value.code == 2 and not (tmp_path / "c").exists()
    assert "expected auto, rigid, deformable, identity or the path of a DICOM Spatial Registration" in capsys.readouterr().err


def test_one_folder_import_records_no_mapping(realdata, tmp_path):
    from tps_adapters.dicom import load_case

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        case = load_case(realdata / PELVIS, interval_months=24, voxel_mm=6)
    assert "prior_mapping" not in case.source and "registration" not in case.source


def test_plan_of_a_two_ct_case_reports_the_registration(with_reg, known_truth_case, tmp_path):
    """End to end: two-CT import with a REG (6 mm, synthetic recurrence next to the rectum) -> plan:
    plan.json's reporting block and report.html carry the registration line; the DICOM export of
    the plan refers to the new CT."""
    folder, _ = with_reg
    case_dir, plan_dir = tmp_path / "case", tmp_path / "plan"
    assert cli_main(["import-dicom", str(folder), "--prior", str(known_truth_case.prior_dir), "--interval-months", "24",
                     "--voxel-mm", "6", "--recurrence-near", "Rectum", "--out", str(case_dir), "--quiet"]) == 0
    rc = cli_main(["plan", "--case", str(case_dir), "--out", str(plan_dir), "--quiet", "--beams", "5",
                   "--bixel-mm", "10", "--absent", "Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L",
                   "OpticNrv_R"])
    doc = json.loads((plan_dir / "plan.json").read_text())
    assert rc == (3 if doc["verdict"] == "fail" else 0)
    line = doc["reporting"]["registration"]
    assert line.startswith("DICOM Spatial Registration reg.dcm") and "rotation" in line and "margin 0 mm" in line
    assert "DICOM Spatial Registration reg.dcm" in (plan_dir / "report.html").read_text()
    import pydicom

    rd = pydicom.dcmread(plan_dir / "dicom" / "RD_new_course_physical.dcm")
    assert rd.FrameOfReferenceUID == known_truth_case.new_frame


def test_one_frame_in_two_folders_maps_like_the_one_folder_import(realdata, tmp_path):
    """auto with one shared frame of reference is the identity: the prior dose on the case grid is
    the one-folder import's (same trilinear resampling of the same RTDOSE), to float precision."""
    from tps_adapters.dicom import load_case

    pelvis = realdata / PELVIS
    new = tmp_path / "new"
    for sub in ("CT", "RS"):
        _linked_copy(pelvis / sub, new / sub)
    prior = _linked_copy(pelvis, tmp_path / "prior")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        two = load_two_ct_case(new, prior, interval_months=24, voxel_mm=6)
        one = load_case(pelvis, interval_months=24, voxel_mm=6)
    assert two.registration.method == "identity"
    assert two.case.source["prior_mapping"]["margin_mm"] == 0.0
    assert two.case.grid == one.grid and set(two.case.structures) == set(one.structures)
    assert np.allclose(two.case.prior_dose_gy, one.prior_dose_gy, atol=1e-4)
    assert float(one.prior_dose_gy.max()) > 55


def test_cli_refuses_one_prior_folder_given_as_two_courses(known_truth_case, tmp_path, capsys):
    rc = cli_main(["import-dicom", str(known_truth_case.new_dir), "--prior", str(known_truth_case.prior_dir),
                   "--prior", str(known_truth_case.prior_dir), "--interval-months", "24", "--interval-months", "12",
                   "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "given twice as a prior folder (courses 1 and 2)" in err and not (tmp_path / "c").exists()
