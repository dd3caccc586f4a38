"""A planning case: grid, CT, structures and the prior course; and the case folder format.

Case folder (the project's interchange format):

* ``case.json``: ``name``, ``grid`` (see :meth:`Grid.to_dict`), ``structures`` (list of
  ``{name, role, volume_cc}``), the prior course(s) (below), ``source`` (free metadata, e.g. DICOM
  UIDs of the original study), ``format_version``.
* ``case.npz``: ``ct_hu`` (float32, Hounsfield units), ``prior_dose_gy`` (float32, RBE-weighted dose of
  the (first) prior course, Gy(RBE); equal to the physical dose in Gy for photons), ``mask_<Name>``
  (bool) per structure, ``spacing_mm`` and ``origin_mm`` (array order z, y, x).

One prior course: ``format_version`` 1 and ``prior_course`` (see :class:`PriorCourse`), as every
case folder has been written. Several prior courses: ``format_version`` 2 and ``prior_courses`` (a
list, in the case's order) instead of ``prior_course``, the dose of course k >= 2 in ``case.npz`` as
``prior_dose_gy_<k>`` -- so that a reader that knows only one course refuses the folder (no
``prior_course``) rather than silently dropping courses. Both formats load; a later format_version is
refused by name.

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
from .plausibility import DEFAULT_BOUNDS
from .rbe import LOW_LET_MODALITIES, PRIOR_MODALITIES, RBE_ALREADY_APPLIED, RBE_MAX, RBE_MIN, is_prior_modality

#: format of a case folder with one prior course (``prior_course``); see the module docstring
FORMAT_VERSION = 1
#: format of a case folder with several prior courses (``prior_courses``)
FORMAT_VERSION_SEVERAL_PRIORS = 2


def _is_number(value: object) -> bool:
    """A finite real number (not a bool, not text): what case.json's numbers must be."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
        and bool(np.isfinite(value))


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
        mapping: how this course's dose came onto the case grid, one readable line (registration
            method, transform, margin); empty when the dose was supplied on the case grid.
    """

    n_fractions: int
    interval_months: float
    modality: str = "photon"
    prescription_gy: float | None = None
    description: str = ""
    dose_type: str = "PHYSICAL"
    rbe: float | str = 1.0
    mapping: str = ""

    def __post_init__(self) -> None:
        bounds = DEFAULT_BOUNDS
        n = self.n_fractions
        low, high = bounds.fractions_range
        # a fraction count read as 2.5 used to become 2 fractions: an EQD2 far above the delivered one
        if not _is_number(n) or float(n) != int(n) or not low <= int(n) <= high:
            raise ValueError(f"prior course: n_fractions must be a whole number from {low} to {high}, got {n!r}")
        months = self.interval_months
        if not _is_number(months) or not 0 <= months <= bounds.max_interval_months:
            raise ValueError(f"prior course: interval_months must be a number of months from 0 to "
                             f"{bounds.max_interval_months:g}, got {months!r}")
        self.n_fractions = int(n)
        self.interval_months = float(months)
        # 'none': a case without a prior course (a water phantom; its prior dose is zero)
        if not (is_prior_modality(self.modality) or self.modality == "none"):
            raise ValueError(f"prior course: modality must be a radiation type, one of {list(PRIOR_MODALITIES)} or "
                             f"'ion(Z=<n>)' (or 'none' without a prior course), got {self.modality!r}")
        rx = self.prescription_gy
        if rx is not None:
            if not _is_number(rx) or not 0 < rx <= bounds.max_prescription_gy:
                raise ValueError(f"prior course: prescription_gy must be > 0 and at most "
                                 f"{bounds.max_prescription_gy:g} Gy (or absent), got {rx!r}")
            self.prescription_gy = float(rx)
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

    def to_json_dict(self) -> dict:
        """case.json form; ``mapping`` only when set (a course supplied on the case grid is written
        as before)."""
        d = asdict(self)
        if not self.mapping:
            d.pop("mapping")
        return d


@dataclass(frozen=True)
class PriorDose:
    """One prior course with its dose on the case grid.

    Attributes:
        course: fractionation, interval, modality, dose type, RBE, description, mapping.
        dose_gy: RBE-weighted dose of that course alone (Gy(RBE); physical Gy for photons) on the
            case grid.
    """

    course: PriorCourse
    dose_gy: np.ndarray


@dataclass
class Case:
    """Everything the planner needs about one patient (or phantom).

    Attributes:
        name: case identifier.
        grid: the voxel grid of all arrays below.
        ct_hu: CT numbers (HU), shape grid.shape.
        structures: structures by TG-263 name (insertion order is kept).
        prior_dose_gy: RBE-weighted dose of the (first) prior course (Gy(RBE); the physical dose for
            photons) on the grid (see :class:`PriorCourse` for its dose type and RBE).
        prior: the (first) prior course's fractionation and interval.
        source: free metadata (origin of the data, DICOM UIDs, ...).
        further_priors: the second, third, ... prior course with their doses, when a patient had
            several. Every EQD2 reads :attr:`prior_courses` (all of them) through
            :mod:`reirrad_opt.prior_eqd2`; ``prior_dose_gy`` alone is the first course only.
    """

    name: str
    grid: Grid
    ct_hu: np.ndarray
    structures: dict[str, Structure]
    prior_dose_gy: np.ndarray
    prior: PriorCourse
    source: dict = field(default_factory=dict)
    further_priors: tuple[PriorDose, ...] = ()

    def __post_init__(self) -> None:
        self.grid.check_array(self.ct_hu, f"case {self.name!r} ct_hu")
        self.further_priors = tuple(self.further_priors)
        for k, p in enumerate(self.prior_courses, 1):
            if not isinstance(p, PriorDose) or not isinstance(p.course, PriorCourse):
                raise ValueError(f"case {self.name!r}: prior course {k} must be a PriorDose(PriorCourse, dose), "
                                 f"got {type(p).__name__}")
            what = "prior_dose_gy" if k == 1 else f"prior course {k} dose_gy"
            self.grid.check_array(p.dose_gy, f"case {self.name!r} {what}")
            if not np.all(np.isfinite(p.dose_gy)) or p.dose_gy.min() < 0:
                raise ValueError(f"case {self.name!r}: {what} must be finite and >= 0 Gy")
        for s in self.structures.values():
            self.grid.check_array(s.mask, f"case {self.name!r} structure {s.name!r}")

    @property
    def prior_courses(self) -> tuple[PriorDose, ...]:
        """Every prior course with its dose, the first (``prior``, ``prior_dose_gy``) first."""
        return (PriorDose(self.prior, self.prior_dose_gy),) + self.further_priors

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
        several = bool(self.further_priors)
        out = {
            "format_version": FORMAT_VERSION_SEVERAL_PRIORS if several else FORMAT_VERSION,
            "name": self.name,
            "grid": self.grid.to_dict(),
            "structures": [
                {"name": s.name, "role": s.role, "volume_cc": round(s.volume_cc(self.grid), 4)}
                for s in self.structures.values()
            ],
        }
        if several:
            out["prior_courses"] = [p.course.to_json_dict() for p in self.prior_courses]
        else:
            out["prior_course"] = self.prior.to_json_dict()
        out["source"] = self.source
        return out


def prior_dose_key(k: int) -> str:
    """case.npz name of the dose of prior course ``k`` (1-based): prior_dose_gy, prior_dose_gy_2, ..."""
    return "prior_dose_gy" if k == 1 else f"prior_dose_gy_{k}"


def write_case_files(case: Case, folder: Path) -> None:
    """Write case.json and case.npz into an existing folder (no atomicity; see save_case)."""
    arrays = {
        "ct_hu": case.ct_hu.astype(np.float32),
        **{prior_dose_key(k): p.dose_gy.astype(np.float32) for k, p in enumerate(case.prior_courses, 1)},
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


def _prior_courses_meta(meta: dict, jpath: Path) -> list[dict]:
    """The prior-course records of case.json, in order (format 1: one ``prior_course``; format 2:
    the list ``prior_courses``)."""
    version = meta.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION_SEVERAL_PRIORS:
        raise CaseFormatError(f"{jpath}: format_version {version!r} is not one this version reads (1 or "
                              f"{FORMAT_VERSION_SEVERAL_PRIORS}); update reirrad-opt")
    has_one, has_list = "prior_course" in meta, "prior_courses" in meta
    if has_one and has_list:
        raise CaseFormatError(f"{jpath}: holds both 'prior_course' and 'prior_courses'; expected one of them")
    if has_list:
        courses = meta["prior_courses"]
        if not isinstance(courses, list) or not courses or not all(isinstance(c, dict) for c in courses):
            raise CaseFormatError(f"{jpath}: key 'prior_courses' must be a non-empty list of prior-course objects")
        return courses
    if not has_one:
        raise CaseFormatError(f"{jpath}: key 'prior_course' (or, for several courses, 'prior_courses') is missing")
    return [meta["prior_course"]]


#: the keys of case.json (see the module docstring)
CASE_JSON_KEYS = frozenset({"format_version", "name", "grid", "structures", "prior_course", "prior_courses", "source"})


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
    if not isinstance(meta, dict):
        raise CaseFormatError(f"{jpath}: expected a JSON object, got {type(meta).__name__}")
    for key in ("name", "grid", "structures"):
        if key not in meta:
            raise CaseFormatError(f"{jpath}: key {key!r} is missing")
    unknown = sorted(set(meta) - CASE_JSON_KEYS)
    if unknown:
        raise CaseFormatError(f"{jpath}: unknown key(s) {unknown}; a case.json holds {sorted(CASE_JSON_KEYS)}")
    if not isinstance(meta["structures"], list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                                            for e in meta["structures"]):
        raise CaseFormatError(f"{jpath}: 'structures' must be a list of {{name, role, volume_cc}} objects")
    names = [e["name"] for e in meta["structures"]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CaseFormatError(f"{jpath}: structure(s) {twice} listed more than once")
    records = _prior_courses_meta(meta, jpath)
    several = len(records) > 1
    courses = []
    try:
        grid = Grid.from_dict(meta["grid"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CaseFormatError(f"{jpath}: {exc}") from exc
    for k, record in enumerate(records, 1):
        try:
            courses.append(PriorCourse(**record))
        except (KeyError, TypeError, ValueError) as exc:
            raise CaseFormatError(f"{jpath}: {f'prior_courses[{k - 1}]: ' if several else ''}{exc}") from exc
        if "dose_type" not in record:
            which = f"prior course {k}" if several else "prior course"
            source = dict(meta.get("source", {}))
            source["notes"] = list(source.get("notes", [])) + [
                f"{which}: case.json records no dose type (written before dose types were read); the prior dose "
                f"is taken as a PHYSICAL dose with RBE 1 (modality {courses[-1].modality!r}), as it was used then"]
            meta["source"] = source
    try:
        data = np.load(npath)
    except Exception as exc:  # zipfile / pickle errors
        raise CaseFormatError(f"{npath}: cannot be read as npz ({exc})") from exc
    with data:
        for key in ("ct_hu", *(prior_dose_key(k) for k in range(1, len(courses) + 1))):
            if key not in data.files:
                raise CaseFormatError(f"{npath}: array {key!r} is missing")
        if not several and prior_dose_key(2) in data.files:
            raise CaseFormatError(f"{npath}: holds {prior_dose_key(2)!r} but case.json records one prior course")
        structures = {}
        for entry in meta["structures"]:
            key = f"mask_{entry['name']}"
            if key not in data.files:
                raise CaseFormatError(f"{npath}: array {key!r} for structure {entry['name']!r} is missing")
            structures[entry["name"]] = Structure(entry["name"], data[key].astype(bool), entry.get("role", ""))
        for key, value in (("spacing_mm", grid.spacing_mm), ("origin_mm", grid.origin_mm)):
            # the arrays' own copy of the grid must agree with case.json's (one was edited without the other)
            if key in data.files and not np.allclose(np.asarray(data[key], dtype=float), value, rtol=0, atol=1e-6):
                raise CaseFormatError(f"{npath}: {key} {np.asarray(data[key]).tolist()} disagrees with case.json's "
                                      f"grid {key} {list(value)}")
        doses = [data[prior_dose_key(k)].astype(np.float32) for k in range(1, len(courses) + 1)]
        limit = DEFAULT_BOUNDS.max_dose_gy
        for k, d in enumerate(doses, 1):
            top = float(np.nanmax(d)) if d.size else 0.0
            if top > limit:   # an import refuses such a dose; a case folder edited afterwards must not bring it in
                raise CaseFormatError(f"{npath}: {prior_dose_key(k)} reaches {top:.1f} Gy, above the plausible "
                                      f"{limit:g} Gy of a prior course (a unit or scaling error)")
        try:
            return Case(meta["name"], grid, data["ct_hu"].astype(np.float32), structures, doses[0], courses[0],
                        meta.get("source", {}), tuple(PriorDose(c, d) for c, d in zip(courses[1:], doses[1:])))
        except ValueError as exc:
            raise CaseFormatError(f"{folder}: {exc}") from exc
