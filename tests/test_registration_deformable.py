"""Deformable registration on a synthetically warped copy of the pelvis CT: a smooth known
displacement (a Gaussian bump of (6, -4, 3) mm, sigma 40 mm, next to the PTV). The truth dose is
the prior dose resampled by SimpleITK through that displacement; the deformable mapping must be
closer to it than the rigid one, and must not fold."""
from __future__ import annotations

import time
import warnings

import numpy as np
import pytest

from registration_data import PELVIS, bump_field, ptv_centre_prior, read_prior_ct, truth_dose, write_new_course
from tps_adapters.dicom import load_case
from tps_adapters.dicom.two_ct import load_two_ct_case
from tps_adapters.registration import RegistrationWarning, map_to_grid

pytestmark = pytest.mark.realdata


class _Truth:
    def __init__(self, prior_dir):
        self.prior_dir = prior_dir


def test_deformable_mapping_beats_rigid_on_a_known_warp(realdata, tmp_path):
    prior_dir = realdata / PELVIS
    ct = read_prior_ct(prior_dir)
    warp = bump_field(ct, ptv_centre_prior(prior_dir) + np.array([30.0, 0.0, 0.0]), (6.0, -4.0, 3.0), 40.0)
    new_dir, _ = write_new_course(tmp_path / "warped", prior_dir, ct, warp, np.eye(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rigid = load_two_ct_case(new_dir, prior_dir, interval_months=24, registration="rigid", prior_dose_margin_mm=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deformable = load_two_ct_case(new_dir, prior_dir, interval_months=24, registration="deformable")
    seconds = time.perf_counter() - t0
    assert any(issubclass(w.category, RegistrationWarning) and "uncertain" in str(w.message) for w in caught)
    reg = deformable.registration
    jac = reg.details["jacobian"]
    assert reg.method == "deformable" and jac["folded_fraction"] == 0.0 and jac["min"] > 0
    assert jac["min"] < 0.99 or jac["max"] > 1.01  # it did deform
    m = deformable.case.source["prior_mapping"]
    assert m["margin_mm"] == 2.0 and m["margin_source"].startswith("default")  # the automatic-registration default
    assert "uncertain" in " ".join(deformable.case.source["notes"])
    assert "Jacobian determinant" in deformable.case.source["registration"]

    # the same deformation without the margin, for the comparison against truth
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = load_case(prior_dir, grid="dose", interval_months=24, assume_hu=-1000)
    no_margin, _ = map_to_grid(prior.prior_dose_gy, prior.grid, reg, deformable.case.grid)
    truth = truth_dose(_Truth(prior_dir), rigid.case.grid, warp)
    sel = truth >= 0.1 * truth.max()
    err_rigid = float(np.abs(rigid.case.prior_dose_gy - truth)[sel].mean())
    err_def = float(np.abs(no_margin - truth)[sel].mean())
    print(f"mean |dose error| above 10 % of max: rigid {err_rigid:.3f} Gy, deformable {err_def:.3f} Gy; "
          f"deformable import {seconds:.1f} s")
    assert err_def < 0.85 * err_rigid
    assert seconds < 60
