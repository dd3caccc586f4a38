"""The voxel grid and its link to patient coordinates.

Convention (used everywhere in reirrad-opt, stated once here):

* Volumes are numpy arrays indexed ``volume[k, j, i]`` = ``[z, y, x]`` (slice, row, column).
* Every per-axis tuple stored on a :class:`Grid` (``shape``, ``spacing_mm``, ``origin_mm``)
  is in that same array order ``(z, y, x)``.
* Points in patient space are DICOM LPS coordinates in mm, given as ``(x, y, z)``
  (x towards the patient's Left, y towards Posterior, z towards Superior), exactly as in
  DICOM ImagePositionPatient. Only axis-aligned grids are supported: column index ``i``
  grows with x, row index ``j`` with y and slice index ``k`` with z.
* ``origin_mm`` is the patient coordinate of the *centre* of voxel ``[0, 0, 0]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """An axis-aligned voxel grid.

    Attributes:
        shape: number of voxels ``(nz, ny, nx)``.
        spacing_mm: voxel size ``(dz, dy, dx)`` in mm.
        origin_mm: patient LPS coordinate of the centre of voxel [0, 0, 0], in array order
            ``(z0, y0, x0)`` in mm.
    """

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        spacing = tuple(float(s) for s in self.spacing_mm)
        origin = tuple(float(o) for o in self.origin_mm)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"Grid shape must be three positive integers (nz, ny, nx), got {self.shape}")
        if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise ValueError(f"Grid spacing_mm must be three positive numbers (dz, dy, dx), got {self.spacing_mm}")
        if len(origin) != 3 or not all(np.isfinite(origin)):
            raise ValueError(f"Grid origin_mm must be three finite numbers (z0, y0, x0), got {self.origin_mm}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "spacing_mm", spacing)
        object.__setattr__(self, "origin_mm", origin)

    @property
    def voxel_volume_cc(self) -> float:
        """Volume of one voxel in cm^3 (cc)."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    def axis_coordinates_mm(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Patient coordinates (mm) of voxel centres along each array axis: ``(z, y, x)``."""
        return tuple(
            self.origin_mm[a] + self.spacing_mm[a] * np.arange(self.shape[a], dtype=float)
            for a in range(3)
        )  # type: ignore[return-value]

    def index_to_patient(self, index_zyx: np.ndarray) -> np.ndarray:
        """Convert (possibly fractional) array indices ``(..., 3)`` in (k, j, i) order to
        patient LPS points ``(..., 3)`` in (x, y, z) order, mm."""
        idx = np.asarray(index_zyx, dtype=float)
        zyx = np.asarray(self.origin_mm) + idx * np.asarray(self.spacing_mm)
        return zyx[..., ::-1]

    def patient_to_index(self, point_xyz: np.ndarray) -> np.ndarray:
        """Convert patient LPS points ``(..., 3)`` in (x, y, z) mm to fractional array
        indices ``(..., 3)`` in (k, j, i) order."""
        p = np.asarray(point_xyz, dtype=float)[..., ::-1]
        return (p - np.asarray(self.origin_mm)) / np.asarray(self.spacing_mm)

    def voxel_centres_xyz(self, flat_indices: np.ndarray | None = None) -> np.ndarray:
        """Patient (x, y, z) mm of voxel centres, ``(n, 3)``; all voxels in C order when
        ``flat_indices`` is None."""
        if flat_indices is None:
            flat_indices = np.arange(self.n_voxels)
        kji = np.stack(np.unravel_index(np.asarray(flat_indices), self.shape), axis=-1)
        return self.index_to_patient(kji)

    def extent_mm(self) -> tuple[tuple[float, float], ...]:
        """(min, max) voxel-centre coordinate along each array axis (z, y, x), mm."""
        return tuple(
            (self.origin_mm[a], self.origin_mm[a] + self.spacing_mm[a] * (self.shape[a] - 1))
            for a in range(3)
        )

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "spacing_mm": list(self.spacing_mm), "origin_mm": list(self.origin_mm),
                "axis_order": "zyx"}

    @classmethod
    def from_dict(cls, d: dict) -> "Grid":
        if d.get("axis_order", "zyx") != "zyx":
            raise ValueError(f"grid axis_order must be 'zyx', got {d.get('axis_order')!r}")
        return cls(tuple(d["shape"]), tuple(d["spacing_mm"]), tuple(d["origin_mm"]))

    def check_array(self, array: np.ndarray, what: str) -> None:
        """Raise ValueError naming ``what`` if ``array`` does not have this grid's shape."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"{what}: array shape {tuple(array.shape)} does not match grid shape {self.shape} (z, y, x)")
