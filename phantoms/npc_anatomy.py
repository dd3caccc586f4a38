"""Anatomy of the recurrent-NPC head phantom as analytic solids (no grid, no data files).

Coordinates are DICOM LPS in mm: x towards the patient's left, y posterior, z superior. The
origin lies near the centre of the head, at about the level of the sella turcica. Sizes follow
adult anatomy: head 150 mm wide and about 190 mm deep, from C2 to the vertex; brainstem a tilted
ellipsoid 30 x 26 x 66 mm (about 27 cc); internal carotid arteries 6 mm tubes lateral to the
nasopharynx; optic chiasm 18 x 10 x 5.6 mm about 10 mm above the sphenoid sinus; 4 mm optic
nerves from the chiasm through the optic canals to the back of the globes; temporal lobes in the
middle cranial fossa lateral to the cavernous sinus; parotids lateral and posterior to the
mandibular ramus; 0.1 cc cochleae in the petrous bone.

Everything here is deterministic; :mod:`phantoms.npc` voxelises it.
"""
from __future__ import annotations

import math

import numpy as np

from .shapes import (Difference, Ellipsoid, EllipticCylinder, Intersection, Region, Tube, Union, half_space,
                     rot_x, rot_z, union)

# --- brainstem: ellipsoid tilted 20 degrees (superior end anterior), cut at the foramen magnum ---
BRAINSTEM_TILT_DEG = 20.0
BRAINSTEM_ELLIPSOID = Ellipsoid((0.0, 20.0, -20.0), (15.0, 13.0, 33.0), rot_x(BRAINSTEM_TILT_DEG))
FORAMEN_MAGNUM_Z = -48.0          # brainstem above, spinal cord below (mm)
PREPONTINE_CISTERN_MM = 4.0       # CSF between the brainstem and the back of the clivus
CLIVUS_THICKNESS_MM = 11.0
SKULL_BASE_PLATE_MM = 5.0

# --- midline skull-base landmarks (mm) ---
PITUITARY = Ellipsoid((0.0, -17.0, 0.0), (6.0, 4.0, 4.0))
CHIASM = Ellipsoid((0.0, -14.0, 10.0), (9.0, 5.0, 2.8))
SPHENOID_SINUS = Ellipsoid((0.0, -33.0, -10.0), (13.0, 11.0, 10.0))
NASOPHARYNX = Ellipsoid((0.0, -28.0, -42.0), (14.0, 8.0, 11.0))

# --- the rGTV default: a sphere at the nasopharynx roof / clivus, level of its centre ---
RGTV_CENTRE_Z = -30.0

CAROTID_RADIUS_MM = 3.0


def _mirror(points, side: int) -> tuple[tuple[float, float, float], ...]:
    """Polyline given for the patient's left (x > 0); side = +1 left, -1 right."""
    return tuple((side * p[0], p[1], p[2]) for p in points)


CAROTID_LEFT_PATH = (      # internal carotid: cervical (vertical), petrous, cavernous, supraclinoid
    (23.0, -5.0, -100.0), (22.0, -8.0, -30.0), (21.0, -14.0, -18.0), (17.0, -22.0, -10.0),
    (15.0, -26.0, -1.0), (13.0, -21.0, 7.0),
)
OPTIC_NERVE_LEFT_PATH = ((6.0, -19.0, 10.0), (12.0, -34.0, 7.0), (17.0, -47.0, 4.0), (29.0, -61.0, 2.0))
GLOBE_LEFT = ((32.0, -73.0, 2.0), 12.0)
PETROUS_LEFT_PATH = ((16.0, 2.0, -22.0), (56.0, 30.0, -30.0))
COCHLEA_LEFT_CENTRE = (31.0, 12.5, -25.0)
COCHLEA_RADIUS_MM = (3 * 100.0 / (4 * math.pi)) ** (1 / 3)   # 0.100 cc sphere (2.88 mm)
TEMPORAL_LOBE_LEFT = Ellipsoid((42.0, -8.0, -6.0), (17.0, 34.0, 21.0), rot_z(-8.0))
PAROTID_LEFT = Ellipsoid((49.0, 9.0, -58.0), (13.0, 18.0, 23.0))
MAXILLARY_SINUS_LEFT = Ellipsoid((32.0, -58.0, -30.0), (13.0, 16.0, 17.0))
NASAL_CAVITY_LEFT = Ellipsoid((8.5, -66.0, -27.0), (6.0, 30.0, 17.0))
ORBIT_FAT_LEFT = Ellipsoid((30.0, -63.0, 2.0), (17.0, 24.0, 15.0))
MANDIBLE_LEFT_PATH = ((49.0, -4.0, -26.0), (47.0, -4.0, -80.0), (40.0, -30.0, -90.0), (24.0, -52.0, -95.0),
                      (0.0, -62.0, -97.0))

# --- outer surfaces (mm) ---
SKIN_CRANIUM = Ellipsoid((0.0, 4.0, 14.0), (75.0, 96.0, 99.0))
SCALP_MM = 5.0
VAULT_MM = 7.0
SKULL_OUTER = Ellipsoid((0.0, 4.0, 14.0), (75.0 - SCALP_MM, 96.0 - SCALP_MM, 99.0 - SCALP_MM))
SKULL_INNER = Ellipsoid((0.0, 4.0, 14.0), (75.0 - SCALP_MM - VAULT_MM, 96.0 - SCALP_MM - VAULT_MM,
                                           99.0 - SCALP_MM - VAULT_MM))
FACE = Ellipsoid((0.0, -28.0, -38.0), (62.0, 70.0, 64.0))
LOWER_HEAD = Ellipsoid((0.0, 6.0, -72.0), (66.0, 68.0, 64.0))
NOSE = Ellipsoid((0.0, -93.0, -20.0), (11.0, 14.0, 22.0))
CHIN = Ellipsoid((0.0, -56.0, -92.0), (30.0, 20.0, 16.0))

# Extent of the phantom (mm): C2 level at the bottom; the grid adds a small air margin.
Z_BOTTOM_MM = -95.0


def brainstem_local(x, y, z):
    """Brainstem frame: (lateral, anterior-posterior across the axis, along the axis) in mm,
    origin at the brainstem centre; the second component is negative in front of it."""
    e = BRAINSTEM_ELLIPSOID
    r = e.rotation
    u = (np.asarray(x, float) - e.centre[0], np.asarray(y, float) - e.centre[1], np.asarray(z, float) - e.centre[2])
    return tuple(r[0, k] * u[0] + r[1, k] * u[1] + r[2, k] * u[2] for k in range(3))


def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


# Floor of the cranial cavity, a height field z = f(x, y) (mm), blended from a midline profile
# (planum sphenoidale, sella) to a lateral one (anterior, middle and posterior cranial fossae).
_FLOOR_MID_Y = (-200.0, -46.0, -38.0, -24.0, -21.0, -13.0, -10.0, 200.0)
_FLOOR_MID_Z = (22.0, 22.0, 8.0, 8.0, -4.0, -4.0, -4.0, -4.0)
_FLOOR_LAT_Y = (-200.0, -44.0, -34.0, 8.0, 18.0, 200.0)
_FLOOR_LAT_Z = (22.0, 22.0, -24.0, -32.0, -45.0, -45.0)


def cranial_floor_z(x, y):
    """Height (mm) of the floor of the supratentorial / middle-fossa cavity at (x, y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    mid = np.interp(y, _FLOOR_MID_Y, _FLOOR_MID_Z)
    lat = np.interp(y, _FLOOR_LAT_Y, _FLOOR_LAT_Z)
    w = _smoothstep((np.abs(x) - 14.0) / 10.0)
    return (1 - w) * mid + w * lat


def _cavity_inside(x, y, z):
    x, y, z = np.broadcast_arrays(*(np.asarray(v, float) for v in (x, y, z)))
    above_floor = z > cranial_floor_z(x, y)
    _, ly, _ = brainstem_local(x, y, z)
    behind_clivus = ly > -(BRAINSTEM_ELLIPSOID.semi_axes[1] + PREPONTINE_CISTERN_MM)
    # posterior fossa: behind the clivus and the petrous bones, above its floor (-45 mm), with
    # the foramen magnum opening down to the cord
    behind_petrous = y > -5.0 + 0.6 * np.maximum(np.abs(x) - 14.0, 0.0)
    foramen = (np.abs(x) < 16.0) & (y < 50.0) & (z > FORAMEN_MAGNUM_Z - 4.0)
    posterior_fossa = behind_clivus & behind_petrous & ((z > -45.0) | foramen)
    return SKULL_INNER.contains(x, y, z) & (above_floor | posterior_fossa)


CRANIAL_CAVITY_RAW = Region(_cavity_inside, SKULL_INNER.bounds())


def _clivus_inside(x, y, z):
    lx, ly, _ = brainstem_local(x, y, z)
    back = -(BRAINSTEM_ELLIPSOID.semi_axes[1] + PREPONTINE_CISTERN_MM)
    z = np.asarray(z, float)
    return (np.abs(lx) <= 13.0) & (ly <= back) & (ly >= back - CLIVUS_THICKNESS_MM) & (z >= -50.0) & (z <= -6.0)


CLIVUS = Region(_clivus_inside, ((-13.0, 13.0), (-30.0, 30.0), (-50.0, -6.0)))
DORSUM_SELLAE = Region(
    lambda x, y, z: (np.abs(x) <= 8.0) & (y >= -12.0) & (y <= -8.0) & (z >= -8.0) & (z <= 6.0),
    ((-8.0, 8.0), (-12.0, -8.0), (-8.0, 6.0)))
SPHENOID_BODY = Ellipsoid((0.0, -30.0, -11.0), (20.0, 17.0, 16.0))


def _skull_base_plate(x, y, z):
    """Bone under the cranial floor: a plate below the height field, inside the skull (the
    cranial cavity must still be removed from it, see :data:`CRANIAL_CAVITY_RAW`)."""
    x, y, z = np.broadcast_arrays(*(np.asarray(v, float) for v in (x, y, z)))
    f = cranial_floor_z(x, y)
    return SKULL_OUTER.contains(x, y, z) & (z <= f) & (z > f - SKULL_BASE_PLATE_MM)


SKULL_BASE_PLATE = Region(_skull_base_plate, SKULL_OUTER.bounds())


def _posterior_fossa_floor(x, y, z):
    """Occipital bone under the posterior fossa (z -52..-45), open at the foramen magnum."""
    x, y, z = np.broadcast_arrays(*(np.asarray(v, float) for v in (x, y, z)))
    foramen = (np.abs(x) < 16.0) & (y < 50.0)
    return SKULL_OUTER.contains(x, y, z) & (y > 8.0) & (z <= -45.0) & (z > -52.0) & ~foramen


POSTERIOR_FOSSA_FLOOR = Region(_posterior_fossa_floor, SKULL_OUTER.bounds())


def _vault(x, y, z):
    """Cranial vault: shell between the outer and inner table, above the skull base."""
    x, y, z = np.broadcast_arrays(*(np.asarray(v, float) for v in (x, y, z)))
    shell = SKULL_OUTER.contains(x, y, z) & ~SKULL_INNER.contains(x, y, z)
    return shell & (z > cranial_floor_z(x, y) - SKULL_BASE_PLATE_MM)


VAULT = Region(_vault, SKULL_OUTER.bounds())


def vault_depth_mm(x, y, z) -> np.ndarray:
    """Approximate depth (mm) below the outer table along the ray from the skull centre."""
    rho = np.sqrt(SKULL_OUTER.level(x, y, z))
    c = SKULL_OUTER.centre
    r = np.sqrt((np.asarray(x, float) - c[0]) ** 2 + (np.asarray(y, float) - c[1]) ** 2 + (np.asarray(z, float) - c[2]) ** 2)
    return r * (1.0 / np.maximum(rho, 1e-6) - 1.0)


def shell(e: Ellipsoid, thickness_mm: float) -> Difference:
    """Wall of ``thickness_mm`` around an ellipsoidal cavity."""
    t = thickness_mm
    outer = Ellipsoid(e.centre, tuple(a + t for a in e.semi_axes), e.rotation)
    return Difference(outer, (e,))


def mirrored(e: Ellipsoid, side: int) -> Ellipsoid:
    rot = e.rotation
    if rot is not None:
        m = np.diag([side, 1.0, 1.0])
        rot = m @ np.asarray(rot) @ m
    return Ellipsoid((side * e.centre[0], e.centre[1], e.centre[2]), e.semi_axes, rot)


def sides():
    """(suffix, sign of x): left is +x in LPS."""
    return (("L", 1), ("R", -1))


def external_solid():
    return union(SKIN_CRANIUM, FACE, LOWER_HEAD, NOSE, CHIN)


def carotid(side: int) -> Tube:
    return Tube(_mirror(CAROTID_LEFT_PATH, side), CAROTID_RADIUS_MM)


def optic_nerve(side: int) -> Tube:
    return Tube(_mirror(OPTIC_NERVE_LEFT_PATH, side), 2.0)


def cochlea(side: int) -> Ellipsoid:
    c = COCHLEA_LEFT_CENTRE
    r = COCHLEA_RADIUS_MM
    return Ellipsoid((side * c[0], c[1], c[2]), (r, r, r))


def globe(side: int) -> Ellipsoid:
    (c, r) = GLOBE_LEFT
    return Ellipsoid((side * c[0], c[1], c[2]), (r, r, r))


def petrous(side: int) -> Tube:
    return Tube(_mirror(PETROUS_LEFT_PATH, side), 9.0)


def mandible() -> Union:
    left = Tube(_mirror(MANDIBLE_LEFT_PATH, 1), 5.0)
    right = Tube(_mirror(MANDIBLE_LEFT_PATH, -1), 5.0)
    return union(left, right)


def brainstem_solid() -> Intersection:
    return Intersection((BRAINSTEM_ELLIPSOID, half_space("z", minimum=FORAMEN_MAGNUM_Z)))


CORD_PATH = ((0.0, 31.0, -44.0), (0.0, 33.0, -70.0), (0.0, 35.0, -110.0))


def spinal_cord_solid() -> Intersection:
    """Cord (10 mm thick) below the foramen magnum (the brainstem takes over above it)."""
    return Intersection((Tube(CORD_PATH, 5.0), half_space("z", maximum=FORAMEN_MAGNUM_Z - 1e-6)))


def spinal_canal_solid() -> Intersection:
    """CSF-filled canal (16 mm wide) around the cord."""
    return Intersection((Tube(CORD_PATH, 8.0), half_space("z", maximum=FORAMEN_MAGNUM_Z - 1e-6)))


def vertebrae_solid():
    """C1/C2 as one block around the spinal canal (z -95..-55 mm)."""
    return Difference(EllipticCylinder((0.0, 24.0), (20.0, 22.0), -120.0, -55.0), (Tube(CORD_PATH, 8.0),))


AIRWAY = Tube(((0.0, -27.0, -46.0), (0.0, -22.0, -70.0), (0.0, -20.0, -110.0)), 7.0)
LATERAL_VENTRICLE_LEFT = Ellipsoid((11.0, 2.0, 38.0), (6.0, 30.0, 9.0))
HARD_PALATE = Region(lambda x, y, z: (np.abs(x) <= 20.0) & (y >= -88.0) & (y <= -36.0) & (z >= -48.0) & (z <= -44.0),
                     ((-20.0, 20.0), (-88.0, -36.0), (-48.0, -44.0)))
NASAL_SEPTUM = Region(lambda x, y, z: (np.abs(x) <= 1.5) & (y >= -92.0) & (y <= -36.0) & (z >= -44.0) & (z <= -10.0),
                      ((-1.5, 1.5), (-92.0, -36.0), (-44.0, -10.0)))


def orbit_wall(side: int) -> Intersection:
    """3 mm bony wall around the orbital fat, open in front (y < -78 mm)."""
    return Intersection((shell(mirrored(ORBIT_FAT_LEFT, side), 3.0), half_space("y", minimum=-78.0)))


def zygoma(side: int) -> Tube:
    return Tube(_mirror(((40.0, -70.0, -14.0), (58.0, -48.0, -18.0), (64.0, -10.0, -22.0), (60.0, 6.0, -24.0)), side),
                4.0)


def prior_ptv_solid():
    """The first course's high-dose target (70 Gy): the original T4 nasopharyngeal tumour with
    skull-base, clivus and cavernous-sinus extension, plus margins."""
    nasopharynx = Ellipsoid((0.0, -18.0, -40.0), (31.0, 24.0, 24.0))
    skull_base = Ellipsoid((0.0, -16.0, -17.0), (36.0, 20.0, 14.0))
    return union(nasopharynx, skull_base)


def prior_high_risk_solid():
    """The first course's high-risk region beyond the 70 Gy target (59.4 Gy, together with a
    margin around PTV_Prior): sella, cavernous sinuses, sphenoid sinus and posterior ethmoid."""
    return Ellipsoid((0.0, -22.0, -2.0), (30.0, 22.0, 14.0))


def prior_elective_neck_solid():
    """The first course's elective nodal target (54 Gy): retropharyngeal and upper neck levels."""
    return Ellipsoid((0.0, 10.0, -98.0), (54.0, 38.0, 56.0))
