"""Registration errors and times of the two-CT import on the RayStation pelvis with a known truth.

Writes a "new" CT + RTSTRUCT (the pelvis CT moved by 4 degrees about the cranio-caudal axis and
(6, -4, 3) mm, and a copy warped by a smooth Gaussian bump) under OUT, then imports each with the
prior folder and prints the registration error at the PTV centre, the dose agreement with the
SimpleITK-resampled truth, and the wall time of each import.

    python3 benchmarks/registration_pelvis.py $REIRRAD_REALDATA/raystation_alderson_pelvis_pydosert OUT \
        [--new-voxel-mm 4] [--deformable]

--new-voxel-mm native writes the new CT on the prior CT's own grid (512 x 512 x 160 voxels of
0.74 x 0.74 x 2 mm: a head-sized CT).
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import registration_data as rd  # noqa: E402  (the test-data writers)

from tps_adapters.dicom.two_ct import load_two_ct_case  # noqa: E402


def _write(out: Path, prior: Path, ct, transform, matrix, voxel: str) -> Path:
    if voxel == "native":
        z, y, x = ct.grid.axis_coordinates_mm()
        origin, spacing = (x[0], y[0], z[0]), ct.grid.spacing_mm[::-1]
        hu = rd.resample_ct(ct, transform, origin, spacing, ct.grid.shape[::-1])
        frame = rd.generate_uid()
        series, study = rd.write_ct_series(out / "CT", hu, origin, spacing, rd.scan_folder(prior).ct[0].path,
                                           frame_uid=frame)
        rd.write_moved_rtstruct(rd.scan_folder(prior).rtstruct[0].path, out / "RS" / "RS_new.dcm", matrix, frame,
                                series, study)
        return out
    return rd.write_new_course(out, prior, ct, transform, matrix, voxel_mm=float(voxel))[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("prior", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--new-voxel-mm", default="4")
    p.add_argument("--deformable", action="store_true")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    ct = rd.read_prior_ct(a.prior)
    z, y, x = ct.grid.axis_coordinates_mm()
    centre = ((x[0] + x[-1]) / 2, (y[0] + y[-1]) / 2, (z[0] + z[-1]) / 2)
    m = rd.true_matrix(4.0, (6.0, -4.0, 3.0), centre)
    new = _write(a.out / "moved", a.prior, ct, rd.affine_of(m), m, a.new_voxel_mm)
    t0 = time.perf_counter()
    r = load_two_ct_case(new, a.prior, interval_months=24, prior_dose_margin_mm=0)
    t_rigid = time.perf_counter() - t0
    ptv = np.append(np.linalg.solve(m, np.append(rd.ptv_centre_prior(a.prior), 1.0))[:3], 1.0)
    err = float(np.linalg.norm((r.registration.matrix - m) @ ptv))
    truth = rd.truth_dose(rd.KnownTruth(a.prior, new, m, "", ptv[:3], ct), r.case.grid)
    sel = truth >= 0.1 * truth.max()
    within = float((np.abs(r.case.prior_dose_gy - truth)[sel] <= 0.02 * truth.max()).mean())
    print(f"case grid {r.case.grid.shape} at {r.case.grid.spacing_mm} mm")
    print(f"rigid: {err:.3f} mm at the PTV centre, rotation {r.registration.rotation_angle_deg:.3f} deg (truth 4), "
          f"{100 * within:.1f} % of voxels above 10 % within 2 % of the maximum; import {t_rigid:.1f} s")
    if a.deformable:
        warp = rd.bump_field(ct, rd.ptv_centre_prior(a.prior) + np.array([30.0, 0.0, 0.0]), (6.0, -4.0, 3.0), 40.0)
        new_w = _write(a.out / "warped", a.prior, ct, warp, np.eye(4), a.new_voxel_mm)
        out = {}
        for method in ("rigid", "deformable"):
            t0 = time.perf_counter()
            res = load_two_ct_case(new_w, a.prior, interval_months=24, registration=method, prior_dose_margin_mm=0)
            seconds = time.perf_counter() - t0
            truth = rd.truth_dose(rd.KnownTruth(a.prior, new_w, np.eye(4), "", ptv[:3], ct), res.case.grid, warp)
            sel = truth >= 0.1 * truth.max()
            out[method] = float(np.abs(res.case.prior_dose_gy - truth)[sel].mean())
            jac = res.registration.details.get("jacobian")
            print(f"warp, {method}: mean |dose error| above 10 % {out[method]:.3f} Gy; import {seconds:.1f} s"
                  + (f"; Jacobian {jac['min']:.3f} to {jac['max']:.3f}, folded {jac['folded_fraction']}" if jac else ""))


if __name__ == "__main__":
    main()
