"""Plan-comparison metrics: conformity, R50, integral dose, dose fall-off from the PTV surface.

Definitions (all on the new course's physical dose unless stated):

* Paddick conformity index at an isodose level L (% of Rx): CI = TV_L^2 / (TV * V_L), with TV the
  PTV volume, V_L the volume inside the L isodose and TV_L the part of the PTV inside it (1 = perfect).
* R50: volume of the 50 % isodose (within the body) divided by the PTV volume.
* Integral dose: sum of dose x volume over the body, Gy * litre (= J/kg * L, approximately J for
  unit density).
* Fall-off: along rays from the PTV centroid, the distances (mm) from the 90 % to the 50 % isodose and
  from the 80 % to the 20 % isodose, measured outward from the PTV surface; median and range over the
  ray directions that cross both levels inside the body.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..geometry import Grid


def paddick_ci(dose_gy: np.ndarray, ptv: np.ndarray, level_gy: float) -> float:
    """Paddick conformity index (dimensionless, 0-1) of the ``level_gy`` isodose around the PTV."""
    inside = dose_gy >= level_gy
    tv = float(ptv.sum())
    piv = float(inside.sum())
    if tv == 0 or piv == 0:
        return 0.0
    return float((inside & ptv).sum()) ** 2 / (tv * piv)


def r50(dose_gy: np.ndarray, ptv: np.ndarray, body: np.ndarray, rx_gy: float) -> float:
    """Volume of the 50 % isodose within the body over the PTV volume (dimensionless)."""
    return float(((dose_gy >= 0.5 * rx_gy) & body).sum()) / max(float(ptv.sum()), 1.0)


def integral_dose_gy_litre(dose_gy: np.ndarray, body: np.ndarray, grid: Grid) -> float:
    """Integral dose over the body in Gy * litre."""
    return float(dose_gy[body].sum()) * grid.voxel_volume_cc / 1000.0


def volume_at_least_cc(dose_gy: np.ndarray, mask: np.ndarray, level_gy: float, grid: Grid) -> float:
    """Volume (cc) of ``mask`` receiving at least ``level_gy``."""
    return float((dose_gy[mask] >= level_gy).sum()) * grid.voxel_volume_cc


@dataclass
class FallOff:
    """Fall-off distances (mm) over ray directions: median, min, max, and how many rays counted."""

    median_mm: float
    min_mm: float
    max_mm: float
    n_directions: int

    def to_dict(self) -> dict:
        return {"median_mm": _r(self.median_mm), "min_mm": _r(self.min_mm), "max_mm": _r(self.max_mm),
                "n_directions": self.n_directions}


def _r(x: float) -> float | None:
    return None if not np.isfinite(x) else round(float(x), 2)


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (x, y, z) on the sphere (deterministic)."""
    k = np.arange(n) + 0.5
    polar = np.arccos(1 - 2 * k / n)
    azimuth = np.pi * (1 + 5 ** 0.5) * k
    return np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1)


def _first_below(profile: np.ndarray, radii: np.ndarray, level: float, start: int) -> float:
    """Radius (mm) where ``profile`` first drops below ``level`` at or after index ``start``,
    linearly interpolated; NaN if it never does."""
    below = np.flatnonzero(profile[start:] < level)
    if below.size == 0:
        return np.nan
    i = start + below[0]
    if i == 0:
        return float(radii[0])
    d0, d1 = profile[i - 1], profile[i]
    t = (d0 - level) / (d0 - d1) if d0 != d1 else 0.0
    return float(radii[i - 1] + t * (radii[i] - radii[i - 1]))


def dose_falloff(dose_gy: np.ndarray, ptv: np.ndarray, body: np.ndarray, grid: Grid, rx_gy: float, *,
                 pairs=((90, 50), (80, 20)), n_directions: int = 200, step_mm: float = 0.5,
                 max_distance_mm: float = 80.0, profiles: bool = False):
    """Fall-off distances between isodose pairs (in % of Rx), outward from the PTV surface.

    For each direction the ray starts at the PTV centroid; the surface point is where the ray last
    leaves the PTV; each isodose crossing is the first drop below its level after the point 10 mm
    inside the surface (so a level reached inside the PTV is found there, as a negative distance).
    Returns ``{"90-50": FallOff, "80-20": FallOff}`` (and the per-direction profiles if asked:
    distance from the surface (mm) -> dose (Gy)).
    """
    centre_idx = np.argwhere(ptv).mean(axis=0)
    centre = grid.index_to_patient(centre_idx)
    dirs = fibonacci_directions(n_directions)
    radii = np.arange(0.0, max_distance_mm + step_mm, step_mm)
    points = centre[None, None, :] + dirs[:, None, :] * radii[None, :, None]       # (n_dir, n_r, 3) xyz
    idx = grid.patient_to_index(points.reshape(-1, 3)).T                          # (3, n) zyx
    sample = lambda vol, order: ndimage.map_coordinates(vol.astype(np.float32), idx, order=order, mode="constant",
                                                         cval=0.0).reshape(len(dirs), len(radii))
    d = sample(dose_gy, 1)
    in_ptv = sample(ptv, 0) > 0.5
    in_body = sample(body, 0) > 0.5
    results = {f"{a}-{b}": [] for a, b in pairs}
    kept_profiles = []
    for n in range(len(dirs)):
        inside = np.flatnonzero(in_ptv[n])
        if inside.size == 0:
            continue
        surface_r = radii[inside[-1]] + step_mm / 2
        start = int(max(0, np.searchsorted(radii, surface_r - 10.0)))
        outside_body = np.flatnonzero(~in_body[n, start:])
        stop = start + outside_body[0] if outside_body.size else len(radii)
        prof, rr = d[n, :stop], radii[:stop]
        for a, b in pairs:
            ra = _first_below(prof, rr, a / 100 * rx_gy, start)
            rb = _first_below(prof, rr, b / 100 * rx_gy, start)
            if np.isfinite(ra) and np.isfinite(rb) and rb >= ra:
                results[f"{a}-{b}"].append(rb - ra)
        if profiles:
            kept_profiles.append((rr - surface_r, prof))
    out = {}
    for key, values in results.items():
        v = np.asarray(values)
        out[key] = FallOff(float(np.median(v)), float(v.min()), float(v.max()), int(v.size)) if v.size else \
            FallOff(np.nan, np.nan, np.nan, 0)
    return (out, kept_profiles) if profiles else out
