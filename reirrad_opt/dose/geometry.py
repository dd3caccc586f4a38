"""Beam frames: gantry and couch angles (IEC 61217) to unit vectors in patient LPS coordinates.

Convention (head-first supine patient, the usual orientation; stated once here):

* ``s`` is the unit vector from the isocentre towards the source. With couch 0, gantry 0 puts the
  source above the patient (anterior, ``s = (0, -1, 0)`` in LPS), gantry 90 at the patient's left
  (``s = (1, 0, 0)``), gantry 270 at the patient's right. The couch angle rotates the patient
  support counter-clockwise seen from above, so with gantry 90 and couch 90 the beam enters from
  the patient's feet. In LPS: ``s = (sin g cos c, -cos g, -sin g sin c)``.
* ``d = -s`` is the beam direction (source to isocentre).
* ``u`` and ``v`` span the beam's-eye view (BEV): ``u`` lies in the gantry rotation plane
  (``u = (cos g, sin g, 0)`` at couch 0: towards the patient's left at gantry 0) and
  ``v = u x d`` (towards the patient's head at couch 0, gantry 0; IEC beam-limiting-device
  axes X_b = u, Y_b = v). Lateral BEV positions of
  bixels and spots are ``(u, v)`` in mm in the plane through the isocentre.
* Photon beams diverge from a point source at the source-axis distance (SAD, 1000 mm); a point
  ``p`` has fan coordinates ``w = (p - S).d`` (distance from the source along the central axis)
  and iso-plane coordinates ``(a, b) = ((p - S).u, (p - S).v) * SAD / w``. Particle fields are
  treated as parallel (no divergence): ``(a, b) = ((p - iso).u, (p - iso).v)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BeamFrame:
    """Geometry of one beam.

    Attributes:
        gantry_deg, couch_deg: IEC 61217 angles (degrees).
        isocenter_xyz: isocentre, patient LPS (x, y, z) mm.
        sad_mm: source-axis distance (mm); None for a parallel (non-divergent) beam.
    """

    gantry_deg: float
    couch_deg: float
    isocenter_xyz: tuple[float, float, float]
    sad_mm: float | None = 1000.0

    @property
    def source_direction(self) -> np.ndarray:
        """Unit vector ``s`` from the isocentre towards the source (LPS)."""
        g, c = np.deg2rad(self.gantry_deg), np.deg2rad(self.couch_deg)
        return np.array([np.sin(g) * np.cos(c), -np.cos(g), -np.sin(g) * np.sin(c)])

    @property
    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit vectors ``(d, u, v)``: beam direction and the two BEV axes (LPS)."""
        g, c = np.deg2rad(self.gantry_deg), np.deg2rad(self.couch_deg)
        d = -self.source_direction
        u = np.array([np.cos(g) * np.cos(c), np.sin(g), -np.cos(g) * np.sin(c)])
        v = np.cross(u, d)
        return d, u, v / np.linalg.norm(v)

    @property
    def source_xyz(self) -> np.ndarray:
        """Source position (LPS mm); for a parallel beam, a virtual point 1000 mm upstream."""
        dist = 1000.0 if self.sad_mm is None else self.sad_mm
        return np.asarray(self.isocenter_xyz) + dist * self.source_direction

    def fan_coordinates(self, points_xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Beam coordinates of points ``(n, 3)`` LPS mm -> ``(a, b, w)``.

        ``w``: distance from the (virtual) source along the central axis (mm).
        ``a, b``: lateral position projected to the isocentre plane (mm) along the ray through
        the point (divergent beams) or simply the lateral offset (parallel beams).
        """
        d, u, v = self.axes
        rel = np.asarray(points_xyz, dtype=np.float64) - self.source_xyz
        w = rel @ d
        a = rel @ u
        b = rel @ v
        if self.sad_mm is not None:
            scale = self.sad_mm / w
            a = a * scale
            b = b * scale
        return a, b, w

    def points_from_fan(self, a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`fan_coordinates`: LPS points (..., 3) for arrays a, b, w (broadcast)."""
        d, u, v = self.axes
        a, b, w = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(w, float))
        if self.sad_mm is not None:
            scale = w / self.sad_mm
            a = a * scale
            b = b * scale
        src = self.source_xyz
        return src + w[..., None] * d + a[..., None] * u + b[..., None] * v

    def path_stretch(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Path length per unit of ``w`` along the ray with iso-plane coordinates (a, b)."""
        if self.sad_mm is None:
            return np.ones(np.broadcast(a, b).shape)
        return np.sqrt(1.0 + (np.asarray(a) ** 2 + np.asarray(b) ** 2) / self.sad_mm ** 2)
