"""Structures declared absent: protocol organs that are not contoured because they lie outside the
field (e.g. OpenKBP patients have no optic structures).

A protocol line whose structure is missing from the case is 'not evaluated' and leaves the plan
'incomplete' (never a pass). The user may instead **declare** the structure absent, on the command
line (``--absent OpticChiasm ...``), in the protocol's ``[options] absent_structures = [...]``, or as
``plan(absent=...)``; its lines then read 'absent', do not block a pass, and the declaration (name
-> how it was declared) is recorded in plan.json ``absent_structures``.

Names are the protocol's structure names (TG-263, e.g. ``OpticNrv_L``); an unknown name is refused
with the nearest protocol names suggested.
"""
from __future__ import annotations

import difflib
from typing import Iterable, Mapping

from .geometry.names import canonical_name, default_role

# How a declaration was made, as recorded in plan.json "absent_structures".
DECLARED_BY_OPTION = "protocol option absent_structures"
DECLARED_BY_CALLER = "absent=... (Python)"
DECLARED_BY_CLI = "--absent"


def check_absent_names(names: Iterable, known: Iterable[str], where: str) -> list[str]:
    """The names, each once and in order, after checking that each is a structure of the protocol
    and not a target (a target is what the plan treats: it cannot lie outside the field).

    Raises:
        ValueError: a name that is not a string, not in ``known`` or a target; the message names
            ``where`` (the option or file) and suggests the nearest protocol structure names.
    """
    if isinstance(names, str):
        raise ValueError(f"{where}: expected a list of structure names, got the single string {names!r}")
    known = list(dict.fromkeys(known))
    out: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{where}: expected structure names (text), got {name!r}")
        if name not in known:
            # an alias or another spelling ('Chiasm', 'opticnrv_l') names one structure; else the closest
            close = [canonical_name(name)] if canonical_name(name) in known else []
            if not close:
                lower = {k.lower(): k for k in known}
                close = [lower[c] for c in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.5)]
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise ValueError(f"{where}: {name!r} is not a structure of the protocol{hint} "
                             f"(the protocol's structures: {', '.join(known)})")
        if default_role(name) == "target":
            raise ValueError(f"{where}: {name} is a target; only organs outside the field can be declared absent")
        if name not in out:
            out.append(name)
    return out


def declared_absent(protocol, absent: Iterable[str] | Mapping[str, str] | None = None) -> dict[str, str]:
    """Structure name -> how it was declared: the protocol's option ``absent_structures`` and the
    caller's ``absent`` (a list of names, or a mapping name -> how it was declared), checked
    against the protocol's structure names."""
    known = [g.structure for g in protocol.goals]
    out: dict[str, str] = {}
    from_option = protocol.options.get("absent_structures") or ()
    source = getattr(protocol, "path", None)
    how_option = DECLARED_BY_OPTION + (f" ({source.name})" if source is not None and hasattr(source, "name") else "")
    for name in check_absent_names(from_option, known, "protocol option absent_structures"):
        out[name] = how_option
    if absent is None:
        return out
    if isinstance(absent, str):
        raise ValueError(f"absent: expected a list of structure names, got the single string {absent!r}")
    pairs = absent.items() if isinstance(absent, Mapping) else ((n, DECLARED_BY_CALLER) for n in absent)
    pairs = list(pairs)
    where = " / ".join(dict.fromkeys(str(h) for _, h in pairs)) or "absent"
    check_absent_names([n for n, _ in pairs], known, where)
    for name, how in pairs:
        if name not in out:
            out[name] = str(how)
        elif str(how) not in out[name].split("; "):  # declared twice: say both ways, once each
            out[name] = f"{out[name]}; {how}"
    return out
