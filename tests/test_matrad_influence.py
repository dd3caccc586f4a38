"""plan --influence: external dose-influence matrices (matRad dij.physicalDose, .npz CSR arrays) read
onto the case grid with their grid checked, and the plan written back as matRad's resultGUI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.io import loadmat

from matrad_files import box_phantom, linear_index, write_dij
from reirrad_opt.case import load_case
from reirrad_opt.cli import main
from tps_adapters.matrad import MatFileError, load_matrad_case, read_influence
from tps_adapters.matrad.result import dose_on_matrad_ct

SHAPE = (16, 20, 12)    # (Ny, Nx, Nz) of the box phantom
PROTOCOL = "benchmarks/tg119_protocol.toml"
SETTINGS = "benchmarks/tg119_settings.toml"   # the homogeneity window of the TG-119 test   # Core Dmax <= 25 Gy, PTV D95 >= 50 Gy, 25 x 2 Gy


@pytest.fixture
def box_case(tmp_path):
    return load_matrad_case(box_phantom(tmp_path / "box.mat"), interval_months=0, accept={"zero_prior"},
                            structure_map={"PTV": "OuterTarget"})


def test_matrad_dij_row_is_the_column_major_voxel_and_is_scaled_to_the_course(tmp_path, box_case):
    n_vox = int(np.prod(SHAPE))
    row = linear_index(7, 9, 5, SHAPE) - 1            # matRad voxel (row 7, column 9, slice 5)
    m = sp.csc_matrix(([0.1, 0.3], ([row, row], [0, 1])), shape=(n_vox, 2))
    inf = read_influence(write_dij(tmp_path / "dij.mat", m, SHAPE, beam_num=[1, 2]), box_case, "photon", 25)
    dose = inf.dose([1.0, 0.0])
    assert np.argwhere(dose).tolist() == [[4, 6, 8]]     # (z, y, x) = (5-1, 7-1, 9-1)
    assert dose[4, 6, 8] == pytest.approx(2.5)            # 0.1 Gy per fraction x 25 fractions
    assert inf.columns["beam"].tolist() == [0, 1]


def test_matrad_dij_on_another_grid_is_refused(tmp_path, box_case):
    m = sp.csc_matrix((int(np.prod(SHAPE)) // 12 * 11, 1))
    with pytest.raises(MatFileError, match=r"dose grid of \(11, 16, 20\) voxels .*the case's grid is \(12, 16, 20\)"):
        read_influence(write_dij(tmp_path / "a.mat", m, (16, 20, 11)), box_case, "photon", 25)
    m = sp.csc_matrix((int(np.prod(SHAPE)), 1))
    with pytest.raises(MatFileError, match=r"first voxel centre .*the case.s is .*more than 0.01 mm apart"):
        read_influence(write_dij(tmp_path / "b.mat", m, SHAPE, first_xyz=(-30.0, -21.0, 10.0)), box_case, "photon", 25)
    with pytest.raises(MatFileError, match=r"voxel size"):
        read_influence(write_dij(tmp_path / "c.mat", m, SHAPE, res_xyz=(6.0, 6.0, 5.0)), box_case, "photon", 25)


def test_npz_csr_rows_are_c_order_and_its_grid_is_checked(tmp_path, box_case):
    n_vox = box_case.grid.n_voxels
    flat = np.ravel_multi_index((4, 6, 8), box_case.grid.shape)
    m = sp.csr_matrix(([0.2], ([flat], [0])), shape=(n_vox, 1))
    sp.save_npz(tmp_path / "plain.npz", m)
    assert read_influence(tmp_path / "plain.npz", box_case, "photon", 25).dose([1.0])[4, 6, 8] == pytest.approx(0.2)
    np.savez(tmp_path / "perfx.npz", data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape, per_fraction=1,
             grid_shape_zyx=box_case.grid.shape, spacing_mm_zyx=box_case.grid.spacing_mm)
    assert read_influence(tmp_path / "perfx.npz", box_case, "photon", 25).dose([1.0])[4, 6, 8] == pytest.approx(5.0)
    np.savez(tmp_path / "grid.npz", data=m.data, indices=m.indices, indptr=m.indptr, shape=m.shape,
             grid_shape_zyx=box_case.grid.shape, origin_mm_zyx=np.add(box_case.grid.origin_mm, 1.0))
    with pytest.raises(MatFileError, match="first voxel centre"):
        read_influence(tmp_path / "grid.npz", box_case, "photon", 25)
    np.savez(tmp_path / "rows.npz", data=m.data, indices=m.indices, indptr=m.indptr[:-1], shape=(n_vox - 1, 1))
    with pytest.raises(MatFileError, match=rf"{n_vox - 1} rows; expected one per voxel"):
        read_influence(tmp_path / "rows.npz", box_case, "photon", 25)
    np.savez(tmp_path / "x.npz", values=np.ones(3))
    with pytest.raises(MatFileError, match="array 'data' is missing"):
        read_influence(tmp_path / "x.npz", box_case, "photon", 25)
    neg = sp.csr_matrix(([-0.2], ([flat], [0])), shape=(n_vox, 1))
    sp.save_npz(tmp_path / "neg.npz", neg)
    with pytest.raises(MatFileError, match="negative entries"):
        read_influence(tmp_path / "neg.npz", box_case, "photon", 25)


def test_dose_on_matrad_ct_interpolates_a_coarser_case_grid_exactly_for_a_linear_dose(box_case):
    from tps_adapters.openkbp import coarsen

    coarse = coarsen(box_case, 2)
    z, y, x = np.meshgrid(*coarse.grid.axis_coordinates_mm(), indexing="ij")
    dose = 10.0 + 0.1 * x + 0.05 * y - 0.02 * z                     # Gy, linear in patient mm
    on_ct = dose_on_matrad_ct(dose, coarse.grid, box_case.source["matrad_ct"])
    assert on_ct.shape == SHAPE
    ct = box_case.source["matrad_ct"]
    xs = ct["x0_mm"] + 6.0 * np.arange(SHAPE[1])
    ys = ct["y0_mm"] + 6.0 * np.arange(SHAPE[0])
    zs = ct["z0_mm"] + 6.0 * np.arange(SHAPE[2])
    gz, gy, gx = (np.asarray(a) for a in coarse.grid.axis_coordinates_mm())
    inside = ((ys[:, None, None] >= gy[0]) & (ys[:, None, None] <= gy[-1]) & (xs[None, :, None] >= gx[0])
              & (xs[None, :, None] <= gx[-1]) & (zs[None, None, :] >= gz[0]) & (zs[None, None, :] <= gz[-1]))
    expected = 10.0 + 0.1 * xs[None, :, None] + 0.05 * ys[:, None, None] - 0.02 * zs[None, None, :]
    assert inside.sum() > 100
    np.testing.assert_allclose(on_ct[inside], np.broadcast_to(expected, SHAPE)[inside], rtol=1e-9)


def test_plan_on_a_matrad_dij_writes_resultgui_that_reproduces_its_dose(tmp_path):
    """Our own matrix of the box phantom handed over as a matRad dij (per fraction, column-major rows):
    the plan's resultGUI.w times dij.physicalDose{1} is resultGUI.physicalDose, and x 25 fractions it is
    the plan's own dose."""
    from reirrad_opt.dose import compute_influence, photon_beams

    mat = box_phantom(tmp_path / "box.mat")
    case_dir = tmp_path / "case"
    assert main(["import-matrad", str(mat), "--structure-map", "PTV=OuterTarget", "--accept-zero-prior",
                 "--interval-months", "0", "--out", str(case_dir)]) == 0
    case = load_case(case_dir)
    beams = photon_beams(case.grid, case.structures["PTV"].mask, gantry_angles_deg=[0.0, 120.0, 240.0], bixel_mm=6.0)
    inf = compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=case.structures["PTV"].mask)
    coo = inf.matrix.tocoo()
    iz, iy, ix = np.unravel_index(coo.row, case.grid.shape)
    f_rows = np.ravel_multi_index((iy, ix, iz), SHAPE, order="F")
    dij_matrix = sp.csc_matrix((coo.data.astype(np.float64) / 25.0, (f_rows, coo.col)), shape=inf.matrix.shape)
    dij = write_dij(tmp_path / "dij.mat", dij_matrix, SHAPE, beam_num=inf.columns["beam"] + 1)

    out = tmp_path / "plan"
    rc = main(["plan", "--case", str(case_dir), "--protocol", PROTOCOL, "--settings", SETTINGS, "--influence", str(dij), "--out", str(out),
               "--quiet"])
    verdict = json.loads((out / "plan.json").read_text())["verdict"]
    assert rc == {"fail": 3, "incomplete": 4}.get(verdict, 0)   # the exit code follows the verdict
    res = loadmat(out / "resultGUI.mat", squeeze_me=True, struct_as_record=False)["resultGUI"]
    assert res.w.shape == (inf.n_columns,) and res.physicalDose.shape == SHAPE
    again = (dij_matrix @ res.w).reshape(SHAPE, order="F")
    np.testing.assert_allclose(res.physicalDose, again, rtol=1e-5, atol=1e-6 * again.max())
    plan_dose = np.load(out / "dose.npz")["new_course_gy"]              # (z, y, x), whole course
    np.testing.assert_allclose(np.transpose(res.physicalDose, (2, 0, 1)) * 25, plan_dose, rtol=1e-4,
                               atol=1e-4 * plan_dose.max())
    assert plan_dose.max() > 40.0                                       # a real plan, not an empty dose


def test_influence_refuses_beam_options_it_cannot_honour(tmp_path, capsys):
    mat = box_phantom(tmp_path / "box.mat")
    case_dir = tmp_path / "case"
    assert main(["import-matrad", str(mat), "--structure-map", "PTV=OuterTarget", "--accept-zero-prior",
                 "--interval-months", "0", "--out", str(case_dir)]) == 0
    sp.save_npz(tmp_path / "m.npz", sp.csr_matrix((load_case(case_dir).grid.n_voxels, 2)))
    assert main(["plan", "--case", str(case_dir), "--protocol", PROTOCOL, "--settings", SETTINGS, "--influence", str(tmp_path / "m.npz"),
                 "--beams", "5", "--out", str(tmp_path / "p")]) == 2
    assert "--beams does not apply with --influence" in capsys.readouterr().err
    assert main(["plan", "--case", str(case_dir), "--protocol", PROTOCOL, "--settings", SETTINGS, "--influence", str(tmp_path / "nope.mat"),
                 "--out", str(tmp_path / "p")]) == 2
    assert "nope.mat: file not found" in capsys.readouterr().err
