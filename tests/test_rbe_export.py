"""DICOM export of a particle plan: the new course's RTDOSE is DoseType EFFECTIVE (Gy(RBE)) with the
constant RBE in its DoseComment; a photon plan's stays PHYSICAL; the cumulative EQD2 says Gy(RBE).

The synthetic tests export a hand-made plan folder on the small DICOM series of
test_dicom_synthetic; the real-data test plans protons end to end on the RayStation pelvis."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from conftest import require
from reirrad_opt.case import save_case
from reirrad_opt.cli import main as cli_main
from reirrad_opt.geometry import Structure
from test_dicom_synthetic import box, write_ct, write_rtdose, write_rtplan, write_rtstruct
from tps_adapters.dicom import ExportError, export_plan, load_case
from tps_adapters.dicom.export import DOSE_COMMENT_MAX, NEW_COURSE_FILE, NEW_COURSE_RBE_FILE

PELVIS = "raystation_alderson_pelvis_pydosert"
PROTON_DOSE = {"quantity": "RBE-weighted", "unit": "Gy(RBE)", "rbe": 1.1, "rbe_model": "constant"}


def _plan_folder(tmp_path: Path, dose: dict | None) -> tuple[Path, Path, np.ndarray]:
    """A DICOM reference folder and a plan folder (case, dose.npz, plan.json with ``dose``)."""
    ref = tmp_path / "ref"
    ref.mkdir(parents=True)
    write_ct(ref)
    write_rtstruct(ref, {"BODY": [(z, box(-6.5, -7.5, 5.5, 6.5)) for z in (-4, -2, 0, 2, 4, 6)]},
                   types={"BODY": "EXTERNAL"})
    _, uid = write_rtplan(ref)
    write_rtdose(ref, plan_uid=uid)
    case = load_case(ref, interval_months=12)
    inner = np.zeros(case.grid.shape, dtype=bool)
    inner[1:-1, 2:-2, 2:-2] = True
    case.structures["rCTV"] = Structure("rCTV", inner, "target")
    case.structures["PTV"] = Structure("PTV", inner | np.roll(inner, 1, axis=2), "target")
    new = np.where(case.structures["PTV"].mask, 33.0, 2.5).astype(np.float32)
    plan_dir = tmp_path / "plan"

    def extra(folder: Path) -> None:
        np.savez_compressed(folder / "dose.npz", new_course_gy=new, new_course_eqd2_gy=new,
                            cumulative_eqd2_gy=(new * 1.2).astype(np.float32))
        meta = {"reporting": {"alpha_beta_gy": {"BODY": 3.0}, "recovery_model": "none"}}
        if dose is not None:
            meta["dose"] = dose
        (folder / "plan.json").write_text(json.dumps(meta))

    save_case(case, plan_dir, extra=extra)
    return plan_dir, ref, new


def test_proton_plan_exports_an_effective_dose_with_its_rbe(tmp_path):
    plan_dir, ref, new = _plan_folder(tmp_path, PROTON_DOSE)
    files = export_plan(plan_dir, ref, tmp_path / "out")
    assert files[0].name == NEW_COURSE_RBE_FILE
    rd = pydicom.dcmread(files[0])
    assert rd.DoseType == "EFFECTIVE" and rd.DoseUnits == "GY"
    assert "Gy(RBE)" in rd.DoseComment and "RBE 1.1" in rd.DoseComment and len(rd.DoseComment) <= DOSE_COMMENT_MAX
    assert float(rd.pixel_array.max()) * float(rd.DoseGridScaling) == pytest.approx(33.0, abs=1e-6)
    eq = pydicom.dcmread(files[1])
    assert eq.DoseType == "EFFECTIVE" and eq.DoseComment.startswith("EQD2 Gy(RBE)")
    assert eq.ImageComments.startswith("EQD2 Gy(RBE) cumulative")


def test_photon_plan_and_old_plan_json_export_physical(tmp_path):
    for i, dose in enumerate(({"quantity": "physical", "unit": "Gy", "rbe": 1.0, "rbe_model": "none"}, None)):
        plan_dir, ref, _ = _plan_folder(tmp_path / str(i), dose)
        files = export_plan(plan_dir, ref, tmp_path / str(i) / "out")
        assert files[0].name == NEW_COURSE_FILE
        assert pydicom.dcmread(files[0]).DoseType == "PHYSICAL"
        assert "RBE" not in pydicom.dcmread(files[1]).DoseComment


def test_unknown_dose_object_is_refused(tmp_path):
    plan_dir, ref, _ = _plan_folder(tmp_path, {"quantity": "RBE-weighted", "unit": "Gy"})
    with pytest.raises(ExportError, match="'dose' is"):
        export_plan(plan_dir, ref, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.realdata
def test_proton_plan_on_a_dicom_case_exports_gy_rbe(realdata, tmp_path):
    """import-dicom (6 mm, synthetic recurrence next to the rectum) -> plan --modality proton ->
    dicom/RD_new_course_RBE.dcm: DoseType EFFECTIVE, RBE 1.1 in the comment, the plan's Gy(RBE)."""
    case_dir, plan_dir = tmp_path / "case", tmp_path / "plan"
    assert cli_main(["import-dicom", str(require(realdata / PELVIS)), "--interval-months", "24", "--voxel-mm", "6",
                     "--recurrence-near", "Rectum", "--out", str(case_dir)]) == 0
    # the NPC protocol's head-and-neck organs are not in a pelvis: declared absent, the rGTV decides
    rc = cli_main(["plan", "--case", str(case_dir), "--modality", "proton", "--spot-spacing-mm", "8", "--quiet",
                   "--absent", "Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R",
                   "--out", str(plan_dir)])
    meta = json.loads((plan_dir / "plan.json").read_text())
    assert meta["verdict"] != "incomplete" and rc == (3 if meta["verdict"] == "fail" else 0)
    assert meta["dose"] == PROTON_DOSE
    rd = pydicom.dcmread(require(plan_dir / "dicom" / NEW_COURSE_RBE_FILE))
    assert rd.DoseType == "EFFECTIVE" and "constant RBE 1.1" in rd.DoseComment
    new = np.load(plan_dir / "dose.npz")["new_course_gy"]
    assert float(rd.pixel_array.max()) * float(rd.DoseGridScaling) == pytest.approx(float(new.max()), rel=1e-6)
    assert not (plan_dir / "dicom" / NEW_COURSE_FILE).exists()
