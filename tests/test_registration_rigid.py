"""Two-CT import with a known rigid truth: the RayStation pelvis CT moved by 4 degrees about the
cranio-caudal axis and (6, -4, 3) mm, written as a "new" CT (4 mm) + RTSTRUCT under a new frame of
reference; the original CT + RTDOSE are the prior folder. The truth dose is the prior dose resampled
by SimpleITK through the known transform (independent of the import's mapping code)."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from registration_data import known_truth_case, truth_dose  # noqa: F401 (fixture)
from tps_adapters.dicom.two_ct import load_two_ct_case

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def rigid_import(known_truth_case):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = load_two_ct_case(known_truth_case.new_dir, known_truth_case.prior_dir, interval_months=24,
                                  prior_dose_margin_mm=0.0)
    return result, time.perf_counter() - t0


def passing_fraction(mapped: np.ndarray, truth: np.ndarray, spacing_mm, dose_tol: float, dta_mm: float) -> float:
    """Fraction of voxels above 10 % of the truth maximum where the mapped dose is within
    ``dose_tol`` (fraction of the maximum) of the truth, or within the truth's range over ``dta_mm``."""
    dmax = float(truth.max())
    half = [max(0, int(dta_mm // s)) for s in spacing_mm]
    axes = [np.arange(-h, h + 1) * s for h, s in zip(half, spacing_mm)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    foot = zz ** 2 + yy ** 2 + xx ** 2 <= dta_mm ** 2
    lo, hi = ndimage.minimum_filter(truth, footprint=foot), ndimage.maximum_filter(truth, footprint=foot)
    tol = dose_tol * dmax
    ok = (np.abs(mapped - truth) <= tol) | ((mapped >= lo - tol) & (mapped <= hi + tol) & (dta_mm > 0))
    sel = truth >= 0.1 * dmax
    return float(ok[sel].mean())


def test_rigid_registration_recovers_the_known_transform(rigid_import, known_truth_case):
    result, seconds = rigid_import
    reg = result.registration
    assert reg.method == "rigid"
    assert reg.new_frame_uid == known_truth_case.new_frame and reg.prior_frame_uid != reg.new_frame_uid
    ptv = np.append(known_truth_case.ptv_centre_new, 1.0)
    error_mm = float(np.linalg.norm((reg.matrix - known_truth_case.matrix) @ ptv))
    assert error_mm < 1.0
    assert abs(reg.rotation_angle_deg - 4.0) < 0.5
    assert abs(reg.rotation_deg[2] - 4.0) < 0.5 and max(abs(reg.rotation_deg[0]), abs(reg.rotation_deg[1])) < 0.5
    assert reg.metric.startswith("Mattes") and reg.metric_value < 0
    assert seconds < 60
    print(f"rigid: {error_mm:.3f} mm at the PTV centre, rotation {reg.rotation_angle_deg:.3f} deg, {seconds:.1f} s")


def test_mapped_prior_dose_agrees_with_the_truth(rigid_import, known_truth_case):
    case = rigid_import[0].case
    truth = truth_dose(known_truth_case, case.grid)
    assert truth.max() > 55  # the 60 Gy plan lands on the new grid
    frac = passing_fraction(case.prior_dose_gy, truth, case.grid.spacing_mm, 0.02, 2.0)
    assert frac >= 0.95
    # a 3 mm registration error along x would not pass a 1 % dose-difference test everywhere: the check can fail
    shifted = np.roll(case.prior_dose_gy, 2, axis=2)
    assert passing_fraction(shifted, truth, case.grid.spacing_mm, 0.02, 0.0) < 0.95


def test_case_records_the_mapping(rigid_import, known_truth_case):
    case = rigid_import[0].case
    src = case.source
    m = src["prior_mapping"]
    assert m["registration"]["method"] == "rigid" and m["margin_mm"] == 0.0 and m["margin_source"] == "as given"
    assert m["prior_frame_of_reference_uid"] != m["new_frame_of_reference_uid"] == known_truth_case.new_frame
    assert m["software"]["SimpleITK"] == sitk.Version_VersionString()
    assert np.allclose(m["registration"]["matrix_new_to_prior"], rigid_import[0].registration.matrix, atol=1e-6)
    assert "rigid registration" in src["registration"] and "degrees" in src["registration"]
    assert "margin 0 mm" in src["registration"]
    assert (case.prior.n_fractions, case.prior.prescription_gy) == (20, 60.0)  # from the prior folder's RTPLAN
    assert set(case.structures) >= {"PTV", "Bladder", "Rectum", "External"}
    # the PTV (moved with the CT) receives the prescription: the mapping put the dose where the target went
    assert float(np.median(case.prior_dose_gy[case["PTV"].mask])) == pytest.approx(60.0, abs=2.0)
    assert not any(o.get("flag") == "--allow-missing-dose" for o in src.get("input_overrides", []))
