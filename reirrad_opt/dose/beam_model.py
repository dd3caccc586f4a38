"""Beam model of a scanning particle machine: spot size in air, energy spread, range shifter.

A small TOML file per machine (``--beam-model FILE``); the shipped defaults are
``beam_models/generic.toml`` (protons) and ``beam_models/generic_carbon.toml`` (carbon ions)::

    [beam_model]
    name = "generic"
    ion = "proton"                         # or "carbon" (energies then in MeV per nucleon)
    energies_mev = [70.0, 150.0, 230.0]    # increasing
    spot_sigma_mm = [6.0, 4.5, 3.0]        # in-air spot sigma at the isocentre, one per energy
    energy_spread_percent = [0.0, 0.0, 0.0]  # 1-sigma energy spread, % of the energy, one per energy
    sigma_growth_mm_per_mm = 0.0           # d(sigma)/d(distance downstream of the isocentre)

    [range_shifter]                        # optional
    wet_mm = 40.0                          # water-equivalent thickness (mm)
    isocenter_distance_mm = 300.0          # downstream face of the shifter to the isocentre (mm)

Values between the listed energies are interpolated linearly; outside them the end values hold
(the model does not refuse an energy the planner asks for; its list states where it was measured).
"""
from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..toml_lines import TomlLines

BEAM_MODEL_DIR = Path(__file__).resolve().parent / "beam_models"
DEFAULT_FILES = {"proton": BEAM_MODEL_DIR / "generic.toml", "carbon": BEAM_MODEL_DIR / "generic_carbon.toml"}
IONS = ("proton", "carbon")
SIGMA_RANGE_MM = (0.5, 30.0)            # plausible in-air spot sigma
SPREAD_RANGE_PERCENT = (0.0, 5.0)       # plausible 1-sigma energy spread
GROWTH_RANGE = (-0.05, 0.05)            # plausible d(sigma)/ds, mm per mm
ENERGY_RANGE_MEV = (1.0, 500.0)         # the range table's span (MeV, MeV/u)


class BeamModelError(ValueError):
    """An invalid beam model file; the message names the file, the key and its line, and what was expected."""


@dataclass(frozen=True)
class RangeShifter:
    """A range shifter in the nozzle: water-equivalent thickness (mm) and the distance from its
    downstream face to the isocentre (mm)."""

    wet_mm: float
    isocenter_distance_mm: float

    def to_dict(self) -> dict:
        return {"wet_mm": self.wet_mm, "isocenter_distance_mm": self.isocenter_distance_mm}


@dataclass(frozen=True)
class BeamModel:
    """Machine data of a scanned particle beam.

    Attributes:
        name: the machine's name.
        ion: 'proton' or 'carbon'.
        energies_mev: increasing energies (MeV; MeV/u for carbon) at which the data are given.
        spot_sigma_mm: in-air spot sigma at the isocentre at each energy (mm).
        energy_spread_percent: 1-sigma energy spread at each energy (% of the energy).
        sigma_growth_mm_per_mm: change of the in-air sigma per mm downstream of the isocentre.
        range_shifter: the nozzle's range shifter, or None.
        source: where the model was read from: 'shipped: <file name>', or the file as given.
        sha256: SHA-256 of the file's bytes (None for a shipped model).
    """

    name: str
    ion: str
    energies_mev: tuple[float, ...]
    spot_sigma_mm: tuple[float, ...]
    energy_spread_percent: tuple[float, ...]
    sigma_growth_mm_per_mm: float = 0.0
    range_shifter: RangeShifter | None = None
    source: str = ""
    sha256: str | None = None

    def sigma_air_mm(self, energy_mev, distance_mm=0.0) -> np.ndarray:
        """In-air spot sigma (mm) at ``energy_mev`` and ``distance_mm`` downstream of the isocentre."""
        s = np.interp(np.asarray(energy_mev, dtype=np.float64), self.energies_mev, self.spot_sigma_mm)
        return s + self.sigma_growth_mm_per_mm * np.asarray(distance_mm, dtype=np.float64)

    def energy_spread_rel(self, energy_mev) -> np.ndarray:
        """Relative 1-sigma energy spread (fraction, not %) at ``energy_mev``."""
        e = np.asarray(energy_mev, dtype=np.float64)
        return np.interp(e, self.energies_mev, self.energy_spread_percent) / 100.0

    def to_dict(self) -> dict:
        """The model as plan.json records it (a file by its portable path, never an absolute one)."""
        from ..recorded_paths import portable_path

        source = self.source if self.sha256 is None else portable_path(self.source)
        return {"name": self.name, "ion": self.ion, "energies_mev": list(self.energies_mev),
                "spot_sigma_mm": list(self.spot_sigma_mm), "energy_spread_percent": list(self.energy_spread_percent),
                "sigma_growth_mm_per_mm": self.sigma_growth_mm_per_mm,
                "range_shifter": None if self.range_shifter is None else self.range_shifter.to_dict(),
                "source": source, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, d: dict) -> "BeamModel":
        rs = d.get("range_shifter")
        return cls(str(d["name"]), str(d["ion"]), tuple(float(x) for x in d["energies_mev"]),
                   tuple(float(x) for x in d["spot_sigma_mm"]), tuple(float(x) for x in d["energy_spread_percent"]),
                   float(d.get("sigma_growth_mm_per_mm", 0.0)),
                   None if rs is None else RangeShifter(float(rs["wet_mm"]), float(rs["isocenter_distance_mm"])),
                   str(d.get("source", "")), d.get("sha256"))


def default_beam_model(ion: str = "proton") -> BeamModel:
    """The shipped generic model of ``ion``."""
    if ion not in DEFAULT_FILES:
        raise ValueError(f"ion must be one of {list(IONS)}, got {ion!r}")
    path = DEFAULT_FILES[ion]
    return _parse_text(path.read_text(encoding="utf-8"), str(path), f"shipped: {path.name}", None)


def load_beam_model(path: str | Path) -> BeamModel:
    """Read and validate a beam model TOML file (see the module docstring)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise BeamModelError(f"beam model {p}: cannot read the file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BeamModelError(f"beam model {p}: not a UTF-8 text file") from None
    return _parse_text(text, str(p), str(p), hashlib.sha256(raw).hexdigest())


@lru_cache(maxsize=16)
def _parse_text(text: str, path: str, source: str, sha256: str | None) -> BeamModel:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BeamModelError(f"beam model {path}: not valid TOML ({exc})") from None
    return _parse(data, TomlLines(text), Path(path), source, sha256)


def _parse(data: dict, lines: TomlLines, path: Path, source: str, sha256: str | None) -> BeamModel:
    def where(table: str, key: str | None = None) -> str:
        start = lines.header(table)
        line = lines.key(key, start) if key else start
        return f"beam model {path}, [{table}]" + (f" {key}" if key else "") + (f" (line {line})" if line else "")

    bm = data.get("beam_model")
    if not isinstance(bm, dict):
        raise BeamModelError(f"beam model {path}: the [beam_model] table is missing")
    unknown = set(data) - {"beam_model", "range_shifter"}
    if unknown:
        raise BeamModelError(f"beam model {path}: unknown entries {sorted(unknown)} outside the tables; expected "
                             f"[beam_model] and optionally [range_shifter]")
    keys = {"name", "ion", "energies_mev", "spot_sigma_mm", "energy_spread_percent", "sigma_growth_mm_per_mm"}
    extra = set(bm) - keys
    if extra:
        raise BeamModelError(f"{where('beam_model', sorted(extra)[0])}: unknown key(s) {sorted(extra)}; "
                             f"expected {sorted(keys)}")
    for key in sorted(keys - {"sigma_growth_mm_per_mm"}):
        if key not in bm:
            raise BeamModelError(f"{where('beam_model')}: the key {key!r} is missing")
    name = bm["name"]
    if not isinstance(name, str) or not name.strip():
        raise BeamModelError(f"{where('beam_model', 'name')}: expected a non-empty string, got {name!r}")
    ion = bm["ion"]
    if ion not in IONS:
        raise BeamModelError(f"{where('beam_model', 'ion')}: expected one of {list(IONS)}, got {ion!r}")
    energies = _numbers(bm["energies_mev"], where("beam_model", "energies_mev"), ENERGY_RANGE_MEV, "MeV")
    if any(b <= a for a, b in zip(energies, energies[1:])):
        raise BeamModelError(f"{where('beam_model', 'energies_mev')}: energies must increase strictly, got "
                             f"{list(energies)}")
    sigma = _numbers(bm["spot_sigma_mm"], where("beam_model", "spot_sigma_mm"), SIGMA_RANGE_MM, "mm", len(energies))
    spread = _numbers(bm["energy_spread_percent"], where("beam_model", "energy_spread_percent"),
                      SPREAD_RANGE_PERCENT, "%", len(energies))
    growth = bm.get("sigma_growth_mm_per_mm", 0.0)
    growth = _numbers([growth], where("beam_model", "sigma_growth_mm_per_mm"), GROWTH_RANGE, "mm/mm")[0]
    shifter = None
    if "range_shifter" in data:
        rs = data["range_shifter"]
        rs_keys = {"wet_mm", "isocenter_distance_mm"}
        if not isinstance(rs, dict) or set(rs) != rs_keys:
            got = sorted(rs) if isinstance(rs, dict) else rs
            raise BeamModelError(f"{where('range_shifter')}: expected exactly the keys {sorted(rs_keys)}, got {got}")
        wet = _numbers([rs["wet_mm"]], where("range_shifter", "wet_mm"), (0.1, 200.0), "mm")[0]
        dist = _numbers([rs["isocenter_distance_mm"]], where("range_shifter", "isocenter_distance_mm"),
                        (0.0, 2000.0), "mm")[0]
        shifter = RangeShifter(wet, dist)
    return BeamModel(name.strip(), ion, energies, sigma, spread, growth, shifter, source, sha256)


def _numbers(value, where: str, bounds: tuple[float, float], unit: str, n: int | None = None) -> tuple[float, ...]:
    """A list of finite numbers within ``bounds`` (and of length ``n``), or BeamModelError naming ``where``."""
    if not isinstance(value, list) or not value:
        raise BeamModelError(f"{where}: expected a non-empty list of numbers, got {value!r}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise BeamModelError(f"{where}: expected numbers, got {value!r}")
    out = tuple(float(v) for v in value)
    if n is not None and len(out) != n:
        raise BeamModelError(f"{where}: expected {n} values (one per energy in energies_mev), got {len(out)}")
    lo, hi = bounds
    bad = [v for v in out if not (math.isfinite(v) and lo <= v <= hi)]
    if bad:
        raise BeamModelError(f"{where}: {bad[0]:g} {unit} is outside the plausible range {lo:g} to {hi:g} {unit}")
    return out
