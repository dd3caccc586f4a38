"""Water phantoms for physics checks: a water box in air, optionally with slabs of another
material (bone, air, lung) perpendicular to one axis. Built as :class:`reirrad_opt.case.Case`
objects with an 'External' structure (the water box) and no prior course (zero prior dose).

Coordinates: the box is centred laterally on x = 0 and z = 0 (LPS mm); its anterior surface (the
entrance surface for a gantry-0 beam, which travels towards +y) is at ``y = surface_y_mm`` and it
extends ``depth_mm`` in +y. Voxel centres lie on x = 0 and z = 0 so a beam's central axis runs
through a row of voxel centres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure

WATER_HU = 0.0
AIR_HU = -1000.0
CORTICAL_BONE_HU = 1500.0


@dataclass(frozen=True)
class Slab:
    """A slab ``y_from_mm <= y < y_to_mm`` (LPS y, mm) of CT number ``hu`` across the whole box."""

    y_from_mm: float
    y_to_mm: float
    hu: float

    def __post_init__(self) -> None:
        if not self.y_to_mm > self.y_from_mm:
            raise ValueError(f"Slab: y_to_mm ({self.y_to_mm}) must exceed y_from_mm ({self.y_from_mm})")


def water_box(width_x_mm: float = 300.0, depth_mm: float = 300.0, width_z_mm: float = 300.0,
              spacing_mm: tuple[float, float, float] = (2.5, 2.0, 2.5), surface_y_mm: float = 0.0,
              air_gap_mm: float = 10.0, slabs: tuple[Slab, ...] = (), name: str = "water_box") -> Case:
    """A water box in air, voxel-aligned so that its faces fall on voxel boundaries.

    Args:
        width_x_mm, depth_mm, width_z_mm: box size along x (left-right), y (beam depth for
            gantry 0) and z (superior-inferior), mm.
        spacing_mm: voxel size (dz, dy, dx) in mm.
        surface_y_mm: LPS y of the anterior (entrance) surface.
        air_gap_mm: air around the box in front of the surface (mm, rounded to voxels).
        slabs: slabs of other materials inside the box.
    """
    dz, dy, dx = (float(s) for s in spacing_mm)
    nx = 2 * int(round(width_x_mm / (2 * dx)))
    nz = 2 * int(round(width_z_mm / (2 * dz)))
    ny_water = int(round(depth_mm / dy))
    ny_air = int(round(air_gap_mm / dy))
    if min(nx, nz, ny_water) < 1:
        raise ValueError(f"water_box: box ({width_x_mm} x {depth_mm} x {width_z_mm} mm) is smaller than a voxel")
    # odd lateral counts so that x = 0 and z = 0 are voxel centres
    nx += 1
    nz += 1
    ny = ny_water + 2 * ny_air
    origin_y = surface_y_mm - ny_air * dy + 0.5 * dy
    grid = Grid((nz, ny, nx), (dz, dy, dx), (-(nz // 2) * dz, origin_y, -(nx // 2) * dx))
    _, y, _ = grid.axis_coordinates_mm()
    ct = np.full(grid.shape, AIR_HU, dtype=np.float32)
    in_water = (y > surface_y_mm) & (y < surface_y_mm + ny_water * dy)
    ct[:, in_water, :] = WATER_HU
    for s in slabs:
        sel = in_water & (y >= s.y_from_mm) & (y < s.y_to_mm)
        ct[:, sel, :] = s.hu
    body = np.zeros(grid.shape, dtype=bool)
    body[:, in_water, :] = True
    return Case(name, grid, ct, {"External": Structure("External", body, "external")},
                np.zeros(grid.shape, dtype=np.float32),
                PriorCourse(n_fractions=1, interval_months=0.0, modality="none", description="no prior course"),
                {"phantom": "water_box", "slabs": [s.__dict__ for s in slabs]})
