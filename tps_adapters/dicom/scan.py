"""Classify the files of a folder by SOP class and check they belong together.

Files may have any names. Every file with the DICOM Part 10 preamble is parsed (without pixel
data); files without it are listed as ignored. Supported objects: CT Image, RT Structure Set,
RT Dose, RT Plan and RT Ion Plan. Other DICOM objects (RT Image, MR, registrations, ...) are
listed as ignored. The objects used must share one Patient ID, one Study Instance UID and one
Frame of Reference UID, and there must be at most one CT series and one structure set;
anything else is refused with :class:`MixedInputError` naming the files; so is an ROI whose
Referenced Frame of Reference UID differs from the CT's.

A file that looks like a DICOM file but cannot be one is refused naming the file and what is
wrong with it, rather than ignored (ignoring a CT slice would later read as a "missing slice"):
an empty (0-byte) file named like DICOM (``.dcm``, ``.dicom``, ``.ima`` or no suffix), a file with
such a name that cannot be parsed, and a raw dataset of a supported object without the Part 10
header (128-byte preamble and ``DICM``).
"""
from __future__ import annotations

import os
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from reirrad_opt.safe_names import printable

from .errors import DicomFileError, MissingDataError, MixedInputError, ModalityError
from .values import get_str, is_dicom_file, read_dataset

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RT_DOSE = "1.2.840.10008.5.1.4.1.1.481.2"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
RT_ION_PLAN = "1.2.840.10008.5.1.4.1.1.481.8"

KIND_BY_SOP = {CT_IMAGE: "ct", RT_STRUCT: "rtstruct", RT_DOSE: "rtdose", RT_PLAN: "rtplan", RT_ION_PLAN: "rtplan"}
EXPECTED_MODALITY = {"ct": "CT", "rtstruct": "RTSTRUCT", "rtdose": "RTDOSE", "rtplan": "RTPLAN"}
REFUSED_SOP = {
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage (multi-frame CT) is not supported; export classic CT images",
}


@dataclass
class DicomEntry:
    """One parsed file (header only, no pixel data)."""

    path: Path
    ds: Dataset
    kind: str

    @property
    def frame_of_reference_uid(self) -> str:
        uid = get_str(self.ds, "FrameOfReferenceUID")
        if uid or self.kind != "rtstruct":
            return uid
        for rfor in self.ds.get("ReferencedFrameOfReferenceSequence", []) or []:
            if get_str(rfor, "FrameOfReferenceUID"):
                return get_str(rfor, "FrameOfReferenceUID")
        return ""


@dataclass
class DicomFolder:
    """The supported objects of a folder, grouped.

    Attributes:
        root: the folder (absolute).
        ct_series: Series Instance UID -> CT slice entries.
        rtstruct, rtdose, rtplan: entries of each kind.
        ignored: (file, reason) for every file not used.
    """

    root: Path
    ct_series: dict[str, list[DicomEntry]] = field(default_factory=dict)
    rtstruct: list[DicomEntry] = field(default_factory=list)
    rtdose: list[DicomEntry] = field(default_factory=list)
    rtplan: list[DicomEntry] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def entries(self) -> list[DicomEntry]:
        out = [e for series in self.ct_series.values() for e in series]
        return out + self.rtstruct + self.rtdose + self.rtplan

    @property
    def ct(self) -> list[DicomEntry]:
        """The CT slices of the single CT series ([] if none)."""
        return next(iter(self.ct_series.values()), [])

    def identity(self) -> dict[str, str]:
        """Patient ID, Study Instance UID and Frame of Reference UID shared by all objects."""
        entries = self.entries
        if not entries:
            return {"patient_id": "", "study_instance_uid": "", "frame_of_reference_uid": ""}
        e = entries[0]
        fors = [x.frame_of_reference_uid for x in entries if x.frame_of_reference_uid]
        return {"patient_id": get_str(e.ds, "PatientID"), "study_instance_uid": get_str(e.ds, "StudyInstanceUID"),
                "frame_of_reference_uid": fors[0] if fors else ""}


def _list_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return files


def _describe(groups: dict[str, list[Path]], limit: int = 3) -> str:
    parts = []
    for key, paths in groups.items():
        names = ", ".join(p.name for p in paths[:limit]) + (" ..." if len(paths) > limit else "")
        parts.append(f"{key or '(none)'}: {len(paths)} file(s) [{names}]")
    return "; ".join(parts)


def _check_one(entries: list[DicomEntry], what: str, kind: str, getter, root: Path) -> None:
    groups: dict[str, list[Path]] = defaultdict(list)
    for e in entries:
        value = getter(e)
        if value:
            groups[value].append(e.path)
    if len(groups) > 1:
        raise MixedInputError(f"{root}: the folder mixes {len(groups)} {what}s: {_describe(groups)}. "
                              f"Import one {kind} at a time (move the other files out)")


DICOM_LIKE_SUFFIXES = (".dcm", ".dicom", ".ima", "")


def _non_part10_reason(f: Path) -> str:
    """Why a file without the Part 10 preamble is ignored; DicomFileError when it looks like a
    DICOM file that is broken (see the module doc)."""
    size = f.stat().st_size
    dicom_like = f.suffix.lower() in DICOM_LIKE_SUFFIXES
    if size == 0:
        if dicom_like:
            raise DicomFileError(f"{f}: the file is empty (0 bytes); a DICOM file was expected from its name. "
                                 "Re-export it, or move it out of the folder")
        return "empty file (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = pydicom.dcmread(f, force=True, stop_before_pixels=True)
        sop = str(raw.get("SOPClassUID", "") or "")
    except Exception:  # not a dataset at all: the usual case for README, CSV, ... files
        sop = ""
    if sop in KIND_BY_SOP:
        raise DicomFileError(f"{f}: a {EXPECTED_MODALITY[KIND_BY_SOP[sop]]} dataset without the DICOM Part 10 header "
                             "(no 128-byte preamble and 'DICM' marker); export it as a DICOM Part 10 file")
    if dicom_like and f.suffix:
        raise DicomFileError(f"{f}: named like a DICOM file but has no DICOM Part 10 header (no 'DICM' at byte 128) "
                             f"and cannot be read as DICOM ({size:,} bytes); re-export it or move it out of the folder")
    return "not a DICOM Part 10 file"


def _check_roi_frames(folder: DicomFolder) -> None:
    """Each ROI's Referenced Frame of Reference UID (StructureSetROISequence) must be the CT's
    (else the folder's): contours in another frame would land at the wrong place."""
    if not folder.rtstruct:
        return
    expected = get_str(folder.ct[0].ds, "FrameOfReferenceUID") if folder.ct else folder.identity()["frame_of_reference_uid"]
    if not expected:
        return
    entry = folder.rtstruct[0]
    wrong = []
    for item in entry.ds.get("StructureSetROISequence", []) or []:
        rfor = get_str(item, "ReferencedFrameOfReferenceUID")
        if rfor and rfor != expected:
            wrong.append(f"{printable(get_str(item, 'ROIName'))} ({rfor})")
    if wrong:
        what = "the CT series" if folder.ct else "the other objects"
        raise MixedInputError(f"{entry.path}: {len(wrong)} ROI(s) refer to another Frame of Reference than {what} "
                              f"({expected}): {', '.join(wrong[:10])}{' ...' if len(wrong) > 10 else ''}; their "
                              "contours would be misplaced. Export the structure set on the planning CT")


def scan_folder(path: str | os.PathLike) -> DicomFolder:
    """Classify and group the DICOM files under ``path`` (recursively). See the module doc."""
    root = Path(path).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    folder = DicomFolder(root)
    for f in _list_files(root):
        if not is_dicom_file(f):
            folder.ignored.append((f, _non_part10_reason(f)))
            continue
        ds = read_dataset(f, stop_before_pixels=True)
        sop = get_str(ds, "SOPClassUID")
        if sop in REFUSED_SOP:
            raise ModalityError(f"{f}: {REFUSED_SOP[sop]}")
        kind = KIND_BY_SOP.get(sop)
        if kind is None:
            name = getattr(ds.SOPClassUID, "name", sop)
            folder.ignored.append((f, f"{name} is not used"))
            continue
        modality = get_str(ds, "Modality").upper()
        if modality != EXPECTED_MODALITY[kind]:
            raise ModalityError(f"{f}: Modality is {modality!r} but the SOP class is "
                                f"{getattr(ds.SOPClassUID, 'name', sop)} (Modality {EXPECTED_MODALITY[kind]!r} expected)")
        entry = DicomEntry(f, ds, kind)
        if kind == "ct":
            series = get_str(ds, "SeriesInstanceUID")
            if not series:
                raise MissingDataError(f"{f}: SeriesInstanceUID is missing")
            folder.ct_series.setdefault(series, []).append(entry)
        else:
            getattr(folder, kind).append(entry)
    entries = folder.entries
    if not entries:
        raise MissingDataError(f"{root}: no CT, RTSTRUCT, RTDOSE or RTPLAN file found "
                               f"({len(folder.ignored)} other file(s) ignored)")
    _check_one(entries, "Patient ID", "patient", lambda e: get_str(e.ds, "PatientID"), root)
    _check_one(entries, "Study Instance UID", "study", lambda e: get_str(e.ds, "StudyInstanceUID"), root)
    _check_one(entries, "Frame of Reference UID", "frame of reference", lambda e: e.frame_of_reference_uid, root)
    if len(folder.ct_series) > 1:
        groups = {uid: [e.path for e in es] for uid, es in folder.ct_series.items()}
        raise MixedInputError(f"{root}: the folder holds {len(groups)} CT series: {_describe(groups)}. "
                              "Keep only the planning CT of the prior course")
    if len(folder.rtstruct) > 1:
        raise MixedInputError(f"{root}: the folder holds {len(folder.rtstruct)} structure sets "
                              f"({', '.join(e.path.name for e in folder.rtstruct)}); keep one")
    _check_roi_frames(folder)
    return folder
