"""Structures: a named boolean mask on a grid with a clinical role."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import Grid
from .names import default_role

ROLES = ("target", "oar", "external", "other")


@dataclass
class Structure:
    """A delineated structure.

    Attributes:
        name: TG-263 name (see :mod:`reirrad_opt.geometry.names`).
        mask: boolean array with the grid's shape (z, y, x); True inside.
        role: 'target', 'oar', 'external' or 'other'.
    """

    name: str
    mask: np.ndarray
    role: str = ""

    def __post_init__(self) -> None:
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.mask.ndim != 3:
            raise ValueError(f"structure {self.name!r}: mask must be 3-D (z, y, x), got {self.mask.ndim}-D")
        if not self.role:
            self.role = default_role(self.name)
        if self.role not in ROLES:
            raise ValueError(f"structure {self.name!r}: role must be one of {ROLES}, got {self.role!r}")

    def volume_cc(self, grid: Grid) -> float:
        """Volume in cc (voxel count times voxel volume)."""
        grid.check_array(self.mask, f"structure {self.name!r}")
        return float(self.mask.sum()) * grid.voxel_volume_cc

    def centroid_xyz(self, grid: Grid) -> np.ndarray:
        """Patient (x, y, z) mm of the mask's centre of mass; ValueError if empty."""
        idx = np.argwhere(self.mask)
        if idx.size == 0:
            raise ValueError(f"structure {self.name!r} is empty: it has no centroid")
        return grid.index_to_patient(idx.mean(axis=0))


def min_distance_mm(a: np.ndarray, b: np.ndarray, grid: Grid) -> float:
    """Smallest centre-to-centre distance (mm) between voxels of masks ``a`` and ``b``
    (0 where they overlap); ValueError if either is empty."""
    from scipy import ndimage

    if not a.any() or not b.any():
        raise ValueError("min_distance_mm: a mask is empty")
    dist_to_b = ndimage.distance_transform_edt(~b, sampling=grid.spacing_mm)
    return float(dist_to_b[a].min())
