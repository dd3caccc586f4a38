"""Voxel grid, structures, TG-263 names and margins (see grid.py for the axis convention)."""
from .grid import Grid
from .margins import contract, distance_outside_mm, expand, recurrent_target_volumes, ring
from .names import TG263_ALIASES, canonical_name, default_role, non_anatomical_reason, parse_structure_map
from .structure import Structure, min_distance_mm

__all__ = [
    "Grid", "Structure", "min_distance_mm", "expand", "contract", "ring", "distance_outside_mm",
    "recurrent_target_volumes", "TG263_ALIASES", "canonical_name", "default_role", "non_anatomical_reason",
    "parse_structure_map",
]
