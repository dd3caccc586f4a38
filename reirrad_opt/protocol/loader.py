"""Reading a protocol file: the TOML schema, its validation, and :func:`load_protocol`.

A protocol file states the prescription and its fractionations, one entry per planning goal
(structure, priority, metric, desirable / acceptable limits, whether the limit is on cumulative
EQD2 or on the new course's physical dose, alpha/beta, provenance), the slips of the lexicographic
stages, options and the recovery model. The schema is described in ``docs/protocol.md``; the NPC
re-irradiation consensus ships as ``protocols/npc_reirradiation_2021.toml`` and is the default.

Everything is validated on loading; any problem raises :class:`ProtocolError` whose message names
the file, the key (and line, where it can be found) and what was expected.
"""
from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from typing import Any

from ..absent import check_absent_names
from ..geometry.names import canonical_name
from ..radiobiology import RecoveryModel
from ..toml_lines import TomlLines
from .model import (DOSE_UNITS, SENSES, VOLUME_UNITS, Fractionation, Goal, Limit, Prescription, Protocol,
                    ProtocolError, Slip, parse_metric)
from .options import OPTION_DEFAULTS, check_caller_options, read_options

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROTOCOL_DIR = Path(__file__).resolve().parent.parent / "protocols"
DEFAULT_PROTOCOL = PROTOCOL_DIR / "npc_reirradiation_2021.toml"
SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------- loading

class _Locator(TomlLines):
    """Find the line of a table header, key or goal in the protocol text, for error messages."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.goal_lines = [i + 1 for i, line in enumerate(self.lines) if re.match(r"^\s*\[\[\s*goal\s*\]\]", line)]

    def goal(self, index: int) -> int | None:
        return self.goal_lines[index] if index < len(self.goal_lines) else None

    def fractionation(self, name: str) -> int | None:
        return self.header(f'fractionations."{name}"') or self.header(f"fractionations.'{name}'") \
            or self.header(f"fractionations.{name}")


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.loc = _Locator(text)

    def fail(self, where: str, what: str, line: int | None = None) -> ProtocolError:
        at = f" (line {line})" if line else ""
        return ProtocolError(f"{self.path}: {where}{at}: {what}")

    # -- helpers
    def check_keys(self, table: dict, allowed: set[str], where: str, line: int | None, required: set[str] = frozenset()) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(where, f"unknown key(s) {unknown}; expected some of {sorted(allowed)}",
                            self.loc.key(unknown[0], line) if line else None)
        missing = sorted(set(required) - set(table))
        if missing:
            raise self.fail(where, f"required key(s) {missing} missing", line)

    def number(self, value: Any, where: str, line: int | None, *, positive: bool = False, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a number, got {value!r}", line)
        if positive and value <= 0:
            raise self.fail(where, f"expected a number > 0, got {value!r}", line)
        if minimum is not None and value < minimum:
            raise self.fail(where, f"expected a number >= {minimum:g}, got {value!r}", line)
        return float(value)

    def text(self, value: Any, where: str, line: int | None) -> str:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a string, got {value!r}", line)
        return value

    def limit(self, value: Any, where: str, line: int | None) -> Limit | None:
        """'70.2 Gy' | '98 %Rx' | '5 %' | '2 cc' | 'none' | {value = 70.2, unit = "Gy"}."""
        if isinstance(value, str):
            s = value.strip()
            if s.lower() in ("none", "no limit"):
                return None
            m = re.match(r"^([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(Gy|%Rx|%|cc)$", s)
            if not m:
                if re.match(r"^[-+]?\d+(?:\.\d*)?$", s):
                    raise self.fail(where, f"limit {value!r} has no unit; expected e.g. '70.2 Gy', '98 %Rx', "
                                           f"'5 %' or '2 cc' (or 'none')", line)
                raise self.fail(where, f"cannot read limit {value!r}; expected '<number> <unit>' with unit one of "
                                       f"{DOSE_UNITS + VOLUME_UNITS}, or 'none'", line)
            number, unit = float(m.group(1)), m.group(2)
        elif isinstance(value, dict):
            if set(value) - {"value", "unit"} or "value" not in value:
                raise self.fail(where, f"a limit table needs keys 'value' and 'unit', got {sorted(value)}", line)
            if "unit" not in value:
                raise self.fail(where, f"limit {value['value']!r} has no unit; expected unit one of "
                                       f"{DOSE_UNITS + VOLUME_UNITS}", line)
            number = self.number(value["value"], where, line)
            unit = value["unit"]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            raise self.fail(where, f"limit {value!r} has no unit; expected a string such as '{value} Gy' or "
                                   f"'{value} %Rx' (or 'none')", line)
        else:
            raise self.fail(where, f"expected a limit such as '70.2 Gy' or 'none', got {value!r}", line)
        try:
            return Limit(number, unit)
        except ValueError as exc:
            raise self.fail(where, str(exc), line) from None

    # -- sections
    def fractionation(self, name: str, t: Any) -> Fractionation:
        where = f"[fractionations.{name}]"
        line = self.loc.fractionation(name)
        if not isinstance(t, dict):
            raise self.fail(where, "expected a table", line)
        self.check_keys(t, {"dose_per_fraction_gy", "n_fractions", "fractions_per_day", "min_interval_h", "provenance"},
                        where, line, required={"dose_per_fraction_gy", "n_fractions"})
        d = self.number(t["dose_per_fraction_gy"], f"{where} dose_per_fraction_gy",
                        self.loc.key("dose_per_fraction_gy", line), positive=True)
        n = t["n_fractions"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise self.fail(f"{where} n_fractions", f"expected a whole number >= 1, got {n!r}", self.loc.key("n_fractions", line))
        per_day = t.get("fractions_per_day", 1)
        if isinstance(per_day, bool) or not isinstance(per_day, int) or per_day < 1:
            raise self.fail(f"{where} fractions_per_day", f"expected a whole number >= 1, got {per_day!r}",
                            self.loc.key("fractions_per_day", line))
        interval = t.get("min_interval_h")
        if interval is not None:
            interval = self.number(interval, f"{where} min_interval_h", self.loc.key("min_interval_h", line), positive=True)
        if per_day > 1 and interval is None:
            raise self.fail(where, "more than one fraction per day needs min_interval_h (hours between fractions)", line)
        return Fractionation(name, d, n, per_day, interval, self.text(t.get("provenance", ""), f"{where} provenance", line))

    def prescription(self, t: Any, fractionations: dict[str, Fractionation]) -> tuple[Prescription, str]:
        where = "[prescription]"
        line = self.loc.header("prescription")
        if not isinstance(t, dict):
            raise self.fail(where, "expected a table", line)
        self.check_keys(t, {"eqd2_gy", "physical_gy", "alpha_beta_gy", "eqd2_range_gy", "default_fractionation",
                            "provenance"}, where, line, required={"alpha_beta_gy", "default_fractionation"})
        ab = self.number(t["alpha_beta_gy"], f"{where} alpha_beta_gy", self.loc.key("alpha_beta_gy", line), positive=True)
        if ("eqd2_gy" in t) == ("physical_gy" in t):
            raise self.fail(where, "give exactly one of eqd2_gy (intended EQD2 of the target) or physical_gy", line)
        default = self.text(t["default_fractionation"], f"{where} default_fractionation", self.loc.key("default_fractionation", line))
        if default not in fractionations:
            raise self.fail(f"{where} default_fractionation", f"{default!r} is not one of the [fractionations] "
                            f"{sorted(fractionations)}", self.loc.key("default_fractionation", line))
        rng = None
        if "eqd2_range_gy" in t:
            r = t["eqd2_range_gy"]
            kline = self.loc.key("eqd2_range_gy", line)
            if not (isinstance(r, list) and len(r) == 2):
                raise self.fail(f"{where} eqd2_range_gy", f"expected [low, high] in Gy, got {r!r}", kline)
            rng = (self.number(r[0], f"{where} eqd2_range_gy", kline, positive=True),
                   self.number(r[1], f"{where} eqd2_range_gy", kline, positive=True))
            if rng[0] > rng[1]:
                raise self.fail(f"{where} eqd2_range_gy", f"low {rng[0]:g} > high {rng[1]:g}", kline)
        if "physical_gy" in t:
            total = self.number(t["physical_gy"], f"{where} physical_gy", self.loc.key("physical_gy", line), positive=True)
            for f in fractionations.values():
                if abs(f.total_gy - total) > 1e-6:
                    raise self.fail(f"[fractionations.{f.name}]", f"total {f.schedule} differs from prescription "
                                    f"physical_gy {total:g} Gy", self.loc.fractionation(f.name))
            nominal = fractionations[default].eqd2_gy(ab)
        else:
            nominal = self.number(t["eqd2_gy"], f"{where} eqd2_gy", self.loc.key("eqd2_gy", line), positive=True)
            if rng and not rng[0] <= nominal <= rng[1]:
                raise self.fail(f"{where} eqd2_gy", f"{nominal:g} Gy lies outside the prescription's own eqd2_range_gy "
                                f"{rng[0]:g}-{rng[1]:g} Gy", self.loc.key("eqd2_gy", line))
            low, high = rng if rng else (0.98 * nominal, 1.02 * nominal)
            for f in fractionations.values():
                e = f.eqd2_gy(ab)
                if not (low - 1e-9 <= e <= high + 1e-9):
                    raise self.fail(f"[fractionations.{f.name}]", f"{f.schedule} has EQD2 {e:.2f} Gy at a/b {ab:g} Gy, "
                                    f"outside the prescription's {low:g}-{high:g} Gy"
                                    + ("" if rng else " (eqd2_gy +- 2 %; set eqd2_range_gy to widen)"),
                                    self.loc.fractionation(f.name))
        pres = Prescription(nominal, ab, fractionations[default], rng,
                            self.text(t.get("provenance", ""), f"{where} provenance", line))
        return pres, default

    def goal(self, i: int, t: Any, option_values: dict[str, Any]) -> tuple[Goal | None, dict[str, set[str]]]:
        line = self.loc.goal(i)
        label = f"goal[{i}]"
        if not isinstance(t, dict):
            raise self.fail(label, "expected a table", line)
        if "id" in t and isinstance(t["id"], str):
            label = f"goal[{i}] (id {t['id']!r})"
        elif "structure" in t and "metric" in t:
            label = f"goal[{i}] ({t['structure']} {t['metric']})"
        allowed = {"id", "structure", "aliases", "priority", "metric", "sense", "desirable", "acceptable",
                   "cumulative", "alpha_beta_gy", "provenance", "tolerance_gy", "variants"}
        self.check_keys(t, allowed, label, line)
        for key in ("structure", "priority", "metric", "sense", "cumulative", "alpha_beta_gy"):
            if key not in t:
                raise self.fail(label, f"key {key!r} is missing", line)
        # Variants: {option: {value: {overrides}}}; applied before validation of the merged goal.
        declared: dict[str, set[str]] = {}
        merged = {k: v for k, v in t.items() if k != "variants"}
        enabled = True
        variants = t.get("variants", {})
        if not isinstance(variants, dict):
            raise self.fail(f"{label} variants", "expected a table {option = {value = {overrides}}}", line)
        for option, by_value in variants.items():
            if not isinstance(by_value, dict):
                raise self.fail(f"{label} variants.{option}", "expected a table of option values", line)
            declared.setdefault(option, set()).update(by_value)
            chosen = option_values.get(option)
            for value, overrides in by_value.items():
                where = f"{label} variants.{option}.{value}"
                if not isinstance(overrides, dict):
                    raise self.fail(where, "expected a table of overrides", line)
                self.check_keys(overrides, allowed - {"id", "structure", "aliases", "variants"} | {"enabled"}, where, line)
                if value == chosen:
                    enabled = bool(overrides.get("enabled", True))
                    merged.update({k: v for k, v in overrides.items() if k != "enabled"})
        if not enabled:
            return None, declared
        return self._goal_from(merged, label, line), declared

    def _goal_from(self, t: dict, label: str, line: int | None) -> Goal:
        kl = lambda key: self.loc.key(key, line)  # noqa: E731
        structure = self.text(t["structure"], f"{label} structure", kl("structure"))
        canon = canonical_name(structure)
        if canon != structure:
            raise self.fail(f"{label} structure", f"{structure!r} is an alias; use the TG-263 name {canon!r}", kl("structure"))
        aliases = t.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise self.fail(f"{label} aliases", f"expected a list of strings, got {aliases!r}", kl("aliases"))
        prio = t["priority"]
        if isinstance(prio, bool) or not isinstance(prio, int) or prio < 1:
            raise self.fail(f"{label} priority", f"expected a whole number >= 1, got {prio!r}", kl("priority"))
        try:
            spec = parse_metric(self.text(t["metric"], f"{label} metric", kl("metric")))
        except ValueError as exc:
            raise self.fail(f"{label} metric", str(exc), kl("metric")) from None
        sense = t["sense"]
        if sense not in SENSES:
            raise self.fail(f"{label} sense", f"expected 'max' (value <= limit) or 'min' (value >= limit), got {sense!r}", kl("sense"))
        cumulative = t["cumulative"]
        if not isinstance(cumulative, bool):
            raise self.fail(f"{label} cumulative", f"expected true (cumulative EQD2) or false (new-course physical dose), "
                                                   f"got {cumulative!r}", kl("cumulative"))
        ab = self.number(t["alpha_beta_gy"], f"{label} alpha_beta_gy", kl("alpha_beta_gy"), positive=True)
        if "desirable" not in t and "acceptable" not in t:
            raise self.fail(label, "needs a 'desirable' and/or an 'acceptable' limit", line)
        des = self.limit(t.get("desirable", "none"), f"{label} desirable", kl("desirable"))
        acc = self.limit(t.get("acceptable", "none"), f"{label} acceptable", kl("acceptable"))
        if des is None and acc is None:
            raise self.fail(label, "both limits are 'none': the goal would constrain nothing", line)
        for which, lim in (("desirable", des), ("acceptable", acc)):
            if lim is None:
                continue
            where = f"{label} {which}"
            if spec.is_volume and lim.is_dose:
                raise self.fail(where, f"{spec.name} is a volume; its limit needs a volume unit {VOLUME_UNITS}, got {lim}", kl(which))
            if not spec.is_volume and not lim.is_dose:
                raise self.fail(where, f"{spec.name} is a dose; its limit needs a dose unit {DOSE_UNITS}, got {lim}", kl(which))
            if cumulative and lim.unit == "%Rx":
                raise self.fail(where, "a cumulative-EQD2 limit must be in Gy (the prescription is a new-course "
                                       "physical dose)", kl(which))
        if cumulative and spec.kind == "V_pctRx":
            raise self.fail(f"{label} metric", f"{spec.name} refers to % of Rx, which is undefined on cumulative EQD2; "
                                               f"use V<x>Gy", kl("metric"))
        if des is not None and acc is not None:
            if des.unit != acc.unit and not (des.is_dose and acc.is_dose):
                raise self.fail(label, f"desirable ({des}) and acceptable ({acc}) limits must use the same unit", line)
            if des.unit == acc.unit:
                tighter = acc.value < des.value if sense == "max" else acc.value > des.value
                if tighter:
                    raise self.fail(f"{label} acceptable", f"acceptable limit {acc} is tighter than desirable {des} "
                                    f"for sense {sense!r} (acceptable must be {'>=' if sense == 'max' else '<='} desirable)",
                                    kl("acceptable"))
        tol = t.get("tolerance_gy")
        if tol is not None:
            tol = self.number(tol, f"{label} tolerance_gy", kl("tolerance_gy"), positive=True)
        gid = t.get("id") or f"{structure}_{spec.name}"
        gid = self.text(gid, f"{label} id", kl("id"))
        return Goal(gid, structure, prio, spec.name, sense, des, acc, cumulative, ab,
                    self.text(t.get("provenance", ""), f"{label} provenance", kl("provenance")), tuple(aliases), tol)

    def slips(self, t: Any) -> dict[int, Slip]:
        where = "[slips]"
        line = self.loc.header("slips")
        if not isinstance(t, dict):
            raise self.fail(where, "expected a table of priority = slip", line)
        out = {}
        for key, value in t.items():
            kline = self.loc.key(key, line)
            if not re.fullmatch(r"\d+", str(key)) or int(key) < 1:
                raise self.fail(f"{where} {key}", "keys must be priorities (whole numbers >= 1)", kline)
            if isinstance(value, str):
                m = re.match(r"^\s*(\d+(?:\.\d*)?)\s*(Gy|%)\s*$", value)
                if not m:
                    raise self.fail(f"{where} {key}", f"expected '<number> Gy' or '<number> %' (percent of Rx), got {value!r}", kline)
                value = {"value": float(m.group(1)), "unit": m.group(2)}
            if not isinstance(value, dict) or set(value) != {"value", "unit"}:
                raise self.fail(f"{where} {key}", f"expected '<number> Gy', '<number> %' or {{value, unit}}, got {value!r}", kline)
            try:
                out[int(key)] = Slip(self.number(value["value"], f"{where} {key}", kline), value["unit"])
            except ValueError as exc:
                raise self.fail(f"{where} {key}", str(exc), kline) from None
        return out


def _read(path: Path) -> tuple[str, dict]:
    if path.is_dir():
        raise ProtocolError(f"{path}: is a folder; expected a protocol TOML file (or the name of a shipped protocol: "
                            f"{', '.join(shipped_protocols())})")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: protocol file not found") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProtocolError(f"{path}: not valid TOML: {exc}") from None


def _resolve_path(path) -> Path:
    if path is None:
        return DEFAULT_PROTOCOL
    p = Path(path)
    if not p.exists() and p.suffix == "" and (PROTOCOL_DIR / f"{p.name}.toml").is_file():
        return PROTOCOL_DIR / f"{p.name}.toml"
    return p


def shipped_protocols() -> list[str]:
    """Names of the protocols shipped with reirrad-opt (usable as ``load_protocol(name)``)."""
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))


def load_protocol(path=None, *, optic_nerve_rule: str | None = None, fractionation: str | None = None,
                  options: dict[str, Any] | None = None) -> Protocol:
    """Load and validate a protocol file.

    Args:
        path: a TOML file, the name of a shipped protocol, or None for the shipped NPC
            re-irradiation consensus protocol.
        optic_nerve_rule: overrides the option of that name ('bilateral', 'unilateral', ...).
        fractionation: name of the fractionation to choose (default: the file's default).
        options: further option overrides (name -> value), validated like the file's.

    Raises:
        ProtocolError: any invalid content, naming the file, key / line and what was expected.
        FileNotFoundError: no such file.
    """
    path = _resolve_path(path)
    text, data = _read(path)
    ld = _Loader(path, text)
    top_allowed = {"protocol", "prescription", "fractionations", "goal", "slips", "options", "recovery"}
    unknown = sorted(set(data) - top_allowed)
    if unknown:
        raise ld.fail("top level", f"unknown table(s) {unknown}; expected {sorted(top_allowed)}", ld.loc.header(unknown[0]))
    for section in ("protocol", "prescription", "fractionations", "goal", "slips"):
        if section not in data:
            raise ld.fail("top level", f"table [{section}]{' (array [[goal]])' if section == 'goal' else ''} is missing")
    meta = data["protocol"]
    mline = ld.loc.header("protocol")
    if not isinstance(meta, dict):
        raise ld.fail("[protocol]", "expected a table", mline)
    ld.check_keys(meta, {"name", "schema_version", "description", "provenance"}, "[protocol]", mline, required={"name"})
    version = meta.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ld.fail("[protocol] schema_version", f"this reirrad-opt reads schema_version {SCHEMA_VERSION}, got {version!r}",
                      ld.loc.key("schema_version", mline))

    if not isinstance(data["fractionations"], dict) or not data["fractionations"]:
        raise ld.fail("[fractionations]", "expected at least one fractionation table", ld.loc.header("fractionations"))
    fractionations = {name: ld.fractionation(name, t) for name, t in data["fractionations"].items()}
    prescription, _ = ld.prescription(data["prescription"], fractionations)

    opts = read_options(ld, data.get("options", {}))
    overrides = dict(options or {})
    if optic_nerve_rule is not None:
        overrides["optic_nerve_rule"] = optic_nerve_rule
    opts.update(check_caller_options(ld, overrides))

    goals_raw = data["goal"]
    if not isinstance(goals_raw, list) or not goals_raw:
        raise ld.fail("[[goal]]", "expected at least one [[goal]] table")
    goals: list[Goal] = []
    declared: dict[str, set[str]] = {}
    for i, t in enumerate(goals_raw):
        g, dec = ld.goal(i, t, opts)
        for k, v in dec.items():
            declared.setdefault(k, set()).update(v)
        if g is not None:
            goals.append(g)
    # Switch options: every option used by variants must be declared in [options] and take a known value.
    for option, values in declared.items():
        if option not in opts or (option not in OPTION_DEFAULTS and option not in data.get("options", {})):
            raise ld.fail(f"[options] {option}", "used by goal variants but not declared in [options]", ld.loc.header("options"))
    for option in list(opts):
        if option in OPTION_DEFAULTS or option in declared:
            continue
        raise ld.fail(f"[options] {option}", f"unknown option; known: {sorted(OPTION_DEFAULTS)} or an option used by "
                                             f"goal variants", ld.loc.key(option, ld.loc.header("options")))
    known_structures = [t.get("structure") for t in goals_raw if isinstance(t, dict) and isinstance(t.get("structure"), str)]
    try:
        opts["absent_structures"] = tuple(check_absent_names(opts.get("absent_structures") or (), known_structures,
                                                             f"{path}: [options] absent_structures"))
    except ValueError as exc:
        raise ProtocolError(str(exc)) from None
    for option, values in declared.items():
        base = data.get("options", {}).get(option, OPTION_DEFAULTS.get(option))
        allowed = sorted(values | {base})
        if opts[option] not in allowed:
            raise ProtocolError(f"{path}: option {option}={opts[option]!r}: expected one of {allowed}")
    seen: dict[str, int] = {}
    for i, g in enumerate(goals):
        if g.id in seen:
            raise ld.fail(f"goal id {g.id!r}", "duplicate id (also used by an earlier goal)", ld.loc.goal(i))
        seen[g.id] = i
    if not goals:
        raise ld.fail("[[goal]]", "no goal is in force for the selected options")

    slips = ld.slips(data["slips"])
    priorities = sorted({g.priority for g in goals})
    for p in priorities[:-1]:
        if p not in slips:
            raise ld.fail(f"[slips] {p}", f"priority {p} has goals and later priorities follow, so it needs a slip "
                                          f"(e.g. {p} = \"1 %\")", ld.loc.header("slips"))
    try:
        recovery = RecoveryModel.from_dict(data.get("recovery", {"kind": "none"}), "[recovery]")
    except ValueError as exc:
        msg = str(exc).replace("[recovery]: ", "", 1) if str(exc).startswith("[recovery]") else str(exc)
        raise ld.fail("[recovery]", msg, ld.loc.header("recovery")) from None

    protocol = Protocol(name=ld.text(meta["name"], "[protocol] name", mline), path=path, prescription=prescription,
                        fractionations=fractionations, goals=goals, slips=slips, options=opts, recovery=recovery,
                        provenance=ld.text(meta.get("provenance", ""), "[protocol] provenance", mline),
                        description=ld.text(meta.get("description", ""), "[protocol] description", mline))
    if fractionation is not None:
        protocol = protocol.with_fractionation(fractionation)
    return protocol
