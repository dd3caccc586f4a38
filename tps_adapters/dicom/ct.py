"""CT series -> Hounsfield-unit volume on an axis-aligned grid.

* HU = stored value x Rescale Slope + Rescale Intercept, per slice.
* Slices are sorted by Image Position (Patient) along the slice normal (ascending z).
* Orientation must be axial and axis-aligned (see :mod:`.orientation`); gantry-tilted series
  (Gantry/Detector Tilt != 0, or slice positions drifting in-plane) are refused.
* Slice spacing must be uniform. A gap larger than 1.5 x the spacing of the other slices (and
  larger than 1.5 x the slices' own thickness) is a missing slice and is refused; a series whose
  spacing genuinely varies (slice thickness changing with it) is resampled linearly onto the
  smallest spacing, and the resampling is stated in ``notes``.
* Nothing is allocated before it is known to fit: every file's Rows x Columns x Bits Allocated
  must fit in the file (uncompressed transfer syntaxes), and the volume must stay under
  ``bounds.max_voxels`` (``--max-voxels``).
* Plausibility (:mod:`reirrad_opt.plausibility`): Rescale Slope > 0; pixel spacing and slice
  spacing > 0 and <= 50 mm; CT numbers finite and within the hard HU range, at most 1 % above
  4000 HU, not one single value.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from reirrad_opt.geometry import Grid
from reirrad_opt.plausibility import (DEFAULT_BOUNDS, ImplausibleInputError, PlausibilityBounds, check_ct_hu,
                                      check_spacing_mm, check_voxel_count)

from .errors import (DicomFileError, GeometryError, InvalidTagValueError, MissingDataError, MixedInputError,
                     SliceGapError)
from .orientation import axial_layout
from .values import fmt_values as _fmt
from .values import get_float, get_floats, get_int, get_str, read_dataset

POSITION_TOLERANCE_MM = 0.05
SPACING_TOLERANCE_MM = 0.01
#: memory held per CT voxel while reading (float32 slices, and a float32 copy when resampled in z)
CT_BYTES_PER_VOXEL = 8


@dataclass
class CTVolume:
    """A CT series on an axis-aligned grid.

    Attributes:
        grid: the CT grid (uniform slice spacing; z ascending).
        hu: CT numbers (HU), float32, shape grid.shape.
        sop_instance_uids: SOP Instance UIDs of the original slices, in ascending-z order.
        slice_z_mm: z (mm) of the original slices, ascending (differs from the grid's z axis
            only when the series was resampled).
        series_instance_uid, frame_of_reference_uid, study_instance_uid, patient_id: identifiers.
        patient_position: Patient Position (0018,5100), e.g. 'HFS' ('' if absent).
        files: the slice files in ascending-z order.
        notes: statements of every reorientation or resampling done.
    """

    grid: Grid
    hu: np.ndarray
    sop_instance_uids: list[str]
    slice_z_mm: list[float]
    series_instance_uid: str
    frame_of_reference_uid: str
    study_instance_uid: str
    patient_id: str
    patient_position: str
    files: list[Path]
    notes: list[str] = field(default_factory=list)


def _slice_header(path: Path, ds: Dataset) -> dict:
    orientation = get_floats(ds, "ImageOrientationPatient", path, n=6)
    return {
        "path": path,
        "ipp": get_floats(ds, "ImagePositionPatient", path, n=3),
        "orientation": orientation,
        "spacing": get_floats(ds, "PixelSpacing", path, n=2),
        "rows": get_int(ds, "Rows", path),
        "cols": get_int(ds, "Columns", path),
        "thickness": get_float(ds, "SliceThickness", path, default=None),
        "tilt": get_float(ds, "GantryDetectorTilt", path, default=0.0),
        "uid": get_str(ds, "SOPInstanceUID"),
        "bits": get_int(ds, "BitsAllocated", path, default=16),
        "samples": get_int(ds, "SamplesPerPixel", path, default=1),
        "compressed": bool(getattr(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None),
                                   "is_compressed", False)),
    }


def check_pixel_size_fits(h: dict) -> None:
    """Rows x Columns x Bits Allocated of an uncompressed slice must fit in its file, so that a
    header declaring 65535 x 65535 pixels is refused before anything of that size is allocated."""
    rows, cols = h["rows"], h["cols"]
    if rows < 1 or cols < 1:
        raise DicomFileError(f"{h['path']}: Rows x Columns is {rows} x {cols}; expected at least 1 x 1")
    if h["compressed"]:
        return  # encapsulated pixel data: the decoder checks the frame size
    need = rows * cols * h["samples"] * max(h["bits"], 8) // 8
    size = Path(h["path"]).stat().st_size
    if need > size:
        if "PixelData" not in read_dataset(h["path"]):  # the file is small: reading it whole costs nothing
            raise MissingDataError(f"{h['path']}: no Pixel Data (7FE0,0010) in this CT image")
        raise DicomFileError(f"{h['path']}: Rows x Columns = {rows} x {cols} at {h['bits']} bits declares {need:,} bytes "
                             f"of pixel data but the file holds only {size:,} bytes; the header is corrupt")


def check_slice_positions(z: np.ndarray, thickness: list[float | None], files: list[Path]) -> tuple[float, bool]:
    """Check sorted slice positions ``z`` (mm): no duplicates, no missing slice.

    Returns ``(spacing_mm, uniform)``: the smallest spacing and whether all spacings agree within
    0.01 mm. Raises GeometryError for duplicates and SliceGapError for a missing slice.
    """
    if len(z) < 2:
        return float("nan"), True
    dz = np.diff(z)
    for k in np.flatnonzero(dz < POSITION_TOLERANCE_MM):
        raise GeometryError(f"{files[k]} and {files[k + 1]}: two CT slices at the same position z = {z[k]:.3f} mm "
                            "(duplicate slice, or two series mixed)")
    nominal = float(np.median(dz))
    for k in range(len(dz)):
        own = [t for t in (thickness[k], thickness[k + 1]) if t]
        local = max(own) if own else nominal
        if dz[k] > 1.5 * nominal + SPACING_TOLERANCE_MM and dz[k] > 1.5 * local + SPACING_TOLERANCE_MM:
            missing = int(round(dz[k] / nominal)) - 1
            raise SliceGapError(
                f"{files[k].parent}: CT series with a gap of {dz[k]:.3f} mm between {files[k].name} (z = {z[k]:.3f} mm) and "
                f"{files[k + 1].name} (z = {z[k + 1]:.3f} mm) where slices are {nominal:.3f} mm apart: about "
                f"{max(missing, 1)} slice(s) missing from the series; export the complete series")
    uniform = bool(np.ptp(dz) <= SPACING_TOLERANCE_MM)
    return float(dz.min()), uniform


def _pixels(path: Path, ds: Dataset) -> np.ndarray:
    if "PixelData" not in ds:
        raise MissingDataError(f"{path}: no Pixel Data (7FE0,0010) in this CT image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for bad or undecodable pixel data
        raise DicomFileError(f"{path}: the CT pixel data cannot be decoded ({type(exc).__name__}: {exc})") from exc
    return np.asarray(arr)


def _check_slice_hu(path: Path, hu: np.ndarray, bounds: PlausibilityBounds) -> None:
    """Non-finite CT numbers, or any outside the hard HU range, named with their file."""
    lo, hi = float(hu.min()), float(hu.max())
    hard_lo, hard_hi = bounds.hu_hard_range
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < hard_lo or hi > hard_hi:
        raise ImplausibleInputError(f"{path}: CT numbers from {lo:.6g} to {hi:.6g} HU after RescaleSlope / "
                                    f"RescaleIntercept; expected {hard_lo:g} to {hard_hi:g} HU at most")


def read_ct_series(files: list[Path], headers: list[Dataset] | None = None, progress=None,
                   bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> CTVolume:
    """Read one CT series (all files of the same Series Instance UID) into a :class:`CTVolume`.

    ``headers`` (the datasets read without pixels, same order as ``files``) saves re-parsing;
    ``bounds`` holds the voxel limit and the HU and spacing bounds (see the module doc).
    """
    if not files:
        raise MissingDataError("no CT image files given")
    if headers is None:
        headers = [read_dataset(f, stop_before_pixels=True) for f in files]
    info = [_slice_header(Path(f), ds) for f, ds in zip(files, headers)]
    first = info[0]
    notes: list[str] = []
    for h in info:
        check_pixel_size_fits(h)
        if np.max(np.abs(h["orientation"] - first["orientation"])) > 1e-4:
            raise MixedInputError(f"{h['path']}: ImageOrientationPatient {_fmt(h['orientation'])} differs from "
                                  f"{first['path'].name} {_fmt(first['orientation'])} within one CT series")
        if (h["rows"], h["cols"]) != (first["rows"], first["cols"]) or np.max(np.abs(h["spacing"] - first["spacing"])) > 1e-4:
            raise MixedInputError(f"{h['path']}: image size {h['rows']}x{h['cols']} / PixelSpacing {_fmt(h['spacing'])} "
                                  f"differs from {first['path'].name} within one CT series")
        if abs(h["tilt"]) > 1e-3:
            raise GeometryError(f"{h['path']}: Gantry/Detector Tilt is {h['tilt']} deg; gantry-tilted series are not "
                                "supported (reconstruct without tilt or resample in the TPS)")
    check_spacing_mm(first["spacing"], f"{first['path']}: PixelSpacing", bounds)
    check_voxel_count((len(info), first["rows"], first["cols"]), f"{first['path'].parent}: CT series of {len(info)} "
                      "slice(s)", CT_BYTES_PER_VOXEL, bounds)
    layout = axial_layout(first["orientation"], first["spacing"], first["rows"], first["cols"], first["path"])
    if layout.describe():
        notes.append(f"CT: {layout.describe()}; the volume was reordered so that x, y and z increase with the array index")

    order = np.argsort([h["ipp"][2] for h in info], kind="stable")
    info = [info[k] for k in order]
    files_sorted = [Path(h["path"]) for h in info]
    z = np.array([h["ipp"][2] for h in info])
    xy0 = info[0]["ipp"][:2]
    for h in info[1:]:
        shift = np.abs(h["ipp"][:2] - xy0)
        if shift.max() > POSITION_TOLERANCE_MM:
            raise GeometryError(
                f"{h['path']}: ImagePositionPatient x/y = {_fmt(h['ipp'][:2], 3)} differs from the first slice "
                f"{_fmt(xy0, 3)}: the slices are not stacked along z (gantry tilt or a mixed series)")
    thick = [h["thickness"] for h in info]
    dz, uniform = check_slice_positions(z, thick, files_sorted)
    if len(z) == 1:
        t = info[0]["thickness"]
        if not t or t <= 0:
            raise MissingDataError(f"{info[0]['path']}: a single-slice CT needs a positive SliceThickness to define the grid")
        dz = float(t)
        notes.append(f"CT: single slice; slice spacing taken from SliceThickness = {dz} mm")
    check_spacing_mm([dz], f"{files_sorted[0].parent}: CT slice spacing", bounds)
    if not uniform:
        n_new = int(np.floor((z[-1] - z[0]) / dz + 1e-6)) + 1
        check_voxel_count((n_new, first["rows"], first["cols"]), f"{files_sorted[0].parent}: CT series resampled "
                          f"in z onto its smallest slice spacing {dz:.4g} mm", CT_BYTES_PER_VOXEL, bounds)

    y_axis, x_axis = layout.axes_yx(info[0]["ipp"])
    ny, nx = layout.shape_yx
    hu_slices = np.empty((len(info), ny, nx), dtype=np.float32)
    for k, h in enumerate(info):
        path = Path(h["path"])
        ds = read_dataset(path)
        raw = _pixels(path, ds)
        if raw.shape != (first["rows"], first["cols"]):
            raise DicomFileError(f"{path}: pixel array shape {raw.shape} does not match Rows x Columns "
                                 f"{first['rows']} x {first['cols']}")
        slope = get_float(ds, "RescaleSlope", path, default=None)
        intercept = get_float(ds, "RescaleIntercept", path, default=None)
        if slope is None or intercept is None:
            raise MissingDataError(f"{path}: RescaleSlope/RescaleIntercept missing; cannot convert stored values to HU")
        if slope <= 0:
            raise InvalidTagValueError(f"{path}: RescaleSlope is {slope:g}; expected a number > 0 (with {slope:g} every "
                                       f"pixel would read {intercept:g} HU or run backwards)")
        with np.errstate(over="ignore", invalid="ignore"):
            hu_slices[k] = layout.apply(raw.astype(np.float32) * np.float32(slope) + np.float32(intercept))
        _check_slice_hu(path, hu_slices[k], bounds)
        if progress is not None and (k + 1) % 50 == 0:
            progress(f"CT: {k + 1}/{len(info)} slices read")

    if uniform:
        grid = Grid((len(z), ny, nx), (dz, layout.spacing_yx[0], layout.spacing_yx[1]), (z[0], y_axis[0], x_axis[0]))
        hu = hu_slices
    else:
        n_new = int(np.floor((z[-1] - z[0]) / dz + 1e-6)) + 1
        z_new = z[0] + dz * np.arange(n_new)
        hu = np.empty((n_new, ny, nx), dtype=np.float32)
        idx = np.clip(np.searchsorted(z, z_new, side="right") - 1, 0, len(z) - 2)
        w = np.clip((z_new - z[idx]) / (z[idx + 1] - z[idx]), 0.0, 1.0).astype(np.float32)
        for k in range(n_new):
            hu[k] = hu_slices[idx[k]] * (1 - w[k]) + hu_slices[idx[k] + 1] * w[k]
        grid = Grid((n_new, ny, nx), (dz, layout.spacing_yx[0], layout.spacing_yx[1]), (z[0], y_axis[0], x_axis[0]))
        spacings = sorted({round(float(d), 3) for d in np.diff(z)})
        notes.append(f"CT: slice spacing varies ({spacings} mm); the series was resampled linearly in z onto a "
                     f"uniform {dz:.3f} mm spacing ({len(z)} -> {n_new} slices)")

    notes.extend(check_ct_hu(hu, f"{files_sorted[0].parent}: CT series", bounds))
    hdr = headers[int(order[0])]
    position = get_str(hdr, "PatientPosition")
    if not position:
        notes.append("CT: Patient Position (0018,5100) is absent; not recorded")
    for attr in ("SeriesInstanceUID", "FrameOfReferenceUID", "StudyInstanceUID"):
        if not get_str(hdr, attr):
            raise MissingDataError(f"{files_sorted[0]}: {attr} is missing")
    return CTVolume(
        grid=grid, hu=hu, sop_instance_uids=[h["uid"] for h in info], slice_z_mm=[float(v) for v in z],
        series_instance_uid=get_str(hdr, "SeriesInstanceUID"), frame_of_reference_uid=get_str(hdr, "FrameOfReferenceUID"),
        study_instance_uid=get_str(hdr, "StudyInstanceUID"), patient_id=get_str(hdr, "PatientID"),
        patient_position=position, files=files_sorted, notes=notes)

