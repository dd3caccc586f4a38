"""import-matrad and the resultGUI round trip on the CORT TG-119 phantom in matRad format
($REIRRAD_REALDATA/cort_tg119_matrad/TG119.mat: ct 167 x 167 x 129 voxels (Ny, Nx, Nz) of
3 x 3 x 2.5 mm; cst Core, OuterTarget, BODY)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.io import loadmat

from conftest import require
from reirrad_opt.case import load_case
from reirrad_opt.cli import main
from tps_adapters.matrad import load_mat, load_matrad_case

pytestmark = pytest.mark.realdata
PROTOCOL = "benchmarks/tg119_protocol.toml"
SETTINGS = "benchmarks/tg119_settings.toml"   # the homogeneity window of the TG-119 test


@pytest.fixture(scope="module")
def tg119(realdata):
    return require(realdata / "cort_tg119_matrad" / "TG119.mat")


def test_tg119_full_grid_structures_and_c_shape(tg119):
    case = load_matrad_case(tg119, interval_months=0, accept={"zero_prior"})
    assert case.grid.shape == (129, 167, 167) and case.grid.spacing_mm == (2.5, 3.0, 3.0)
    voxel_cc = 0.3 * 0.3 * 0.25
    # every cst index is one voxel: the file's index counts x the voxel volume
    assert case.structures["Core"].volume_cc(case.grid) == pytest.approx(1320 * voxel_cc)
    assert case.structures["OuterTarget"].volume_cc(case.grid) == pytest.approx(7458 * voxel_cc)
    assert case.structures["External"].volume_cc(case.grid) == pytest.approx(601736 * voxel_cc)
    body = case.structures["External"].mask
    assert abs(float(case.ct_hu[body].mean())) < 50 and float(case.ct_hu[~body].mean()) < -900   # water in air
    # the C-shaped target is mirror-symmetric in x about the core and open on one side in y; at the
    # core's centre the target lies on both sides of it along x, not along y
    core, target = case.structures["Core"].mask, case.structures["OuterTarget"].mask
    cz, cy, cx = np.round(np.argwhere(core).mean(axis=0)).astype(int)
    tz, ty, tx = np.argwhere(target).mean(axis=0)
    assert abs(tx - np.argwhere(core).mean(axis=0)[2]) < 0.5
    row = target[cz, cy, :]
    assert row[:cx].any() and row[cx:].any()
    col = target[cz, :, cx]
    assert not (col[:cy].any() and col[cy:].any())


def test_tg119_plan_written_back_as_resultgui(tg119, tmp_path):
    case_dir, plan_dir = tmp_path / "case", tmp_path / "plan"
    assert main(["import-matrad", str(tg119), "--structure-map", "PTV=OuterTarget", "--accept-zero-prior",
                 "--interval-months", "0", "--coarsen", "3", "--out", str(case_dir)]) == 0
    assert load_case(case_dir).grid.spacing_mm == (7.5, 9.0, 9.0)
    rc = main(["plan", "--case", str(case_dir), "--protocol", PROTOCOL, "--settings", SETTINGS, "--out", str(plan_dir), "--quiet"])
    verdict = json.loads((plan_dir / "plan.json").read_text())["verdict"]
    assert rc == {"fail": 3, "incomplete": 4}.get(verdict, 0)   # the exit code follows the verdict
    res = loadmat(plan_dir / "resultGUI.mat", squeeze_me=True, struct_as_record=False)["resultGUI"]
    weights = np.load(plan_dir / "fluence.npz")["weights"]
    assert res.w.shape == weights.shape
    # per fraction, 25 fractions; fluence.npz holds the weights in float32, resultGUI the plan's float64 ones
    np.testing.assert_allclose(res.w, weights.astype(np.float64) / 25, rtol=np.finfo(np.float32).eps)
    assert res.physicalDose.shape == (167, 167, 129)           # matRad's (Ny, Nx, Nz)
    # read back as matRad reads it: the dose at cst{i,4} indices (1-based, column-major), per fraction
    cst = load_mat(tg119, "ct and cst")["cst"]
    flat = res.physicalDose.ravel(order="F")
    per_roi = {str(r[1]): flat[np.asarray(r[3], dtype=np.int64) - 1] for r in cst}
    plan_dose = np.load(plan_dir / "dose.npz")["new_course_gy"]
    case = load_case(plan_dir)
    ours = float(plan_dose[case.structures["PTV"].mask].mean())
    assert per_roi["OuterTarget"].mean() * 25 == pytest.approx(ours, rel=0.05) and ours > 40
    # coarsening by 3 puts each case voxel centre on a CT voxel centre: there the written dose is the
    # plan's own dose exactly (interpolation at the nodes), voxel by voxel, in matRad's (y, x, z) order
    g, ct = case.grid, case.source["matrad_ct"]
    kz, ky, kx = np.nonzero(plan_dose > 0.05 * plan_dose.max())
    fx = np.rint((g.origin_mm[2] + kx * g.spacing_mm[2] - ct["x0_mm"]) / 3.0).astype(int)
    fy = np.rint((g.origin_mm[1] + ky * g.spacing_mm[1] - ct["y0_mm"]) / 3.0).astype(int)
    fz = np.rint((g.origin_mm[0] + kz * g.spacing_mm[0] - ct["z0_mm"]) / 2.5).astype(int)
    assert kz.size > 1000
    np.testing.assert_allclose(res.physicalDose[fy, fx, fz] * 25, plan_dose[kz, ky, kx], rtol=1e-5, atol=1e-4)
