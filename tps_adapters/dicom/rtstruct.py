"""RTSTRUCT -> ROI contours (:class:`StructureSet`); their masks on a grid come from
:mod:`.rasterize` (end caps, contour bounds), whose names are re-exported here."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from reirrad_opt.safe_names import printable

from .errors import GeometryError, InvalidTagValueError, MissingDataError
from .rasterize import RasterizedRoi, rasterize_polygons, rasterize_roi  # noqa: F401 (re-exported)
from .values import get_floats, get_int, get_str, read_dataset


@dataclass
class RoiContours:
    """The closed planar contours of one ROI.

    Attributes:
        number: ROI Number.
        name: ROI Name as exported.
        interpreted_type: RT ROI Interpreted Type ('PTV', 'ORGAN', 'EXTERNAL', ...; '' if absent).
        frame_of_reference_uid: Referenced Frame of Reference UID of the ROI.
        planes: z (mm) -> list of (n, 2) arrays of (x, y) vertices in mm (LPS), one per contour.
        skipped: statements about contours that are not closed planar polygons (points, lines).
    """

    number: int
    name: str
    interpreted_type: str
    frame_of_reference_uid: str
    planes: dict[float, list[np.ndarray]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def n_contours(self) -> int:
        return sum(len(v) for v in self.planes.values())

    @property
    def is_empty(self) -> bool:
        return not self.planes

    def plane_spacing_mm(self, default: float) -> float:
        """Spacing of the contour planes (median difference); ``default`` for one plane."""
        z = np.array(sorted(self.planes))
        if z.size < 2:
            return float(default)
        return float(np.median(np.diff(z)))


@dataclass
class StructureSet:
    """An RT Structure Set.

    Attributes:
        path: the file.
        sop_instance_uid, study_instance_uid, patient_id, label: identifiers.
        frame_of_reference_uids: the frames of reference it refers to.
        referenced_series_uids: CT series named in its Referenced Frame of Reference Sequence.
        rois: ROIs in file order (including empty ones).
    """

    path: Path
    sop_instance_uid: str
    study_instance_uid: str
    patient_id: str
    label: str
    frame_of_reference_uids: list[str]
    referenced_series_uids: list[str]
    rois: list[RoiContours]

    def roi(self, name: str) -> RoiContours:
        for r in self.rois:
            if r.name == name:
                return r
        raise KeyError(f"{self.path}: no ROI named {name!r}; it has {[r.name for r in self.rois]}")


def read_structure_set(path: str | os.PathLike, ds: Dataset | None = None) -> StructureSet:
    """Parse an RTSTRUCT file (or its already-read dataset) into :class:`StructureSet`.

    ROI names are kept as exported; messages show them through :func:`printable`. A structure
    set without StructureSetROISequence or ROIContourSequence is refused (MissingDataError).
    """
    path = Path(path)
    if ds is None:
        ds = read_dataset(path)
    if "StructureSetROISequence" not in ds:
        raise MissingDataError(f"{path}: StructureSetROISequence (3006,0020) is missing; not a usable RTSTRUCT")
    if "ROIContourSequence" not in ds:
        raise MissingDataError(f"{path}: ROIContourSequence (3006,0039) is missing; the structure set holds no contour "
                               f"for its {len(ds.StructureSetROISequence or [])} ROI(s)")
    for_uids, series_uids = [], []
    for rfor in ds.get("ReferencedFrameOfReferenceSequence", []):
        if get_str(rfor, "FrameOfReferenceUID"):
            for_uids.append(get_str(rfor, "FrameOfReferenceUID"))
        for study in rfor.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                if get_str(series, "SeriesInstanceUID"):
                    series_uids.append(get_str(series, "SeriesInstanceUID"))
    types = {}
    for obs in ds.get("RTROIObservationsSequence", []):
        try:
            types[int(obs.ReferencedROINumber)] = get_str(obs, "RTROIInterpretedType")
        except (AttributeError, TypeError, ValueError):
            continue
    rois: dict[int, RoiContours] = {}
    for item in ds.StructureSetROISequence:
        number = get_int(item, "ROINumber", path)
        name = get_str(item, "ROIName") or f"ROI_{number}"
        rfor = get_str(item, "ReferencedFrameOfReferenceUID")
        if number in rois:
            raise InvalidTagValueError(f"{path}: ROI number {number} is used twice in StructureSetROISequence "
                                       f"({printable(rois[number].name)} and {printable(name)})")
        rois[number] = RoiContours(number, name, types.get(number, ""), rfor)
        if rfor and rfor not in for_uids:
            for_uids.append(rfor)
    for item in ds.get("ROIContourSequence", []):
        number = get_int(item, "ReferencedROINumber", path)
        if number not in rois:
            raise InvalidTagValueError(f"{path}: ROIContourSequence refers to ROI number {number}, which is not in "
                                       "StructureSetROISequence")
        roi = rois[number]
        for c_index, contour in enumerate(item.get("ContourSequence", []) or []):
            kind = get_str(contour, "ContourGeometricType", "CLOSED_PLANAR").upper()
            where = f"{path}: ROI {printable(roi.name)} contour {c_index + 1}"
            data = get_floats(contour, "ContourData", where, default=None)
            if data is None:
                raise MissingDataError(f"{where}: ContourData (3006,0050) is missing")
            if data.size % 3:
                raise InvalidTagValueError(f"{where}: ContourData holds {data.size} numbers, not a multiple of 3")
            pts = data.reshape(-1, 3)
            n_declared = get_int(contour, "NumberOfContourPoints", where, default=None)
            if n_declared is not None and n_declared != len(pts):
                raise InvalidTagValueError(f"{where}: NumberOfContourPoints is {n_declared} but ContourData holds "
                                           f"{len(pts)} points")
            if kind != "CLOSED_PLANAR":
                roi.skipped.append(f"{kind} contour with {len(pts)} point(s) ignored (not a closed planar polygon)")
                continue
            if len(pts) < 3:
                roi.skipped.append(f"closed contour with only {len(pts)} point(s) ignored")
                continue
            if np.ptp(pts[:, 2]) > 0.01:
                raise GeometryError(f"{where}: the contour is not in an axial plane (z varies by "
                                    f"{np.ptp(pts[:, 2]):.3f} mm); only axial contours are supported")
            z = round(float(pts[0, 2]), 3)
            roi.planes.setdefault(z, []).append(pts[:, :2].copy())
    return StructureSet(
        path=path, sop_instance_uid=get_str(ds, "SOPInstanceUID"), study_instance_uid=get_str(ds, "StudyInstanceUID"),
        patient_id=get_str(ds, "PatientID"), label=get_str(ds, "StructureSetLabel"),
        frame_of_reference_uids=for_uids, referenced_series_uids=series_uids, rois=list(rois.values()))
