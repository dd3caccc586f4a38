"""RTSTRUCT -> ROI contours -> boolean masks on an axis-aligned grid.

Rasterisation rules (stated once):

* A voxel belongs to a ROI when its **centre** lies inside the ROI's closed planar contours on the
  plane assigned to its slice. Edges are half-open (a centre exactly on a left or lower edge is
  inside, on a right or upper edge outside), so two ROIs that share an edge never share a voxel.
* All contours of one ROI on one plane are combined with the **even-odd rule**: a contour inside
  another is a hole, a contour inside a hole is an island, separate contours are separate parts.
* Contour planes are slabs of thickness ``t`` (the ROI's plane spacing): a grid slice whose centre
  lies inside the ROI's extent ``[z_first - t/2, z_last + t/2]`` takes the contours of the nearest
  plane (which must be within ``max(t, dz)/2``, so gaps between separate parts stay empty).
* Parts of a ROI outside the grid are reported as ``fraction_outside`` (by volume), never silently
  dropped; ROIs without contours are reported as empty.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from reirrad_opt.geometry import Grid
from reirrad_opt.safe_names import printable

from .errors import GeometryError, InvalidTagValueError, MissingDataError
from .values import get_floats, get_int, get_str, read_dataset

PLANE_TOLERANCE_MM = 1e-3


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


def rasterize_polygons(polygons: list[np.ndarray], x0: float, dx: float, nx: int,
                       y0: float, dy: float, ny: int) -> np.ndarray:
    """Even-odd fill of closed polygons ((n, 2) arrays of x, y in mm) on pixel centres
    ``x0 + i*dx`` (i < nx), ``y0 + j*dy`` (j < ny). Returns a bool array ``[ny, nx]``.

    A centre is inside when an odd number of polygon edges cross the row to its left; an edge
    covers the rows with ``y_min <= y_centre < y_max`` and a crossing at ``x`` toggles every
    centre with ``x_centre >= x``.
    """
    toggles = np.zeros((ny, nx + 1), dtype=np.int32)
    xs = np.concatenate([p[:, 0] for p in polygons])
    ys = np.concatenate([p[:, 1] for p in polygons])
    xe = np.concatenate([np.roll(p[:, 0], -1) for p in polygons])
    ye = np.concatenate([np.roll(p[:, 1], -1) for p in polygons])
    # Row indices as exact functions of the vertex coordinates, so that two edges sharing a
    # vertex agree on it.
    jv_s = np.ceil((ys - y0) / dy)
    jv_e = np.ceil((ye - y0) / dy)
    j_lo = np.clip(np.minimum(jv_s, jv_e), 0, ny).astype(np.int64)
    j_hi = np.clip(np.maximum(jv_s, jv_e), 0, ny).astype(np.int64)
    counts = j_hi - j_lo
    keep = counts > 0
    if not keep.any():
        return np.zeros((ny, nx), dtype=bool)
    xs, ys, xe, ye, j_lo, counts = xs[keep], ys[keep], xe[keep], ye[keep], j_lo[keep], counts[keep]
    edge = np.repeat(np.arange(len(xs)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    j = j_lo[edge] + offsets
    yc = y0 + j * dy
    t = (yc - ys[edge]) / (ye[edge] - ys[edge])
    x = xs[edge] + t * (xe[edge] - xs[edge])
    i = np.clip(np.ceil((x - x0) / dx), 0, nx).astype(np.int64)
    np.add.at(toggles, (j, i), 1)
    return (np.cumsum(toggles[:, :nx], axis=1) & 1).astype(bool)


@dataclass
class RasterizedRoi:
    """A ROI on a grid.

    Attributes:
        mask: bool array, grid shape.
        fraction_outside: fraction of the ROI's voxelised volume that lies outside the grid.
        volume_cc: volume inside the grid (cc).
    """

    mask: np.ndarray
    fraction_outside: float
    volume_cc: float


def rasterize_roi(roi: RoiContours, grid: Grid) -> RasterizedRoi:
    """Rasterise ``roi`` on ``grid`` (see the module docstring for the rules)."""
    nz, ny, nx = grid.shape
    dz, dy, dx = grid.spacing_mm
    z0, y0, x0 = grid.origin_mm
    mask = np.zeros(grid.shape, dtype=bool)
    if roi.is_empty:
        return RasterizedRoi(mask, 0.0, 0.0)
    planes = np.array(sorted(roi.planes))
    t = roi.plane_spacing_mm(default=dz)
    reach = max(t, dz) / 2 + PLANE_TOLERANCE_MM
    lo_z, hi_z = planes[0] - t / 2 - PLANE_TOLERANCE_MM, planes[-1] + t / 2 + PLANE_TOLERANCE_MM
    # Index range (possibly beyond the grid) of slices and of the in-plane bounding box.
    k_lo = int(np.ceil((lo_z - z0) / dz))
    k_hi = int(np.floor((hi_z - z0) / dz)) + 1
    allpts = np.concatenate([p for polys in roi.planes.values() for p in polys])
    i_lo = int(np.floor((allpts[:, 0].min() - x0) / dx))
    i_hi = int(np.ceil((allpts[:, 0].max() - x0) / dx)) + 1
    j_lo = int(np.floor((allpts[:, 1].min() - y0) / dy))
    j_hi = int(np.ceil((allpts[:, 1].max() - y0) / dy)) + 1
    n_total = 0
    n_inside = 0
    for k in range(k_lo, k_hi):
        zc = z0 + k * dz
        p = planes[int(np.argmin(np.abs(planes - zc)))]
        if abs(p - zc) > reach:
            continue
        box = rasterize_polygons(roi.planes[float(p)], x0 + i_lo * dx, dx, i_hi - i_lo, y0 + j_lo * dy, dy, j_hi - j_lo)
        n_total += int(box.sum())
        if 0 <= k < nz:
            ja, jb = max(j_lo, 0), min(j_hi, ny)
            ia, ib = max(i_lo, 0), min(i_hi, nx)
            if ja < jb and ia < ib:
                crop = box[ja - j_lo:jb - j_lo, ia - i_lo:ib - i_lo]
                mask[k, ja:jb, ia:ib] = crop
                n_inside += int(crop.sum())
    fraction_outside = 0.0 if n_total == 0 else 1.0 - n_inside / n_total
    return RasterizedRoi(mask, float(fraction_outside), n_inside * grid.voxel_volume_cc)
