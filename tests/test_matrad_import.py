"""import-matrad: matRad ct and cst (MATLAB v5) -> a case: axis order, 1-based column-major cst
indices, coordinates, the prior dose per fraction, and the errors (v7.3/HDF5 files, missing
variables, wrong shapes)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from matrad_files import box_phantom, cst_cell, ct_struct, linear_index, write_ct_cst
from reirrad_opt.case import load_case
from reirrad_opt.cli import main
from tps_adapters.matrad import MatFileError, load_matrad_case

SHAPE = (4, 5, 3)   # (Ny, Nx, Nz) as matRad indexes its cubes


def _cube() -> np.ndarray:
    cube = np.zeros(SHAPE)
    cube[1, 2, 1] = 500.0          # MATLAB cube(2, 3, 2): row 2 (y), column 3 (x), slice 2 (z)
    return cube


@pytest.mark.parametrize("as_cell", [False, True])
def test_cst_indices_and_cube_land_on_the_same_voxel_and_coordinates(tmp_path, as_cell):
    idx = linear_index(2, 3, 2, SHAPE)                       # sub2ind([4 5 3], 2, 3, 2) = 30
    assert idx == 30
    path = tmp_path / "ct.mat"
    savemat(path, {"ct": ct_struct(_cube(), res_xyz=(2.0, 3.0, 5.0), first_xyz=(-10.0, 20.0, 100.0), as_cell=as_cell),
                   "cst": cst_cell([("Spot", "TARGET", [idx])])})
    case = load_matrad_case(path, interval_months=12, accept={"zero_prior"})
    assert case.grid.shape == (3, 4, 5) and case.grid.spacing_mm == (5.0, 3.0, 2.0)
    assert case.grid.origin_mm == (100.0, 20.0, -10.0)
    mask = case.structures["Spot"].mask
    assert np.argwhere(mask).tolist() == [[1, 1, 2]]                 # (z, y, x) = (slice-1, row-1, column-1)
    assert case.ct_hu[1, 1, 2] == 500.0 and case.ct_hu.sum() == 500.0
    z, y, x = (np.asarray(a) for a in case.grid.axis_coordinates_mm())
    # ct.x(3) = -10 + 2*2, ct.y(2) = 20 + 3, ct.z(2) = 100 + 5 mm
    assert (x[2], y[1], z[1]) == (-6.0, 23.0, 105.0)
    assert case.structures["Spot"].role == "target"


def test_import_cli_writes_a_case_with_tg263_names_and_the_recorded_ct_geometry(tmp_path, capsys):
    mat = box_phantom(tmp_path / "box.mat")
    out = tmp_path / "case"
    assert main(["import-matrad", str(mat), "--structure-map", "PTV=OuterTarget", "--accept-zero-prior",
                 "--interval-months", "0", "--out", str(out)]) == 0
    case = load_case(out)
    assert set(case.structures) == {"Core", "PTV", "External"}
    assert case.structures["PTV"].role == "target" and case.structures["External"].role == "external"
    # 4 x 5 x 4 voxels of 6 mm = 80 voxels x 0.216 cc
    assert case.structures["PTV"].volume_cc(case.grid) == pytest.approx(80 * 0.216)
    assert case.source["matrad_ct"]["cube_dim_yxz"] == [16, 20, 12]
    assert "--accept-zero-prior" in capsys.readouterr().out


def test_zero_prior_dose_needs_its_flag(tmp_path, capsys):
    mat = box_phantom(tmp_path / "box.mat")
    assert main(["import-matrad", str(mat), "--interval-months", "0", "--out", str(tmp_path / "c")]) == 2
    assert "--accept-zero-prior" in capsys.readouterr().err


def test_prior_dose_is_matrad_dose_per_fraction_times_prior_fractions(tmp_path):
    mat = box_phantom(tmp_path / "box.mat")
    dose = np.zeros((16, 20, 12))
    dose[7, 8, 5] = 2.0                                   # Gy per fraction in the target
    savemat(tmp_path / "prior.mat", {"resultGUI": {"physicalDose": dose, "w": np.ones(3)}})
    case = load_matrad_case(mat, interval_months=24, prior_fractions=30, prior_prescription_gy=60.0,
                            prior_dose=tmp_path / "prior.mat", structure_map={"PTV": "OuterTarget"},
                            accept={"prior_off_target"})
    assert case.prior_dose_gy[5, 7, 8] == pytest.approx(60.0) and case.prior_dose_gy.sum() == pytest.approx(60.0)
    assert case.prior.n_fractions == 30 and "per fraction" in case.prior.description
    savemat(tmp_path / "bad.mat", {"resultGUI": {"physicalDose": np.zeros((16, 20, 11))}})
    with pytest.raises(MatFileError, match=r"resultGUI.physicalDose: shape \(16, 20, 11\); expected .* \(16, 20, 12\)"):
        load_matrad_case(mat, interval_months=24, prior_dose=tmp_path / "bad.mat")
    with pytest.raises(MatFileError, match="variable 'dose' is missing"):
        load_matrad_case(mat, interval_months=24, prior_dose=tmp_path / "prior.mat", prior_dose_variable="dose")


def test_v73_hdf5_file_is_refused_with_how_to_resave(tmp_path, capsys):
    path = tmp_path / "TG119_v73.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    path.write_bytes(header.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert main(["import-matrad", str(path), "--interval-months", "0", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "TG119_v73.mat: a MATLAB v7.3 (HDF5) file" in err and "'-v7'" in err


def test_missing_variables_and_fields_are_named(tmp_path):
    savemat(tmp_path / "noct.mat", {"cst": np.zeros((0, 6), dtype=object)})
    with pytest.raises(MatFileError, match="variable 'ct' is missing"):
        load_matrad_case(tmp_path / "noct.mat", interval_months=0)
    ct = ct_struct(_cube())
    ct.pop("cubeHU")
    ct["cube"] = _cube()
    savemat(tmp_path / "nohu.mat", {"ct": ct, "cst": cst_cell([("A", "OAR", [1])])})
    with pytest.raises(MatFileError, match=r"ct.cubeHU is missing: .*relative electron densities"):
        load_matrad_case(tmp_path / "nohu.mat", interval_months=0)
    write_ct_cst(tmp_path / "badidx.mat", _cube(), [("A", "OAR", [0, 61])])
    with pytest.raises(MatFileError, match=r"cst structure 'A': indices must be whole numbers from 1 to 60"):
        load_matrad_case(tmp_path / "badidx.mat", interval_months=0)
    (tmp_path / "text.mat").write_text("not a MATLAB file")
    with pytest.raises(MatFileError, match="cannot be read as a MATLAB v5 file"):
        load_matrad_case(tmp_path / "text.mat", interval_months=0)
