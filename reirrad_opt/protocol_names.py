"""Misspelled structure names in a protocol, found when the protocol meets a case.

A goal whose structure is absent from the case is normally a structure simply not contoured (the
evaluation reports it as not evaluable). But when the case holds a structure whose name is a near
miss of the goal's (``Brianstem`` against ``Brainstem``) and no goal of the protocol names that
structure, the protocol is almost certainly misspelled, and planning would silently drop a
priority-1 limit: :func:`check_protocol_names` raises before planning.

Near miss: after ignoring case, spaces, ``_``, ``-`` and ``.``, the names differ by one edit (a
letter inserted, deleted, replaced, or two neighbours swapped), or by two in names of 10 or more
letters. Structures named by another goal are never suggested, so ``OpticNrv_L`` is not a
misspelling of a contoured ``OpticNrv_R``, and ``A_Carotid_L`` is two edits from ``Parotid_L`` (9
letters), not a near miss.
"""
from __future__ import annotations

import re

from .geometry import canonical_name
from .safe_names import printable

LONG_NAME_LETTERS = 10  # from this length on, two edits are still a near miss


class ProtocolNameError(ValueError):
    """A protocol goal names a structure that is a near-miss spelling of a case structure."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name).lower()


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of two
    neighbouring letters each count 1 ('brianstem' -> 'brainstem' is 1)."""
    d = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        d[i][0] = i
    for j in range(len(b) + 1):
        d[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def near_miss(wanted: str, candidates: list[str]) -> str | None:
    """The candidate closest to ``wanted`` within the near-miss distance (module doc), or None."""
    key = _key(wanted)
    allowed = 2 if len(key) >= LONG_NAME_LETTERS else 1
    scored = sorted((edit_distance(key, _key(c)), c) for c in candidates)
    return scored[0][1] if scored and 0 < scored[0][0] <= allowed else None


def check_protocol_names(case, protocol) -> None:
    """Raise ProtocolNameError for the goals whose structure is a near-miss spelling of a case
    structure that no goal names (see the module doc)."""
    names_in_case = list(case.structures)
    named_by_protocol = set()
    for goal in protocol.goals:
        named_by_protocol.update(goal.names())
        named_by_protocol.update(canonical_name(n) for n in goal.names())
    free = [n for n in names_in_case if n not in named_by_protocol and canonical_name(n) not in named_by_protocol]
    problems = []
    for goal in protocol.goals:
        wanted = set(goal.names()) | {canonical_name(n) for n in goal.names()}
        if any(key in wanted or canonical_name(key) in wanted for key in names_in_case):
            continue  # found the way the evaluation finds it (TG-263 name or any alias)
        match = near_miss(goal.structure, free)
        if match:
            problems.append((goal, match))
    if problems:
        where = getattr(protocol, "path", "") or protocol.name
        lines = [f"goal {printable(g.id)}: no structure {printable(g.structure)} in the case; did you mean "
                 f"{printable(found)}?" for g, found in problems]
        raise ProtocolNameError(f"protocol {where}: " + "; ".join(lines) + f" (case {printable(case.name)} has "
                                f"{', '.join(printable(n) for n in names_in_case)}). Correct the structure name in the "
                                "protocol, or list the case's name under the goal's aliases")
