"""RTDOSE -> dose grid -> dose in Gy on a case grid.

Reading (:func:`read_rtdose`):

* dose = stored value x Dose Grid Scaling, in Dose Units (GY, or RELATIVE);
* Grid Frame Offset Vector: relative (first value 0) or absolute (first value = the z of Image
  Position (Patient)), ascending or descending; frames are reordered to ascending z;
* axial, axis-aligned orientation only (see :mod:`.orientation`).

Resampling (:func:`resample_dose`) is trilinear between dose-grid voxel centres. Within half a
voxel outside the outermost centres the edge value is held (the dose grid covers its voxels);
farther out the dose grid does not cover the case grid, and the dose there is 0 Gy, reported by
the returned ``covered`` mask.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from reirrad_opt.geometry import Grid
from reirrad_opt.plausibility import DEFAULT_BOUNDS, PlausibilityBounds, check_spacing_mm, check_voxel_count

from .errors import DicomFileError, DoseGridError, InvalidTagValueError, MissingDataError
from .orientation import axial_layout
from .values import get_float, get_floats, get_int, get_str, read_dataset

SUMMATION_TYPES = ("PLAN", "MULTI_PLAN", "FRACTION", "BEAM", "BRACHY", "FRACTION_SESSION", "BEAM_SESSION",
                   "BRACHY_SESSION", "CONTROL_POINT", "RECORD", "PLAN_OVERVIEW")


@dataclass
class EmbeddedDVH:
    """A DVH stored inside an RTDOSE (DVH Sequence). Informative only: never used as dose.

    Attributes:
        roi_number: Referenced ROI Number.
        declared_units: DoseUnits as written ('GY', 'RELATIVE').
        max_dose, mean_dose: DVHMaximumDose / DVHMeanDose as written (in ``declared_units``).
    """

    roi_number: int | None
    declared_units: str
    max_dose: float | None
    mean_dose: float | None


@dataclass
class DoseGrid:
    """An RTDOSE's dose array on its own grid.

    Attributes:
        path: the file.
        axes_mm: ascending voxel-centre coordinates (z, y, x) in mm (z may be non-uniform).
        values: dose array [z, y, x] = stored value x DoseGridScaling, in ``units``.
        units: 'GY' or 'RELATIVE'.
        dose_type: 'PHYSICAL', 'EFFECTIVE' or 'ERROR'.
        summation_type: DoseSummationType ('PLAN', 'BEAM', 'FRACTION', ...).
        scaling: DoseGridScaling.
        frame_of_reference_uid, study_instance_uid, patient_id, sop_instance_uid: identifiers.
        referenced_plan_uid: SOP Instance UID of the referenced RT (Ion) Plan ('' if none).
        referenced_beams: beam numbers named by a BEAM dose.
        comment: DoseComment.
        embedded_dvhs: DVHs stored in the file (not trusted; see :func:`check_embedded_dvhs`).
        notes: statements of reordering done while reading.
    """

    path: Path
    axes_mm: tuple[np.ndarray, np.ndarray, np.ndarray]
    values: np.ndarray
    units: str
    dose_type: str
    summation_type: str
    scaling: float
    frame_of_reference_uid: str
    study_instance_uid: str
    patient_id: str
    sop_instance_uid: str
    referenced_plan_uid: str = ""
    referenced_beams: list[int] = field(default_factory=list)
    comment: str = ""
    embedded_dvhs: list[EmbeddedDVH] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def max_value(self) -> float:
        return float(self.values.max()) if self.values.size else 0.0

    def same_geometry(self, other: "DoseGrid", tol_mm: float = 1e-3) -> bool:
        return all(a.shape == b.shape and np.allclose(a, b, atol=tol_mm) for a, b in zip(self.axes_mm, other.axes_mm))


def frame_z_positions(offsets: np.ndarray, ipp_z: float, normal_z: int, path: Path | str) -> np.ndarray:
    """z (mm) of each frame from Grid Frame Offset Vector (relative or absolute form)."""
    offsets = np.asarray(offsets, dtype=float)
    if offsets.size and abs(offsets[0]) < 1e-6:
        return ipp_z + normal_z * offsets
    if offsets.size and abs(offsets[0] - ipp_z) < 1e-3:
        return offsets.copy()  # absolute z positions (older form)
    raise InvalidTagValueError(
        f"{path}: GridFrameOffsetVector starts at {offsets[0] if offsets.size else 'nothing'}; expected 0 (offsets "
        f"relative to ImagePositionPatient z = {ipp_z}) or {ipp_z} (absolute positions)")


#: memory held per dose-grid voxel while reading (stored integers, float64 dose, a reordered copy)
DOSE_BYTES_PER_VOXEL = 20


def check_dose_pixel_size(path: Path, ds: Dataset, n_frames: int, rows: int, cols: int,
                          bounds: PlausibilityBounds) -> None:
    """Frames x Rows x Columns must be positive, match the stored pixel data (uncompressed) and
    stay under ``bounds.max_voxels``, before the pixel array is decoded."""
    if min(n_frames, rows, cols) < 1:
        raise DicomFileError(f"{path}: NumberOfFrames x Rows x Columns is {n_frames} x {rows} x {cols}; expected at "
                             "least 1 each")
    bits = get_int(ds, "BitsAllocated", path, default=None)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if bits and not getattr(syntax, "is_compressed", False):
        need = n_frames * rows * cols * (bits // 8)
        have = len(ds.PixelData)
        if need > have:
            raise DicomFileError(f"{path}: NumberOfFrames x Rows x Columns = {n_frames} x {rows} x {cols} at {bits} bits "
                                 f"declares {need:,} bytes of pixel data but the file holds {have:,}; the header is corrupt")
    check_voxel_count((n_frames, rows, cols), f"{path}: RTDOSE grid", DOSE_BYTES_PER_VOXEL, bounds)


def read_rtdose(path: str | os.PathLike, ds: Dataset | None = None,
                bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> DoseGrid:
    """Read an RTDOSE file into a :class:`DoseGrid` (values in its Dose Units; see module doc).

    ``bounds``: the voxel limit and the spacing bounds (:mod:`reirrad_opt.plausibility`)."""
    path = Path(path)
    if ds is None or "PixelData" not in ds:
        ds = read_dataset(path)
    if "PixelData" not in ds:
        raise MissingDataError(f"{path}: no Pixel Data (7FE0,0010) in this RTDOSE")
    rows, cols = get_int(ds, "Rows", path), get_int(ds, "Columns", path)
    n_frames = get_int(ds, "NumberOfFrames", path, default=1)
    ipp = get_floats(ds, "ImagePositionPatient", path, n=3)
    layout = axial_layout(get_floats(ds, "ImageOrientationPatient", path, n=6),
                          get_floats(ds, "PixelSpacing", path, n=2), rows, cols, path)
    scaling = get_float(ds, "DoseGridScaling", path, default=None)
    if scaling is None:
        raise MissingDataError(f"{path}: DoseGridScaling (3004,000E) is missing")
    if scaling <= 0:
        raise InvalidTagValueError(f"{path}: DoseGridScaling is {scaling}; expected a positive number")
    if n_frames > 1 or "GridFrameOffsetVector" in ds:
        offsets = get_floats(ds, "GridFrameOffsetVector", path, default=None)
        if offsets is None:
            raise MissingDataError(f"{path}: GridFrameOffsetVector (3004,000C) is missing for a {n_frames}-frame dose")
        if offsets.size != n_frames:
            raise InvalidTagValueError(f"{path}: GridFrameOffsetVector holds {offsets.size} values for {n_frames} frames")
    else:
        offsets = np.zeros(1)
    z = frame_z_positions(offsets, ipp[2], layout.normal_z, path)
    check_spacing_mm(get_floats(ds, "PixelSpacing", path, n=2), f"{path}: PixelSpacing", bounds)
    check_dose_pixel_size(path, ds, n_frames, rows, cols, bounds)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise DicomFileError(f"{path}: the RTDOSE pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
    if raw.ndim == 2:
        raw = raw[None]
    if raw.shape != (n_frames, rows, cols):
        raise DicomFileError(f"{path}: pixel array shape {raw.shape} does not match NumberOfFrames x Rows x Columns "
                             f"= {(n_frames, rows, cols)}")
    values = layout.apply(raw).astype(np.float64) * scaling
    if not np.all(np.isfinite(values)) or float(np.abs(values).max(initial=0.0)) > np.finfo(np.float32).max:
        raise InvalidTagValueError(f"{path}: stored values x DoseGridScaling {scaling:g} overflow (reach "
                                   f"{float(np.abs(values).max()):.3g}); DoseGridScaling is corrupt")
    notes = []
    if layout.describe():
        notes.append(f"RTDOSE {path.name}: {layout.describe()}")
    order = np.argsort(z, kind="stable")
    if np.any(np.diff(z) < 0):
        notes.append(f"RTDOSE {path.name}: frames stored in descending z; reordered")
    z, values = z[order], values[order]
    if np.any(np.diff(z) <= 0):
        raise InvalidTagValueError(f"{path}: GridFrameOffsetVector has repeated frame positions")
    if z.size > 1:
        check_spacing_mm(np.diff(z), f"{path}: GridFrameOffsetVector frame spacing", bounds)
    y_axis, x_axis = layout.axes_yx(ipp)
    units = get_str(ds, "DoseUnits").upper()
    if units not in ("GY", "RELATIVE"):
        raise InvalidTagValueError(f"{path}: DoseUnits is {units!r}; expected 'GY' or 'RELATIVE'")
    dose_type = get_str(ds, "DoseType").upper()
    summation = get_str(ds, "DoseSummationType").upper()
    if summation not in SUMMATION_TYPES:
        raise InvalidTagValueError(f"{path}: DoseSummationType is {summation!r}; expected one of {SUMMATION_TYPES}")
    plan_uid, beams = "", []
    for ref in ds.get("ReferencedRTPlanSequence", []) or []:
        plan_uid = plan_uid or get_str(ref, "ReferencedSOPInstanceUID")
        for fg in ref.get("ReferencedFractionGroupSequence", []) or []:
            for b in fg.get("ReferencedBeamSequence", []) or []:
                beams.append(get_int(b, "ReferencedBeamNumber", path))
    dvhs = []
    for item in ds.get("DVHSequence", []) or []:
        roi = None
        for r in item.get("DVHReferencedROISequence", []) or []:
            roi = get_int(r, "ReferencedROINumber", path, default=None)
        dvhs.append(EmbeddedDVH(roi, get_str(item, "DoseUnits").upper(),
                                get_float(item, "DVHMaximumDose", path, default=None),
                                get_float(item, "DVHMeanDose", path, default=None)))
    return DoseGrid(
        path=path, axes_mm=(z, y_axis, x_axis), values=values, units=units, dose_type=dose_type,
        summation_type=summation, scaling=scaling, frame_of_reference_uid=get_str(ds, "FrameOfReferenceUID"),
        study_instance_uid=get_str(ds, "StudyInstanceUID"), patient_id=get_str(ds, "PatientID"),
        sop_instance_uid=get_str(ds, "SOPInstanceUID"), referenced_plan_uid=plan_uid, referenced_beams=beams,
        comment=get_str(ds, "DoseComment"), embedded_dvhs=dvhs, notes=notes)


def check_embedded_dvhs(dose: DoseGrid) -> str | None:
    """A statement about the DVHs stored in the RTDOSE, or None if there are none.

    They are never used; the statement says whether their dose axis is even consistent with the
    dose grid (a DVH maximum above the grid maximum cannot be in the grid's units).
    """
    if not dose.embedded_dvhs:
        return None
    maxima = [d.max_dose for d in dose.embedded_dvhs if d.max_dose is not None]
    grid_max = dose.max_value
    text = f"RTDOSE {dose.path.name}: {len(dose.embedded_dvhs)} embedded DVH(s) ignored (DVHs are recomputed from the dose grid)"
    if maxima and max(maxima) > 1.01 * grid_max:
        units = sorted({d.declared_units for d in dose.embedded_dvhs})
        text += (f"; they are not in the grid's units: their maximum is {max(maxima):.4g} (declared {'/'.join(units)}) "
                 f"while the dose grid maximum is {grid_max:.4g} {dose.units}")
    return text


def _axis_weights(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-interpolation indices, weights and coverage of ``dst`` points on ascending ``src``."""
    n = src.size
    if n == 1:
        half = 0.5
        covered = np.abs(dst - src[0]) <= half + 1e-6
        return np.zeros(dst.size, dtype=np.int64), np.zeros(dst.size), covered
    first_half = (src[1] - src[0]) / 2
    last_half = (src[-1] - src[-2]) / 2
    covered = (dst >= src[0] - first_half - 1e-6) & (dst <= src[-1] + last_half + 1e-6)
    clamped = np.clip(dst, src[0], src[-1])
    idx = np.clip(np.searchsorted(src, clamped, side="right") - 1, 0, n - 2)
    w = (clamped - src[idx]) / (src[idx + 1] - src[idx])
    return idx, np.clip(w, 0.0, 1.0), covered


def resample_axes(values: np.ndarray, src_axes: tuple[np.ndarray, ...], dst_axes: tuple[np.ndarray, ...],
                  dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Separable trilinear resampling of ``values`` [z, y, x] given on ascending ``src_axes``
    onto the points ``dst_axes``. Returns ``(resampled, covered)``: the array (0 outside the
    source's coverage) and the boolean coverage mask (source voxels +- half a voxel)."""
    out = np.asarray(values)
    cover = []
    for axis in range(3):
        idx, w, covered = _axis_weights(np.asarray(src_axes[axis], float), np.asarray(dst_axes[axis], float))
        cover.append(covered)
        shape = [1, 1, 1]
        shape[axis] = -1
        w = w.reshape(shape).astype(dtype)
        a = np.take(out, idx, axis=axis).astype(dtype, copy=False)
        if out.shape[axis] > 1:
            b = np.take(out, idx + 1, axis=axis).astype(dtype, copy=False)
            out = a * (1 - w) + b * w
        else:
            out = a
    covered = cover[0][:, None, None] & cover[1][None, :, None] & cover[2][None, None, :]
    out = np.where(covered, out, 0).astype(dtype, copy=False)
    return out, covered


def resample_dose(dose: DoseGrid, grid: Grid, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Dose values on ``grid`` (trilinear) and the coverage mask; DoseGridError when the dose
    grid does not overlap the grid at all."""
    out, covered = resample_axes(dose.values, dose.axes_mm, grid.axis_coordinates_mm(), dtype=dtype)
    if not covered.any():
        z, y, x = dose.axes_mm
        raise DoseGridError(
            f"{dose.path}: the dose grid (x {x[0]:.1f}..{x[-1]:.1f}, y {y[0]:.1f}..{y[-1]:.1f}, z {z[0]:.1f}..{z[-1]:.1f} mm) "
            f"does not overlap the case grid (extent z, y, x: {grid.extent_mm()} mm); wrong frame of reference or offset")
    return out, covered
