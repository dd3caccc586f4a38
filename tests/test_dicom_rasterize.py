"""RTSTRUCT rasterisation against analytic areas and the stated pixel-centre / even-odd rules."""
import numpy as np
import pytest

from reirrad_opt.geometry import Grid
from tps_adapters.dicom.export import mask_contours
from tps_adapters.dicom.rtstruct import RoiContours, rasterize_polygons, rasterize_roi


def square(x0, y0, x1, y1, clockwise=False):
    pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    return pts[::-1] if clockwise else pts


def roi_on(planes):
    return RoiContours(1, "R", "ORGAN", "1.2.3", planes={float(z): polys for z, polys in planes.items()})


def test_pixel_centre_rule_on_a_square():
    # centres at 0.5, 1.5, ...: a 10 mm square [0, 10] covers exactly the 10 x 10 centres inside it
    m = rasterize_polygons([square(0, 0, 10, 10)], 0.5, 1.0, 20, 0.5, 1.0, 20)
    assert m.sum() == 100
    assert m[:10, :10].all() and not m[10:, :].any() and not m[:, 10:].any()


def test_centres_on_edges_are_half_open():
    # centres at integers: centres on the left/lower edge (x=0, y=0) are inside, on the right/upper
    # edge (x=10, y=10) outside, so adjacent squares [0,10] and [10,20] share no voxel.
    a = rasterize_polygons([square(0, 0, 10, 10)], 0.0, 1.0, 25, 0.0, 1.0, 25)
    b = rasterize_polygons([square(10, 0, 20, 10)], 0.0, 1.0, 25, 0.0, 1.0, 25)
    assert a.sum() == 100 and b.sum() == 100 and not (a & b).any()
    assert a[0, 0] and not a[0, 10] and not a[10, 0]


def test_vertex_order_does_not_matter():
    poly = np.array([[1.2, 0.3], [8.7, 2.1], [6.1, 9.4], [0.4, 6.6]])
    m1 = rasterize_polygons([poly], 0.5, 0.5, 30, 0.25, 0.5, 30)
    m2 = rasterize_polygons([poly[::-1]], 0.5, 0.5, 30, 0.25, 0.5, 30)
    assert m1.any() and np.array_equal(m1, m2)


def test_even_odd_holes_and_islands():
    outer, hole, island = square(0, 0, 20, 20), square(5, 5, 15, 15, clockwise=True), square(8, 8, 12, 12)
    args = (0.5, 1.0, 30, 0.5, 1.0, 30)
    assert rasterize_polygons([outer], *args).sum() == 400
    ring = rasterize_polygons([outer, hole], *args)
    assert ring.sum() == 300 and not ring[10, 10]
    with_island = rasterize_polygons([outer, hole, island], *args)
    assert with_island.sum() == 316 and with_island[10, 10] and not with_island[6, 6]
    # two separate contours on one plane are two parts
    two = rasterize_polygons([square(0, 0, 4, 4), square(10, 10, 13, 13)], *args)
    assert two.sum() == 16 + 9


def test_circle_area_converges_to_pi_r2():
    t = np.linspace(0, 2 * np.pi, 721)[:-1]
    r = 20.0
    circle = np.column_stack([r * np.cos(t), r * np.sin(t)])
    d = 0.25
    m = rasterize_polygons([circle], -30 + d / 2, d, int(60 / d), -30 + d / 2, d, int(60 / d))
    assert m.sum() * d * d == pytest.approx(np.pi * r ** 2, rel=2e-3)


def test_plane_assignment_and_slab_extent():
    # planes at z = 0, 2.5, 5 (t = 2.5 mm) with full end slabs: the ROI spans [-1.25, 6.25] mm
    # (the default half end caps: tests/test_rasterize_end_caps.py)
    roi = roi_on({z: [square(0, 0, 4, 4)] for z in (0.0, 2.5, 5.0)})
    g = Grid((12, 6, 6), (1.0, 1.0, 1.0), (-3.0, 0.5, 0.5))  # slice centres -3 .. 8
    r = rasterize_roi(roi, g, end_caps="full")
    z = g.axis_coordinates_mm()[0]
    filled = r.mask.any(axis=(1, 2))
    assert list(z[filled]) == [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert r.fraction_outside == 0.0


def test_gap_between_parts_stays_empty():
    roi = roi_on({z: [square(0, 0, 4, 4)] for z in (0.0, 2.5, 10.0, 12.5)})
    g = Grid((7, 6, 6), (2.5, 1.0, 1.0), (0.0, 0.5, 0.5))  # z = 0, 2.5, ..., 15
    r = rasterize_roi(roi, g)
    assert list(r.mask.any(axis=(1, 2))) == [True, True, False, False, True, True, False]


def test_roi_partly_outside_reports_the_fraction():
    # a 10 x 10 mm square on 2 planes, half of it beyond the grid's last column
    roi = roi_on({0.0: [square(0, 0, 10, 10)], 1.0: [square(0, 0, 10, 10)]})
    g = Grid((2, 10, 5), (1.0, 1.0, 1.0), (0.0, 0.5, 0.5))  # x centres 0.5..4.5 only
    r = rasterize_roi(roi, g, end_caps="full")  # both planes whole slabs: the fraction is by columns
    assert r.mask.sum() == 2 * 10 * 5
    assert r.fraction_outside == pytest.approx(0.5)
    # and beyond the grid in z: the second plane is outside a one-slice grid
    g1 = Grid((1, 10, 10), (1.0, 1.0, 1.0), (0.0, 0.5, 0.5))
    assert rasterize_roi(roi, g1, end_caps="full").fraction_outside == pytest.approx(0.5)


def test_empty_roi():
    roi = roi_on({})
    g = Grid((2, 3, 3), (1.0, 1.0, 1.0))
    r = rasterize_roi(roi, g)
    assert roi.is_empty and not r.mask.any() and r.volume_cc == 0.0


def test_contours_from_masks_rasterise_back_exactly():
    rng = np.random.default_rng(3)
    from scipy import ndimage

    blob = ndimage.gaussian_filter(rng.random((40, 50)), 2.5) > 0.5
    blob[18:22, 20:30] = False  # a hole-ish cut
    blob[0, :] = True  # touching the grid edge
    x = -10 + 0.8 * np.arange(50)
    y = 5 + 1.2 * np.arange(40)
    polys = mask_contours(blob, x, y)
    back = rasterize_polygons(polys, x[0], 0.8, 50, y[0], 1.2, 40)
    assert blob.sum() > 100 and np.array_equal(back, blob)
