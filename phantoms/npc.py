"""The recurrent-NPC head phantom: CT, TG-263 structures, a recurrent target at the skull base
and a first course (70 Gy in 33 fractions) that left the critical organs near tolerance.

:func:`make_npc_phantom` builds a :class:`reirrad_opt.case.Case` from the analytic anatomy in
:mod:`phantoms.npc_anatomy` at any resolution; it is deterministic (no random numbers).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure, expand, min_distance_mm, recurrent_target_volumes

from . import npc_anatomy as A
from .prior_course import FallOff, conformal_dose, d_hottest_cc, spare_organs
from .shapes import Ellipsoid, Intersection, points_min_distance, rasterize, tube_axis_points

# Prior-course D0.03cc (Gy) of the organs the first plan spared, close to single-course tolerance.
DEFAULT_PRIOR_LEVELS_GY: dict[str, float] = {
    "Brainstem": 54.0,
    "SpinalCord": 45.0,
    "OpticChiasm": 50.0,
    "OpticNrv_L": 50.0,
    "OpticNrv_R": 50.0,
    "Lobe_Temporal_L": 68.0,
    "Lobe_Temporal_R": 68.0,
    "A_Carotid_L": 70.0,
    "A_Carotid_R": 70.0,
}
PRIOR_PRESCRIPTION_GY = 70.0
PRIOR_HIGH_RISK_GY = 59.4
PRIOR_ELECTIVE_GY = 54.0
PRIOR_N_FRACTIONS = 33
HIGH_RISK_MARGIN_MM = 10.0
CRITICAL_OARS = ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R")
# Organs whose prior level may be set (the others are left at the conformal dose).
SPARABLE_ORGANS = frozenset({*DEFAULT_PRIOR_LEVELS_GY, "Cochlea_L", "Cochlea_R", "Parotid_L", "Parotid_R"})

# Tissue labels and their CT numbers (HU). The vault's HU also depends on depth (see _ct_from_labels).
TISSUE_HU: dict[str, float] = {
    "air": -1000.0, "soft_tissue": 40.0, "mandible": 1100.0, "vertebra": 650.0, "csf": 8.0,
    "vault": 1100.0, "skull_base": 950.0, "clivus": 750.0, "petrous": 1200.0, "facial_bone": 900.0,
    "brain": 35.0, "ventricle": 8.0, "orbital_fat": -90.0, "globe": 12.0, "air_cavity": -1000.0,
    "vessel": 45.0, "nerve": 30.0, "cochlea": 10.0, "neural": 32.0, "pituitary": 45.0, "tumour": 50.0,
    "fat": -90.0, "gland": 10.0, "cartilage": 150.0,
}
SUBCUTANEOUS_FAT_MM = 5.0  # fat under the skin of the face and neck (below z = 0)
DIPLOE_HU = 750.0
SKULL_TISSUES = ("vault", "skull_base", "clivus", "petrous", "facial_bone")
_LABEL = {name: i for i, name in enumerate(TISSUE_HU)}


def _centres(solid, grid: Grid) -> np.ndarray:
    """Voxel-centre sampling of a solid (for CT tissue classes)."""
    return rasterize(solid, grid, max_subvoxel_mm=math.inf)


def npc_grid(resolution_mm: float, margin_mm: float = 4.0) -> Grid:
    """The phantom's grid: isotropic ``resolution_mm``, cropped to the head plus ``margin_mm`` of air
    (the bottom slice is at the C2 level, where the scan ends)."""
    if not (isinstance(resolution_mm, (int, float)) and 1.0 <= resolution_mm <= 5.0):
        raise ValueError(f"resolution_mm must be between 1.0 and 5.0 mm, got {resolution_mm!r}")
    b = A.external_solid().bounds()
    lo = [b[0][0] - margin_mm, b[1][0] - margin_mm, A.Z_BOTTOM_MM]
    hi = [b[0][1] + margin_mm, b[1][1] + margin_mm, b[2][1] + margin_mm]
    n = [int(math.ceil((h - l) / resolution_mm)) + 1 for l, h in zip(lo, hi)]
    centre = [(l + h) / 2 for l, h in zip(lo, hi)]
    origin = [c - (k - 1) / 2 * resolution_mm for c, k in zip(centre, n)]
    origin[2] = A.Z_BOTTOM_MM  # z: start exactly at the bottom of the scan
    return Grid((n[2], n[1], n[0]), (resolution_mm,) * 3, (origin[2], origin[1], origin[0]))


def rgtv_centre_for_gap(radius_mm: float, gap_mm: float, centre_z_mm: float) -> tuple[float, float, float]:
    """Centre (x, y, z) mm of a spherical rGTV of ``radius_mm`` in the midline at height
    ``centre_z_mm`` whose surface lies ``gap_mm`` in front of the brainstem surface."""
    bs = A.BRAINSTEM_ELLIPSOID.surface_points(241, 480)
    bs = bs[bs[:, 2] >= A.FORAMEN_MAGNUM_Z]
    want = radius_mm + gap_mm

    def dist(y: float) -> float:
        return float(np.min(np.linalg.norm(bs - np.array([0.0, y, centre_z_mm]), axis=1)))

    front = A.BRAINSTEM_ELLIPSOID.centre[1]
    lo, hi = front - 150.0, front  # dist(lo) > want > dist(hi) = inside
    if dist(lo) < want:
        raise ValueError(f"rGTV: no position in front of the brainstem gives a {gap_mm} mm gap")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if dist(mid) > want:
            lo = mid
        else:
            hi = mid
    return (0.0, 0.5 * (lo + hi), float(centre_z_mm))


def _tissue_labels(grid: Grid, rgtv_solid) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Label every voxel with a tissue class; later classes override earlier ones."""
    labels = np.zeros(grid.shape, dtype=np.int8)
    parts: dict[str, np.ndarray] = {}

    def put(name: str, mask: np.ndarray) -> None:
        labels[mask] = _LABEL[name]

    ext = _centres(A.external_solid(), grid)
    parts["external"] = ext
    put("soft_tissue", ext)
    zc = grid.axis_coordinates_mm()[0]
    below_brow = np.broadcast_to((zc < 0.0)[:, None, None], grid.shape)
    put("fat", ext & (_depth_below_skin_mm(ext, grid) <= SUBCUTANEOUS_FAT_MM) & below_brow)
    for _, side in A.sides():
        put("gland", _centres(A.mirrored(A.PAROTID_LEFT, side), grid) & ext)
    put("mandible", _centres(A.mandible(), grid) & ext)
    put("vertebra", _centres(A.vertebrae_solid(), grid) & ext)
    put("csf", _centres(A.spinal_canal_solid(), grid) & ext)
    vault = _centres(A.VAULT, grid)
    put("vault", vault)
    cavity = _centres(A.CRANIAL_CAVITY_RAW, grid)
    base = (_centres(A.SKULL_BASE_PLATE, grid) & ~cavity) | _centres(A.POSTERIOR_FOSSA_FLOOR, grid) \
        | _centres(A.SPHENOID_BODY, grid) | _centres(A.DORSUM_SELLAE, grid)
    put("skull_base", base & ~vault)
    put("clivus", _centres(A.CLIVUS, grid))
    facial = _centres(A.HARD_PALATE, grid)
    for _, side in A.sides():
        facial |= _centres(A.shell(A.mirrored(A.MAXILLARY_SINUS_LEFT, side), 3.0), grid)
        facial |= _centres(A.shell(A.mirrored(A.NASAL_CAVITY_LEFT, side), 2.5), grid)
        facial |= _centres(A.orbit_wall(side), grid)
        facial |= _centres(A.zygoma(side), grid)
    put("facial_bone", facial & ext & ~(labels == _LABEL["vault"]))
    put("cartilage", _centres(A.NASAL_SEPTUM, grid) & ext)
    for _, side in A.sides():
        put("petrous", _centres(A.petrous(side), grid) & ext)
    skull_so_far = np.isin(labels, [_LABEL[t] for t in SKULL_TISSUES])
    brain = cavity & ~skull_so_far
    parts["cranial_cavity"] = brain
    put("brain", brain)
    for _, side in A.sides():
        put("ventricle", _centres(A.mirrored(A.LATERAL_VENTRICLE_LEFT, side), grid) & brain)
        put("orbital_fat", _centres(A.mirrored(A.ORBIT_FAT_LEFT, side), grid) & ext)
        put("globe", _centres(A.globe(side), grid) & ext)
    air = _centres(A.NASOPHARYNX, grid) | _centres(A.SPHENOID_SINUS, grid) | _centres(A.AIRWAY, grid)
    for _, side in A.sides():
        air |= _centres(A.mirrored(A.MAXILLARY_SINUS_LEFT, side), grid)
        air |= _centres(A.mirrored(A.NASAL_CAVITY_LEFT, side), grid)
    put("air_cavity", air & ext)
    put("pituitary", _centres(A.PITUITARY, grid))
    for _, side in A.sides():
        put("vessel", _centres(A.carotid(side), grid) & ext)
        put("nerve", _centres(A.optic_nerve(side), grid))
        put("cochlea", _centres(A.cochlea(side), grid))
    put("nerve", _centres(A.CHIASM, grid))
    put("neural", _centres(A.brainstem_solid(), grid) | (_centres(A.spinal_cord_solid(), grid) & ext))
    put("tumour", _centres(rgtv_solid, grid) & ext)
    labels[~ext] = _LABEL["air"]
    return labels, parts


def _depth_below_skin_mm(ext: np.ndarray, grid: Grid) -> np.ndarray:
    """Distance (mm) from each voxel inside ``ext`` to the nearest voxel outside it; the bottom of
    the grid (where the scan ends, not the skin) does not count as outside."""
    pad = 2 + int(math.ceil(SUBCUTANEOUS_FAT_MM / grid.spacing_mm[0]))
    padded = np.concatenate([np.repeat(ext[:1], pad, axis=0), ext], axis=0)
    padded = np.pad(padded, ((0, 1), (1, 1), (1, 1)), constant_values=False)
    depth = ndimage.distance_transform_edt(padded, sampling=grid.spacing_mm)
    return depth[pad:-1, 1:-1, 1:-1]


def _ct_from_labels(labels: np.ndarray, grid: Grid) -> np.ndarray:
    hu_table = np.array(list(TISSUE_HU.values()), dtype=np.float32)
    ct = hu_table[labels]
    vault = labels == _LABEL["vault"]
    if vault.any():
        xyz = grid.voxel_centres_xyz(np.flatnonzero(vault))
        depth = A.vault_depth_mm(xyz[:, 0], xyz[:, 1], xyz[:, 2])
        diploe = (depth > 2.0) & (depth < A.VAULT_MM - 2.0)
        values = np.where(diploe, DIPLOE_HU, TISSUE_HU["vault"]).astype(np.float32)
        ct[vault] = values
    return ct


def make_npc_phantom(
    resolution_mm: float = 2.5,
    *,
    rgtv_radius_mm: float = 15.0,
    rgtv_gap_to_brainstem_mm: float = 4.0,
    rgtv_centre_z_mm: float = A.RGTV_CENTRE_Z,
    interval_months: float = 24.0,
    prior_levels_gy: dict[str, float] | None = None,
    oar_curtail_mm: float = 0.0,
    ctv_margin_mm: float = 5.0,
    ptv_margin_mm: float = 3.0,
    prior_sparing_gradient_gy_per_mm: float = 3.0,
    prior_falloff: FallOff = FallOff(),
    name: str = "npc_phantom",
) -> Case:
    """Build the recurrent-NPC head phantom.

    Args:
        resolution_mm: isotropic voxel size (mm), 1-5 mm.
        rgtv_radius_mm: radius of the spherical recurrent GTV (mm).
        rgtv_gap_to_brainstem_mm: gap between the rGTV and brainstem surfaces (mm, > 0); the
            rGTV lies in the midline in front of the brainstem, at the nasopharynx roof / clivus.
        rgtv_centre_z_mm: height of the rGTV centre (mm, LPS z).
        interval_months: time since the end of the first course (months).
        prior_levels_gy: first-course D0.03cc (Gy) per spared organ, merged over
            :data:`DEFAULT_PRIOR_LEVELS_GY`; keys must be phantom structure names.
        oar_curtail_mm: distance (mm) by which the rCTV is kept away from the critical organs.
        ctv_margin_mm, ptv_margin_mm: rGTV -> rCTV and rCTV -> PTV margins (mm).
        prior_sparing_gradient_gy_per_mm: dose gradient next to a spared organ in the first plan.
        prior_falloff: dose fall-off outside the first course's targets.
        name: the case name.

    Raises:
        ValueError: a parameter out of range, an rGTV that would touch a critical organ or a
            carotid, or a requested prior level the first-course dose cannot reach.
    """
    if not 3.0 <= rgtv_radius_mm <= 30.0:
        raise ValueError(f"rgtv_radius_mm must be between 3 and 30 mm, got {rgtv_radius_mm}")
    if not 0.5 <= rgtv_gap_to_brainstem_mm <= 30.0:
        raise ValueError(f"rgtv_gap_to_brainstem_mm must be between 0.5 and 30 mm, got {rgtv_gap_to_brainstem_mm}")
    if not (math.isfinite(interval_months) and interval_months >= 0):
        raise ValueError(f"interval_months must be a number >= 0 (months since the prior course), got {interval_months}")
    if not -60.0 <= rgtv_centre_z_mm <= 0.0:
        raise ValueError(f"rgtv_centre_z_mm must be between -60 and 0 mm (nasopharynx to sella), got {rgtv_centre_z_mm}")
    levels = dict(DEFAULT_PRIOR_LEVELS_GY)
    for key, value in (prior_levels_gy or {}).items():
        if key not in SPARABLE_ORGANS:
            raise ValueError(f"prior_levels_gy: unknown structure {key!r}; phantom organs are {sorted(SPARABLE_ORGANS)}")
        if not 0.0 < float(value) <= PRIOR_PRESCRIPTION_GY:
            raise ValueError(f"prior_levels_gy[{key!r}] must be in (0, {PRIOR_PRESCRIPTION_GY}] Gy, got {value}")
        levels[key] = float(value)

    grid = npc_grid(resolution_mm)
    centre = rgtv_centre_for_gap(rgtv_radius_mm, rgtv_gap_to_brainstem_mm, rgtv_centre_z_mm)
    r = rgtv_radius_mm
    rgtv_solid = Ellipsoid(centre, (r, r, r))

    labels, parts = _tissue_labels(grid, rgtv_solid)
    ct = _ct_from_labels(labels, grid)
    ext = parts["external"]
    bone_skull = np.isin(labels, [_LABEL[t] for t in SKULL_TISSUES])

    masks: dict[str, np.ndarray] = {}
    masks["Brainstem"] = rasterize(A.brainstem_solid(), grid)
    masks["SpinalCord"] = rasterize(A.spinal_cord_solid(), grid) & ext
    masks["OpticChiasm"] = rasterize(A.CHIASM, grid)
    for suffix, side in A.sides():
        masks[f"OpticNrv_{suffix}"] = rasterize(A.optic_nerve(side), grid)
    brain = parts["cranial_cavity"] & ~masks["Brainstem"]
    for suffix, side in A.sides():
        lobe = Intersection((A.mirrored(A.TEMPORAL_LOBE_LEFT, side), A.CRANIAL_CAVITY_RAW))
        masks[f"Lobe_Temporal_{suffix}"] = rasterize(lobe, grid) & brain
    for suffix, side in A.sides():
        masks[f"A_Carotid_{suffix}"] = rasterize(A.carotid(side), grid) & ext
    for suffix, side in A.sides():
        masks[f"Cochlea_{suffix}"] = rasterize(A.cochlea(side), grid)
    mandible = labels == _LABEL["mandible"]
    for suffix, side in A.sides():
        masks[f"Parotid_{suffix}"] = rasterize(A.mirrored(A.PAROTID_LEFT, side), grid) & ext & ~mandible & ~bone_skull
    masks["Brain"] = brain

    rgtv = rasterize(rgtv_solid, grid) & ext
    for organ in (*CRITICAL_OARS, "A_Carotid_L", "A_Carotid_R"):
        if (rgtv & masks[organ]).any():
            raise ValueError(
                f"rGTV (radius {r} mm, {rgtv_gap_to_brainstem_mm} mm from the brainstem) overlaps {organ}; "
                "use a smaller radius or a larger gap")

    air = (ct < -400) & ext
    critical = [masks[n] for n in CRITICAL_OARS]
    rctv, ptv = recurrent_target_volumes(
        rgtv, ext, grid, ctv_margin_mm=ctv_margin_mm, ptv_margin_mm=ptv_margin_mm, air=air,
        barriers=[bone_skull], critical_oars=critical, oar_curtail_mm=oar_curtail_mm)

    # --- the first course ---
    ptv_prior = rasterize(A.prior_ptv_solid(), grid) & ext
    high_risk = (expand(ptv_prior, grid, HIGH_RISK_MARGIN_MM) | _centres(A.prior_high_risk_solid(), grid)) & ext
    elective = _centres(A.prior_elective_neck_solid(), grid) & ext
    dose = conformal_dose([(ptv_prior, PRIOR_PRESCRIPTION_GY), (high_risk, PRIOR_HIGH_RISK_GY),
                           (elective, PRIOR_ELECTIVE_GY)], grid, prior_falloff)
    dose = spare_organs(dose, [(masks[k], v) for k, v in levels.items()], grid, prior_sparing_gradient_gy_per_mm)
    dose[~ext] = 0.0
    achieved = {k: d_hottest_cc(dose, masks[k], grid, 0.03) for k in levels}
    for k, v in levels.items():
        if abs(achieved[k] - v) > 0.5:
            raise ValueError(
                f"prior level for {k}: asked for D0.03cc = {v} Gy but the first-course dose reaches "
                f"{achieved[k]:.1f} Gy there (the organ lies too far from the prior targets)")

    structures: dict[str, Structure] = {}

    def add(name: str, mask: np.ndarray, role: str = "") -> None:
        if not mask.any():
            raise ValueError(f"phantom structure {name!r} is empty at {resolution_mm} mm")
        structures[name] = Structure(name, mask, role)

    add("External", ext, "external")
    add("rGTV", rgtv, "target")
    add("rCTV", rctv, "target")
    add("PTV", ptv, "target")
    for n in ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lobe_Temporal_L",
              "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R", "Cochlea_L", "Cochlea_R", "Parotid_L",
              "Parotid_R", "Brain"):
        add(n, masks[n], "oar")
    add("Bone_Mandible", mandible, "oar")
    add("Bone_Skull", bone_skull, "other")
    add("PTV_Prior", ptv_prior, "other")

    carotid_gap = min(
        points_min_distance(tube_axis_points(A.carotid(side)), np.array([centre])) - A.CAROTID_RADIUS_MM - r
        for _, side in A.sides())
    prior = PriorCourse(
        n_fractions=PRIOR_N_FRACTIONS, interval_months=float(interval_months), modality="photon",
        prescription_gy=PRIOR_PRESCRIPTION_GY,
        description=(f"IMRT, {PRIOR_PRESCRIPTION_GY:g} Gy in {PRIOR_N_FRACTIONS} fractions to PTV_Prior "
                     f"(simultaneous {PRIOR_HIGH_RISK_GY:g} Gy high-risk and {PRIOR_ELECTIVE_GY:g} Gy "
                     "elective-neck levels), T4 nasopharyngeal carcinoma"))
    source = {
        "generator": "phantoms.npc.make_npc_phantom",
        "parameters": {
            "resolution_mm": float(resolution_mm), "rgtv_radius_mm": float(r),
            "rgtv_gap_to_brainstem_mm": float(rgtv_gap_to_brainstem_mm), "rgtv_centre_z_mm": float(rgtv_centre_z_mm),
            "interval_months": float(interval_months), "oar_curtail_mm": float(oar_curtail_mm),
            "ctv_margin_mm": float(ctv_margin_mm), "ptv_margin_mm": float(ptv_margin_mm),
            "prior_sparing_gradient_gy_per_mm": float(prior_sparing_gradient_gy_per_mm),
            "prior_falloff": {"d50_mm": prior_falloff.d50_mm, "sigma_mm": prior_falloff.sigma_mm,
                              "bath_weight": prior_falloff.bath_weight,
                              "bath_length_mm": prior_falloff.bath_length_mm},
        },
        "rgtv_centre_xyz_mm": [round(v, 3) for v in centre],
        "rgtv_gap_to_carotid_mm": round(float(carotid_gap), 3),
        "rgtv_to_brainstem_voxel_distance_mm": round(min_distance_mm(rgtv, masks["Brainstem"], grid), 3),
        "prior_levels_gy": levels,
        "prior_d0_03cc_gy": {k: round(v, 3) for k, v in achieved.items()},
        "coordinate_system": "DICOM LPS (x left, y posterior, z superior), mm",
    }
    return Case(name, grid, ct, structures, dose.astype(np.float32), prior, source)
