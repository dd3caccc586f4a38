"""STUDY.toml: the schema of a plan-quality study, read and checked before any work.

Every refusal is a :class:`StudyError` naming the file, the key and its line, and what was
expected. The schema (see docs/study.md)::

    [study]       name, description, protocol (a shipped name or a path relative to this file),
                  record (column groups: evaluation, verdict, limit_tier, timings, notes)
    [defaults]    values of study variables shared by every variant (see variants.VARIABLES),
                  and a sub-table [defaults.options] of protocol options
    [[case]]      name and either phantom = "npc" with make_npc_phantom's keywords
                  (resolution_mm, rgtv_gap_to_brainstem_mm, interval_months, prior_levels_gy, ...)
                  or folder = a case folder (reirrad-opt phantom / import-dicom / import-openkbp)
    [sweep]       variable = [values, ...] (Cartesian product), [sweep.options] likewise; or
    [[variant]]   an explicit list, each a table of variable = value (and options = {...})
"""
from __future__ import annotations

import hashlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from ..protocol import Protocol, load_protocol
from ..toml_lines import TomlLines
from . import variants as V

RECORD_GROUPS = ("evaluation", "verdict", "limit_tier", "timings", "notes")
PHANTOMS = ("npc",)
# make_npc_phantom keywords a study may not set (objects, or set by the study itself)
_PHANTOM_EXCLUDED = ("prior_falloff", "name")


class StudyError(ValueError):
    """A STUDY.toml that cannot be run: the message names the file, the key, its line and what was
    expected."""


@dataclass(frozen=True)
class CaseSpec:
    """One case of a study.

    Attributes:
        name: the case's name in the table (unique in the study).
        phantom: 'npc' for the built-in phantom, None for a case folder.
        parameters: the phantom's keywords (sorted (name, value) pairs; mm, months, Gy as named).
        folder: the case folder (absolute), None for a phantom.
        interval_months: the case's own interval since the (most recent) prior course (months).
        content_key: SHA-256 of the phantom's parameters, or of the folder's case.json and case.npz.
    """

    name: str
    phantom: str | None
    parameters: tuple[tuple[str, Any], ...]
    folder: Path | None
    interval_months: float
    content_key: str

    def to_dict(self) -> dict:
        return {"name": self.name, "phantom": self.phantom, "parameters": _jsonable(dict(self.parameters)),
                "folder": str(self.folder) if self.folder else None, "interval_months": self.interval_months,
                "content_key": self.content_key}


@dataclass(frozen=True)
class StudySpec:
    """A checked study: its cases, its variants and the jobs (case x variant) with their keys.

    Attributes:
        path: the STUDY.toml read.
        name, description: from [study].
        protocol_path: the protocol file every variant uses.
        protocol_sha256: SHA-256 of that file's bytes (part of every result key).
        record: the column groups recorded (see RECORD_GROUPS).
        cases: the cases, in file order.
        variants: the distinct variants, in sweep or list order.
        swept: the variables (and 'options.NAME') whose values differ between variants.
        jobs: every case x variant, case-major, with its result and influence keys.
    """

    path: Path
    name: str
    description: str
    protocol_path: Path
    protocol_sha256: str
    record: tuple[str, ...]
    cases: tuple[CaseSpec, ...]
    variants: tuple[V.Variant, ...]
    swept: tuple[str, ...]
    jobs: tuple[V.Job, ...] = field(repr=False)

    def inputs(self) -> list[Path]:
        """Files and folders the study reads (an output folder must keep away from them)."""
        return [self.path, self.protocol_path, *(c.folder for c in self.cases if c.folder),
                *sorted({Path(v.settings) for v in self.variants if v.settings})]

    def to_dict(self) -> dict:
        return {"path": str(self.path), "name": self.name, "description": self.description,
                "protocol": {"path": str(self.protocol_path), "sha256": self.protocol_sha256},
                "record": list(self.record), "cases": [c.to_dict() for c in self.cases],
                "variants": [v.to_dict() for v in self.variants], "swept": list(self.swept),
                "jobs": [{"key": j.key, "influence_key": j.influence_key, "case": j.case.name,
                          "variant": self.variants.index(j.variant)} for j in self.jobs]}


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class _Reader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.loc = TomlLines(text)

    def fail(self, where: str, what: str, line: int | None) -> StudyError:
        at = f"line {line}: " if line else ""
        return StudyError(f"{self.path}: {at}{where}: {what}")

    def table(self, data: dict, name: str, line: int | None, allowed: set[str], required: set[str] = frozenset()):
        if not isinstance(data, dict):
            raise self.fail(name, "expected a table", line)
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise self.fail(f"{name} {unknown[0]}", f"unknown key; expected one of {sorted(allowed)}",
                            self.loc.key(unknown[0], line))
        missing = sorted(required - set(data))
        if missing:
            raise self.fail(name, f"key {missing[0]!r} is missing", line)


def load_study(path: str | Path) -> StudySpec:
    """Read and check a STUDY.toml; StudyError (or FileNotFoundError) before any work."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: study file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StudyError(f"{path}: not valid TOML: {exc}") from None
    rd = _Reader(path, text)
    rd.table(data, "top level", None, {"study", "defaults", "case", "sweep", "variant"}, {"study", "case"})

    line = rd.loc.header("study")
    meta = data["study"]
    rd.table(meta, "[study]", line, {"name", "description", "protocol", "record"}, {"name"})
    name = meta["name"]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise rd.fail("[study] name", f"expected a name of letters, digits, '_', '-' or '.', got {name!r}",
                      rd.loc.key("name", line))
    protocol_path, protocol = _protocol(rd, meta.get("protocol"), rd.loc.key("protocol", line))
    record = meta.get("record", list(RECORD_GROUPS))
    if not isinstance(record, list) or any(r not in RECORD_GROUPS for r in record) or not record:
        raise rd.fail("[study] record", f"expected a list drawn from {list(RECORD_GROUPS)}, got {record!r}",
                      rd.loc.key("record", line))

    defaults = _variables(rd, data.get("defaults", {}), "[defaults]", rd.loc.header("defaults"),
                          rd.loc.header("defaults.options"), protocol, lists=False)
    cases = _cases(rd, data["case"], path.parent)
    if "sweep" in data and "variant" in data:
        raise rd.fail("[sweep] and [[variant]]", "give either a sweep (Cartesian product) or a list of variants, "
                      "not both", rd.loc.header("sweep"))
    if "sweep" in data:
        sweep = _variables(rd, data["sweep"], "[sweep]", rd.loc.header("sweep"), rd.loc.header("sweep.options"),
                           protocol, lists=True)
        options = sweep.pop("options", {})
        values = V.product(sweep, options, defaults)
    elif "variant" in data:
        if not isinstance(data["variant"], list) or not data["variant"]:
            raise rd.fail("[[variant]]", "expected one or more [[variant]] tables", rd.loc.header("variant", 0))
        values = []
        for i, t in enumerate(data["variant"]):
            vline = rd.loc.header("variant", i)
            own = _variables(rd, t, f"[[variant]] #{i + 1}", vline, rd.loc.key("options", vline), protocol,
                             lists=False)
            merged = {**defaults, **own, "options": {**defaults.get("options", {}), **own.get("options", {})}}
            values.append(merged)
    else:
        values = [defaults]
    resolved = []
    for i, v in enumerate(values):
        try:
            resolved.append(V.resolve(v, protocol))
        except ValueError as exc:
            raise rd.fail(f"variant {i + 1}", str(exc), rd.loc.header("sweep") or rd.loc.header("variant", i)) from None
    variants = tuple(V.unique(resolved))
    # the variables the study varies (as written: a default that follows the modality is not swept)
    swept = tuple(n for n in V.VARIABLES if len({repr(v.get(n)) for v in values}) > 1) + tuple(
        f"options.{k}" for k in sorted({k for v in values for k in v.get("options", {})})
        if len({repr(v.get("options", {}).get(k)) for v in values}) > 1)
    protocol_sha = hashlib.sha256(protocol_path.read_bytes()).hexdigest()
    jobs = []
    for case in cases:
        for variant in variants:
            interval = case.interval_months if variant.interval_months is None else variant.interval_months
            jobs.append(V.Job(len(jobs), case, variant, interval,
                              V.job_key(case.content_key, variant, interval, protocol_sha),
                              V.influence_key(case.content_key, variant)))
    return StudySpec(path, name, str(meta.get("description", "")), protocol_path, protocol_sha, tuple(record),
                     tuple(cases), variants, swept, tuple(jobs))


def _protocol(rd: _Reader, value: Any, line: int | None) -> tuple[Path, Protocol]:
    from ..protocol import DEFAULT_PROTOCOL, PROTOCOL_DIR

    if value is None:
        path = DEFAULT_PROTOCOL
    elif not isinstance(value, str):
        raise rd.fail("[study] protocol", f"expected a shipped protocol name or a file path, got {value!r}", line)
    elif (PROTOCOL_DIR / f"{value}.toml").is_file() and "/" not in value:
        path = PROTOCOL_DIR / f"{value}.toml"
    else:
        path = (rd.path.parent / value).resolve()
        if not path.is_file():
            raise rd.fail("[study] protocol", f"{path} is not a file (give a shipped protocol name or a path "
                          f"relative to the study file)", line)
    try:
        return path, load_protocol(path)
    except ValueError as exc:
        raise rd.fail("[study] protocol", str(exc), line) from None


def _variables(rd: _Reader, t: Any, where: str, line: int | None, options_line: int | None, protocol: Protocol,
               *, lists: bool) -> dict[str, Any]:
    """Checked variable values of a [defaults], [sweep] or [[variant]] table (lists in a sweep)."""
    rd.table(t, where, line, set(V.VARIABLES) | {"options"})
    out: dict[str, Any] = {}
    for name, raw in t.items():
        if name == "options":
            rd.table(raw, f"{where} options", options_line, set(protocol.options))
            opts = {}
            for oname, oraw in raw.items():
                oline = rd.loc.key(oname, options_line)
                opts[oname] = _checked(rd, f"{where} options.{oname}", oraw, oline, lists,
                                       lambda v, n=oname: V.check_option(n, v, protocol))
            out["options"] = opts
            continue
        kline = rd.loc.key(name, line)
        check = (lambda v: V.check_settings(v, rd.path.parent)) if name == "settings" \
            else (lambda v, n=name: V.check_value(n, v, protocol))
        out[name] = _checked(rd, f"{where} {name}", raw, kline, lists, check)
    return out


def _checked(rd: _Reader, where: str, raw: Any, line: int | None, lists: bool, check) -> Any:
    if lists:
        if not isinstance(raw, list) or not raw:
            raise rd.fail(where, f"expected a non-empty list of values to sweep, got {raw!r}", line)
        values = raw
    else:
        values = [raw]
    out = []
    for value in values:
        try:
            out.append(check(value))
        except ValueError as exc:
            raise rd.fail(where, str(exc), line) from None
    if lists and len(set(map(repr, out))) != len(out):
        raise rd.fail(where, f"a value is listed twice in {raw!r}", line)
    return out if lists else out[0]


def _phantom_keywords() -> dict[str, Any]:
    from phantoms.npc import make_npc_phantom

    sig = inspect.signature(make_npc_phantom)
    return {k: p.default for k, p in sig.parameters.items() if k not in _PHANTOM_EXCLUDED}


def _cases(rd: _Reader, raw: Any, base: Path) -> list[CaseSpec]:
    if not isinstance(raw, list) or not raw:
        raise rd.fail("[[case]]", "expected one or more [[case]] tables", rd.loc.header("case", 0))
    keywords = _phantom_keywords()
    cases: list[CaseSpec] = []
    for i, t in enumerate(raw):
        line = rd.loc.header("case", i)
        where = f"[[case]] #{i + 1}"
        if isinstance(t, dict) and "dicom" in t:
            raise rd.fail(f"{where} dicom", "a DICOM folder is imported first: run 'reirrad-opt import-dicom DIR "
                          "--out CASE_DIR ...' and give folder = \"CASE_DIR\"", rd.loc.key("dicom", line))
        rd.table(t, where, line, {"name", "phantom", "folder", *keywords}, {"name"})
        name = t["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
            raise rd.fail(f"{where} name", f"expected a name of letters, digits, '_', '-' or '.', got {name!r}",
                          rd.loc.key("name", line))
        if any(c.name == name for c in cases):
            raise rd.fail(f"{where} name", f"case name {name!r} is used twice", rd.loc.key("name", line))
        if ("phantom" in t) == ("folder" in t):
            raise rd.fail(where, "give either phantom = \"npc\" (with its parameters) or folder = \"CASE_DIR\"", line)
        if "folder" in t:
            cases.append(_folder_case(rd, t, where, line, base, keywords))
        else:
            cases.append(_phantom_case(rd, t, where, line, keywords))
    return cases


def _folder_case(rd: _Reader, t: dict, where: str, line: int | None, base: Path, keywords: dict) -> CaseSpec:
    extra = sorted(set(t) & set(keywords))
    if extra:
        raise rd.fail(f"{where} {extra[0]}", "phantom parameters apply to phantom cases only (a case folder keeps "
                      "the grid it was written with; sweep interval_months instead)", rd.loc.key(extra[0], line))
    fline = rd.loc.key("folder", line)
    if not isinstance(t["folder"], str):
        raise rd.fail(f"{where} folder", f"expected a path, got {t['folder']!r}", fline)
    folder = (base / t["folder"]).resolve()
    jpath, npath = folder / "case.json", folder / "case.npz"
    if not jpath.is_file() or not npath.is_file():
        raise rd.fail(f"{where} folder", f"{folder} is not a case folder (it needs case.json and case.npz; make one "
                      f"with reirrad-opt phantom, import-dicom or import-openkbp)", fline)
    try:
        meta = json.loads(jpath.read_text())
        # several prior courses: the case's interval is the time since the most recent one
        courses = meta["prior_courses"] if "prior_courses" in meta else [meta["prior_course"]]
        interval = min(float(c["interval_months"]) for c in courses)
    except (ValueError, KeyError, TypeError) as exc:
        raise rd.fail(f"{where} folder", f"{jpath}: cannot read prior_course.interval_months ({exc})", fline) from None
    h = hashlib.sha256()
    for p in (jpath, npath):
        with open(p, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return CaseSpec(t["name"], None, (), folder, interval, h.hexdigest())


def _phantom_case(rd: _Reader, t: dict, where: str, line: int | None, keywords: dict) -> CaseSpec:
    from phantoms.npc import npc_grid

    if t["phantom"] not in PHANTOMS:
        raise rd.fail(f"{where} phantom", f"expected one of {list(PHANTOMS)}, got {t['phantom']!r}",
                      rd.loc.key("phantom", line))
    params: dict[str, Any] = {}
    for key, value in t.items():
        if key in ("name", "phantom"):
            continue
        kline = rd.loc.key(key, line)
        if key == "prior_levels_gy":
            if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in value.values()):
                raise rd.fail(f"{where} prior_levels_gy", f"expected a table of structure = Gy, e.g. "
                              f"{{Brainstem = 60.0}}, got {value!r}", kline)
            from phantoms.npc import SPARABLE_ORGANS
            unknown = sorted(set(value) - set(SPARABLE_ORGANS))
            if unknown:
                raise rd.fail(f"{where} prior_levels_gy", f"unknown structure {unknown[0]!r}; the phantom's are "
                              f"{sorted(SPARABLE_ORGANS)}", kline)
            params[key] = {k: float(v) for k, v in sorted(value.items())}
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise rd.fail(f"{where} {key}", f"expected a number, got {value!r}", kline)
        params[key] = float(value)
    try:
        npc_grid(params.get("resolution_mm", keywords["resolution_mm"]))
    except ValueError as exc:
        raise rd.fail(f"{where} resolution_mm", str(exc), rd.loc.key("resolution_mm", line)) from None
    if params.get("interval_months", 0.0) < 0:
        raise rd.fail(f"{where} interval_months", "expected a number of months >= 0",
                      rd.loc.key("interval_months", line))
    full = {**{k: v for k, v in keywords.items() if k not in params}, **params}
    content = V.digest({"phantom": t["phantom"], "parameters": full, "name": t["name"]})
    return CaseSpec(t["name"], t["phantom"], tuple(sorted(params.items())), None,
                    float(full["interval_months"]), content)
