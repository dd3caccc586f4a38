"""End-cap conventions on analytic ROIs: a square prism on N planes has volume
A * t * (N - 1) with half caps, A * t * N with full slabs, A * t * (N - 2) with none."""
import numpy as np
import pytest

from reirrad_opt.geometry import Grid
from tps_adapters.dicom.rasterize import END_CAPS, plane_slabs, rasterize_roi
from tps_adapters.dicom.rtstruct import RoiContours


def square(cx, cy, w, h):
    return np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2], [cx + w / 2, cy + h / 2],
                     [cx - w / 2, cy + h / 2]], dtype=float)


def prism(planes_z, side_mm=20.0):
    roi = RoiContours(1, "P", "ORGAN", "1.2.3")
    for z in planes_z:
        roi.planes[float(z)] = [square(0.0, 0.0, side_mm, side_mm)]
    return roi


def grid_for(dz, z_first, z_last, dxy=1.0):
    n_z = int(round((z_last - z_first) / dz)) + 9
    return Grid((n_z, 30, 30), (dz, dxy, dxy), (z_first - 4 * dz, -14.5, -14.5))


@pytest.mark.parametrize("caps,n_slabs", [("half", 4), ("full", 5), ("none", 3)])
def test_prism_on_its_own_planes(caps, n_slabs):
    planes = [0.0, 2.5, 5.0, 7.5, 10.0]
    r = rasterize_roi(prism(planes), grid_for(2.5, 0.0, 10.0), end_caps=caps)
    assert r.volume_cc == pytest.approx(400.0 * 2.5 * n_slabs / 1000, rel=1e-9)
    assert r.end_caps == caps and r.fraction_outside == 0.0


@pytest.mark.parametrize("dz", [1.0, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("caps,n_slabs", [("half", 4), ("full", 5), ("none", 3)])
def test_prism_on_other_slice_spacings_keeps_the_volume(dz, caps, n_slabs):
    planes = [0.0, 2.5, 5.0, 7.5, 10.0]
    g = grid_for(dz, -0.3, 10.0)
    r = rasterize_roi(prism(planes), g, end_caps=caps)
    # the partial slices keep round(fraction * 400) voxels: exact to a few voxels of 1 x 1 x dz mm
    assert r.volume_cc == pytest.approx(400.0 * 2.5 * n_slabs / 1000, abs=4 * dz / 1000 + 1e-9)


def test_half_end_cap_keeps_the_centre_of_the_end_contour():
    r = rasterize_roi(prism([0.0, 2.5, 5.0]), grid_for(2.5, 0.0, 5.0))
    k_first = int(np.flatnonzero(r.mask.any(axis=(1, 2)))[0])
    end, middle = r.mask[k_first], r.mask[k_first + 1]
    assert middle.sum() == 400 and end.sum() == 200
    assert not (end & ~middle).any()
    # centred: the kept voxels' centroid is the square's centre
    j, i = np.nonzero(end)
    assert j.mean() == pytest.approx(14.5, abs=0.3) and i.mean() == pytest.approx(14.5, abs=0.3)


def test_separate_parts_are_capped_each_and_the_gap_stays_empty():
    planes = [0.0, 2.5, 5.0, 20.0, 22.5, 25.0]
    g = grid_for(2.5, 0.0, 25.0)
    r = rasterize_roi(prism(planes), g)
    assert r.volume_cc == pytest.approx(2 * 400.0 * 2.5 * 2 / 1000)
    z = g.axis_coordinates_mm()[0]
    gap = (z > 6.0) & (z < 19.0)
    assert not r.mask[gap].any()


def test_slabs_follow_uneven_plane_spacing():
    lower, upper = plane_slabs(np.array([0.0, 2.0, 5.0, 7.0]), 2.0, "half")
    # half-way boundaries 1, 3.5, 6 (a 3 mm step is not a gap); the ROI ends at its end planes
    assert list(lower) == [0.0, 1.0, 3.5, 6.0] and list(upper) == [1.0, 3.5, 6.0, 7.0]
    lower, upper = plane_slabs(np.array([0.0, 2.0, 5.0, 7.0]), 2.0, "full")
    assert lower[0] == -1.0 and upper[-1] == 8.0


def test_single_plane_roi():
    g = grid_for(2.0, 0.0, 0.0, dxy=1.0)
    roi = prism([0.0])
    full = rasterize_roi(roi, g, end_caps="full").volume_cc
    half = rasterize_roi(roi, g, end_caps="half").volume_cc
    assert full == pytest.approx(400 * 2.0 / 1000)          # one slab of the grid's 2 mm
    assert half == pytest.approx(full / 2)
    none = rasterize_roi(roi, g, end_caps="none")
    assert not none.mask.any() and none.volume_cc == 0.0


def test_unknown_convention_is_refused():
    assert END_CAPS == ("half", "full", "none")
    with pytest.raises(ValueError, match="end_caps must be one of"):
        rasterize_roi(prism([0.0, 2.5]), grid_for(2.5, 0.0, 2.5), end_caps="round")


def test_import_dicom_option_is_recorded_in_the_case(tmp_path):
    import json

    from reirrad_opt.cli import main as cli_main
    from test_dicom_synthetic import box, write_ct, write_rtdose, write_rtplan, write_rtstruct

    src = tmp_path / "dicom"
    src.mkdir()
    write_ct(src)
    write_rtstruct(src, {"BODY": [(z, box(-6.5, -7.5, 5.5, 6.5)) for z in (-4, -2, 0, 2, 4, 6)],
                         "Brain Stem": [(z, box(-2.5, -2.5, 2.5, 2.5)) for z in (0, 2, 4)]}, types={"BODY": "EXTERNAL"})
    _, uid = write_rtplan(src)
    write_rtdose(src, plan_uid=uid)
    volumes = {}
    for caps in ("full", "half", "none"):
        out = tmp_path / caps
        assert cli_main(["import-dicom", str(src), "--interval-months", "12", "--end-caps", caps, "--out", str(out)]) == 0
        source = json.loads((out / "case.json").read_text())["source"]
        assert source["end_caps"] == caps
        assert any(n.startswith(f"RTSTRUCT: end caps {caps!r}") for n in source["notes"])
        volumes[caps] = next(r["volume_cc"] for r in source["rois"] if r["exported_name"] == "Brain Stem")
    # 20 voxels of 1.5 x 1 x 2 mm per plane; 3 planes: full 3 slabs, half 2, none 1
    assert [volumes[c] for c in ("full", "half", "none")] == pytest.approx([0.18, 0.12, 0.06])
    with pytest.raises(SystemExit):
        cli_main(["import-dicom", str(src), "--interval-months", "12", "--end-caps", "round", "--out", str(tmp_path / "x")])
