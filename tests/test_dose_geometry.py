"""Beam geometry (IEC 61217 angles in patient LPS), HU curves, ray tracing, bixel and spot layout."""
from __future__ import annotations

import numpy as np
import pytest

from phantoms.water import CORTICAL_BONE_HU, Slab, water_box
from reirrad_opt.dose import BeamFrame, particle_fields, photon_beams
from reirrad_opt.dose.hu_tables import RED_CURVE, SPR_CURVE, HUCurve
from reirrad_opt.dose.particle import csda_range_mm
from reirrad_opt.dose.raytrace import radiological_depth
from reirrad_opt.geometry import Grid


@pytest.mark.parametrize("gantry, couch, direction", [
    (0.0, 0.0, (0, 1, 0)),      # from anterior, travelling posterior (+y)
    (90.0, 0.0, (-1, 0, 0)),    # from the patient's left, travelling right (-x)
    (180.0, 0.0, (0, -1, 0)),   # from posterior
    (270.0, 0.0, (1, 0, 0)),    # from the patient's right
    (90.0, 90.0, (0, 0, 1)),    # couch 90: from the feet, travelling superior (+z)
])
def test_iec_beam_direction_in_lps(gantry, couch, direction):
    d, u, v = BeamFrame(gantry, couch, (0.0, 0.0, 0.0)).axes
    np.testing.assert_allclose(d, direction, atol=1e-12)
    np.testing.assert_allclose([d @ u, d @ v, u @ v], 0.0, atol=1e-12)
    np.testing.assert_allclose(np.cross(u, v), -d, atol=1e-12)   # (u, v, source direction) right-handed


def test_bev_axes_at_gantry_zero():
    _, u, v = BeamFrame(0.0, 0.0, (0.0, 0.0, 0.0)).axes
    np.testing.assert_allclose(u, (1, 0, 0), atol=1e-12)   # X_b towards the patient's left
    np.testing.assert_allclose(v, (0, 0, 1), atol=1e-12)   # Y_b towards the head (gantry)


def test_divergent_projection_to_isocentre_plane():
    f = BeamFrame(0.0, 0.0, (0.0, 0.0, 0.0), sad_mm=1000.0)
    a, b, w = f.fan_coordinates(np.array([[10.0, 100.0, -20.0]]))   # 100 mm beyond the isocentre
    assert w[0] == pytest.approx(1100.0)
    assert a[0] == pytest.approx(10.0 * 1000.0 / 1100.0)
    assert b[0] == pytest.approx(-20.0 * 1000.0 / 1100.0)


def test_hu_curves_below_water_follow_the_air_tissue_mixing_line():
    # a mixture of air and a water-like tissue has RED ~ 1 + HU/1000 by the definition of the HU
    # scale: lung at -700 HU has about 0.3 of water's electron density (exact values:
    # tests/test_ct_calibration_physics.py)
    assert float(RED_CURVE(np.array([-700.0]))[0]) == pytest.approx(0.30, abs=0.01)
    assert float(SPR_CURVE(np.array([-700.0]))[0]) == pytest.approx(0.30, abs=0.01)
    np.testing.assert_allclose(RED_CURVE(np.array([-1000.0, 0.0])), [0.00108, 1.0], atol=2e-5)


def test_hu_curve_rejects_out_of_range_and_bad_tables():
    with pytest.raises(ValueError, match="within"):
        RED_CURVE(np.array([0.0, 5000.0]))
    with pytest.raises(ValueError, match="increasing"):
        HUCurve("x", (0.0, -1.0), (1.0, 0.0), "test")


def test_radiological_depth_through_bone_slab_is_water_equivalent():
    case = water_box(40.0, 120.0, 40.0, spacing_mm=(2.0, 1.0, 2.0), slabs=(Slab(20.0, 30.0, CORTICAL_BONE_HU),))
    g = case.grid
    dens = RED_CURVE(case.ct_hu)
    dens[~case.body] = 0
    bone = float(RED_CURVE(np.array([CORTICAL_BONE_HU]))[0])
    j = np.arange(g.shape[1])
    vox = np.ravel_multi_index((np.full(j.size, g.shape[0] // 2), j, np.full(j.size, g.shape[2] // 2)), g.shape)
    for frame in (BeamFrame(0.0, 0.0, (0.0, 0.0, 0.0)), BeamFrame(0.0, 0.0, (0.0, 0.0, 0.0), sad_mm=None)):
        rt = radiological_depth(frame, g, dens, vox)
        y = g.axis_coordinates_mm()[1]
        for depth in (10.5, 60.5, 100.5):
            expected = depth + (10.0 * (bone - 1.0) if depth > 30 else 0.0)
            assert np.interp(depth, y, rt.depth_mm) == pytest.approx(expected, abs=0.05)


def _sphere(grid: Grid, centre_xyz, radius_mm):
    pts = grid.voxel_centres_xyz().reshape(*grid.shape, 3)
    return np.linalg.norm(pts - np.asarray(centre_xyz), axis=-1) <= radius_mm


def test_photon_bixels_cover_target_projection_plus_margin():
    g = Grid((41, 41, 41), (2.0, 2.0, 2.0), (-40.0, -40.0, -40.0))
    target = _sphere(g, (4.0, -6.0, 2.0), 15.0)
    beams = photon_beams(g, target, gantry_angles_deg=[0.0, 90.0], bixel_mm=5.0, margin_mm=5.0)
    centroid = g.index_to_patient(np.argwhere(target).mean(axis=0))
    for beam in beams:
        np.testing.assert_allclose(beam.isocenter_xyz_mm, centroid, atol=1e-9)
        r = np.hypot(beam.bixel_u_mm, beam.bixel_v_mm)
        # every bixel centre within radius + margin + half a bixel diagonal (+ half a voxel)
        assert r.max() <= 15.0 + 5.0 + 5.0 * np.sqrt(2) / 2 + 1.0 + 1e-9
        # the target's projection (a disc of ~15 mm, magnified <2 %) is fully covered
        grid_uv = {(round(u / 5), round(v / 5)) for u, v in zip(beam.bixel_u_mm, beam.bixel_v_mm)}
        for uu in np.arange(-15, 16, 2.5):
            for vv in np.arange(-15, 16, 2.5):
                if uu * uu + vv * vv <= 14.0 ** 2:
                    assert (round(uu / 5), round(vv / 5)) in grid_uv


def test_photon_beams_reject_bad_input():
    g = Grid((5, 5, 5), (2.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="empty"):
        photon_beams(g, np.zeros(g.shape, bool), gantry_angles_deg=[0.0])
    target = np.zeros(g.shape, bool)
    target[2, 2, 2] = True
    with pytest.raises(ValueError, match="couch_angles_deg"):
        photon_beams(g, target, gantry_angles_deg=[0.0, 90.0], couch_angles_deg=[0.0, 0.0, 0.0])


def test_particle_layers_cover_target_depth_in_water():
    case = water_box(80.0, 160.0, 80.0, spacing_mm=(2.0, 2.0, 2.0))
    g = case.grid
    target = _sphere(g, (0.0, 70.0, 0.0), 15.0)      # 55..85 mm deep
    (field,) = particle_fields(g, target, case.ct_hu, gantry_angles_deg=[0.0], margin_mm=5.0)
    ranges = np.unique(field.spot_range_mm)
    assert ranges.max() == pytest.approx(85.0 + 5.0, abs=2.5)
    assert ranges.min() == pytest.approx(55.0 - 5.0, abs=2.5)
    np.testing.assert_allclose(field.spot_range_mm, csda_range_mm(field.spot_energy_mev), rtol=1e-6)
    # the central spot gets every layer, a spot at the rim only layers near the sphere's middle depth
    central = (field.spot_u_mm == 0) & (field.spot_v_mm == 0)
    assert np.unique(field.spot_range_mm[central]).size == ranges.size
    rim = np.hypot(field.spot_u_mm, field.spot_v_mm) >= 15.0
    assert field.spot_range_mm[rim].max() < ranges.max() and field.spot_range_mm[rim].min() > ranges.min()
