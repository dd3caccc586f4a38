"""The CT calibration of a plan: CT number (HU) to stopping-power ratio and relative electron
density, the default one or a scanner calibration the user supplies.

:class:`CTCalibration` is a frozen value handed to the dose engines (``plan(ct_calibration=...)``,
``compare(...)``, ``reirrad-opt plan --ct-calibration FILE``) and recorded in plan.json and the
report: its source (the file, or ``default stoichiometric``) and the SHA-256 of the file.

A scanner calibration file is a CSV table with a header line::

    # lines starting with '#' are comments (e.g. the scanner, protocol and date)
    HU,SPR,RED
    -1024,0.001,0.001
    -1000,0.001,0.001
    ...
    3071,2.36,2.54

Columns (names case-insensitive, in any order): ``HU`` (CT number), ``SPR`` (proton
stopping-power ratio to water), optionally ``RED`` (electron density relative to water, for photon
plans; without it a photon plan is refused). Rules, each refusal naming the file, line and
column:

* every cell a finite number; no other columns;
* HU strictly increasing, at least two rows;
* SPR and RED between 0 and 3, and non-decreasing with HU from -1000 HU upwards (rows below
  -1000 HU, the padding some scanners write outside the field of view, may hold any value in range);
* the table covers at least -1000 to 3000 HU; CT numbers of a case outside the table are refused
  when the dose is computed (never clipped or extrapolated): add rows (e.g. at -1024 and 3071 HU)
  to cover what your CT holds;
* at 0 HU (water) SPR and RED read between 0.9 and 1.1 (a table in other units is refused).

Between rows the values are interpolated linearly in HU.
"""
from __future__ import annotations

import csv
import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .hu_tables import RED_CURVE, SPR_CURVE, HUCurve

COVER_HU = (-1000.0, 3000.0)
VALUE_RANGE = (0.0, 3.0)
WATER_RANGE = (0.9, 1.1)
MONOTONIC_FROM_HU = -1000.0
DEFAULT_SOURCE = "default stoichiometric"
COLUMNS = {"hu": "HU", "spr": "SPR", "red": "RED"}


class CTCalibrationError(ValueError):
    """A CT calibration that cannot be used; the message names the file, line and column."""


@dataclass(frozen=True)
class CTCalibration:
    """CT number to stopping-power ratio and relative electron density.

    Attributes:
        spr: HU -> proton stopping-power ratio to water.
        red: HU -> electron density relative to water (photons); None when the file has no RED
            column (photon plans then refuse the calibration).
        source: ``'default stoichiometric'`` or the file as given (``--ct-calibration FILE``).
        sha256: SHA-256 of the file's bytes (None for the default).
    """

    spr: HUCurve
    red: HUCurve | None
    source: str = DEFAULT_SOURCE
    sha256: str | None = None

    @property
    def is_default(self) -> bool:
        return self.sha256 is None and self.source == DEFAULT_SOURCE

    def red_curve(self, why: str = "a photon plan") -> HUCurve:
        """The RED curve; CTCalibrationError when the calibration has none."""
        if self.red is None:
            raise CTCalibrationError(f"{self.source}: no RED column, but {why} needs the relative electron density "
                                     f"(add a RED column to the calibration)")
        return self.red

    def to_dict(self) -> dict:
        """What plan.json records: where the calibration comes from and what it covers."""
        from ..recorded_paths import portable_path

        curves = ["SPR"] + ([] if self.red is None else ["RED"])
        return {"source": DEFAULT_SOURCE if self.is_default else portable_path(self.source),
                "sha256": self.sha256, "columns": curves,
                "hu_range": [float(self.spr.hu[0]), float(self.spr.hu[-1])],
                "description": self.spr.source}

    def describe(self) -> str:
        """One line for reports: the source and a short hash."""
        if self.is_default:
            return "default stoichiometric (generic scanner; a clinic should supply its own)"
        return f"{self.to_dict()['source']} (sha256 {self.sha256[:12]}; columns {', '.join(self.to_dict()['columns'])})"


DEFAULT_CT_CALIBRATION = CTCalibration(SPR_CURVE, RED_CURVE)


def load_ct_calibration(path: str | os.PathLike) -> CTCalibration:
    """Read and check a scanner calibration CSV (see the module docstring for the format and the
    rules). CTCalibrationError names the file, line and column of the first problem;
    FileNotFoundError when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CT calibration file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CTCalibrationError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    header, rows = _read_table(path, text)
    _check_rows(path, header, rows)
    hu = tuple(r[1]["hu"] for r in rows)
    digest = hashlib.sha256(raw).hexdigest()
    source = f"{path} (sha256 {digest[:12]})"
    spr = HUCurve("stopping-power ratio", hu, tuple(r[1]["spr"] for r in rows), source)
    red = HUCurve("relative electron density", hu, tuple(r[1]["red"] for r in rows), source) \
        if "red" in header else None
    return CTCalibration(spr, red, str(path), digest)


def _read_table(path: Path, text: str) -> tuple[list[str], list[tuple[int, dict[str, float]]]]:
    """(column keys, [(line number, {key: value})]) of the non-comment lines."""
    header: list[str] | None = None
    rows: list[tuple[int, dict[str, float]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in next(csv.reader([line]))]
        if header is None:
            header = _header(path, lineno, cells)
            continue
        if len(cells) != len(header):
            raise CTCalibrationError(f"{path} line {lineno}: {len(cells)} values, expected {len(header)} "
                                     f"({', '.join(COLUMNS[k] for k in header)})")
        values = {}
        for key, cell in zip(header, cells):
            try:
                value = float(cell)
            except ValueError:
                raise CTCalibrationError(f"{path} line {lineno} column {COLUMNS[key]}: {cell!r} is not a number") \
                    from None
            if not math.isfinite(value):
                raise CTCalibrationError(f"{path} line {lineno} column {COLUMNS[key]}: {cell!r} is not a finite "
                                         f"number")
            values[key] = value
        rows.append((lineno, values))
    if header is None:
        raise CTCalibrationError(f"{path}: empty; expected a header line 'HU,SPR[,RED]' and one row per CT number")
    if len(rows) < 2:
        raise CTCalibrationError(f"{path}: {len(rows)} data row(s); a calibration needs at least two")
    return header, rows


def _header(path: Path, lineno: int, cells: list[str]) -> list[str]:
    keys = [c.lower() for c in cells]
    for cell, key in zip(cells, keys):
        if key not in COLUMNS:
            hint = " (the separator is a comma)" if ";" in cell or "\t" in cell else ""
            raise CTCalibrationError(f"{path} line {lineno}: unknown column {cell!r}{hint}; expected HU, SPR and "
                                     f"optionally RED")
    for key in set(keys):
        if keys.count(key) > 1:
            raise CTCalibrationError(f"{path} line {lineno}: column {COLUMNS[key]} appears twice")
    for key in ("hu", "spr"):
        if key not in keys:
            raise CTCalibrationError(f"{path} line {lineno}: missing column {COLUMNS[key]} (the header names "
                                     f"{', '.join(cells)}; expected HU, SPR and optionally RED)")
    return keys


def _check_rows(path: Path, header: list[str], rows: list[tuple[int, dict[str, float]]]) -> None:
    lo_v, hi_v = VALUE_RANGE
    for (ln_prev, prev), (ln, row) in zip(rows, rows[1:]):
        if row["hu"] <= prev["hu"]:
            raise CTCalibrationError(f"{path} line {ln} column HU: {row['hu']:g} is not above {prev['hu']:g} on line "
                                     f"{ln_prev}; HU must be strictly increasing")
    for ln, row in rows:
        for key in header:
            if key != "hu" and not lo_v <= row[key] <= hi_v:
                raise CTCalibrationError(f"{path} line {ln} column {COLUMNS[key]}: {row[key]:g} is outside the "
                                         f"plausible {lo_v:g} to {hi_v:g}")
    checked = [(ln, row) for ln, row in rows if row["hu"] >= MONOTONIC_FROM_HU]
    for key in header:
        if key == "hu":
            continue
        for (ln_prev, prev), (ln, row) in zip(checked, checked[1:]):
            if row[key] < prev[key]:
                raise CTCalibrationError(
                    f"{path} line {ln} column {COLUMNS[key]}: {row[key]:g} at {row['hu']:g} HU is below {prev[key]:g} "
                    f"at {prev['hu']:g} HU (line {ln_prev}); {COLUMNS[key]} must not decrease with HU from "
                    f"{MONOTONIC_FROM_HU:g} HU upwards")
    first, last = rows[0][1]["hu"], rows[-1][1]["hu"]
    if first > COVER_HU[0] or last < COVER_HU[1]:
        raise CTCalibrationError(f"{path}: the table covers {first:g} to {last:g} HU; a calibration must cover at "
                                 f"least {COVER_HU[0]:g} to {COVER_HU[1]:g} HU (CT numbers outside the table are "
                                 f"refused, not clipped)")
    hu = np.array([r["hu"] for _, r in rows])
    for key in header:
        if key == "hu":
            continue
        water = float(np.interp(0.0, hu, [r[key] for _, r in rows]))
        if not WATER_RANGE[0] <= water <= WATER_RANGE[1]:
            raise CTCalibrationError(f"{path} column {COLUMNS[key]}: {water:g} at 0 HU (water), expected about 1 "
                                     f"({WATER_RANGE[0]:g} to {WATER_RANGE[1]:g}); is the column relative to water?")
