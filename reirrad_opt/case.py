"""A planning case: grid, CT, structures and the prior course; and the case folder format.

Case folder (the project's interchange format):

* ``case.json``: ``name``, ``grid`` (see :meth:`Grid.to_dict`), ``structures`` (list of
  ``{name, role, volume_cc}``), ``prior_course`` (see :class:`PriorCourse`), ``source`` (free
  metadata, e.g. DICOM UIDs of the original study), ``format_version``.
* ``case.npz``: ``ct_hu`` (float32, Hounsfield units), ``prior_dose_gy`` (float32, RBE-weighted dose of
  the prior course, Gy(RBE); equal to the physical dose in Gy for photons), ``mask_<Name>`` (bool)
  per structure, ``spacing_mm`` and ``origin_mm`` (array order z, y, x).

A case.json written before prior dose types were recorded (no ``prior_course.dose_type``) loads as
a PHYSICAL dose with RBE 1, as it was used then; the case's notes say so.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_dir
from .geometry import Grid, Structure
from .rbe import LOW_LET_MODALITIES, RBE_ALREADY_APPLIED, RBE_MAX, RBE_MIN

FORMAT_VERSION = 1


class CaseFormatError(ValueError):
    """A case folder is missing a file or key, or holds inconsistent data."""


@dataclass
class PriorCourse:
    """The first (prior) course as delivered.

    Attributes:
        n_fractions: number of fractions of the prior course (its EQD2 is computed with it).
        interval_months: time from the end of the prior course to the start of the new one.
        modality: 'photon', 'proton', 'carbon', ... (from the RT (Ion) Plan or as given).
        prescription_gy: prescribed dose of the prior course (Gy, or Gy(RBE) for particles), if known.
        description: free text (e.g. '70 Gy in 33 fx to the nasopharynx').
        dose_type: the source dose's type, as in RTDOSE DoseType: 'PHYSICAL' or 'EFFECTIVE'
            (RBE-weighted by the planning system).
        rbe: the constant by which the source dose was multiplied to reach the case's prior dose in
            Gy(RBE): 1.0 for photons, e.g. 1.1 for a PHYSICAL proton dose, or 'already applied' for an
            EFFECTIVE dose (taken as is).
    """

    n_fractions: int
    interval_months: float
    modality: str = "photon"
    prescription_gy: float | None = None
    description: str = ""
    dose_type: str = "PHYSICAL"
    rbe: float | str = 1.0

    def __post_init__(self) -> None:
        if int(self.n_fractions) < 1:
            raise ValueError(f"prior course: n_fractions must be >= 1, got {self.n_fractions}")
        if not np.isfinite(self.interval_months) or self.interval_months < 0:
            raise ValueError(f"prior course: interval_months must be >= 0, got {self.interval_months}")
        self.n_fractions = int(self.n_fractions)
        self.interval_months = float(self.interval_months)
        if self.dose_type not in ("PHYSICAL", "EFFECTIVE"):
            raise ValueError(f"prior course: dose_type must be 'PHYSICAL' or 'EFFECTIVE', got {self.dose_type!r}")
        if self.dose_type == "EFFECTIVE":
            if self.rbe != RBE_ALREADY_APPLIED:
                raise ValueError(f"prior course: an EFFECTIVE (RBE-weighted) dose has rbe {RBE_ALREADY_APPLIED!r}, "
                                 f"got {self.rbe!r}")
            return
        if isinstance(self.rbe, str) or isinstance(self.rbe, bool):
            raise ValueError(f"prior course: a PHYSICAL dose needs the RBE applied to it as a number, got {self.rbe!r}")
        self.rbe = float(self.rbe)
        if self.modality in LOW_LET_MODALITIES and self.rbe != 1.0:
            raise ValueError(f"prior course: a {self.modality} dose has RBE 1, got {self.rbe:g}")
        if not RBE_MIN <= self.rbe <= RBE_MAX:
            raise ValueError(f"prior course: rbe {self.rbe:g} is outside {RBE_MIN:g}-{RBE_MAX:g}")

    @property
    def rbe_factor(self) -> float:
        """The factor applied to the source dose (1.0 when the source was already RBE-weighted)."""
        return 1.0 if self.rbe == RBE_ALREADY_APPLIED else float(self.rbe)


@dataclass
class Case:
    """Everything the planner needs about one patient (or phantom).

    Attributes:
        name: case identifier.
        grid: the voxel grid of all arrays below.
        ct_hu: CT numbers (HU), shape grid.shape.
        structures: structures by TG-263 name (insertion order is kept).
        prior_dose_gy: RBE-weighted dose of the prior course (Gy(RBE); the physical dose for photons) on
            the grid (see :class:`PriorCourse` for its dose type and RBE).
        prior: the prior course's fractionation and interval.
        source: free metadata (origin of the data, DICOM UIDs, ...).
    """

    name: str
    grid: Grid
    ct_hu: np.ndarray
    structures: dict[str, Structure]
    prior_dose_gy: np.ndarray
    prior: PriorCourse
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.grid.check_array(self.ct_hu, f"case {self.name!r} ct_hu")
        self.grid.check_array(self.prior_dose_gy, f"case {self.name!r} prior_dose_gy")
        for s in self.structures.values():
            self.grid.check_array(s.mask, f"case {self.name!r} structure {s.name!r}")
        if not np.all(np.isfinite(self.prior_dose_gy)) or self.prior_dose_gy.min() < 0:
            raise ValueError(f"case {self.name!r}: prior_dose_gy must be finite and >= 0 Gy")

    def __getitem__(self, name: str) -> Structure:
        try:
            return self.structures[name]
        except KeyError:
            raise KeyError(f"case {self.name!r} has no structure {name!r}; it has {list(self.structures)}") from None

    @property
    def body(self) -> np.ndarray:
        """Mask of the external contour (role 'external'); the whole grid if there is none."""
        for s in self.structures.values():
            if s.role == "external":
                return s.mask
        return np.ones(self.grid.shape, dtype=bool)

    def to_json_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "grid": self.grid.to_dict(),
            "structures": [
                {"name": s.name, "role": s.role, "volume_cc": round(s.volume_cc(self.grid), 4)}
                for s in self.structures.values()
            ],
            "prior_course": asdict(self.prior),
            "source": self.source,
        }


def write_case_files(case: Case, folder: Path) -> None:
    """Write case.json and case.npz into an existing folder (no atomicity; see save_case)."""
    arrays = {
        "ct_hu": case.ct_hu.astype(np.float32),
        "prior_dose_gy": case.prior_dose_gy.astype(np.float32),
        "spacing_mm": np.asarray(case.grid.spacing_mm),
        "origin_mm": np.asarray(case.grid.origin_mm),
    }
    for s in case.structures.values():
        arrays[f"mask_{s.name}"] = s.mask
    np.savez_compressed(folder / "case.npz", **arrays)
    (folder / "case.json").write_text(json.dumps(case.to_json_dict(), indent=2))


def save_case(case: Case, out_dir: str | os.PathLike, extra=None) -> Path:
    """Write the case folder atomically. ``extra(tmp_folder)`` may add files (e.g. case.png)."""
    with atomic_dir(out_dir) as tmp:
        write_case_files(case, tmp)
        if extra is not None:
            extra(tmp)
    return Path(out_dir)


def load_case(folder: str | os.PathLike) -> Case:
    """Read a case folder written by :func:`save_case`; CaseFormatError names what is wrong."""
    folder = Path(folder)
    jpath, npath = folder / "case.json", folder / "case.npz"
    for p in (jpath, npath):
        if not p.is_file():
            raise CaseFormatError(f"{p}: missing (a case folder holds case.json and case.npz)")
    try:
        meta = json.loads(jpath.read_text())
    except json.JSONDecodeError as exc:
        raise CaseFormatError(f"{jpath}: not valid JSON ({exc})") from exc
    for key in ("name", "grid", "structures", "prior_course"):
        if key not in meta:
            raise CaseFormatError(f"{jpath}: key {key!r} is missing")
    try:
        grid = Grid.from_dict(meta["grid"])
        prior = PriorCourse(**meta["prior_course"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CaseFormatError(f"{jpath}: {exc}") from exc
    if isinstance(meta["prior_course"], dict) and "dose_type" not in meta["prior_course"]:
        source = dict(meta.get("source", {}))
        source["notes"] = list(source.get("notes", [])) + [
            "prior course: case.json records no dose type (written before dose types were read); the prior dose "
            f"is taken as a PHYSICAL dose with RBE 1 (modality {prior.modality!r}), as it was used then"]
        meta["source"] = source
    try:
        data = np.load(npath)
    except Exception as exc:  # zipfile / pickle errors
        raise CaseFormatError(f"{npath}: cannot be read as npz ({exc})") from exc
    with data:
        for key in ("ct_hu", "prior_dose_gy"):
            if key not in data.files:
                raise CaseFormatError(f"{npath}: array {key!r} is missing")
        structures = {}
        for entry in meta["structures"]:
            key = f"mask_{entry['name']}"
            if key not in data.files:
                raise CaseFormatError(f"{npath}: array {key!r} for structure {entry['name']!r} is missing")
            structures[entry["name"]] = Structure(entry["name"], data[key].astype(bool), entry.get("role", ""))
        try:
            return Case(meta["name"], grid, data["ct_hu"].astype(np.float32), structures,
                        data["prior_dose_gy"].astype(np.float32), prior, meta.get("source", {}))
        except ValueError as exc:
            raise CaseFormatError(f"{folder}: {exc}") from exc
