"""Beams and fields: photon IMRT beams (bixels) and particle fields (spots in energy layers).

Bixels and spots sit on a square lateral grid in the beam's-eye view (BEV, isocentre plane;
axes ``u``, ``v`` of :mod:`.geometry`) with a node on the central axis. A photon bixel is kept
when its square comes within ``margin_mm`` of the projection of the target (divergent
projection from the source); a particle spot likewise for the parallel projection. Particle
energy layers are chosen per field so that their ranges (CSDA range R0, which equals R80 of the
pristine peak) cover the water-equivalent depth of the target along every spot's ray, plus
``margin_mm``; each spot position gets the layers whose range falls within the target's depth
span on its ray (from the nearest target voxels within the margin).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from ..geometry import Grid
from .beam_model import BeamModel, default_beam_model
from .geometry import BeamFrame
from .hu_tables import SPR_CURVE, HUCurve
from .particle import csda_range_mm, energy_for_range, ion_species, range_table, straggling_sigma_mm
from .raytrace import radiological_depth

PHOTON_SAD_MM = 1000.0


@dataclass(eq=False)
class PhotonBeam:
    """A photon IMRT beam: a divergent 6 MV beam with square bixels.

    Attributes:
        gantry_deg, couch_deg: IEC 61217 angles (degrees).
        isocenter_xyz_mm: isocentre (LPS x, y, z mm).
        bixel_mm: bixel width at the isocentre plane (mm).
        bixel_u_mm, bixel_v_mm: BEV centres of the bixels at the isocentre plane (mm).
        sad_mm: source-axis distance (mm).
        energy: beam label ('6MV').
    """

    gantry_deg: float
    couch_deg: float
    isocenter_xyz_mm: tuple[float, float, float]
    bixel_mm: float
    bixel_u_mm: np.ndarray
    bixel_v_mm: np.ndarray
    sad_mm: float = PHOTON_SAD_MM
    energy: str = "6MV"
    modality: str = field(default="photon", init=False)

    def __post_init__(self) -> None:
        self.bixel_u_mm = np.asarray(self.bixel_u_mm, dtype=np.float64).ravel()
        self.bixel_v_mm = np.asarray(self.bixel_v_mm, dtype=np.float64).ravel()
        self.isocenter_xyz_mm = tuple(float(c) for c in self.isocenter_xyz_mm)
        if self.bixel_u_mm.shape != self.bixel_v_mm.shape:
            raise ValueError("PhotonBeam: bixel_u_mm and bixel_v_mm must have the same length")
        if not self.bixel_mm > 0 or not self.sad_mm > 0:
            raise ValueError(f"PhotonBeam: bixel_mm and sad_mm must be > 0, got {self.bixel_mm}, {self.sad_mm}")

    @property
    def frame(self) -> BeamFrame:
        return BeamFrame(float(self.gantry_deg), float(self.couch_deg), self.isocenter_xyz_mm, self.sad_mm)

    @property
    def n_columns(self) -> int:
        return int(self.bixel_u_mm.size)

    def to_dict(self) -> dict:
        return {"modality": "photon", "gantry_deg": float(self.gantry_deg), "couch_deg": float(self.couch_deg),
                "isocenter_xyz_mm": list(self.isocenter_xyz_mm), "bixel_mm": float(self.bixel_mm),
                "bixel_u_mm": self.bixel_u_mm.tolist(), "bixel_v_mm": self.bixel_v_mm.tolist(),
                "sad_mm": float(self.sad_mm), "energy": self.energy}


@dataclass(eq=False)
class ParticleField:
    """A scanned particle field: spots at lateral BEV positions in energy layers (parallel beam).

    Attributes:
        gantry_deg, couch_deg: IEC 61217 angles (degrees).
        isocenter_xyz_mm: isocentre (LPS x, y, z mm).
        ion: 'proton' or 'carbon'.
        spot_spacing_mm: lateral spot grid spacing (mm).
        spot_u_mm, spot_v_mm: BEV positions of the spots (mm).
        spot_energy_mev: energy of each spot (MeV for protons, MeV/u for carbon).
        spot_range_mm: CSDA range in water of each spot (mm) = R80 of its pristine peak.
        beam_model: the machine's spot size and energy spread (:mod:`.beam_model`); None: the
            shipped generic model of the ion.
        spot_rs_wet_mm: water-equivalent thickness (mm) of the range shifter in front of each spot
            (0: none; otherwise the beam model's); None: all 0.
    """

    gantry_deg: float
    couch_deg: float
    isocenter_xyz_mm: tuple[float, float, float]
    ion: str
    spot_spacing_mm: float
    spot_u_mm: np.ndarray
    spot_v_mm: np.ndarray
    spot_energy_mev: np.ndarray
    spot_range_mm: np.ndarray = None  # type: ignore[assignment]
    sad_mm: float | None = None
    beam_model: BeamModel | None = None
    spot_rs_wet_mm: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        ion_species(self.ion)
        if self.beam_model is None:
            self.beam_model = default_beam_model(self.ion)
        elif self.beam_model.ion != self.ion:
            raise ValueError(f"ParticleField: beam model {self.beam_model.name!r} ({self.beam_model.source}) is for "
                             f"{self.beam_model.ion}, the field is {self.ion}")
        self.isocenter_xyz_mm = tuple(float(c) for c in self.isocenter_xyz_mm)
        self.spot_u_mm = np.asarray(self.spot_u_mm, dtype=np.float64).ravel()
        self.spot_v_mm = np.asarray(self.spot_v_mm, dtype=np.float64).ravel()
        self.spot_energy_mev = np.asarray(self.spot_energy_mev, dtype=np.float64).ravel()
        n = self.spot_u_mm.size
        if self.spot_v_mm.size != n or self.spot_energy_mev.size != n:
            raise ValueError("ParticleField: spot_u_mm, spot_v_mm and spot_energy_mev must have the same length")
        self.spot_rs_wet_mm = np.zeros(n) if self.spot_rs_wet_mm is None else \
            np.asarray(self.spot_rs_wet_mm, dtype=np.float64).ravel()
        if self.spot_rs_wet_mm.size != n:
            raise ValueError("ParticleField: spot_rs_wet_mm must have one value per spot")
        shifted = self.spot_rs_wet_mm > 0
        if shifted.any():
            rs = self.beam_model.range_shifter
            if rs is None or not np.allclose(self.spot_rs_wet_mm[shifted], rs.wet_mm):
                raise ValueError(f"ParticleField: spot_rs_wet_mm must be 0 or the beam model's range shifter "
                                 f"({'none' if rs is None else f'{rs.wet_mm:g} mm'}), got "
                                 f"{sorted(set(self.spot_rs_wet_mm[shifted].tolist()))}")
        if self.spot_range_mm is None:
            self.spot_range_mm = (csda_range_mm(self.spot_energy_mev, self.ion) - self.spot_rs_wet_mm) if n \
                else np.zeros(0)
        self.spot_range_mm = np.asarray(self.spot_range_mm, dtype=np.float64).ravel()
        if self.sad_mm is not None:
            raise ValueError("ParticleField: only parallel fields (sad_mm=None) are modelled")

    @property
    def modality(self) -> str:
        return self.ion

    @property
    def frame(self) -> BeamFrame:
        return BeamFrame(float(self.gantry_deg), float(self.couch_deg), self.isocenter_xyz_mm, None)

    @property
    def n_columns(self) -> int:
        return int(self.spot_u_mm.size)

    @property
    def layer_energies_mev(self) -> np.ndarray:
        return np.unique(self.spot_energy_mev)[::-1]

    def to_dict(self) -> dict:
        return {"modality": self.ion, "gantry_deg": float(self.gantry_deg), "couch_deg": float(self.couch_deg),
                "isocenter_xyz_mm": list(self.isocenter_xyz_mm), "ion": self.ion,
                "spot_spacing_mm": float(self.spot_spacing_mm), "spot_u_mm": self.spot_u_mm.tolist(),
                "spot_v_mm": self.spot_v_mm.tolist(), "spot_energy_mev": self.spot_energy_mev.tolist(),
                "spot_range_mm": self.spot_range_mm.tolist(), "spot_rs_wet_mm": self.spot_rs_wet_mm.tolist(),
                "beam_model": self.beam_model.to_dict()}


def beam_from_dict(d: dict) -> PhotonBeam | ParticleField:
    """Rebuild a beam or field from :meth:`to_dict` output."""
    if d.get("modality") == "photon":
        return PhotonBeam(d["gantry_deg"], d["couch_deg"], tuple(d["isocenter_xyz_mm"]), d["bixel_mm"],
                          np.asarray(d["bixel_u_mm"]), np.asarray(d["bixel_v_mm"]), d["sad_mm"], d.get("energy", "6MV"))
    return ParticleField(d["gantry_deg"], d["couch_deg"], tuple(d["isocenter_xyz_mm"]), d["ion"],
                         d["spot_spacing_mm"], np.asarray(d["spot_u_mm"]), np.asarray(d["spot_v_mm"]),
                         np.asarray(d["spot_energy_mev"]), np.asarray(d["spot_range_mm"]),
                         beam_model=BeamModel.from_dict(d["beam_model"]) if d.get("beam_model") else None,
                         spot_rs_wet_mm=np.asarray(d["spot_rs_wet_mm"]) if "spot_rs_wet_mm" in d else None)


def _check_target(grid: Grid, target_mask: np.ndarray) -> np.ndarray:
    target_mask = np.asarray(target_mask, dtype=bool)
    grid.check_array(target_mask, "target_mask")
    if not target_mask.any():
        raise ValueError("target_mask is empty: beams need a target to cover")
    return target_mask


def _angles(gantry_angles_deg, couch_angles_deg) -> list[tuple[float, float]]:
    gantry = [float(g) for g in np.atleast_1d(np.asarray(gantry_angles_deg, dtype=float))]
    if not gantry:
        raise ValueError("gantry_angles_deg is empty: give at least one beam angle")
    if couch_angles_deg is None:
        couch = [0.0] * len(gantry)
    else:
        couch = [float(c) for c in np.atleast_1d(np.asarray(couch_angles_deg, dtype=float))]
        if len(couch) == 1:
            couch = couch * len(gantry)
        if len(couch) != len(gantry):
            raise ValueError(f"couch_angles_deg must have one angle or as many as gantry_angles_deg "
                             f"({len(gantry)}), got {len(couch)}")
    if not all(np.isfinite(gantry + couch)):
        raise ValueError("beam angles must be finite numbers")
    return list(zip(gantry, couch))


def _isocenter(grid: Grid, target_mask: np.ndarray, isocenter_xyz_mm) -> tuple[float, float, float]:
    if isocenter_xyz_mm is None:
        return tuple(float(c) for c in grid.index_to_patient(np.argwhere(target_mask).mean(axis=0)))
    iso = np.asarray(isocenter_xyz_mm, dtype=float).ravel()
    if iso.size != 3 or not np.all(np.isfinite(iso)):
        raise ValueError(f"isocenter_xyz_mm must be three finite numbers (x, y, z) mm, got {isocenter_xyz_mm}")
    return tuple(float(c) for c in iso)


def _covering_nodes(a: np.ndarray, b: np.ndarray, spacing: float, margin_mm: float,
                    footprint_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer lateral grid nodes (i, j) whose square (side ``spacing``) comes within
    ``margin_mm`` of the points (a, b) (each point standing for a square of side ``footprint_mm``)."""
    res = min(spacing, footprint_mm) / 4.0
    reach = margin_mm + 0.5 * footprint_mm + spacing
    a0, b0 = a.min() - reach, b.min() - reach
    na = int(np.ceil((a.max() + reach - a0) / res)) + 1
    nb = int(np.ceil((b.max() + reach - b0) / res)) + 1
    img = np.zeros((na, nb), dtype=bool)
    img[np.rint((a - a0) / res).astype(int), np.rint((b - b0) / res).astype(int)] = True
    dist = ndimage.distance_transform_edt(~img) * res
    covered = dist <= margin_mm + 0.5 * footprint_mm
    ia, ib = np.nonzero(covered)
    node_i = np.rint((a0 + ia * res) / spacing).astype(int)
    node_j = np.rint((b0 + ib * res) / spacing).astype(int)
    nodes = np.unique(np.stack([node_i, node_j], axis=1), axis=0)
    return nodes[:, 0], nodes[:, 1]


def photon_beams(grid: Grid, target_mask: np.ndarray, gantry_angles_deg, couch_angles_deg=None,
                 isocenter_xyz_mm=None, bixel_mm: float = 5.0, margin_mm: float = 5.0) -> list[PhotonBeam]:
    """Photon beams whose bixels cover the target's projection plus ``margin_mm``.

    Args:
        grid: the voxel grid of ``target_mask``.
        target_mask: boolean (z, y, x) mask of the target (PTV).
        gantry_angles_deg: one gantry angle per beam (IEC, degrees).
        couch_angles_deg: one couch angle per beam, a single angle for all, or None (0).
        isocenter_xyz_mm: isocentre (LPS mm); default: the target's centroid.
        bixel_mm: bixel width at the isocentre plane (mm).
        margin_mm: lateral margin around the target projection (mm, isocentre plane).
    """
    target_mask = _check_target(grid, target_mask)
    if not bixel_mm > 0 or not margin_mm >= 0:
        raise ValueError(f"bixel_mm must be > 0 and margin_mm >= 0, got {bixel_mm}, {margin_mm}")
    iso = _isocenter(grid, target_mask, isocenter_xyz_mm)
    pts = grid.voxel_centres_xyz(np.flatnonzero(target_mask))
    footprint = float(max(grid.spacing_mm))
    beams = []
    for g, c in _angles(gantry_angles_deg, couch_angles_deg):
        frame = BeamFrame(g, c, iso, PHOTON_SAD_MM)
        a, b, _ = frame.fan_coordinates(pts)
        i, j = _covering_nodes(a, b, bixel_mm, margin_mm, footprint)
        beams.append(PhotonBeam(g, c, iso, float(bixel_mm), i * bixel_mm, j * bixel_mm))
    return beams


def default_layer_spacing_mm(range_mm: float, ion: str = "proton") -> float:
    """Default spacing of energy layers in water-equivalent range (mm): 2.5 straggling sigmas,
    at least 2 mm (pristine peaks then overlap near 80 % of their height)."""
    return max(2.0, 2.5 * straggling_sigma_mm(range_mm, ion_species(ion)))


def particle_fields(grid: Grid, target_mask: np.ndarray, ct_hu: np.ndarray, gantry_angles_deg,
                    couch_angles_deg=None, spot_spacing_mm: float = 5.0, layer_spacing_mm: float | None = None,
                    margin_mm: float = 5.0, ion: str = "proton", isocenter_xyz_mm=None,
                    spr_curve: HUCurve = SPR_CURVE, beam_model: BeamModel | None = None) -> list[ParticleField]:
    """Particle fields with spots covering the target laterally and in depth, plus a margin.

    Args:
        grid, target_mask: as for :func:`photon_beams`.
        ct_hu: CT numbers (HU) on the grid (water-equivalent depths via ``spr_curve``).
        gantry_angles_deg, couch_angles_deg: field angles (IEC, degrees).
        spot_spacing_mm: lateral spot spacing (mm, isocentre plane).
        layer_spacing_mm: spacing of energy layers in water-equivalent range (mm); None: a
            range-dependent default (:func:`default_layer_spacing_mm`).
        margin_mm: lateral and (water-equivalent) depth margin around the target (mm).
        ion: 'proton' or 'carbon'.
        isocenter_xyz_mm: isocentre (LPS mm); default: the target's centroid.
        beam_model: the machine (spot size, energy spread); None: the shipped generic model.
    """
    target_mask = _check_target(grid, target_mask)
    grid.check_array(np.asarray(ct_hu), "ct_hu")
    species = ion_species(ion)
    if not spot_spacing_mm > 0 or not margin_mm >= 0:
        raise ValueError(f"spot_spacing_mm must be > 0 and margin_mm >= 0, got {spot_spacing_mm}, {margin_mm}")
    if layer_spacing_mm is not None and not layer_spacing_mm > 0:
        raise ValueError(f"layer_spacing_mm must be > 0 or None, got {layer_spacing_mm}")
    iso = _isocenter(grid, target_mask, isocenter_xyz_mm)
    spr = spr_curve(ct_hu)
    tvox = np.flatnonzero(target_mask)
    footprint = float(max(grid.spacing_mm))
    rtab = range_table(species.name)
    fields = []
    for g, c in _angles(gantry_angles_deg, couch_angles_deg):
        frame = BeamFrame(g, c, iso, None)
        rt = radiological_depth(frame, grid, spr, tvox)
        i, j = _covering_nodes(rt.a_mm, rt.b_mm, spot_spacing_mm, margin_mm, footprint)
        # water-equivalent depth span of the target on each spot's ray (within the lateral margin)
        ti = np.rint(rt.a_mm / spot_spacing_mm).astype(int)
        tj = np.rint(rt.b_mm / spot_spacing_mm).astype(int)
        i0, j0 = min(i.min(), ti.min()), min(j.min(), tj.min())
        shape = (max(i.max(), ti.max()) - i0 + 1, max(j.max(), tj.max()) - j0 + 1)
        dmin = np.full(shape, np.inf)
        dmax = np.full(shape, -np.inf)
        np.minimum.at(dmin, (ti - i0, tj - j0), rt.depth_mm)
        np.maximum.at(dmax, (ti - i0, tj - j0), rt.depth_mm)
        rad = int(np.ceil((margin_mm + 0.5 * footprint) / spot_spacing_mm))
        yy, xx = np.mgrid[-rad:rad + 1, -rad:rad + 1]
        foot = (yy ** 2 + xx ** 2) * spot_spacing_mm ** 2 <= (margin_mm + 0.5 * footprint + 0.5 * spot_spacing_mm) ** 2
        dmin = ndimage.grey_erosion(np.where(np.isfinite(dmin), dmin, 1e9), footprint=foot, mode="constant", cval=1e9)
        dmax = ndimage.grey_dilation(np.where(np.isfinite(dmax), dmax, -1e9), footprint=foot, mode="constant",
                                     cval=-1e9)
        lo = dmin[i - i0, j - j0] - margin_mm
        hi = dmax[i - i0, j - j0] + margin_mm
        ok = hi > lo
        i, j, lo, hi = i[ok], j[ok], np.maximum(lo[ok], 0.0), hi[ok]
        r_top = min(float(hi.max()), float(rtab.range_mm[-1]))
        r_bottom = max(float(lo.min()), float(rtab.range_mm[0]) * 1.01)
        layers = []
        r = r_top
        while r >= r_bottom - 1e-9:
            layers.append(r)
            r -= layer_spacing_mm if layer_spacing_mm is not None else default_layer_spacing_mm(r, species.name)
        if not layers or layers[-1] > r_bottom + 1e-6:
            layers.append(r_bottom)
        layers = np.asarray(layers)
        # layers shallower than the machine's lowest energy reaches go through the range shifter
        model = beam_model if beam_model is not None else default_beam_model(species.name)
        wet = np.zeros(layers.size)
        if model.range_shifter is not None:
            wet[layers < float(csda_range_mm(min(model.energies_mev), species.name))] = model.range_shifter.wet_mm
        energies = np.round(energy_for_range(layers + wet, species.name), 3)
        ranges = csda_range_mm(energies, species.name) - wet
        su, sv, se, sr, sw = [], [], [], [], []
        for e, rng, t in zip(energies, ranges, wet):
            sel = (lo <= rng + 1e-9) & (rng <= hi + 1e-9)
            su.append(i[sel] * spot_spacing_mm)
            sv.append(j[sel] * spot_spacing_mm)
            se.append(np.full(int(sel.sum()), e))
            sr.append(np.full(int(sel.sum()), rng))
            sw.append(np.full(int(sel.sum()), t))
        fields.append(ParticleField(g, c, iso, species.name, float(spot_spacing_mm), np.concatenate(su),
                                    np.concatenate(sv), np.concatenate(se), np.concatenate(sr),
                                    beam_model=model, spot_rs_wet_mm=np.concatenate(sw)))
    return fields
