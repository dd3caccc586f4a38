"""The case folder (case.json + case.npz [+ case.png]): round trip, errors that name the file,
atomic writes, and the 'reirrad-opt phantom' command that writes it."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.case import CaseFormatError, load_case, save_case
from reirrad_opt.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def case():
    return make_npc_phantom(3.0)


@pytest.fixture()
def saved(case, tmp_path):
    return save_case(case, tmp_path / "npc")


def test_round_trip_gives_identical_arrays_and_metadata(case, saved):
    back = load_case(saved)
    assert back.name == case.name and back.grid == case.grid
    assert back.prior == case.prior
    assert back.source == json.loads(json.dumps(case.source))
    assert np.array_equal(back.ct_hu, case.ct_hu)
    assert np.array_equal(back.prior_dose_gy, case.prior_dose_gy)
    assert list(back.structures) == list(case.structures)
    for name, s in case.structures.items():
        assert back[name].role == s.role
        assert np.array_equal(back[name].mask, s.mask), name


def test_case_json_states_grid_volumes_and_prior_course(case, saved):
    meta = json.loads((saved / "case.json").read_text())
    assert meta["grid"]["shape"] == list(case.grid.shape) and meta["grid"]["axis_order"] == "zyx"
    vv = float(np.prod(meta["grid"]["spacing_mm"])) / 1000
    with np.load(saved / "case.npz") as npz:
        for entry in meta["structures"]:
            assert entry["volume_cc"] == pytest.approx(npz[f"mask_{entry['name']}"].sum() * vv, abs=1e-3)
        assert np.array_equal(npz["spacing_mm"], case.grid.spacing_mm)
        assert np.array_equal(npz["origin_mm"], case.grid.origin_mm)
    assert meta["prior_course"]["n_fractions"] == 33
    assert meta["prior_course"]["interval_months"] == 24.0


def test_corrupted_json_names_the_file(saved):
    (saved / "case.json").write_text("{ not json")
    with pytest.raises(CaseFormatError, match="case.json"):
        load_case(saved)


def test_missing_key_names_file_and_key(saved):
    meta = json.loads((saved / "case.json").read_text())
    del meta["prior_course"]
    (saved / "case.json").write_text(json.dumps(meta))
    with pytest.raises(CaseFormatError, match=r"case.json.*prior_course"):
        load_case(saved)


def test_missing_npz_names_the_file(saved):
    (saved / "case.npz").unlink()
    with pytest.raises(CaseFormatError, match="case.npz"):
        load_case(saved)


def test_truncated_npz_names_the_file(saved):
    data = (saved / "case.npz").read_bytes()
    (saved / "case.npz").write_bytes(data[: len(data) // 3])
    with pytest.raises(CaseFormatError, match="case.npz"):
        load_case(saved)


def test_npz_without_a_structure_mask_names_the_array(saved):
    path = saved / "case.npz"
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "mask_Brainstem"}
    np.savez_compressed(path, **arrays)
    with pytest.raises(CaseFormatError, match="mask_Brainstem"):
        load_case(saved)


def test_failing_write_leaves_no_output_folder(case, tmp_path):
    out = tmp_path / "npc"

    def boom(folder: Path) -> None:
        (folder / "case.png").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        save_case(case, out, extra=boom)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left behind


def test_failing_rewrite_keeps_the_previous_folder(case, saved):
    before = (saved / "case.json").read_text()

    def boom(folder: Path) -> None:
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        save_case(case, saved, extra=boom)
    assert (saved / "case.json").read_text() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]


def test_cli_writes_the_case_folder_with_its_figure(tmp_path, capsys):
    out = tmp_path / "npc_case"
    code = main(["phantom", "npc", "--out", str(out), "--resolution-mm", "3", "--interval-months", "18"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [".reirrad-opt-output.json", "case.json", "case.npz", "case.png"]
    png = (out / "case.png").read_bytes()
    assert png[:8] == PNG_MAGIC and len(png) > 50_000
    case = load_case(out)
    assert case.prior.interval_months == 18.0 and case.prior.n_fractions == 33
    assert case.grid.spacing_mm == (3.0, 3.0, 3.0)
    text = capsys.readouterr().out
    assert "Brainstem" in text and "54.0" in text


def test_cli_figure_has_three_views_and_a_legend(tmp_path):
    import matplotlib.image as mpimg

    out = tmp_path / "npc_case"
    assert main(["phantom", "npc", "--out", str(out), "--resolution-mm", "3.5"]) == 0
    img = mpimg.imread(out / "case.png")
    h, w = img.shape[:2]
    assert w > 2 * h  # three side-by-side views plus colour bar and legend
    # the dose wash uses colour: some pixels are far from grey
    rgb = img[..., :3]
    assert (rgb.max(axis=-1) - rgb.min(axis=-1) > 0.3).mean() > 0.01


@pytest.mark.parametrize("argv,needle", [
    (["--resolution-mm", "0.2"], "--resolution-mm must be between 1.0 and 5.0 mm"),   # the option, not the keyword
    (["--prior-level", "Brainstem"], "STRUCTURE=GY"),
    (["--prior-level", "Brainstem=lots"], "not a dose"),
    (["--rgtv-gap-mm", "-1"], "--rgtv-gap-mm must be between"),
    (["--interval-months", "-3"], "--interval-months"),
])
def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    out = tmp_path / "npc_case"
    try:
        code = main(["phantom", "npc", "--out", str(out), *argv])
    except SystemExit as exc:   # refused by argparse (the option's own type)
        code = exc.code
    assert code == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_case_npz_is_a_plain_zip_of_npy_arrays(saved):
    with zipfile.ZipFile(saved / "case.npz") as z:
        names = set(z.namelist())
    assert {"ct_hu.npy", "prior_dose_gy.npy", "spacing_mm.npy", "origin_mm.npy", "mask_rGTV.npy"} <= names


def test_case_figure_rejects_a_centre_outside_the_grid_and_unknown_structures(case, tmp_path):
    from reirrad_opt.report.case_figure import render_case_figure

    with pytest.raises(ValueError, match="outside the grid"):
        render_case_figure(case, tmp_path / "x.png", centre_xyz=(0.0, 0.0, 500.0))
    with pytest.raises(KeyError, match="Hippocampus_L"):
        render_case_figure(case, tmp_path / "x.png", structures=["Brainstem", "Hippocampus_L"])
    assert not (tmp_path / "x.png").exists()
