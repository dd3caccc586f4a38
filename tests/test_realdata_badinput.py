"""Bad DICOM input made here by corrupting copies of real files (RayStation pelvis export).

Each corruption must raise its own documented exception whose message names the file (or the
folder and the files concerned) and the problem, and the ``import-dicom`` command must exit with
code 2 without writing the case folder.
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pydicom
import pytest

from conftest import require
from reirrad_opt.cli import main as cli_main
from tps_adapters.dicom import (DicomFileError, DoseGridError, GeometryError, InvalidTagValueError, MissingDataError,
                                MixedInputError, ModalityError, SliceGapError, load_case)

pytestmark = pytest.mark.realdata

PELVIS = "raystation_alderson_pelvis_pydosert"
Z_RANGE = (-640.0, -590.0)  # 26 CT slices around the PTV (z -618 .. -600 mm)


@pytest.fixture(scope="module")
def source_files(realdata):
    base = require(realdata / PELVIS)
    cts = []
    for f in sorted((base / "CT").glob("*.dcm")):
        z = float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
        if Z_RANGE[0] <= z <= Z_RANGE[1]:
            cts.append((z, f))
    if len(cts) != 26:
        pytest.fail(f"expected 26 CT slices of {base} in z {Z_RANGE}, found {len(cts)}")
    cts.sort()
    rd = [f for f in (base / "RD").glob("*.dcm")
          if pydicom.dcmread(f, stop_before_pixels=True).DoseSummationType == "PLAN"]
    return {"ct": [f for _, f in cts], "rs": next((base / "RS").glob("*.dcm")), "rp": next((base / "RP").glob("*.dcm")),
            "rd": rd[0]}


def build(folder: Path, files: dict, *, copy: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> dict[str, Path]:
    """A mini export in ``folder``: symlinks to the real files, real copies for those to corrupt.
    Keys: 'rs', 'rp', 'rd', 'ct0' .. 'ct25'."""
    folder.mkdir()
    named = {"rs": files["rs"], "rp": files["rp"], "rd": files["rd"]}
    named.update({f"ct{k}": f for k, f in enumerate(files["ct"])})
    out = {}
    for key, src in named.items():
        if key in drop:
            continue
        dst = folder / f"{key}_{src.name}"
        if key in copy:
            shutil.copyfile(src, dst)
        else:
            os.symlink(src, dst)
        out[key] = dst
    return out


def edit(path: Path, **attributes) -> None:
    ds = pydicom.dcmread(path)
    for key, value in attributes.items():
        if value is None:
            del ds[key]
        else:
            setattr(ds, key, value)
    ds.save_as(path)


def load(folder: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ROIs partly outside the 26-slice grid: warned, not an error here
        return load_case(folder, interval_months=24)


def assert_cli_refuses(folder: Path, tmp_path: Path, capsys, fragment: str) -> None:
    out = tmp_path / "case_out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = cli_main(["import-dicom", str(folder), "--interval-months", "24", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert fragment in err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".case_out")]


def test_the_uncorrupted_mini_export_imports(source_files, tmp_path):
    build(tmp_path / "ok", source_files)
    case = load(tmp_path / "ok")
    assert case.grid.shape == (26, 512, 512)
    assert float(case.prior_dose_gy[case["PTV"].mask].mean()) == pytest.approx(60.1, abs=0.3)
    assert any("outside the case grid" in n for n in case.source["notes"])  # Body, Bladder, Rectum cut by the slab


def test_truncated_ct_file(source_files, tmp_path, capsys):
    files = build(tmp_path / "in", source_files, copy=("ct10",))
    data = files["ct10"].read_bytes()
    files["ct10"].write_bytes(data[: len(data) // 2])
    with pytest.raises(DicomFileError, match="truncated") as exc:
        load(tmp_path / "in")
    assert files["ct10"].name in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, files["ct10"].name)


def test_truncated_structure_set(source_files, tmp_path, capsys):
    files = build(tmp_path / "in", source_files, copy=("rs",))
    data = files["rs"].read_bytes()
    files["rs"].write_bytes(data[: len(data) - 5000])
    with pytest.raises(DicomFileError, match="truncated") as exc:
        load(tmp_path / "in")
    assert files["rs"].name in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, files["rs"].name)


@pytest.mark.parametrize("key", ["ct3", "rd"])
def test_missing_pixel_data(source_files, tmp_path, capsys, key):
    files = build(tmp_path / "in", source_files, copy=(key,))
    edit(files[key], PixelData=None)
    with pytest.raises(MissingDataError, match="Pixel Data") as exc:
        load(tmp_path / "in")
    assert files[key].name in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, files[key].name)


def test_wrong_modality(source_files, tmp_path, capsys):
    files = build(tmp_path / "in", source_files, copy=("ct5",))
    edit(files["ct5"], Modality="MR")
    with pytest.raises(ModalityError, match="Modality is 'MR'") as exc:
        load(tmp_path / "in")
    assert files["ct5"].name in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, "Modality is 'MR'")


def test_mixed_frames_of_reference(source_files, tmp_path, capsys):
    files = build(tmp_path / "in", source_files, copy=("rd",))
    edit(files["rd"], FrameOfReferenceUID=pydicom.uid.generate_uid())
    with pytest.raises(MixedInputError, match="2 Frame of Reference UIDs") as exc:
        load(tmp_path / "in")
    assert files["rd"].name in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, "Frame of Reference UID")


def test_ct_slice_missing_from_the_series(source_files, tmp_path, capsys):
    files = build(tmp_path / "in", source_files, drop=("ct12",))
    with pytest.raises(SliceGapError, match="missing") as exc:
        load(tmp_path / "in")
    message = str(exc.value)
    assert files["ct11"].name in message and files["ct13"].name in message and "4.000 mm" in message
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, "slice(s) missing")


def test_dose_grid_offset_outside_the_ct(source_files, tmp_path, capsys):
    files = build(tmp_path / "in", source_files, copy=("rd",))
    ds = pydicom.dcmread(files["rd"], stop_before_pixels=True)
    x, y, z = (float(v) for v in ds.ImagePositionPatient)
    edit(files["rd"], ImagePositionPatient=[x + 1000.0, y, z])
    with pytest.raises(DoseGridError, match="does not overlap") as exc:
        load(tmp_path / "in")
    assert files["rd"].name in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, "does not overlap")


@pytest.mark.parametrize("key,tag,value,name", [
    ("ct7", (0x0028, 0x1053), b"abc ", "RescaleSlope"),
    ("rd", (0x3004, 0x000E), b"x1e-3 ", "DoseGridScaling"),
])
def test_non_numeric_tags(source_files, tmp_path, capsys, key, tag, value, name):
    files = build(tmp_path / "in", source_files, copy=(key,))
    ds = pydicom.dcmread(files[key])
    ds[tag] = pydicom.DataElement(tag, "DS", "1")
    ds.save_as(files[key])
    raw = files[key].read_bytes()
    # implicit VR little endian: tag (4 bytes) + length (4 bytes) + value; overwrite the value bytes
    marker = bytes([tag[0] & 0xFF, tag[0] >> 8, tag[1] & 0xFF, tag[1] >> 8]) + len(b"1 ").to_bytes(4, "little")
    assert raw.count(marker) == 1
    at = raw.index(marker) + len(marker)
    patched = raw[:at - 4] + len(value).to_bytes(4, "little") + value + raw[at + 2:]
    files[key].write_bytes(patched)
    with pytest.raises(InvalidTagValueError, match=name) as exc:
        load(tmp_path / "in")
    assert files[key].name in str(exc.value) and "expected a number" in str(exc.value)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, name)


@pytest.mark.parametrize("attributes,match", [
    ({"ImageOrientationPatient": [1, 0, 0, 0, 0.9962, 0.0872]}, "oblique"),
    ({"GantryDetectorTilt": 15}, "Tilt"),
])
def test_oblique_or_tilted_series(source_files, tmp_path, capsys, attributes, match):
    keys = tuple(f"ct{k}" for k in range(26))
    files = build(tmp_path / "in", source_files, copy=keys)
    for k in keys:
        edit(files[k], **attributes)
    with pytest.raises(GeometryError, match=match) as exc:
        load(tmp_path / "in")
    assert any(files[k].name in str(exc.value) for k in keys)
    assert_cli_refuses(tmp_path / "in", tmp_path, capsys, match)
