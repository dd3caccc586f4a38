"""Partial-volume margins: volumes that do not depend on the grid (1-5 mm), against analytic
volumes (a sphere grown by r is a sphere of R + r; a box grown by r follows Steiner's formula),
and the NPC phantom's PTV at 2-5 mm against each other."""
import math

import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from phantoms.shapes import Ellipsoid, rasterize
from reirrad_opt.geometry import Grid, contract, expand, recurrent_target_volumes


def centred_grid(h_mm: float, half_width_mm: float, offset_mm: float = 0.0, dz_mm: float | None = None) -> Grid:
    dz = h_mm if dz_mm is None else dz_mm
    n_xy = int(2 * half_width_mm / h_mm) + 1
    n_z = int(2 * half_width_mm / dz) + 1
    return Grid((n_z, n_xy, n_xy), (dz, h_mm, h_mm),
                (-(n_z - 1) / 2 * dz + offset_mm, -(n_xy - 1) / 2 * h_mm + offset_mm, -(n_xy - 1) / 2 * h_mm + offset_mm))


def sphere_cc(r_mm: float) -> float:
    return 4 / 3 * math.pi * r_mm ** 3 / 1000


def box_grown_cc(a: float, b: float, c: float, r: float) -> float:
    """Steiner's formula for a box a x b x c (mm) grown by a ball of radius r (mm), in cc."""
    return (a * b * c + 2 * (a * b + b * c + c * a) * r + math.pi * (a + b + c) * r ** 2
            + 4 / 3 * math.pi * r ** 3) / 1000


@pytest.mark.parametrize("h_mm", [1.0, 2.0, 3.0, 4.0, 5.0])
@pytest.mark.parametrize("radius_mm,margin_mm", [(10.0, 3.0), (15.0, 3.0), (6.0, 5.0)])
def test_sphere_grown_by_a_margin_keeps_its_analytic_volume_on_any_grid(h_mm, radius_mm, margin_mm):
    g = centred_grid(h_mm, radius_mm + margin_mm + 3 * h_mm, offset_mm=0.3)
    base = rasterize(Ellipsoid((0.0, 0.0, 0.0), (radius_mm,) * 3), g)
    grown = expand(base, g, margin_mm)
    assert grown.sum() * g.voxel_volume_cc == pytest.approx(sphere_cc(radius_mm + margin_mm), rel=0.08)
    assert not (base & ~grown).any()
    # the voxel-centre margin loses the 3 mm margin on the 4-5 mm grids (the reason for the default)
    if h_mm >= 4.0 and margin_mm == 3.0:
        centres = expand(base, g, margin_mm, method="centres")
        assert centres.sum() * g.voxel_volume_cc < 0.8 * sphere_cc(radius_mm + margin_mm)


@pytest.mark.parametrize("h_mm", [1.0, 2.5, 4.0, 5.0])
def test_box_grown_by_a_margin_follows_steiners_formula(h_mm):
    g = centred_grid(h_mm, 30.0)
    z, y, x = g.axis_coordinates_mm()
    a, b, c = 20.0, 30.0, 10.0  # x, y, z sides (mm), faces on voxel boundaries only at 1 mm
    inside = lambda v, side: np.abs(v) <= side / 2
    base = inside(z, c)[:, None, None] & inside(y, b)[None, :, None] & inside(x, a)[None, None, :]
    # the box as the grid sees it: whole voxels
    nx, ny, nz = (int(inside(x, a).sum()), int(inside(y, b).sum()), int(inside(z, c).sum()))
    grown = expand(base, g, 3.0)
    expected = box_grown_cc(nx * h_mm, ny * h_mm, nz * h_mm, 3.0)
    assert grown.sum() * g.voxel_volume_cc == pytest.approx(expected, rel=0.05)


def test_anisotropic_grid_gives_the_volume_of_the_isotropic_one():
    iso = centred_grid(1.0, 25.0)
    aniso = centred_grid(1.5, 25.0, dz_mm=4.0)
    v = []
    for g in (iso, aniso):
        base = rasterize(Ellipsoid((0.0, 0.0, 0.0), (12.0, 9.0, 14.0)), g)
        v.append(expand(base, g, 5.0).sum() * g.voxel_volume_cc)
    assert v[1] == pytest.approx(v[0], rel=0.05)


@pytest.mark.parametrize("h_mm,tolerance", [(1.0, 0.03), (3.0, 0.15), (5.0, 0.15)])
def test_contraction_keeps_the_analytic_volume_and_stays_inside(h_mm, tolerance):
    g = centred_grid(h_mm, 20.0, offset_mm=0.4)
    base = rasterize(Ellipsoid((0.0, 0.0, 0.0), (15.0,) * 3), g)
    shrunk = contract(base, g, 5.0, method="partial-volume")
    assert not (shrunk & ~base).any()
    # an erosion follows the dents of the coarse surface inwards: measured 0.89 (3 mm) and 0.87
    # (5 mm) of the analytic core, where voxel centres give 1.31 and 0.90 (documented bias)
    assert shrunk.sum() * g.voxel_volume_cc == pytest.approx(sphere_cc(10.0), rel=tolerance)


def test_contraction_treats_the_grid_border_as_outside():
    g = Grid((10, 10, 10), (2.0, 2.0, 2.0))
    full = np.ones(g.shape, bool)
    shrunk = contract(full, g, 3.0, method="partial-volume")
    # 3 mm from every face of a 20 mm cube: a 14 mm cube (up to one 2 mm layer of voxels)
    assert shrunk.sum() * g.voxel_volume_cc == pytest.approx(14.0 ** 3 / 1000, rel=0.35)
    assert not shrunk[0].any() and not shrunk[:, :, -1].any()


def test_bad_margins_and_methods_are_refused():
    g = Grid((5, 5, 5), (1.0, 1.0, 1.0))
    m = np.zeros(g.shape, bool)
    m[2, 2, 2] = True
    with pytest.raises(ValueError, match="method must be one of"):
        expand(m, g, 3.0, method="voxels")
    with pytest.raises(ValueError, match="margin_mm must be a finite number >= 0 mm"):
        expand(m, g, float("nan"))
    with pytest.raises(ValueError, match="contract: margin_mm"):
        contract(m, g, -1.0)
    with pytest.raises(ValueError, match="subvoxel_mm"):
        expand(m, g, 1.0, subvoxel_mm=0.0)


def test_barriers_still_cut_the_ctv_and_the_ptv_stays_in_the_body():
    g = centred_grid(4.0, 40.0)
    z, y, x = (a.reshape(s) for a, s in zip(g.axis_coordinates_mm(), ((-1, 1, 1), (1, -1, 1), (1, 1, -1))))
    rgtv = rasterize(Ellipsoid((0.0, 0.0, 0.0), (10.0,) * 3), g)
    body = np.broadcast_to(x < 14.0, g.shape).copy()       # skin at x = 14 mm
    bone = np.broadcast_to(y < -11.0, g.shape).copy()      # bone for y < -11 mm
    ctv, ptv = recurrent_target_volumes(rgtv, body, g, barriers=[bone])
    assert not (ctv & bone & ~rgtv).any()
    assert not (ptv & ~body).any()
    assert not (ctv & ~ptv).any() and not (rgtv & ~ctv).any()
    # a 3 mm PTV margin on a 4 mm grid is not lost (it was: PTV = rCTV with voxel centres)
    assert ptv.sum() > 1.3 * ctv.sum()


@pytest.fixture(scope="module")
def npc_target_volumes_cc():
    out = {}
    for h in (2.0, 3.0, 4.0, 5.0):
        c = make_npc_phantom(h)
        out[h] = {n: c[n].mask.sum() * c.grid.voxel_volume_cc for n in ("rGTV", "rCTV", "PTV")}
    return out


def test_npc_phantom_ptv_does_not_depend_on_the_grid(npc_target_volumes_cc):
    # 1 mm build (27 s, too slow here): rGTV 14.15, rCTV 25.11, PTV 44.51 cc (docs/phantom.md)
    reference_1mm = {"rCTV": 25.11, "PTV": 44.51}
    for h, v in npc_target_volumes_cc.items():
        for name, ref in reference_1mm.items():
            assert v[name] == pytest.approx(ref, rel=0.10), (h, name)
        assert v["PTV"] > 1.4 * v["rCTV"], h   # the 3 mm margin around a ~25 cc rCTV adds > 40 %
    ptvs = [v["PTV"] for v in npc_target_volumes_cc.values()]
    assert max(ptvs) / min(ptvs) < 1.10
