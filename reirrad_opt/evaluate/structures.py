"""Which case structure a protocol line reads, and the check that a structure declared absent is
really not contoured (see :mod:`reirrad_opt.absent`)."""
from __future__ import annotations

from typing import Mapping

from ..case import Case
from ..geometry import canonical_name
from ..protocol import Goal


def find_case_structure(case: Case, goal: Goal, structure_map: dict[str, str] | None = None) -> str | None:
    """The case's name for the goal's structure: an explicit ``structure_map`` entry, the TG-263
    name, or any alias (the goal's own and the TG-263 table's), compared by canonical name."""
    if structure_map and goal.structure in structure_map:
        name = structure_map[goal.structure]
        return name if name in case.structures else None
    if goal.structure in case.structures:
        return goal.structure
    wanted = {canonical_name(n) for n in goal.names()}
    for key in case.structures:
        if key in wanted or canonical_name(key) in wanted:
            return key
    return None


def check_absent_not_contoured(case: Case, goals, absent: Mapping[str, str],
                               structure_map: dict[str, str] | None = None) -> None:
    """Refuse a structure declared absent that the case contours (non-empty): it cannot be both.

    A structure present in the case but without any voxel may be declared absent.

    Raises:
        ValueError: naming the structure, the case's name for it, its voxel count and the declaration.
    """
    for goal in goals:
        if goal.structure not in absent:
            continue
        name = find_case_structure(case, goal, structure_map)
        if name is not None and case.structures[name].mask.any():
            n = int(case.structures[name].mask.sum())
            raise ValueError(f"{goal.structure} is declared absent ({absent[goal.structure]}) but case "
                             f"{case.name!r} contours it as {name!r} ({n} voxels): it cannot be both; remove "
                             f"the declaration or the contour")
