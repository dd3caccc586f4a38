"""Comparison metrics against analytic dose distributions."""
import numpy as np
import pytest

from reirrad_opt.compare.metrics import dose_falloff, integral_dose_gy_litre, paddick_ci, r50
from reirrad_opt.geometry import Grid

GRID = Grid((50, 60, 60), (2.0, 1.5, 1.5), (-50.0, -45.0, -45.0))
RX = 60.0


def radius_mm():
    pts = GRID.voxel_centres_xyz().reshape(GRID.shape + (3,))
    return np.linalg.norm(pts, axis=-1)


def test_linear_falloff_gives_the_known_distances():
    r = radius_mm()
    R, W = 15.0, 20.0  # PTV radius; dose falls linearly from Rx at R to 0 at R + W
    dose = RX * np.clip(1 - (r - R) / W, 0, 1)
    ptv = r <= R
    body = np.ones(GRID.shape, bool)
    out = dose_falloff(dose, ptv, body, GRID, RX, n_directions=100)
    # 90 % at R + 0.1 W, 50 % at R + 0.5 W: 0.4 W = 8 mm; 80 % -> 20 %: 0.6 W = 12 mm
    assert out["90-50"].median_mm == pytest.approx(0.4 * W, abs=0.3)
    assert out["80-20"].median_mm == pytest.approx(0.6 * W, abs=0.3)
    assert out["90-50"].max_mm - out["90-50"].min_mm < 1.0
    assert out["90-50"].n_directions > 90


def test_steeper_falloff_is_shorter():
    r = radius_mm()
    ptv = r <= 15.0
    body = np.ones(GRID.shape, bool)
    slow = dose_falloff(RX * np.clip(1 - (r - 15) / 25, 0, 1), ptv, body, GRID, RX, n_directions=50)
    fast = dose_falloff(RX * np.clip(1 - (r - 15) / 8, 0, 1), ptv, body, GRID, RX, n_directions=50)
    assert fast["80-20"].median_mm < slow["80-20"].median_mm
    assert fast["80-20"].median_mm == pytest.approx(0.6 * 8, abs=0.3)


def test_conformity_r50_integral_dose():
    r = radius_mm()
    ptv = r <= 15.0
    body = r <= 40.0
    perfect = np.where(ptv, RX, 0.0)
    assert paddick_ci(perfect, ptv, 0.95 * RX) == pytest.approx(1.0)
    double = np.where(r <= 15.0 * 2 ** (1 / 3), RX, 0.0)  # isodose volume twice the PTV
    assert paddick_ci(double, ptv, 0.95 * RX) == pytest.approx(0.5, rel=0.03)
    assert r50(double, ptv, body, RX) == pytest.approx(2.0, rel=0.03)
    uniform = np.where(body, 2.0, 0.0)
    litres = body.sum() * GRID.voxel_volume_cc / 1000
    assert integral_dose_gy_litre(uniform, body, GRID) == pytest.approx(2.0 * litres)


def test_summary_follows_the_numbers_and_swaps_with_them():
    from reirrad_opt.compare.summary import Criterion, summarise

    crit = [Criterion("bs", "Brainstem cumulative D0.03cc", "lower", 0.5, "Gy"),
            Criterion("cov", "PTV D98%", "higher", 0.5, "Gy"),
            Criterion("same", "integral dose", "lower", 0.5, "Gy L")]
    a = {"photon": {"bs": 68.0, "cov": 55.0, "same": 10.0}, "proton": {"bs": 64.0, "cov": 57.0, "same": 10.2}}
    rows, text = summarise(a, crit)
    assert [r["winner"] for r in rows] == ["proton", "proton", None]
    assert "Proton is better on 2 criteria" in " ".join(text)
    swapped = {"photon": a["proton"], "proton": a["photon"]}
    rows2, text2 = summarise(swapped, crit)
    assert [r["winner"] for r in rows2] == ["photon", "photon", None]
    assert "Photon is better on 2 criteria" in " ".join(text2)
