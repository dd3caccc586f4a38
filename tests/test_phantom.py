"""The recurrent-NPC head phantom against adult anatomy, the construction of its prior course, and
its invariances (determinism, resolution).

Reference facts used below (independent of the phantom's code):
* adult brainstem 20-35 cc, optic chiasm 0.3-1.5 cc, cochlea about 0.1 cc, optic nerve about 4 mm
  thick, parotid 15-40 cc, temporal lobe (as contoured for NPC) 35-100 cc, brain 1100-1600 cc;
* cervical spinal cord cross-section about 70-90 mm^2; internal carotid artery 4-7 mm wide;
* adult head about 150 mm wide and 190 mm deep;
* CT numbers: air -1000 HU, brain 20-45 HU, soft tissue 0-60 HU, skull bone 700-1200 HU;
* the first course's intended organ maxima (D0.03cc) are the phantom's stated design levels.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from phantoms.npc import DEFAULT_PRIOR_LEVELS_GY, make_npc_phantom
from reirrad_opt.geometry import min_distance_mm

CRITICAL = ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R")


@pytest.fixture(scope="module")
def case():
    return make_npc_phantom(2.5)


@pytest.fixture(scope="module")
def case_2mm():
    return make_npc_phantom(2.0)


@pytest.fixture(scope="module")
def case_3mm():
    return make_npc_phantom(3.0)


def vol(case, name: str) -> float:
    return float(case.structures[name].mask.sum()) * case.grid.voxel_volume_cc


def d003(dose: np.ndarray, mask: np.ndarray, voxel_cc: float) -> float:
    """D0.03cc by plain numpy: the lowest dose within the hottest 0.03 cc (whole voxels)."""
    hottest = np.sort(dose[mask])[::-1]
    n = int(math.ceil(0.03 / voxel_cc - 1e-9))
    return float(hottest[:n].min())


def centroid(case, name: str) -> np.ndarray:
    return case.structures[name].centroid_xyz(case.grid)


@pytest.mark.parametrize("name,lo,hi", [
    ("Brainstem", 20.0, 35.0), ("OpticChiasm", 0.3, 1.5), ("OpticNrv_L", 0.3, 1.2), ("OpticNrv_R", 0.3, 1.2),
    ("Cochlea_L", 0.05, 0.2), ("Cochlea_R", 0.05, 0.2), ("Parotid_L", 15.0, 40.0), ("Parotid_R", 15.0, 40.0),
    ("Lobe_Temporal_L", 35.0, 100.0), ("Lobe_Temporal_R", 35.0, 100.0), ("Brain", 1100.0, 1600.0),
])
def test_structure_volumes_are_adult_sized(case, name, lo, hi):
    assert lo <= vol(case, name) <= hi


def test_every_required_structure_is_present_with_its_role(case):
    roles = {n: s.role for n, s in case.structures.items()}
    for n in ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lobe_Temporal_L",
              "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R", "Parotid_L", "Parotid_R", "Cochlea_L",
              "Cochlea_R", "Brain"):
        assert roles[n] == "oar", n
    assert roles["External"] == "external"
    assert roles["rGTV"] == roles["rCTV"] == roles["PTV"] == "target"
    assert roles["Bone_Skull"] == roles["PTV_Prior"] == "other"
    assert all(s.mask.any() for s in case.structures.values())


def test_rgtv_is_the_requested_sphere(case):
    assert vol(case, "rGTV") == pytest.approx(4 / 3 * math.pi * 15.0 ** 3 / 1000, rel=0.03)


def test_tubes_have_anatomical_cross_sections(case):
    g = case.grid
    voxel_area = g.spacing_mm[1] * g.spacing_mm[2]
    zc = g.axis_coordinates_mm()[0]
    cord = case["SpinalCord"].mask
    rows = [k for k in range(g.shape[0]) if cord[k].any() and zc[k] < -55]
    assert len(rows) >= 5
    area = np.mean([cord[k].sum() for k in rows]) * voxel_area
    assert 50.0 <= area <= 120.0  # cervical cord ~ 70-90 mm^2
    # internal carotid in the neck (vertical segment): 4-7 mm wide
    for side in ("L", "R"):
        ica = case[f"A_Carotid_{side}"].mask
        rows = [k for k in range(g.shape[0]) if ica[k].any() and -90 < zc[k] < -40]
        area = np.mean([ica[k].sum() for k in rows]) * voxel_area
        assert math.pi * 2.0 ** 2 <= area <= math.pi * 3.5 ** 2
    # optic nerve ~4 mm thick: volume / axis length
    length = 55.0  # chiasm to globe, mm (anatomy: 45-60 mm)
    area = vol(case, "OpticNrv_L") * 1000 / length
    assert math.pi * 1.5 ** 2 <= area <= math.pi * 3.0 ** 2


def test_head_size_and_lps_orientation(case):
    g = case.grid
    body = case.body
    xyz = g.voxel_centres_xyz(np.flatnonzero(body))
    width = np.ptp(xyz[:, 0]) + g.spacing_mm[2]
    depth = np.ptp(xyz[:, 1]) + g.spacing_mm[1]
    assert 135 <= width <= 165
    assert 175 <= depth <= 220
    assert g.n_voxels <= 500_000
    # LPS: left organs at +x, anterior (orbit) at -y, vertex at +z, origin near the head centre
    for pair in ("OpticNrv", "Lobe_Temporal", "A_Carotid", "Parotid", "Cochlea"):
        assert centroid(case, f"{pair}_L")[0] > 5 and centroid(case, f"{pair}_R")[0] < -5
    assert centroid(case, "OpticNrv_L")[1] < centroid(case, "OpticChiasm")[1] < centroid(case, "Brainstem")[1]
    assert centroid(case, "SpinalCord")[2] < centroid(case, "Brainstem")[2] < centroid(case, "Brain")[2]
    assert np.all(np.abs(xyz.mean(axis=0)) < 40)


def test_rgtv_lies_a_few_mm_from_brainstem_and_carotids_without_touching(case):
    g, rgtv = case.grid, case["rGTV"].mask
    gap_bs = min_distance_mm(rgtv, case["Brainstem"].mask, g)
    assert 0 < gap_bs <= 8.0
    for side in ("L", "R"):
        gap = min_distance_mm(rgtv, case[f"A_Carotid_{side}"].mask, g)
        assert 0 < gap <= 8.0
    for organ in (*CRITICAL, "A_Carotid_L", "A_Carotid_R"):
        assert not (rgtv & case[organ].mask).any(), organ
    # at the skull base: in front of the brainstem, between the carotids, below the chiasm
    c = centroid(case, "rGTV")
    assert c[1] < centroid(case, "Brainstem")[1]
    assert centroid(case, "A_Carotid_R")[0] < c[0] < centroid(case, "A_Carotid_L")[0]
    assert c[2] < centroid(case, "OpticChiasm")[2] - 20


def test_gap_parameter_moves_the_rgtv():
    near = make_npc_phantom(3.0, rgtv_gap_to_brainstem_mm=4.0, rgtv_radius_mm=12.0)
    far = make_npc_phantom(3.0, rgtv_gap_to_brainstem_mm=10.0, rgtv_radius_mm=12.0)
    d_near = min_distance_mm(near["rGTV"].mask, near["Brainstem"].mask, near.grid)
    d_far = min_distance_mm(far["rGTV"].mask, far["Brainstem"].mask, far.grid)
    assert d_far - d_near == pytest.approx(6.0, abs=3.0)  # within one voxel diagonal of the 6 mm asked for
    assert far.source["rgtv_centre_xyz_mm"][1] < near.source["rgtv_centre_xyz_mm"][1] - 5.0  # moved anterior


def test_rgtv_that_would_reach_a_carotid_is_refused():
    with pytest.raises(ValueError, match="A_Carotid"):
        make_npc_phantom(3.0, rgtv_radius_mm=21.0)


def _bone_along(bone: np.ndarray, k: int, j: int, i: int, axis: int, step: int) -> bool:
    line = [bone[k, j, i]]
    idx = [k, j, i]
    while 0 <= idx[axis] + step < bone.shape[axis]:
        idx[axis] += step
        line.append(bone[tuple(idx)])
    return bool(np.any(line))


def test_optic_structures_lie_inside_the_skull_above_the_skull_base(case):
    bone = case["Bone_Skull"].mask
    chiasm = np.argwhere(case["OpticChiasm"].mask)
    for k, j, i in chiasm:  # enclosed by skull bone in all six directions
        for axis in range(3):
            for step in (-1, 1):
                assert _bone_along(bone, k, j, i, axis, step), (k, j, i, axis, step)
    for side in ("L", "R"):
        for k, j, i in np.argwhere(case[f"OpticNrv_{side}"].mask):  # a bony roof above every voxel
            assert _bone_along(bone, k, j, i, 0, 1)
    g = case.grid
    zc = g.axis_coordinates_mm()[0]
    top_of_rgtv = zc[np.argwhere(case["rGTV"].mask)[:, 0].max()]
    for name in ("OpticChiasm", "OpticNrv_L", "OpticNrv_R"):
        assert zc[np.argwhere(case[name].mask)[:, 0].min()] > top_of_rgtv
    # the chiasm is surrounded by brain, not by bone or air
    shell = ndimage.binary_dilation(case["OpticChiasm"].mask, iterations=1) & ~case["OpticChiasm"].mask
    assert np.mean(case.ct_hu[shell] < 100) > 0.7 and np.all(case.ct_hu[shell] > -200)


def test_cochleae_sit_in_bone(case):
    for side in ("L", "R"):
        m = case[f"Cochlea_{side}"].mask
        shell = ndimage.binary_dilation(m, iterations=1) & ~m
        assert np.mean(case["Bone_Skull"].mask[shell]) > 0.6


def test_ct_numbers(case):
    ct, body = case.ct_hu, case.body
    assert np.all(ct[~body] == -1000)
    bone = case["Bone_Skull"].mask
    assert ct[bone].min() >= 700 and ct[bone].max() <= 1200
    assert bone.sum() * case.grid.voxel_volume_cc > 300  # a real skull: several hundred cc
    assert 30 <= np.median(ct[case["Brain"].mask]) <= 40
    soft = body & ~bone & (ct > -200) & (ct < 200)
    assert 20 <= np.median(ct[soft]) <= 60
    inner_air_cc = ((ct <= -900) & body).sum() * case.grid.voxel_volume_cc
    assert 20 <= inner_air_cc <= 200  # nasal cavity, sinuses, naso- and oropharynx
    assert 30 <= np.median(ct[case["rGTV"].mask]) <= 60
    assert case.ct_hu.dtype == np.float32


@pytest.mark.parametrize("organ", list(DEFAULT_PRIOR_LEVELS_GY))
def test_prior_course_puts_each_spared_organ_at_its_level(case, organ):
    level = {"Brainstem": 54.0, "SpinalCord": 45.0, "OpticChiasm": 50.0, "OpticNrv_L": 50.0,
             "OpticNrv_R": 50.0, "Lobe_Temporal_L": 68.0, "Lobe_Temporal_R": 68.0, "A_Carotid_L": 70.0,
             "A_Carotid_R": 70.0}[organ]
    got = d003(case.prior_dose_gy, case[organ].mask, case.grid.voxel_volume_cc)
    assert got == pytest.approx(level, abs=0.5)


def test_prior_course_is_a_70_gy_plan_without_hotspots(case):
    dose = case.prior_dose_gy
    assert case.prior.n_fractions == 33 and case.prior.interval_months == 24.0
    assert case.prior.prescription_gy == 70.0
    assert dose.max() <= 70.0 + 1e-4
    assert np.all(dose[~case.body] == 0)
    ptv = case["PTV_Prior"].mask
    assert np.median(dose[ptv]) == pytest.approx(70.0, abs=0.1)
    assert np.percentile(dose[ptv], 2) > 50.0  # D98 compromised only next to the spared organs
    # the recurrence lies inside the old high-dose region (an in-field recurrence)
    assert np.mean(dose[case["rGTV"].mask] > 59.0) > 0.95
    # far from the targets only a low-dose bath remains
    assert np.percentile(dose[case["Brain"].mask], 50) < 20.0


def test_prior_sparing_gradient_holds_around_the_brainstem(case):
    g, dose = case.grid, case.prior_dose_gy
    d = ndimage.distance_transform_edt(~case["Brainstem"].mask, sampling=g.spacing_mm)
    assert np.all(dose <= 54.0 + 3.0 * d + 1e-3)


def test_prior_levels_are_parameters():
    c = make_npc_phantom(3.0, prior_levels_gy={"Brainstem": 48.0, "SpinalCord": 40.0}, interval_months=18)
    vv = c.grid.voxel_volume_cc
    assert d003(c.prior_dose_gy, c["Brainstem"].mask, vv) == pytest.approx(48.0, abs=0.5)
    assert d003(c.prior_dose_gy, c["SpinalCord"].mask, vv) == pytest.approx(40.0, abs=0.5)
    assert c.prior.interval_months == 18.0
    with pytest.raises(ValueError, match="Cochlea_L"):  # far from the prior targets: unreachable
        make_npc_phantom(3.0, prior_levels_gy={"Cochlea_L": 65.0})
    with pytest.raises(ValueError, match="Pituitary"):
        make_npc_phantom(3.0, prior_levels_gy={"Pituitary": 40.0})
    with pytest.raises(ValueError, match="resolution_mm"):
        make_npc_phantom(0.2)


def test_target_volumes_follow_the_recipe(case):
    g = case.grid
    rgtv, rctv, ptv = (case[n].mask for n in ("rGTV", "rCTV", "PTV"))
    assert not (rgtv & ~rctv).any() and not (rctv & ~ptv).any()
    outside_gtv = rctv & ~rgtv
    assert not (outside_gtv & case["Bone_Skull"].mask).any()        # bone is a barrier
    assert not (outside_gtv & (case.ct_hu < -400)).any()             # air is a barrier
    for organ in CRITICAL:
        assert not (rctv & case[organ].mask).any(), organ
    # rCTV within 5 mm of the rGTV, PTV within 3 mm of the rCTV; the margins are partial-volume
    # (reirrad_opt.geometry.margins): a voxel mostly within the margin is in, so its centre may lie
    # up to half a voxel diagonal beyond the margin from the nearest centre of the inner volume
    half_diagonal = 0.5 * float(np.linalg.norm(g.spacing_mm))
    assert ndimage.distance_transform_edt(~rgtv, sampling=g.spacing_mm)[rctv].max() <= 5.0 + half_diagonal
    assert ndimage.distance_transform_edt(~rctv, sampling=g.spacing_mm)[ptv].max() <= 3.0 + half_diagonal


def test_oar_curtail_distance_is_honoured():
    c = make_npc_phantom(3.0, oar_curtail_mm=3.0)
    d = ndimage.distance_transform_edt(~c["Brainstem"].mask, sampling=c.grid.spacing_mm)
    extra = c["rCTV"].mask & ~c["rGTV"].mask
    assert d[extra].min() > 3.0


def test_two_builds_are_identical(case_3mm):
    again = make_npc_phantom(3.0)
    assert again.grid == case_3mm.grid
    assert np.array_equal(again.ct_hu, case_3mm.ct_hu)
    assert np.array_equal(again.prior_dose_gy, case_3mm.prior_dose_gy)
    assert list(again.structures) == list(case_3mm.structures)
    for n, s in again.structures.items():
        assert np.array_equal(s.mask, case_3mm.structures[n].mask), n
    assert again.source == case_3mm.source


def test_left_and_right_are_mirror_images(case):
    for pair in ("OpticNrv", "Lobe_Temporal", "A_Carotid", "Parotid", "Cochlea"):
        assert vol(case, f"{pair}_L") == pytest.approx(vol(case, f"{pair}_R"), rel=0.02)
        cl, cr = centroid(case, f"{pair}_L"), centroid(case, f"{pair}_R")
        assert cl[0] == pytest.approx(-cr[0], abs=0.5) and cl[1:] == pytest.approx(cr[1:], abs=0.5)


def test_volumes_do_not_depend_on_resolution(case_2mm, case_3mm):
    for name in case_2mm.structures:
        v2, v3 = vol(case_2mm, name), vol(case_3mm, name)
        assert v3 == pytest.approx(v2, rel=0.10), name
    for organ, level in DEFAULT_PRIOR_LEVELS_GY.items():
        for c in (case_2mm, case_3mm):
            assert d003(c.prior_dose_gy, c[organ].mask, c.grid.voxel_volume_cc) == pytest.approx(level, abs=0.5)
