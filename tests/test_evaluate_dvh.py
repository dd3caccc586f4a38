"""DVH and dose-volume metrics against analytic shapes: a sphere in a uniform field, a box in a
linear dose gradient, a tabulated linear DVH, and D0.03cc of a 0.5 cc sphere under grid shifts."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from reirrad_opt.evaluate import DVH, VolumeBeyondStructure, dvh, metric_value, sample_points, supersampled_grid
from reirrad_opt.geometry import Grid


def coords(grid: Grid):
    return np.meshgrid(*grid.axis_coordinates_mm(), indexing="ij")  # z, y, x (mm)


# ----------------------------------------------------------------------------- uniform sphere

def test_uniform_dose_in_a_sphere():
    grid = Grid((30, 30, 30), (1.0, 1.0, 1.0))
    z, y, x = coords(grid)
    r = 10.0
    mask = (z - 14.5) ** 2 + (y - 14.5) ** 2 + (x - 14.5) ** 2 <= r * r
    dose = np.full(grid.shape, 50.0)
    h = dvh(dose, mask, grid)
    # voxelised sphere volume close to 4/3 pi r^3 = 4.189 cc
    assert h.total_cc == pytest.approx(4.0 / 3.0 * np.pi * r ** 3 / 1000.0, rel=0.02)
    for metric in ("Dmax", "Dmin", "Dmean", "D0.03cc", "D2cc", "D98%", "D2%", "near-min"):
        mv = metric_value(metric, dose, mask, grid)
        assert mv.value == pytest.approx(50.0) and mv.value_coarse == pytest.approx(50.0), metric
        assert mv.unit == "Gy"
    assert metric_value("V49.9Gy", dose, mask, grid).value == pytest.approx(100.0)
    assert metric_value("V50.1Gy", dose, mask, grid).value == 0.0
    assert metric_value("V49.9Gy", dose, mask, grid, volume_unit="cc").value == pytest.approx(h.total_cc)
    # V107% of a 46.7 Gy prescription: 50 Gy >= 49.97 Gy everywhere
    assert metric_value("V107%", dose, mask, grid, rx_gy=46.7).value == pytest.approx(100.0)
    assert h.volume_pct[0] == pytest.approx(100.0) and h.volume_pct[-1] == 0.0


# ----------------------------------------------------------------------------- linear gradient

@pytest.fixture(scope="module")
def gradient_box():
    """A 10 x 10 x 20 mm box (z, y, x) of 1 mm voxels in the dose field 10 + 2 x (Gy, x in mm)."""
    grid = Grid((16, 16, 30), (1.0, 1.0, 1.0))
    z, y, x = coords(grid)
    mask = np.zeros(grid.shape, bool)
    mask[3:13, 3:13, 5:25] = True   # x from 4.5 to 24.5 mm (voxel faces)
    dose = 10.0 + 2.0 * x
    return grid, mask, dose, 4.5, 24.5


@pytest.mark.parametrize("fine, percents", [(False, (5.0, 25.0, 50.0, 95.0)), (True, (2.0, 5.0, 25.0, 50.0, 95.0, 98.0))])
def test_linear_gradient_dose_at_volume_is_exact(gradient_box, fine, percents):
    # Exact between the middles of the hottest and coldest sample layers: 0.5 mm of 20 mm (2.5 %)
    # on voxel centres, 1/6 mm with the default 3x supersampling.
    grid, mask, dose, x0, x1 = gradient_box
    length, area_cc_per_mm = x1 - x0, 1.0 * 1.0 * 10 * 10 / 1000.0   # 0.1 cc per mm of x
    for p in percents:
        # the hottest p % is the slab x >= x1 - p/100 * length
        expected = 10.0 + 2.0 * (x1 - p / 100.0 * length)
        assert metric_value(f"D{p:g}%", dose, mask, grid, fine=fine).value == pytest.approx(expected, abs=1e-9)
    assert metric_value("D0.5cc", dose, mask, grid, fine=fine).value == pytest.approx(10 + 2 * (x1 - 0.5 / area_cc_per_mm))
    assert metric_value("Dmean", dose, mask, grid, fine=fine).value == pytest.approx(10 + 2 * (x0 + x1) / 2)


def test_linear_gradient_fine_grid_resolves_d003cc_and_dmax(gradient_box):
    grid, mask, dose, x0, x1 = gradient_box
    # Hottest 0.03 cc: a slab 0.3 mm thick at the hot face -> 10 + 2 (24.5 - 0.3) = 58.4 Gy.
    mv = metric_value("D0.03cc", dose, mask, grid, fine_factor=3)
    assert mv.value == pytest.approx(58.4, abs=1e-9)
    # On voxel centres the hottest layer (0.1 cc, centre 24.0 mm) already holds more than 0.03 cc.
    assert mv.value_coarse == pytest.approx(10 + 2 * 24.0)
    # Dmax: the true maximum is on the face (59 Gy); sub-voxel centres get within 1/(2f) mm.
    for f in (1, 3, 5):
        dmax = metric_value("Dmax", dose, mask, grid, fine_factor=f)
        assert dmax.value == pytest.approx(10 + 2 * (x1 - 0.5 / f))
        assert dmax.fine_factor == f


def test_linear_gradient_volume_at_dose(gradient_box):
    grid, mask, dose, x0, x1 = gradient_box
    for t in (20.0, 30.0, 45.0):
        x_t = (t - 10.0) / 2.0
        expected_pct = 100.0 * (x1 - x_t) / (x1 - x0)
        # sample counting: exact up to half a sample layer (1 / (2 f) mm of 20 mm)
        for f, tol in ((1, 100 * 0.5 / 20), (4, 100 * 0.125 / 20)):
            assert metric_value(f"V{t:g}Gy", dose, mask, grid, fine_factor=f).value == pytest.approx(expected_pct, abs=tol + 1e-9)


# ----------------------------------------------------------------------------- small structures

def _sphere_cap_d003(radius, centre_x, dose_fn):
    """Analytic D0.03cc of a sphere in a dose decreasing with x: the hottest 0.03 cc is the cap
    of height h at the low-x pole with pi h^2 (3R - h) / 3 = 30 mm^3."""
    h = brentq(lambda hh: np.pi * hh * hh * (3 * radius - hh) / 3 - 30.0, 0.0, 2 * radius)
    return dose_fn(centre_x - radius + h)


def test_d003cc_of_half_cc_sphere_is_stable_under_grid_shifts():
    """0.5 cc sphere (r = 4.92 mm) in a dose falling off by 3.3 %/mm (70 exp(-(x - 5)/30) Gy) on
    a 2.5 mm dose grid. The structure is rasterised on the 8x supersampled grid (0.31 mm) that
    moves with the dose grid; 12 random grid shifts."""
    radius = (3 * 500.0 / (4 * np.pi)) ** (1 / 3)
    c = np.array([20.0, 20.0, 20.0])

    def dose_fn(x):
        return 70.0 * np.exp(-(x - 5.0) / 30.0)

    truth = _sphere_cap_d003(radius, c[2], dose_fn)
    rng = np.random.default_rng(3)
    fine, coarse, super_only = [], [], []
    for shift in rng.uniform(0.0, 2.5, (12, 3)):
        grid = Grid((8, 8, 8), (2.5, 2.5, 2.5), tuple(c - 10.0 + shift))
        z, y, x = coords(grid)
        mask = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius ** 2
        fgrid = supersampled_grid(grid, 8)
        zf, yf, xf = coords(fgrid)
        fmask = (zf - c[0]) ** 2 + (yf - c[1]) ** 2 + (xf - c[2]) ** 2 <= radius ** 2
        mv = metric_value("D0.03cc", dose_fn(x), mask, grid, fine_mask=fmask, fine_grid=fgrid)
        fine.append(mv.value)
        coarse.append(mv.value_coarse)
        super_only.append(metric_value("D0.03cc", dose_fn(x), mask, grid, fine_factor=8).value)
    fine, coarse, super_only = map(np.asarray, (fine, coarse, super_only))
    assert (fine.max() - fine.min()) / truth < 0.01          # stable within 1 %
    assert np.max(np.abs(fine - truth)) / truth < 0.01       # and within 1 % of the analytic value
    # On the 2.5 mm grid alone the structure's shape is not resolved: much less stable.
    assert (coarse.max() - coarse.min()) > 3 * (fine.max() - fine.min())
    assert (super_only.max() - super_only.min()) > (fine.max() - fine.min())


def test_d003cc_with_structure_fixed_in_patient_space():
    """Contours rasterised once at 0.5 mm (fixed to the anatomy); only the 2.5 mm dose grid moves,
    in a steeper 6.7 %/mm fall-off."""
    radius = (3 * 500.0 / (4 * np.pi)) ** (1 / 3)
    c = np.array([20.0, 20.0, 20.0])

    def dose_fn(x):
        return 70.0 * np.exp(-(x - 5.0) / 15.0)

    truth = _sphere_cap_d003(radius, c[2], dose_fn)
    fgrid = Grid((40, 40, 40), (0.5, 0.5, 0.5), (10.25, 10.25, 10.25))
    zf, yf, xf = coords(fgrid)
    fmask = (zf - c[0]) ** 2 + (yf - c[1]) ** 2 + (xf - c[2]) ** 2 <= radius ** 2
    values = []
    for shift in np.random.default_rng(5).uniform(0.0, 2.5, (8, 3)):
        grid = Grid((12, 12, 12), (2.5, 2.5, 2.5), tuple(c - 15.0 + shift))
        z, y, x = coords(grid)
        mask = (z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2 <= radius ** 2
        values.append(metric_value("D0.03cc", dose_fn(x), mask, grid, fine_mask=fmask, fine_grid=fgrid).value)
    values = np.asarray(values)
    assert (values.max() - values.min()) / truth < 0.01
    # the 0.5 mm rasterisation of the 1.5 mm-high polar cap limits the accuracy to ~1.5 %
    assert np.max(np.abs(values - truth)) / truth < 0.02


# ----------------------------------------------------------------------------- tabulated curves

def test_from_cumulative_linear_dvh():
    # Dose uniformly distributed over [0, 10] Gy in 20 cc: V(D) = 20 (1 - D/10).
    d = np.linspace(0.0, 10.0, 101)
    h = DVH.from_cumulative(d, 20.0 * (1 - d / 10.0))
    assert h.mean_gy == pytest.approx(5.0)
    assert h.max_gy == pytest.approx(10.0) and h.min_gy == 0.0
    assert h.d_at_volume_pct(50) == pytest.approx(5.0)
    assert h.d_at_volume_cc(2.0) == pytest.approx(9.0)
    assert h.v_at_dose_gy(2.5, "%") == pytest.approx(75.0)
    with pytest.raises(ValueError):
        DVH.from_cumulative([0, 1, 2], [10, 11, 5])


# ----------------------------------------------------------------------------- conventions and errors

def test_midpoint_convention_on_discrete_samples():
    # Ten 1 cc samples with doses 10, 9, ..., 1 Gy: sample k stands at cumulative volume k - 0.5.
    h = DVH.from_samples(np.arange(10, 0, -1.0), 1.0)
    assert h.d_at_volume_cc(5.0) == pytest.approx(5.5)
    assert h.d_at_volume_cc(0.2) == 10.0 and h.max_gy == 10.0 and h.min_gy == 1.0
    assert h.v_at_dose_gy(5.0) == 6.0 and h.v_at_dose_gy(10.5) == 0.0
    assert h.mean_gy == pytest.approx(5.5)
    with pytest.raises(VolumeBeyondStructure):
        h.d_at_volume_cc(11.0)
    assert h.d_at_volume_cc(11.0, beyond="min") == 1.0


def test_volume_larger_than_structure_is_reported_not_hidden():
    grid = Grid((10, 10, 10), (2.0, 2.0, 2.0))
    mask = np.zeros(grid.shape, bool)
    mask[4:6, 4:6, 4:6] = True                     # 0.064 cc
    dose = np.random.default_rng(0).uniform(10, 20, grid.shape)
    mv = metric_value("D2cc", dose, mask, grid)
    assert "only 0.064 cc" in mv.note and mv.value == pytest.approx(metric_value("Dmin", dose, mask, grid).value)


def test_partial_volume_mask_weights():
    grid = Grid((1, 1, 4), (10.0, 10.0, 10.0))
    occupancy = np.array([[[1.0, 0.5, 0.25, 0.0]]])
    dose = np.array([[[10.0, 20.0, 30.0, 40.0]]])
    pts = sample_points(occupancy, grid, 1)
    assert pts.total_cc == pytest.approx(1.75)
    assert metric_value("Dmean", dose, occupancy, grid, fine=False).value == pytest.approx((10 + 10 + 7.5) / 1.75)


def test_bad_input():
    grid = Grid((5, 5, 5), (1.0, 1.0, 1.0))
    dose = np.ones(grid.shape)
    with pytest.raises(ValueError, match="empty"):
        metric_value("Dmax", dose, np.zeros(grid.shape, bool), grid)
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value("D0.03", dose, np.ones(grid.shape, bool), grid)
    with pytest.raises(ValueError, match="shape"):
        metric_value("Dmax", np.ones((4, 5, 5)), np.ones(grid.shape, bool), grid)
    with pytest.raises(ValueError, match="rx_gy"):
        metric_value("V107%", dose, np.ones(grid.shape, bool), grid)
    far = Grid((4, 4, 4), (0.5, 0.5, 0.5), (100.0, 100.0, 100.0))
    with pytest.raises(ValueError, match="outside"):
        metric_value("Dmax", dose, np.ones(grid.shape, bool), grid, fine_mask=np.ones(far.shape, bool), fine_grid=far)


def test_large_structures_use_a_smaller_fine_factor():
    grid = Grid((20, 20, 20), (1.0, 1.0, 1.0))
    mask = np.ones(grid.shape, bool)
    pts = sample_points(mask, grid, 5, max_samples=100_000)
    assert pts.fine_factor == 2 and pts.n == 8000 * 8
    assert pts.total_cc == pytest.approx(8.0)
