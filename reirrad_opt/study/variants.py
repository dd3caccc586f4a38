"""Study variables: what one variant of a study sets, how a value is checked, how a sweep expands,
and the content keys that make results reusable.

A :class:`Variant` is everything a plan of a case depends on besides the case itself; a
:class:`Job` is one (case, variant) pair with its keys:

- ``Job.key``: SHA-256 of the case's content key, the resolved variant, the protocol file's bytes
  and the reirrad-opt version; the name of the variant's result file (resume).
- ``Job.influence_key``: SHA-256 of the case's content key, the modality, the gantry angles and
  the bixel or spot spacing: every job with the same influence key plans on the same
  dose-influence matrix (computed once).
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..commands._args import MAX_BEAMS, SPACING_MM_RANGE   # the command line's bounds, the same for studies
from ..planning import DEFAULT_PARTICLE_ANGLES_DEG, DEFAULT_PHOTON_ANGLES_DEG
from ..planning_settings import LEGACY_PROTOCOL_OPTIONS
from ..protocol import Protocol, Slip
from ..radiobiology import RecoveryModel
from ..rbe import RBE_MAX, RBE_MIN

MODALITIES = ("photon", "proton", "carbon")
OPTIC_NERVE_RULES = ("bilateral", "unilateral", "unilateral-L", "unilateral-R")
# the variables a study may set or sweep (besides protocol options, table 'options'), in column order
VARIABLES = ("modality", "fractionation", "recovery", "interval_months", "slip", "optic_nerve_rule", "beams",
             "rbe", "bixel_mm", "spot_spacing_mm", "settings")


@dataclass(frozen=True)
class Variant:
    """One setting of the study variables (units in the names).

    Attributes:
        modality: 'photon', 'proton' or 'carbon'.
        fractionation: the protocol's fractionation name (e.g. 'bid-1.2').
        recovery: 'protocol' (the protocol's [recovery]), 'none', 'constant:F' or
            'table:M=F,M=F,...' (months=fraction recovered).
        interval_months: months since the (most recent) prior course; None keeps the case's own.
        slip: the slip of every priority, '<x> Gy' or '<x> %' (of Rx); None keeps the protocol's.
        optic_nerve_rule: 'bilateral', 'unilateral', 'unilateral-L' or 'unilateral-R'.
        beams: number of equispaced beams or fields; None for the default arrangement (9 photon
            beams, 3 particle fields at 90/270/180 deg).
        gantry_angles_deg: the resolved gantry angles (deg).
        rbe: constant RBE of a particle plan (None: the protocol's for protons; photons: None).
        bixel_mm: photon beamlet size at the isocentre (mm); None for particles.
        spot_spacing_mm: particle spot spacing (mm); None for photons.
        options: protocol option overrides, sorted (name, value) pairs.
        settings: the planning settings file (absolute path) the plan is computed with (engine, its
            constants, ...; :func:`reirrad_opt.planning_settings.load_settings`); None: the defaults.
        settings_sha256: SHA-256 of that file's bytes (part of the result key: an edited file plans again).
    """

    modality: str = "photon"
    fractionation: str = ""
    recovery: str = "protocol"
    interval_months: float | None = None
    slip: str | None = None
    optic_nerve_rule: str = "bilateral"
    beams: int | None = None
    gantry_angles_deg: tuple[float, ...] = ()
    rbe: float | None = None
    bixel_mm: float | None = 5.0
    spot_spacing_mm: float | None = None
    options: tuple[tuple[str, Any], ...] = ()
    settings: str | None = None
    settings_sha256: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form (options as a table; no settings keys without a settings file, so the result keys of
        a study without one are those it had before studies took settings files)."""
        d = dataclasses.asdict(self)
        d["gantry_angles_deg"] = list(self.gantry_angles_deg)
        d["options"] = dict(self.options)
        if self.settings is None:
            del d["settings"], d["settings_sha256"]
        return d


@dataclass(frozen=True)
class Job:
    """One plan of a study: a case, a variant, the resolved interval (months) and the keys."""

    index: int
    case: Any            # a CaseSpec (see .spec)
    variant: Variant
    interval_months: float
    key: str
    influence_key: str

    @property
    def file_stem(self) -> str:
        """Name of the job's result file (without .json): the first 20 hex digits of its key."""
        return self.key[:20]


# ------------------------------------------------------------------------------------ values

def check_value(name: str, value: Any, protocol: Protocol) -> Any:
    """The normalised value of study variable ``name``; ValueError saying what was expected."""
    if name == "modality":
        value = {"particle": "proton"}.get(value, value)
        if value not in MODALITIES:
            raise ValueError(f"expected one of {list(MODALITIES)}, got {value!r}")
        return value
    if name == "fractionation":
        if not isinstance(value, str) or value not in protocol.fractionations:
            raise ValueError(f"expected a fractionation of protocol {protocol.name!r}: "
                             f"{sorted(protocol.fractionations)}, got {value!r}")
        return value
    if name == "recovery":
        if not isinstance(value, str):
            raise ValueError(f"expected 'protocol', 'none', 'constant:F' or 'table:M=F,...', got {value!r}")
        recovery_model(value)
        return value.strip()
    if name == "interval_months":
        return _number(value, "a number of months >= 0", minimum=0.0)
    if name == "slip":
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*(Gy|%)\s*", value) if isinstance(value, str) else None
        if m is None:
            raise ValueError(f"expected '<number> Gy' or '<number> %' (percent of Rx), got {value!r}")
        return f"{float(m.group(1)):g} {m.group(2)}"
    if name == "optic_nerve_rule":
        if value not in OPTIC_NERVE_RULES:
            raise ValueError(f"expected one of {list(OPTIC_NERVE_RULES)}, got {value!r}")
        return value
    if name == "beams":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BEAMS:
            raise ValueError(f"expected a whole number of beams from 1 to {MAX_BEAMS}, got {value!r}")
        return value
    if name == "rbe":
        v = _number(value, f"a constant RBE from {RBE_MIN:g} to {RBE_MAX:g}")
        if not RBE_MIN <= v <= RBE_MAX:
            raise ValueError(f"expected a constant RBE from {RBE_MIN:g} to {RBE_MAX:g}, got {value!r}")
        return v
    if name in ("bixel_mm", "spot_spacing_mm"):
        lo, hi = SPACING_MM_RANGE
        v = _number(value, f"a size in mm from {lo:g} to {hi:g}")
        if not lo <= v <= hi:
            raise ValueError(f"expected a size in mm from {lo:g} to {hi:g}, got {value!r}")
        return v
    if name == "settings":
        raise ValueError("a settings file is checked with check_settings (its path is relative to the study file)")
    raise ValueError(f"unknown study variable; known: {list(VARIABLES)} and the table 'options'")


def check_settings(value: Any, base: Path) -> str | None:
    """A ``settings`` value: ``"default"`` (None) or the path of a planning settings file, relative to the study
    file's folder ``base``; read and checked here (SettingsError names the file and key), returned absolute."""
    from ..planning_settings import load_settings

    if value == "default":
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected 'default' or the path of a settings file (TOML with a [settings] table), "
                         f"got {value!r}")
    path = (base / value).resolve()
    if not path.exists():   # load_settings raises FileNotFoundError, which a study reports as its own error
        raise ValueError(f"{path}: settings file not found")
    load_settings(path)
    return str(path)


def check_option(name: str, value: Any, protocol: Protocol) -> Any:
    """A protocol option override: a known option, of the type of its current value."""
    from ..protocol import load_protocol

    if name not in protocol.options:
        raise ValueError(f"unknown protocol option; {protocol.name!r} has {sorted(protocol.options)}")
    current = protocol.options[name]
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
    elif isinstance(current, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"expected a number, got {value!r}")
    elif isinstance(current, str):
        if not isinstance(value, str):
            raise ValueError(f"expected a text value, got {value!r}")
    elif isinstance(current, tuple):
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {value!r}")
        value = tuple(value)
    try:  # the protocol's own checks of option words (engine, limit_choice, ...)
        load_protocol(protocol.path, options={name: value})
    except ValueError as exc:
        raise ValueError(str(exc).split(": ", 1)[-1]) from None
    return value


def _number(value: Any, expected: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"expected {expected}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"expected {expected}, got {value!r}")
    return float(value)


def recovery_model(text: str) -> RecoveryModel | None:
    """``protocol`` (None: keep the protocol's) | ``none`` | ``constant:F`` | ``table:M=F,M=F,...``."""
    text = text.strip()
    if text == "protocol":
        return None
    if text == "none":
        return RecoveryModel.none()
    kind, _, rest = text.partition(":")
    try:
        if kind == "constant":
            return RecoveryModel("constant", fraction=float(rest))
        if kind == "table":
            pairs = [p.split("=") for p in rest.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError("expected month=fraction pairs")
            return RecoveryModel("table", table=tuple((float(m), float(f)) for m, f in pairs))
    except ValueError as exc:
        raise ValueError(f"recovery {text!r}: {exc}") from None
    raise ValueError(f"expected 'protocol', 'none', 'constant:F' (F from 0 to 1) or 'table:M=F,M=F,...' "
                     f"(months=fraction), got {text!r}")


def slip_value(text: str) -> Slip:
    """'<x> Gy' or '<x> %' as a protocol Slip."""
    number, unit = text.split()
    return Slip(float(number), unit)


# ------------------------------------------------------------------------------------ variants

def resolve(values: dict[str, Any], protocol: Protocol) -> Variant:
    """A Variant from checked variable values (missing ones take the protocol's or plan()'s
    defaults); variables that do not apply to the modality are cleared (rbe and spot spacing for
    photons, bixel size for particles), so equal plans get equal variants."""
    modality = values.get("modality", "photon")
    particle = modality != "photon"
    settings = values.get("settings")
    legacy = sorted(k for k in dict(values.get("options", {})) if k in LEGACY_PROTOCOL_OPTIONS)
    if settings and legacy:
        raise ValueError(f"options {legacy} are planning settings (deprecated as protocol options) and this variant "
                         f"has a settings file, {settings}, which would override them: set them in the settings file")
    beams = values.get("beams")
    if beams is None:
        angles = DEFAULT_PARTICLE_ANGLES_DEG if particle else DEFAULT_PHOTON_ANGLES_DEG
    else:
        angles = tuple(360.0 * k / beams for k in range(beams))
    if modality == "carbon" and values.get("rbe") is None:
        raise ValueError("modality 'carbon' needs an rbe (its RBE is not constant; give the constant to use)")
    return Variant(
        modality=modality,
        fractionation=values.get("fractionation", protocol.fractionation.name),
        recovery=values.get("recovery", "protocol"),
        interval_months=values.get("interval_months"),
        slip=values.get("slip"),
        optic_nerve_rule=values.get("optic_nerve_rule", str(protocol.options.get("optic_nerve_rule", "bilateral"))),
        beams=len(angles),
        gantry_angles_deg=tuple(float(a) for a in angles),
        rbe=values.get("rbe") if particle else None,
        bixel_mm=None if particle else float(values.get("bixel_mm", 5.0)),
        spot_spacing_mm=float(values.get("spot_spacing_mm", 5.0)) if particle else None,
        options=tuple(sorted(values.get("options", {}).items())),
        settings=settings,
        settings_sha256=hashlib.sha256(Path(settings).read_bytes()).hexdigest() if settings else None)


def product(sweep: dict[str, list], option_sweep: dict[str, list], defaults: dict[str, Any]) -> list[dict[str, Any]]:
    """The Cartesian product of the swept values (variables in the sweep's order, then options),
    each over ``defaults``."""
    names = list(sweep) + [f"options.{k}" for k in option_sweep]
    lists = list(sweep.values()) + list(option_sweep.values())
    out = []
    for combo in itertools.product(*lists):
        values = {k: v for k, v in defaults.items() if k != "options"}
        options = dict(defaults.get("options", {}))
        for name, value in zip(names, combo):
            if name.startswith("options."):
                options[name[len("options."):]] = value
            else:
                values[name] = value
        values["options"] = options
        out.append(values)
    return out


def unique(variants: list[Variant]) -> list[Variant]:
    """Variants in order, each once (a sweep of rbe over photon plans gives equal variants)."""
    seen: set[Variant] = set()
    out = []
    for v in variants:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


# ------------------------------------------------------------------------------------ keys

def digest(obj: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def job_key(case_key: str, variant: Variant, interval_months: float, protocol_sha256: str) -> str:
    """The content key of a plan: case, variant, resolved interval, protocol file and version."""
    return digest({"case": case_key, "variant": variant.to_dict(), "interval_months": interval_months,
                   "protocol": protocol_sha256, "reirrad_opt": __version__})


def influence_key(case_key: str, variant: Variant) -> str:
    """The content key of a dose-influence matrix: case, modality, angles and spacing."""
    spacing = variant.bixel_mm if variant.modality == "photon" else variant.spot_spacing_mm
    return digest({"case": case_key, "modality": variant.modality, "gantry_angles_deg": list(variant.gantry_angles_deg),
                   "spacing_mm": spacing, "reirrad_opt": __version__})
