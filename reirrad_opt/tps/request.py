"""``request.json`` of a TPS exchange folder: read and validate it into a frozen :class:`TpsRequest`.

Every refusal is a :class:`RequestError` naming the key (``prior_course.interval_months``), what was
found and what was expected; the JSON schema shipped beside this module
(``request_schema.json``) describes the same contract for other tools. Units: months, mm, Gy(RBE)
for RBE factors' products; doses never appear in a request.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..plausibility import DEFAULT_BOUNDS

SCHEMA_VERSION = 1
REQUEST_FILE = "request.json"
DICOM_DIR = "dicom"
MODALITIES = ("photon", "proton", "carbon")
LIMIT_LEVELS = ("planned", "desirable", "acceptable")
OPTIC_NERVE_RULES = ("bilateral", "unilateral", "unilateral-L", "unilateral-R")
DEFAULT_PROTOCOL = "npc_reirradiation_2021"
_KEYS = {"schema_version", "protocol", "fractionation", "modality", "rbe", "beams", "prior_course", "roi_map",
         "absent", "optic_nerve_rule", "limit_level", "voxel_mm", "synthetic_recurrence", "tps"}
_REQUIRED = ("schema_version", "fractionation", "modality", "beams", "prior_course", "roi_map")


class RequestError(ValueError):
    """A request.json that cannot be used: ``key`` is the offending key path, the message says what
    was found and what was expected."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{REQUEST_FILE} {key}: {message}")
        self.key = key


@dataclass(frozen=True)
class PriorCourseRequest:
    """The prior course: ``n_fractions``, its ``modality``, ``interval_months`` since its end and,
    for a PHYSICAL particle RTDOSE, the constant ``rbe`` to apply."""

    n_fractions: int
    modality: str
    interval_months: float
    rbe: float | None = None


@dataclass(frozen=True)
class SyntheticRecurrence:
    """A spherical rGTV (radius in mm) placed in the prior target nearest the organ ``near``."""

    near: str
    radius_mm: float = 12.0
    target: str | None = None


@dataclass(frozen=True)
class TpsRequest:
    """A validated request (see docs/tps-exchange.md).

    ``roi_map`` maps the TPS's ROI names to TG-263 names; ``gantry_angles_deg`` or ``n_beams`` gives
    the beams (one of them is None); ``voxel_mm`` resamples the case grid (mm) when set.
    """

    folder: Path
    fractionation: str
    modality: str
    prior: PriorCourseRequest
    roi_map: dict[str, str]
    protocol: str = DEFAULT_PROTOCOL
    rbe: float | None = None
    n_beams: int | None = None
    gantry_angles_deg: tuple[float, ...] | None = None
    absent: tuple[str, ...] = ()
    optic_nerve_rule: str | None = None
    limit_level: str = "planned"
    voxel_mm: float | None = None
    synthetic_recurrence: SyntheticRecurrence | None = None
    tps: dict = field(default_factory=dict)

    @property
    def dicom_dir(self) -> Path:
        return self.folder / DICOM_DIR

    def protocol_argument(self) -> str | Path | None:
        """What :func:`reirrad_opt.protocol.load_protocol` takes: None for the shipped default, a
        path for a TOML file (relative paths are relative to the exchange folder)."""
        if self.protocol == DEFAULT_PROTOCOL:
            return None
        if self.protocol.endswith(".toml") or os.sep in self.protocol or "/" in self.protocol:
            path = Path(self.protocol)
            return path if path.is_absolute() else self.folder / path
        raise RequestError("protocol", f"unknown protocol {self.protocol!r}: expected {DEFAULT_PROTOCOL!r} or the "
                                       f"path of a protocol .toml file")

    def structure_map(self) -> dict[str, str]:
        """``roi_map`` inverted, as the DICOM importer takes it: TG-263 name -> TPS ROI name."""
        return {canonical: roi for roi, canonical in self.roi_map.items()}


def _number(value: Any, key: str, what: str, *, minimum: float | None = None, strict: bool = False,
            maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        hint = ""
        if isinstance(value, str):
            hint = f" (write the number alone: the unit is {what.split(' in ')[-1]})" if " in " in what else ""
        raise RequestError(key, f"expected {what}, got {value!r}{hint}")
    v = float(value)
    if not math.isfinite(v):
        raise RequestError(key, f"expected a finite {what}, got {value!r}")
    if minimum is not None and (v <= minimum if strict else v < minimum):
        raise RequestError(key, f"expected {what} {'>' if strict else '>='} {minimum:g}, got {v:g}")
    if maximum is not None and v > maximum:
        raise RequestError(key, f"expected {what} <= {maximum:g}, got {v:g}")
    return v


def _integer(value: Any, key: str, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RequestError(key, f"expected {what} (an integer >= {minimum}), got {value!r}")
    if value < minimum:
        raise RequestError(key, f"expected {what} >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise RequestError(key, f"expected {what} <= {maximum}, got {value}")
    return int(value)


def _text(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RequestError(key, f"expected {what} (a non-empty string), got {value!r}")
    return value.strip()


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise RequestError(key, f"expected one of {', '.join(choices)}, got {value!r}")
    return value


def _object(value: Any, key: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise RequestError(key, f"expected an object, got {type(value).__name__} {value!r}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise RequestError(f"{key}.{unknown[0]}" if key else unknown[0],
                           f"unknown key; expected {', '.join(sorted(allowed))}")
    for name in required:
        if name not in value:
            raise RequestError(f"{key}.{name}" if key else name, "missing (required)")
    return value


def _rbe(value: Any, key: str) -> float:
    return _number(value, key, "a constant RBE (a number, 0.5-5)", minimum=0.5, strict=True, maximum=5.0)


def parse_request(doc: Any, folder: str | os.PathLike) -> TpsRequest:
    """Validate the parsed content of request.json; ``folder`` is the exchange folder."""
    doc = _object(doc, "", _KEYS, _REQUIRED)
    if doc["schema_version"] != SCHEMA_VERSION or isinstance(doc["schema_version"], bool):
        raise RequestError("schema_version", f"expected {SCHEMA_VERSION}, got {doc['schema_version']!r}")
    protocol = _text(doc.get("protocol", DEFAULT_PROTOCOL), "protocol", "a protocol name or .toml path")
    fractionation = _text(doc["fractionation"], "fractionation", "a fractionation of the protocol, e.g. 'bid-1.2'")
    modality = _choice(doc["modality"], "modality", MODALITIES)
    rbe = None
    if doc.get("rbe") is not None:
        if modality == "photon":
            raise RequestError("rbe", "a photon course has no RBE (it is 1 by definition); remove the key")
        rbe = _rbe(doc["rbe"], "rbe")
    elif modality == "carbon":
        raise RequestError("rbe", "missing: a carbon course needs its constant RBE (e.g. 3.0)")

    beams = _object(doc["beams"], "beams", {"count", "gantry_angles_deg"})
    if ("count" in beams) == ("gantry_angles_deg" in beams):
        raise RequestError("beams", "expected exactly one of 'count' (number of equispaced beams) or "
                                    "'gantry_angles_deg' (list of angles in degrees)")
    n_beams = angles = None
    if "count" in beams:
        n_beams = _integer(beams["count"], "beams.count", "a number of beams")
        if n_beams > 36:
            raise RequestError("beams.count", f"expected at most 36 beams, got {n_beams}")
    else:
        raw = beams["gantry_angles_deg"]
        if not isinstance(raw, list) or not raw:
            raise RequestError("beams.gantry_angles_deg",
                               f"expected a non-empty list of angles in degrees, got {raw!r}")
        angles = tuple(_number(a, f"beams.gantry_angles_deg[{i}]", "a gantry angle in degrees (0-360)", minimum=0.0,
                               maximum=360.0) for i, a in enumerate(raw))

    p = _object(doc["prior_course"], "prior_course", {"n_fractions", "modality", "interval_months", "rbe"},
                ("n_fractions", "modality", "interval_months"))
    prior_modality = _choice(p["modality"], "prior_course.modality", MODALITIES)
    prior_rbe = None
    if p.get("rbe") is not None:
        if prior_modality == "photon":
            raise RequestError("prior_course.rbe", "a photon prior course has no RBE; remove the key")
        prior_rbe = _rbe(p["rbe"], "prior_course.rbe")
    prior = PriorCourseRequest(
        n_fractions=_integer(p["n_fractions"], "prior_course.n_fractions", "the number of prior fractions",
                             maximum=DEFAULT_BOUNDS.fractions_range[1]),
        modality=prior_modality,
        interval_months=_number(p["interval_months"], "prior_course.interval_months",
                                "a number of months since the prior course, in months", minimum=0.0,
                                maximum=DEFAULT_BOUNDS.max_interval_months),
        rbe=prior_rbe)

    roi_map = doc["roi_map"]
    if not isinstance(roi_map, dict) or not roi_map:
        raise RequestError("roi_map", f"expected a non-empty object TPS ROI name -> TG-263 name, got {roi_map!r}")
    seen: dict[str, str] = {}
    for roi, canonical in roi_map.items():
        canonical = _text(canonical, f"roi_map[{roi!r}]", "a TG-263 name such as 'rGTV' or 'Brainstem'")
        if canonical in seen:
            raise RequestError(f"roi_map[{roi!r}]", f"{canonical!r} is already given to ROI {seen[canonical]!r}; "
                                                    f"each TG-263 name may come from one ROI only")
        seen[canonical] = roi
    absent = doc.get("absent", [])
    if not isinstance(absent, list):
        raise RequestError("absent", f"expected a list of TG-263 names, got {absent!r}")
    absent = tuple(_text(a, f"absent[{i}]", "a TG-263 name") for i, a in enumerate(absent))
    for name in absent:
        if name in seen:
            raise RequestError("absent", f"{name!r} is declared absent but roi_map gives it ROI {seen[name]!r}")
    rule = doc.get("optic_nerve_rule")
    if rule is not None:
        rule = _choice(rule, "optic_nerve_rule", OPTIC_NERVE_RULES)
    level = _choice(doc.get("limit_level", "planned"), "limit_level", LIMIT_LEVELS)
    voxel = None
    if doc.get("voxel_mm") is not None:
        voxel = _number(doc["voxel_mm"], "voxel_mm", "a voxel size in mm", minimum=0.0, strict=True, maximum=20.0)
    recurrence = None
    if doc.get("synthetic_recurrence") is not None:
        from tps_adapters.recurrence import MAX_RADIUS_MM

        r = _object(doc["synthetic_recurrence"], "synthetic_recurrence", {"near", "radius_mm", "target"}, ("near",))
        recurrence = SyntheticRecurrence(
            near=_text(r["near"], "synthetic_recurrence.near", "a TG-263 organ name"),
            radius_mm=_number(r.get("radius_mm", 12.0), "synthetic_recurrence.radius_mm", "a radius in mm",
                              minimum=0.0, strict=True, maximum=MAX_RADIUS_MM),
            target=None if r.get("target") is None else _text(r["target"], "synthetic_recurrence.target",
                                                              "a structure name"))
    tps = doc.get("tps", {})
    if not isinstance(tps, dict):
        raise RequestError("tps", f"expected an object, got {tps!r}")
    return TpsRequest(folder=Path(folder), fractionation=fractionation, modality=modality, prior=prior,
                      roi_map={str(k): v.strip() for k, v in roi_map.items()}, protocol=protocol, rbe=rbe,
                      n_beams=n_beams, gantry_angles_deg=angles, absent=absent, optic_nerve_rule=rule,
                      limit_level=level, voxel_mm=voxel, synthetic_recurrence=recurrence, tps=dict(tps))


def load_request(exchange_dir: str | os.PathLike) -> TpsRequest:
    """Read and validate ``EXCHANGE_DIR/request.json``; the folder must also hold ``dicom/``."""
    folder = Path(exchange_dir)
    if not folder.is_dir():
        raise RequestError("(folder)", f"{folder} is not a folder")
    path = folder / REQUEST_FILE
    if not path.is_file():
        raise RequestError("(file)", f"{path} is missing")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RequestError("(file)", f"{path} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") \
            from None
    request = parse_request(doc, folder)
    if not request.dicom_dir.is_dir():
        raise RequestError("(folder)", f"{request.dicom_dir} is missing: the TPS export (CT, RTSTRUCT, prior RTDOSE) "
                                       f"goes there")
    return request
