"""Example data with two prior courses from one real export (the RayStation pelvis): a "new" folder
with its CT and RTSTRUCT, and a second prior course on the same CT: the PLAN dose halved under a new
SOP Instance UID, without RTPLAN (its fractionation is given on the command line). Files of the
export are linked, not copied. Used by tests/test_prior_courses_dicom.py and
benchmarks/two_prior_courses.py (the worked example of docs/importing.md)."""
from __future__ import annotations

import os
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

#: the second course's dose as a fraction of the export's PLAN dose
SECOND_COURSE_SCALE = 0.5


def linked(src: Path, dst: Path, subs=None) -> Path:
    """``dst`` holding symbolic links to the files of ``src`` (only its sub-folders ``subs`` if given)."""
    src = Path(src).resolve()
    for f in sorted(src.rglob("*")):
        if f.is_file() and (subs is None or f.relative_to(src).parts[0] in subs):
            target = dst / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f, target)
    return dst


def write_two_course_example(export: Path, root: Path) -> tuple[Path, Path]:
    """(new folder, second prior folder) under ``root``; the first prior course is ``export`` itself."""
    export = Path(export)
    new = linked(export, root / "new", {"CT", "RS"})
    second = linked(export, root / "course2", {"CT"})
    plan_dose = next(f for f in sorted((export / "RD").iterdir())
                     if pydicom.dcmread(f, stop_before_pixels=True).DoseSummationType == "PLAN")
    ds = pydicom.dcmread(plan_dose)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.DoseGridScaling = float(ds.DoseGridScaling) * SECOND_COURSE_SCALE
    ds.DoseComment = "second prior course (test data): the PLAN dose halved"
    if "ReferencedRTPlanSequence" in ds:
        del ds.ReferencedRTPlanSequence
    (second / "RD").mkdir(parents=True)
    ds.save_as(second / "RD" / "RD_course2.dcm", enforce_file_format=True)
    return new, second
