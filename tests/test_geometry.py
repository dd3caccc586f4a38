"""Grid conventions, names, and margins against analytic volumes."""
import numpy as np
import pytest

from reirrad_opt.geometry import (Grid, Structure, canonical_name, contract, expand, min_distance_mm,
                                  parse_structure_map, recurrent_target_volumes)


def sphere(grid: Grid, centre_xyz, radius_mm):
    pts = grid.voxel_centres_xyz().reshape(grid.shape + (3,))
    return np.linalg.norm(pts - np.asarray(centre_xyz), axis=-1) <= radius_mm


def test_axis_order_and_patient_coordinates():
    g = Grid((4, 5, 6), (2.5, 1.0, 0.5), (-10.0, 20.0, 30.0))  # (z, y, x)
    # voxel [k, j, i] = [1, 2, 3] -> x = 30 + 3*0.5, y = 20 + 2*1, z = -10 + 1*2.5
    assert np.allclose(g.index_to_patient([1, 2, 3]), [31.5, 22.0, -7.5])
    assert np.allclose(g.patient_to_index([31.5, 22.0, -7.5]), [1, 2, 3])
    assert g.voxel_volume_cc == pytest.approx(2.5 * 1.0 * 0.5 / 1000)
    # flat C-order index matches (k, j, i)
    flat = np.ravel_multi_index((1, 2, 3), g.shape)
    assert np.allclose(g.voxel_centres_xyz([flat])[0], [31.5, 22.0, -7.5])
    z, y, x = g.axis_coordinates_mm()
    assert len(z) == 4 and len(x) == 6 and x[1] - x[0] == 0.5


def test_grid_rejects_bad_values():
    with pytest.raises(ValueError, match="spacing"):
        Grid((2, 2, 2), (1, 0, 1))
    with pytest.raises(ValueError, match="shape"):
        Grid((2, 2), (1, 1, 1))


@pytest.mark.parametrize("name,expected", [
    ("BRSTEM", "Brainstem"), ("Brain Stem", "Brainstem"), ("Optic Nerve - Rt", "OpticNrv_R"),
    ("rGTV", "rGTV"), ("GTV-rP", "rGTV"), ("BODY", "External"), ("LeftParotid", "Parotid_L"),
    ("SomethingElse", "SomethingElse"),
])
def test_alias_table(name, expected):
    assert canonical_name(name) == expected


def test_user_structure_map_wins():
    m = parse_structure_map(["rGTV=GTV_recur"])
    assert canonical_name("GTV_recur", m) == "rGTV"
    with pytest.raises(ValueError, match="CANONICAL=EXPORTED"):
        parse_structure_map(["nonsense"])


def test_sphere_expanded_on_anisotropic_grid_matches_analytic_volume():
    g = Grid((41, 81, 81), (2.5, 1.0, 1.0), (-50.0, -40.0, -40.0))
    base = sphere(g, (0.0, 0.0, 0.0), 10.0)
    # voxel-centre margins (partial-volume margins: tests/test_margins_partial_volume.py)
    grown = expand(base, g, 5.0, method="centres")
    # every grown voxel lies within 15 mm of the centre (no over-expansion in any direction) ...
    direct = sphere(g, (0.0, 0.0, 0.0), 15.0)
    assert not (grown & ~direct).any()
    # ... and the volume is that of a 15 mm sphere up to the voxelisation of the 10 mm one
    # (its boundary voxel centres lie up to half a 2.5 mm slice inside r = 10 mm)
    analytic_cc = 4 / 3 * np.pi * 15.0 ** 3 / 1000
    assert Structure("s", grown).volume_cc(g) == pytest.approx(analytic_cc, rel=0.08)
    assert Structure("s", grown).volume_cc(g) >= 4 / 3 * np.pi * 14.0 ** 3 / 1000
    shrunk = contract(direct, g, 5.0)
    assert Structure("s", shrunk).volume_cc(g) == pytest.approx(4 / 3 * np.pi * 1000 / 1000, rel=0.08)


def test_margin_is_isotropic_in_mm_not_in_voxels():
    g = Grid((21, 21, 21), (2.5, 1.0, 1.0), (0, 0, 0))
    point = np.zeros(g.shape, bool)
    point[10, 10, 10] = True
    grown = expand(point, g, 5.0)
    k, j, i = np.nonzero(grown)
    assert (k.max() - 10) * 2.5 == 5.0  # 2 slices of 2.5 mm
    assert (i.max() - 10) * 1.0 == 5.0  # 5 columns of 1 mm


def test_consensus_recipe_edits_air_bone_and_curtails_oar():
    g = Grid((30, 60, 60), (2.0, 1.0, 1.0), (-30, -30, -30))
    body = np.ones(g.shape, bool)
    rgtv = sphere(g, (0, 0, 0), 6.0)
    air = np.zeros(g.shape, bool)
    air[:, :, :22] = True  # x < -8 mm is air
    bone = np.zeros(g.shape, bool)
    bone[:, :22, :] = True  # y < -8 mm is bone
    oar = sphere(g, (10.0, 0, 0), 2.0)
    ctv, ptv = recurrent_target_volumes(rgtv, body, g, air=air, barriers=[bone], critical_oars=[oar],
                                        oar_curtail_mm=1.0)
    assert not (ctv & air).any() and not (ctv & bone).any()
    assert not (ctv & expand(oar, g, 1.0, method="centres")).any()
    assert (rgtv & ~ctv).sum() == 0
    assert (ctv & ~ptv).sum() == 0
    assert min_distance_mm(ctv, oar, g) > 1.0
    # plain 5 mm margin without edits = sphere of 11 mm
    ctv_plain, _ = recurrent_target_volumes(rgtv, body, g, method="centres")
    assert not (ctv_plain & ~sphere(g, (0, 0, 0), 11.0)).any()
    assert ctv_plain.sum() * g.voxel_volume_cc == pytest.approx(4 / 3 * np.pi * 11 ** 3 / 1000, rel=0.10)
    with pytest.raises(ValueError, match="ctv_margin_mm"):
        recurrent_target_volumes(rgtv, body, g, ctv_margin_mm=-1)
