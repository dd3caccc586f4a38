"""Import checks on a corruption corpus made from real DICOM-RT exports (see inputchecks_corpus).

One case per class at least: resource bombs, implausible prior doses (errors and the flags that
accept them, recorded in the case), CT numbers and voxel sizes, frame-of-reference and ROI-name
consistency, and messages that name the real cause.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inputchecks_corpus import edit_dicom, pelvis_export, pelvis_files, proton_export
from reirrad_opt.case import load_case as load_case_folder
from reirrad_opt.cli import main as cli_main
from reirrad_opt.plausibility import (ImplausibleInputError, OverrideRequiredError, PlausibilityBounds,
                                      ResourceLimitError)
from tps_adapters.dicom import DicomFileError, InvalidTagValueError, MissingDataError, MixedInputError, load_case
from tps_adapters.dicom.errors import DicomImportWarning, StructureNameError

pytestmark = pytest.mark.realdata


def load(folder: Path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ROIs partly outside the 26-slice grid: warned, not an error here
        return load_case(folder, interval_months=24, **kwargs)


def cli(folder: Path, out: Path, *extra: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cli_main(["import-dicom", str(folder), "--interval-months", "24", "--out", str(out), *extra])


@pytest.fixture(scope="module")
def files(realdata):
    return pelvis_files(realdata)


# --- 1. resource bombs ---------------------------------------------------------------------------

def test_ct_header_declaring_65535_squared_pixels_is_refused_before_allocation(realdata, tmp_path, capsys):
    got = pelvis_export(realdata, tmp_path / "in", copy=("ct7",))
    edit_dicom(got["ct7"], Rows=65535, Columns=65535)
    with pytest.raises(DicomFileError, match=r"65535 x 65535 at 16 bits declares 8,589,672,450 bytes") as exc:
        load(tmp_path / "in")
    assert got["ct7"].name in str(exc.value)
    assert cli(tmp_path / "in", tmp_path / "out") == 2
    assert got["ct7"].name in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_rtdose_header_larger_than_its_pixel_data_is_refused(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rd",))
    edit_dicom(got["rd"], Rows=65535, Columns=65535)
    with pytest.raises(DicomFileError, match="declares .* bytes of pixel data but the file holds") as exc:
        load(tmp_path / "in")
    assert got["rd"].name in str(exc.value)


@pytest.mark.parametrize("voxel", ["0.2", "0.01"])
def test_a_fine_voxel_size_is_refused_with_the_count_the_memory_and_the_option(realdata, tmp_path, capsys, voxel):
    pelvis_export(realdata, tmp_path / "in")
    with pytest.raises(ResourceLimitError, match="--max-voxels") as exc:
        load(tmp_path / "in", voxel_mm=float(voxel))
    message = str(exc.value)
    assert "voxels (about" in message and "GB of memory" in message and "64,000,000" in message
    assert cli(tmp_path / "in", tmp_path / "out", "--voxel-mm", voxel) == 2
    assert "--max-voxels" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_voxel_limit_is_a_setting(realdata, tmp_path):
    pelvis_export(realdata, tmp_path / "in")
    # 26 x 512 x 512 = 6,815,744 CT voxels
    with pytest.raises(ResourceLimitError, match="CT series of 26 slice.*6,815,744 voxels"):
        load(tmp_path / "in", bounds=PlausibilityBounds(max_voxels=6_000_000))
    assert load(tmp_path / "in", bounds=PlausibilityBounds(max_voxels=7_000_000)).grid.shape == (26, 512, 512)


# --- 2. implausible prior doses --------------------------------------------------------------------

def test_all_zero_rtdose_needs_accept_zero_prior_which_is_recorded(realdata, tmp_path, capsys):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rd",))
    ds = pydicom.dcmread(got["rd"])
    ds.PixelData = bytes(len(ds.PixelData))
    ds.save_as(got["rd"])
    with pytest.raises(OverrideRequiredError, match="zero everywhere") as exc:
        load(tmp_path / "in")
    assert exc.value.flag == "--accept-zero-prior" and "--accept-zero-prior" in str(exc.value)
    assert cli(tmp_path / "in", tmp_path / "refused") == 2 and not (tmp_path / "refused").exists()
    assert cli(tmp_path / "in", tmp_path / "out", "--accept-zero-prior") == 0
    assert "input accepted by explicit flag" in capsys.readouterr().out
    overrides = json.loads((tmp_path / "out" / "case.json").read_text())["source"]["input_overrides"]
    assert [o["flag"] for o in overrides] == ["--accept-zero-prior"] and "zero everywhere" in overrides[0]["reason"]
    assert load_case_folder(tmp_path / "out").source["input_overrides"] == overrides


@pytest.mark.parametrize("factor,match", [(1000.0, r"reaches 61,3\d\d\.\d Gy"), (1e30, r"reaches 6\.\d+e\+31 Gy")])
def test_dose_grid_scaling_inflated(realdata, tmp_path, factor, match):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rd",))
    scaling = float(pydicom.dcmread(got["rd"], stop_before_pixels=True).DoseGridScaling)
    edit_dicom(got["rd"], DoseGridScaling=f"{scaling * factor:.10g}"[:16])
    with pytest.raises(ImplausibleInputError, match=match) as exc:
        load(tmp_path / "in")
    assert got["rd"].name in str(exc.value) and "DoseGridScaling" in str(exc.value)


def test_dose_shifted_off_every_target_needs_accept_prior_off_target(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rd",))
    x, y, z = (float(v) for v in pydicom.dcmread(got["rd"], stop_before_pixels=True).ImagePositionPatient)
    edit_dicom(got["rd"], ImagePositionPatient=[x + 150.0, y, z])
    with pytest.raises(OverrideRequiredError, match="covers none of the contoured targets.*'PTV'") as exc:
        load(tmp_path / "in")
    assert exc.value.flag == "--accept-prior-off-target"
    case = load(tmp_path / "in", accept={"prior_off_target"})
    assert [o["flag"] for o in case.source["input_overrides"]] == ["--accept-prior-off-target"]


def test_one_of_two_beam_doses_without_the_plan_needs_accept_partial_beam_dose(realdata, tmp_path, capsys):
    proton_export(realdata, tmp_path / "in", summations=("BEAM",))
    kwargs = dict(grid="dose", assume_hu=0.0, prior_modality="proton", prior_fractions=1)
    with pytest.raises(OverrideRequiredError, match="sum of 1 BEAM dose") as exc:
        load(tmp_path / "in", **kwargs)
    assert exc.value.flag == "--accept-partial-beam-dose"
    case = load(tmp_path / "in", accept={"partial_beam_dose"}, **kwargs)
    assert [o["flag"] for o in case.source["input_overrides"]] == ["--accept-partial-beam-dose"]
    # both beams: still unverifiable without the plan, but the dose is the PLAN dose's (within 5e-5 Gy(RBE))
    proton_export(realdata, tmp_path / "both", summations=("BEAM", "BEAM2"))
    proton_export(realdata, tmp_path / "plan", summations=("PLAN",))
    both = load(tmp_path / "both", accept={"partial_beam_dose"}, **kwargs)
    plan = load(tmp_path / "plan", **kwargs)
    assert "input_overrides" not in plan.source
    assert float(np.abs(both.prior_dose_gy - plan.prior_dose_gy).max()) < 1e-4
    assert float(case.prior_dose_gy.max()) < 0.95 * float(plan.prior_dose_gy.max())


def test_prior_fractions_outside_1_to_100_are_refused(realdata, tmp_path, capsys):
    pelvis_export(realdata, tmp_path / "in")
    with pytest.raises(ImplausibleInputError, match="100000 fractions; expected 1 to 100"):
        load(tmp_path / "in", prior_fractions=100000)
    with pytest.raises(SystemExit):
        cli(tmp_path / "in", tmp_path / "out", "--prior-fractions", "0")
    assert "--prior-fractions: invalid value '0'" in capsys.readouterr().err


# --- CT numbers and voxel sizes -------------------------------------------------------------------

def test_rescale_slope_zero_is_named(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("ct4",))
    edit_dicom(got["ct4"], RescaleSlope="0")
    with pytest.raises(InvalidTagValueError, match="RescaleSlope is 0; expected a number > 0") as exc:
        load(tmp_path / "in")
    assert got["ct4"].name in str(exc.value)


def test_ct_numbers_of_1e33_are_refused_naming_the_slice(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("ct9",))
    edit_dicom(got["ct9"], RescaleIntercept="1e33")
    with pytest.raises(ImplausibleInputError, match=r"CT numbers from .*e\+33 HU") as exc:
        load(tmp_path / "in")
    assert got["ct9"].name in str(exc.value)


def test_a_few_metal_voxels_are_kept_and_stated(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("ct9",))
    ds = pydicom.dcmread(got["ct9"])
    pixels = ds.pixel_array.copy()
    pixels[200:205, 200:204] = 20000 - int(ds.RescaleIntercept)  # 20 voxels of 20000 HU
    ds.PixelData = pixels.tobytes()
    ds.BitsStored, ds.HighBit = 16, 15  # an extended-scale CT
    ds.save_as(got["ct9"])
    case = load(tmp_path / "in")
    assert float(case.ct_hu.max()) == 20000.0
    assert any("20 voxel(s) above 4000 HU" in n for n in case.source["notes"])


def test_voxel_size_of_1e200_mm_is_refused(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rd",))
    edit_dicom(got["rd"], PixelSpacing=["1e200", "1e200"])
    with pytest.raises(ImplausibleInputError, match=r"PixelSpacing: voxel size \[1e\+200, 1e\+200\] mm") as exc:
        load(tmp_path / "in")
    assert got["rd"].name in str(exc.value)


def test_single_slice_ct_with_huge_pixel_spacing(realdata, tmp_path):
    base = realdata / "dicompyler_core_example"
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("rtss.dcm", "rtplan.dcm", "rtdose.dcm"):
        (folder / name).symlink_to(base / name)
    (folder / "ct.0.dcm").write_bytes((base / "ct.0.dcm").read_bytes())
    edit_dicom(folder / "ct.0.dcm", PixelSpacing=["1e200", "1e200"])
    with pytest.raises(ImplausibleInputError, match="ct.0.dcm: PixelSpacing: voxel size"):
        load(folder)


# --- 4. consistency --------------------------------------------------------------------------------

def test_roi_in_another_frame_of_reference_is_named(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rs",))
    ds = pydicom.dcmread(got["rs"])
    ds.StructureSetROISequence[3].ReferencedFrameOfReferenceUID = "1.2.3.4.5"
    ds.save_as(got["rs"])
    with pytest.raises(MixedInputError, match=r"1 ROI\(s\) refer to another Frame of Reference .*'Rectum' \(1.2.3.4.5\)"):
        load(tmp_path / "in")


def test_roi_names_with_nul_and_escape_sequences_are_stored_safely(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rs",))
    ds = pydicom.dcmread(got["rs"])
    ds.StructureSetROISequence[3].ROIName = "Rect\x00um"
    ds.StructureSetROISequence[2].ROIName = "\x1b[31mBlad\nder"
    ds.save_as(got["rs"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        case = load_case(tmp_path / "in", interval_months=24)
    renames = [str(w.message) for w in caught if issubclass(w.category, DicomImportWarning) and "stored as" in str(w.message)]
    assert len(renames) == 2
    assert {"Rect_um", "_[31mBlad_der"} <= set(case.structures)
    text = "\n".join(case.source["notes"] + renames)
    assert "'Rect\\x00um'" in text and "'\\x1b[31mBlad\\nder'" in text
    assert "\x00" not in text and "\x1b" not in text and all("\n" not in n for n in case.source["notes"])
    assert cli(tmp_path / "in", tmp_path / "out") == 0
    back = load_case_folder(tmp_path / "out")
    assert np.array_equal(back["Rect_um"].mask, case["Rect_um"].mask) and back["Rect_um"].mask.any()


def test_two_rois_with_the_same_name_get_a_fix_that_can_work(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rs",))
    ds = pydicom.dcmread(got["rs"])
    ds.StructureSetROISequence[2].ROIName = "Rectum"  # Bladder renamed: two ROIs named 'Rectum'
    ds.save_as(got["rs"])
    with pytest.raises(StructureNameError, match="same name, so --structure-map cannot tell them apart") as exc:
        load(tmp_path / "in")
    assert "Rectum=Rectum" not in str(exc.value)
    ds.StructureSetROISequence[2].ROIName = "RECTUM"  # the alias table maps it to 'Rectum' too
    ds.save_as(got["rs"])
    with pytest.raises(StructureNameError, match="differ only in case"):
        load(tmp_path / "in")
    ds.StructureSetROISequence[2].ROIName = "Rect"
    ds.save_as(got["rs"])
    with pytest.raises(StructureNameError, match=r"--structure-map Rectum_2=Rectum\)"):
        load(tmp_path / "in", structure_map={"Rectum": "Rect"})
    case = load(tmp_path / "in", structure_map={"Rectum": "Rect", "Rectum_2": "Rectum"})  # the suggestion works
    assert {"Rectum", "Rectum_2"} <= set(case.structures)


def test_rtstruct_without_roi_contour_sequence_is_an_error(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", copy=("rs",))
    edit_dicom(got["rs"], ROIContourSequence=None)
    with pytest.raises(MissingDataError, match=r"ROIContourSequence \(3006,0039\) is missing") as exc:
        load(tmp_path / "in")
    assert got["rs"].name in str(exc.value)


def test_empty_ct_file_is_named_not_reported_as_a_missing_slice(realdata, tmp_path):
    got = pelvis_export(realdata, tmp_path / "in", drop=("rd_beam", "ct12"))
    empty = tmp_path / "in" / "ct12_empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(DicomFileError, match=r"empty \(0 bytes\)") as exc:
        load(tmp_path / "in")
    assert empty.name in str(exc.value) and "missing" not in str(exc.value)
    assert "ct11" in got


def test_ct_file_without_preamble_is_named(realdata, tmp_path, files):
    pelvis_export(realdata, tmp_path / "in", drop=("rd_beam", "ct12"))
    raw = tmp_path / "in" / "ct12_raw"
    ds = pydicom.dcmread(files["ct12"])
    ds.preamble = None
    ds.save_as(raw, enforce_file_format=False)
    assert raw.read_bytes()[128:132] != b"DICM"
    with pytest.raises(DicomFileError, match="CT dataset without the DICOM Part 10 header") as exc:
        load(tmp_path / "in")
    assert raw.name in str(exc.value)
