"""The Eclipse plug-in (ESAPI 15.6-18, C# single file) with its settings filled in.

The C# source is ``ReirradOpt.cs`` next to this module; its settings are ``{{NAME}}`` placeholders
that :func:`render_plugin` replaces. What the plug-in does is described at its top and in
docs/tps-exchange.md.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from reirrad_opt.atomic import atomic_file

TEMPLATE = Path(__file__).with_name("ReirradOpt.cs")
ESAPI_VERSIONS = "15.6 to 18"
# reirrad-opt's ring fall-off (planning.RING_HALF_DOSE_MM: Rx at the PTV surface, half of it 10 mm
# out, floor 25 %) as Eclipse's exponential NTO: 100 % -> 25 % with (100-25)/(50-25) = 3 at 10 mm
NTO_FALL_OFF_PER_MM = math.log(3.0) / 10.0


@dataclass(frozen=True)
class EclipseSettings:
    """Settings written as constants at the top of the plug-in.

    Attributes:
        exchange_dir: the exchange folder as the Eclipse workstation sees it (its ``result`` is read).
        constraint_priority: Eclipse priority of the priority-1 caps (ESAPI priorities are doubles, 0-1000).
        objective_priorities: Eclipse priorities of protocol priorities 2, 3, 4, ... (the last one
            repeats for lower priorities).
        add_nto: add a normal tissue objective (photon plans).
        nto_priority, nto_distance_mm, nto_start_pct, nto_end_pct, nto_fall_off_per_mm: its
            AddNormalTissueObjective arguments (priority, distance from the target border in mm,
            start and end dose in % of the prescription, fall-off in 1/mm).
        remove_existing: remove the plan's existing objectives first.
    """

    exchange_dir: str = r"C:\reirrad\exchange"
    constraint_priority: float = 500.0
    objective_priorities: tuple[float, ...] = (150.0, 80.0, 40.0)
    add_nto: bool = True
    nto_priority: float = 100.0
    nto_distance_mm: float = 1.0
    nto_start_pct: float = 100.0
    nto_end_pct: float = 25.0
    nto_fall_off_per_mm: float = field(default=round(NTO_FALL_OFF_PER_MM, 4))
    remove_existing: bool = False

    def __post_init__(self) -> None:
        if not str(self.exchange_dir).strip():
            raise ValueError("exchange_dir: expected the exchange folder's path as Eclipse sees it, got ''")
        if any(c in str(self.exchange_dir) for c in "\r\n"):
            raise ValueError(f"exchange_dir {self.exchange_dir!r}: a path without line breaks was expected")
        for name in ("constraint_priority", "nto_priority"):
            v = float(getattr(self, name))
            if not 0 <= v <= 1000:
                raise ValueError(f"{name} {v:g}: Eclipse priorities run from 0 to 1000")
        if not self.objective_priorities or any(not 0 <= float(p) <= 1000 for p in self.objective_priorities):
            raise ValueError(f"objective_priorities {self.objective_priorities}: expected one or more priorities "
                             "from 0 to 1000")
        if not 0 <= self.nto_end_pct <= self.nto_start_pct <= 200:
            raise ValueError(f"NTO doses {self.nto_start_pct:g} % -> {self.nto_end_pct:g} %: expected 0 <= end <= "
                             "start <= 200 %")
        if self.nto_distance_mm < 0 or self.nto_fall_off_per_mm <= 0:
            raise ValueError("NTO: distance_mm must be >= 0 mm and fall_off_per_mm > 0 /mm")


def _num(x: float) -> str:
    """A C# double literal."""
    text = repr(float(x))
    return text if ("." in text or "e" in text) else text + ".0"


def render_plugin(settings: EclipseSettings = EclipseSettings()) -> str:
    """The plug-in's C# source with ``settings`` filled in."""
    values = {
        "EXCHANGE_DIR": str(settings.exchange_dir).replace('"', '""'),   # C# verbatim string
        "CONSTRAINT_PRIORITY": _num(settings.constraint_priority),
        "OBJECTIVE_PRIORITIES": ", ".join(_num(p) for p in settings.objective_priorities),
        "ADD_NTO": "true" if settings.add_nto else "false",
        "NTO_PRIORITY": _num(settings.nto_priority),
        "NTO_DISTANCE_MM": _num(settings.nto_distance_mm),
        "NTO_START_PCT": _num(settings.nto_start_pct),
        "NTO_END_PCT": _num(settings.nto_end_pct),
        "NTO_FALL_OFF": _num(settings.nto_fall_off_per_mm),
        "REMOVE_EXISTING": "true" if settings.remove_existing else "false",
    }
    return _fill(TEMPLATE, values)


PYESAPI_TEMPLATE = Path(__file__).with_name("reirrad_pyesapi.py.in")


def render_pyesapi(settings: EclipseSettings = EclipseSettings()) -> str:
    """The PyESAPI (pythonnet) stand-alone variant with ``settings`` filled in: the same objectives as
    the plug-in, for a patient, course and plan named on its command line."""
    values = {
        "EXCHANGE_DIR": repr(str(settings.exchange_dir)),
        "CONSTRAINT_PRIORITY": _num(settings.constraint_priority),
        "OBJECTIVE_PRIORITIES": ", ".join(_num(p) for p in settings.objective_priorities),
        "ADD_NTO": repr(bool(settings.add_nto)),
        "NTO_PRIORITY": _num(settings.nto_priority),
        "NTO_DISTANCE_MM": _num(settings.nto_distance_mm),
        "NTO_START_PCT": _num(settings.nto_start_pct),
        "NTO_END_PCT": _num(settings.nto_end_pct),
        "NTO_FALL_OFF": _num(settings.nto_fall_off_per_mm),
        "REMOVE_EXISTING": repr(bool(settings.remove_existing)),
    }
    return _fill(PYESAPI_TEMPLATE, values)


def _fill(template: Path, values: dict[str, str]) -> str:
    text = template.read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    left = re.findall(r"\{\{[A-Z_]+\}\}", text)
    if left:
        raise RuntimeError(f"{template}: placeholders without a setting: {sorted(set(left))}")
    return text


def write_plugin(out: str | os.PathLike, settings: EclipseSettings = EclipseSettings()) -> Path:
    """Write the plug-in to ``out`` (a .cs file, written atomically); returns its path."""
    out = Path(out)
    if out.suffix.lower() != ".cs":
        raise ValueError(f"--out {out}: an Eclipse single-file plug-in is a .cs file (e.g. ReirradOpt.cs)")
    with atomic_file(out, "w") as fh:
        fh.write(render_plugin(settings))
    return out
