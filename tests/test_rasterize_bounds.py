"""Contours with bogus coordinates: refused quickly, naming the ROI, the plane and the extent;
work never grows with the coordinates (each case here took minutes or gigabytes before)."""
import time

import numpy as np
import pytest

from reirrad_opt.geometry import Grid
from tps_adapters.dicom import GeometryError, load_case
from tps_adapters.dicom.rasterize import CONTOUR_TOLERANCE_MM, grid_edge_extent, rasterize_roi, stack_extent
from tps_adapters.dicom.rtstruct import RoiContours
from test_dicom_synthetic import box, write_ct, write_rtdose, write_rtplan, write_rtstruct

GRID = Grid((20, 100, 100), (2.5, 1.0, 1.0), (0.0, -49.5, -49.5))   # x, y -50..50, z -1.25..48.75 mm


def roi_with(planes: dict[float, np.ndarray], name="Organ") -> RoiContours:
    roi = RoiContours(7, name, "ORGAN", "1.2.3")
    for z, poly in planes.items():
        roi.planes[float(z)] = [poly]
    return roi


def stack(z_values, poly=None):
    return {z: (box(-10, -10, 10, 10) if poly is None else poly) for z in z_values}


def refused_quickly(roi, match, grid=GRID):
    start = time.perf_counter()
    with pytest.raises(GeometryError, match=match) as info:
        rasterize_roi(roi, grid)
    assert time.perf_counter() - start < 1.0
    return str(info.value)


def test_vertex_at_ten_kilometres():
    planes = stack(np.arange(10.0, 30.0, 2.5))
    planes[15.0] = np.array([[0, 0], [1e7, 0], [1e7, 5], [0, 5]], float)
    msg = refused_quickly(roi_with(planes, "Spinal Cord"), r"ROI 'Spinal Cord': the contour on plane z = 15 mm")
    assert "x 0 to 1e+07" in msg and "x -50.0 to 50.0, y -50.0 to 50.0, z -1.2 to 48.8 mm" in msg
    assert "tolerance 10 mm" in msg


def test_one_plane_moved_to_a_billion_mm():
    planes = stack(np.arange(10.0, 30.0, 2.5))
    planes[1e9] = planes.pop(20.0)
    msg = refused_quickly(roi_with(planes), r"plane z = 1e\+09 mm")
    assert "z -1.2 to 48.8 mm" in msg


def test_forty_metre_wide_contour():
    planes = stack([10.0, 12.5, 15.0], box(-20000, -10, 20000, 10))
    refused_quickly(roi_with(planes), r"lies 1\.995e\+04 mm outside")


def test_non_finite_coordinate():
    planes = stack([10.0, 12.5])
    planes[12.5] = np.array([[0, 0], [np.nan, 0], [1, 1]], float)
    refused_quickly(roi_with(planes), "non-finite")


def test_contour_just_beyond_the_grid_is_accepted_and_its_outside_part_reported():
    # 5 mm beyond the last column (within the 10 mm tolerance): half of the extra 10 mm strip
    assert CONTOUR_TOLERANCE_MM == 10.0
    planes = stack(np.arange(10.0, 30.1, 2.5), box(40, -10, 55, 10))
    r = rasterize_roi(roi_with(planes), GRID, end_caps="full")
    assert r.fraction_outside == pytest.approx(5 / 15)
    with pytest.raises(GeometryError, match="lies 15 mm outside"):
        rasterize_roi(roi_with(stack([10.0, 12.5], box(40, -10, 65, 10))), GRID)


def test_a_contoured_stack_beyond_the_images_in_z_is_followed_but_not_a_cut_off_plane():
    # structure set drawn on more slices than the grid holds (a partial CT export): 50 mm beyond,
    # contiguous; a plane 100 mm farther on is cut off from the stack
    z = list(np.arange(10.0, 100.0, 2.5))
    ext = stack_extent([roi_with(stack(z))], grid_edge_extent(GRID))
    assert ext[0] == (-1.25, 97.5)
    r = rasterize_roi(roi_with(stack(z)), GRID)
    assert 0.5 < r.fraction_outside < 0.6 and r.mask.any()
    msg = refused_quickly(roi_with(stack(z + [200.0])), r"plane z = 200 mm")
    assert "z -1.2 to 97.5 mm" in msg


def test_import_names_the_file_roi_and_plane(tmp_path):
    write_ct(tmp_path)   # 6 slices z -4..6 mm, x -6..5, y -7..6.5 mm
    write_rtstruct(tmp_path, {"BODY": [(z, box(-6.5, -7.5, 5.5, 6.5)) for z in (-4, -2, 0, 2, 4, 6)],
                              "Lens L": [(0, box(-1, -1, 1, 1)), (1e9, box(-1, -1, 1, 1))]},
                   types={"BODY": "EXTERNAL"})
    _, uid = write_rtplan(tmp_path)
    write_rtdose(tmp_path, plan_uid=uid)
    start = time.perf_counter()
    with pytest.raises(GeometryError, match=r"ROI 'Lens L': the contour on plane z = 1e\+09 mm"):
        load_case(tmp_path, interval_months=18)
    assert time.perf_counter() - start < 10.0
