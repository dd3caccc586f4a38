"""Export of a new course to DICOM: RTDOSE (new course), RTDOSE (cumulative EQD2) and RTSTRUCT (the
generated rCTV and PTV), all in the original study and frame of reference.

The new course's RTDOSE is DoseType PHYSICAL (Gy) for a photon plan and DoseType EFFECTIVE (Gy(RBE),
file ``RD_new_course_RBE.dcm``) for a particle plan, with the constant RBE in its DoseComment, as
plan.json's ``dose`` object states it; the cumulative EQD2's comment says Gy(RBE) for particle
plans. A plan.json without ``dose`` (written before it existed) is a physical dose.

Input: a plan folder with

* ``case.json`` / ``case.npz``: the case (``source.kind == "dicom"``), with masks ``mask_rCTV`` and
  ``mask_PTV`` (as structures of the case, or as arrays of case.npz);
* ``dose.npz``: ``new_course_gy`` (dose of the new course: physical for photons, RBE-weighted for
  particles) and ``cumulative_eqd2_gy`` (prior + new EQD2), float arrays on the case grid, Gy or Gy(RBE);
* ``plan.json`` (optional): ``reporting.alpha_beta_gy`` and ``reporting.recovery_model``, quoted in
  the EQD2 dose's comment ('not recorded' when absent), and ``dose`` (quantity, unit, rbe).

Doses are stored as 32-bit unsigned integers with a Dose Grid Scaling of at most max/(2^32 - 1), so
they read back to within half a scaling quantum; the RTDOSE grid is the case grid cropped to the
non-zero dose plus one voxel (the dose outside is exactly 0). All objects get new UIDs and are
written together into the output folder through a temporary folder (atomically).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from reirrad_opt import __version__
from reirrad_opt.atomic import atomic_dir
from reirrad_opt.case import Case, CaseFormatError, load_case
from reirrad_opt.output_folder import MARKER_NAME
from reirrad_opt.geometry import Grid

from .errors import ExportError
from .scan import CT_IMAGE, RT_DOSE, RT_STRUCT, scan_folder
from .values import get_str

STUDY_COMPONENT = "1.2.840.10008.3.1.2.3.1"
NEW_COURSE_FILE = "RD_new_course_physical.dcm"
NEW_COURSE_RBE_FILE = "RD_new_course_RBE.dcm"      # particle plans: RBE-weighted (DoseType EFFECTIVE)
EQD2_FILE = "RD_cumulative_EQD2.dcm"
STRUCT_FILE = "RS_new_course_targets.dcm"
OUTPUT_FILES = (NEW_COURSE_FILE, NEW_COURSE_RBE_FILE, EQD2_FILE, STRUCT_FILE)
ROI_COLOURS = {"rCTV": [255, 128, 0], "PTV": [255, 0, 0]}
ROI_TYPES = {"rCTV": "CTV", "PTV": "PTV"}
UINT32_MAX = 2 ** 32 - 1
DOSE_COMMENT_MAX = 64  # LO value representation


def dose_grid_scaling(max_dose_gy: float) -> tuple[float, str]:
    """A Dose Grid Scaling for uint32 storage of doses up to ``max_dose_gy``: the value and its
    exact DS text (at most 16 characters); stored integer = round(dose / scaling)."""
    if max_dose_gy <= 0:
        return 1.0, "1"
    text = format_number_as_ds(max_dose_gy / UINT32_MAX)
    while max_dose_gy / float(text) > UINT32_MAX:
        text = format_number_as_ds(float(text) * (1 + 1e-9))
    return float(text), text


def _now() -> tuple[str, str]:
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _base_dataset(sop_class: str, reference: Dataset, case: Case, modality: str, series_description: str,
                  series_number: int) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    date, time = _now()
    ds.SpecificCharacterSet = reference.get("SpecificCharacterSet", None) or "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        setattr(ds, key, reference.get(key, ""))
    ds.StudyInstanceUID = case.source["study_instance_uid"]
    for key in ("StudyDate", "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription"):
        setattr(ds, key, reference.get(key, ""))
    ds.Modality = modality
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = series_description
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time
    ds.InstanceNumber = 1
    ds.FrameOfReferenceUID = case.source["frame_of_reference_uid"]
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "reirrad-opt"
    ds.ManufacturerModelName = "reirrad-opt"
    ds.SoftwareVersions = __version__
    return ds


def _crop_box(dose: np.ndarray) -> tuple[slice, slice, slice]:
    nz = np.argwhere(dose > 0)
    if nz.size == 0:
        return (slice(0, dose.shape[0]), slice(0, dose.shape[1]), slice(0, dose.shape[2]))
    lo = np.maximum(nz.min(axis=0) - 1, 0)
    hi = np.minimum(nz.max(axis=0) + 2, dose.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def build_rtdose(dose_gy: np.ndarray, grid: Grid, case: Case, reference: Dataset, *, dose_type: str,
                 comment: str, description: str, series_number: int, image_comments: str = "") -> FileDataset:
    """An RTDOSE (Gy, PLAN summation) of ``dose_gy`` on ``grid`` (cropped to the non-zero dose)."""
    box = _crop_box(dose_gy)
    sub = np.asarray(dose_gy[box], dtype=np.float64)
    scaling, scaling_text = dose_grid_scaling(float(sub.max()))
    stored = np.rint(sub / scaling).astype(np.uint32)
    z, y, x = (axis[b] for axis, b in zip(grid.axis_coordinates_mm(), box))
    ds = _base_dataset(RT_DOSE, reference, case, "RTDOSE", description, series_number)
    ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in (x[0], y[0], z[0])]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [format_number_as_ds(grid.spacing_mm[1]), format_number_as_ds(grid.spacing_mm[2])]
    ds.SliceThickness = format_number_as_ds(grid.spacing_mm[0])
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = int(stored.shape[0])
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x3004, 0x000C)
    ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
    ds.GridFrameOffsetVector = [format_number_as_ds(float(v - z[0])) for v in z]
    ds.DoseGridScaling = scaling_text
    ds.DoseUnits = "GY"
    ds.DoseType = dose_type
    ds.DoseSummationType = "PLAN"
    ds.DoseComment = comment
    if image_comments:
        ds.ImageComments = image_comments
    rs_uid = case.source.get("structure_set_sop_instance_uid", "")
    if rs_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID = RT_STRUCT
        ref.ReferencedSOPInstanceUID = rs_uid
        ds.ReferencedStructureSetSequence = Sequence([ref])
    ds.PixelData = np.ascontiguousarray(stored).astype("<u4").tobytes()
    return ds


def mask_contours(mask_2d: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Closed polygons ((n, 2) x, y in mm) around the pixels of a 2-D mask [y, x].

    The polygons follow the 0.5 level of the mask between pixel centres (marching squares), so
    rasterising them with the pixel-centre rule gives the mask back exactly.
    """
    import contourpy

    dx = x[1] - x[0] if x.size > 1 else 1.0
    dy = y[1] - y[0] if y.size > 1 else 1.0
    padded = np.pad(mask_2d.astype(np.float64), 1)
    xp = np.concatenate([[x[0] - dx], x, [x[-1] + dx]])
    yp = np.concatenate([[y[0] - dy], y, [y[-1] + dy]])
    gen = contourpy.contour_generator(xp, yp, padded, line_type=contourpy.LineType.Separate, corner_mask=False)
    polygons = []
    for line in gen.lines(0.5):
        pts = np.asarray(line, dtype=float)
        if len(pts) > 1 and np.allclose(pts[0], pts[-1]):
            pts = pts[:-1]
        if len(pts) >= 3:
            polygons.append(pts)
    return polygons


def build_rtstruct(masks: dict[str, np.ndarray], grid: Grid, case: Case, reference: Dataset,
                   series_number: int) -> FileDataset:
    """An RTSTRUCT with one ROI per mask, contoured on every slice of ``grid``."""
    ds = _base_dataset(RT_STRUCT, reference, case, "RTSTRUCT", "reirrad-opt new course targets", series_number)
    ds.StructureSetLabel = "reirrad-opt"
    ds.StructureSetName = "new course targets"
    ds.StructureSetDate, ds.StructureSetTime = ds.ContentDate, ds.ContentTime
    for_uid = case.source["frame_of_reference_uid"]
    ct_uids = list(case.source.get("ct_sop_instance_uids", []))
    ct_z = np.asarray(case.source.get("ct_slice_z_mm", []), dtype=float)
    rfor = Dataset()
    rfor.FrameOfReferenceUID = for_uid
    if case.source.get("ct_series_instance_uid"):
        series = Dataset()
        series.SeriesInstanceUID = case.source["ct_series_instance_uid"]
        images = []
        for uid in ct_uids:
            item = Dataset()
            item.ReferencedSOPClassUID = CT_IMAGE
            item.ReferencedSOPInstanceUID = uid
            images.append(item)
        series.ContourImageSequence = Sequence(images)
        study = Dataset()
        study.ReferencedSOPClassUID = STUDY_COMPONENT
        study.ReferencedSOPInstanceUID = case.source["study_instance_uid"]
        study.RTReferencedSeriesSequence = Sequence([series])
        rfor.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([rfor])
    if case.source.get("structure_set_sop_instance_uid"):
        pred = Dataset()
        pred.ReferencedSOPClassUID = RT_STRUCT
        pred.ReferencedSOPInstanceUID = case.source["structure_set_sop_instance_uid"]
        ds.PredecessorStructureSetSequence = Sequence([pred])
    z_axis, y_axis, x_axis = grid.axis_coordinates_mm()
    rois, contours, observations = [], [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = for_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi.ROIGenerationDescription = "reirrad-opt"
        rois.append(roi)
        items = []
        for k in np.flatnonzero(mask.any(axis=(1, 2))):
            z = float(z_axis[k])
            image_uid = ""
            if ct_z.size and ct_uids:
                m = int(np.argmin(np.abs(ct_z - z)))
                if abs(ct_z[m] - z) < 0.01:
                    image_uid = ct_uids[m]
            for poly in mask_contours(mask[k], x_axis, y_axis):
                c = Dataset()
                if image_uid:
                    img = Dataset()
                    img.ReferencedSOPClassUID = CT_IMAGE
                    img.ReferencedSOPInstanceUID = image_uid
                    c.ContourImageSequence = Sequence([img])
                c.ContourGeometricType = "CLOSED_PLANAR"
                c.NumberOfContourPoints = len(poly)
                xyz = np.column_stack([poly, np.full(len(poly), z)])
                c.ContourData = [format_number_as_ds(round(float(v), 4)) for v in xyz.ravel()]
                items.append(c)
        rc = Dataset()
        rc.ROIDisplayColor = ROI_COLOURS.get(name, [0, 255, 0])
        rc.ReferencedROINumber = number
        rc.ContourSequence = Sequence(items)
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = ROI_TYPES.get(name, "ORGAN")
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    return ds


def _format_alpha_beta(value) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, dict):
        if not value:
            return "not recorded"
        return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in value.items())
    if isinstance(value, (int, float)):
        return f"{value:g} (all structures)"
    return str(value)


def _format_recovery(value) -> str:
    if value is None or value == "":
        return "not recorded"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _short(text: str) -> str:
    """'recovery: none (prior EQD2 counted in full)' -> 'none'; 'default (other tissue)' -> 'default'."""
    if text.lower().startswith("recovery"):
        text = text.split(":", 1)[-1]
    return re.sub(r"\s*\([^)]*\)", "", text).strip()


def eqd2_comments(reporting: dict, dose_unit: str = "Gy") -> tuple[str, str]:
    """(DoseComment of at most 64 characters, full statement for Image Comments).

    ``reporting`` is plan.json's ``reporting`` object: ``alpha_beta_gy`` (per structure, or one
    number) and ``recovery_model`` (or ``recovery``), text or object; absent -> 'not recorded'.
    ``dose_unit`` 'Gy(RBE)' (particle plans) puts 'Gy(RBE)' after 'EQD2' in both texts.
    """
    u = "" if dose_unit == "Gy" else f" {dose_unit}"
    ab = _format_alpha_beta(reporting.get("alpha_beta_gy"))
    rec = _format_recovery(reporting.get("recovery_model", reporting.get("recovery")))
    if rec.lower().startswith("recovery:"):
        rec = rec.split(":", 1)[1].strip()
    full = f"EQD2{u} cumulative (prior + new course); alpha/beta [Gy]: {ab}; recovery model: {rec}"
    ab_map = reporting.get("alpha_beta_gy")
    grouped = _short(ab)
    if isinstance(ab_map, dict) and ab_map:
        by_value: dict[str, list[str]] = {}
        for k, v in ab_map.items():
            by_value.setdefault(f"{v:g}" if isinstance(v, (int, float)) else str(v), []).append(_short(str(k)))
        grouped = " ".join(f"{v}:{','.join(names)}" for v, names in by_value.items())
    rec_short = _short(rec) or rec
    candidates = [
        full,
        f"EQD2{u} sum; a/b {ab}; recovery {rec_short}",
        f"EQD2{u} sum; a/b {grouped}; recovery {rec_short}",
        f"EQD2{u}; a/b {grouped}; rec {rec_short}",
        f"EQD2{u} sum; recovery {rec_short}; a/b in ImageComments",
        f"EQD2{u} sum; a/b and recovery model in ImageComments",
    ]
    comment = next(c for c in candidates if len(c) <= DOSE_COMMENT_MAX)
    return comment, full


def _load_plan_folder(plan_dir: Path) -> tuple[Case, dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    try:
        case = load_case(plan_dir)
    except CaseFormatError as exc:
        raise ExportError(f"{plan_dir}: not a plan folder with a case ({exc})") from exc
    if case.source.get("kind") != "dicom":
        raise ExportError(f"{plan_dir}/case.json: source.kind is {case.source.get('kind')!r}; DICOM export needs a case "
                          "imported from DICOM (source.kind 'dicom')")
    for key in ("study_instance_uid", "frame_of_reference_uid"):
        if not case.source.get(key):
            raise ExportError(f"{plan_dir}/case.json: source.{key} is missing")
    dose_path = plan_dir / "dose.npz"
    if not dose_path.is_file():
        raise ExportError(f"{dose_path}: missing (the plan's doses)")
    doses = {}
    with np.load(dose_path) as data:
        for key in ("new_course_gy", "cumulative_eqd2_gy"):
            if key not in data.files:
                raise ExportError(f"{dose_path}: array {key!r} is missing")
            arr = np.asarray(data[key], dtype=np.float64)
            if arr.shape != case.grid.shape:
                raise ExportError(f"{dose_path}: {key} has shape {arr.shape}, the case grid is {case.grid.shape}")
            if not np.all(np.isfinite(arr)) or arr.min() < 0:
                raise ExportError(f"{dose_path}: {key} must be finite and >= 0 Gy")
            doses[key] = arr
    masks = {}
    with np.load(plan_dir / "case.npz") as data:
        for name in ("rCTV", "PTV"):
            if name in case.structures:
                masks[name] = case.structures[name].mask
            elif f"mask_{name}" in data.files:
                masks[name] = data[f"mask_{name}"].astype(bool)
            else:
                raise ExportError(f"{plan_dir}/case.npz: mask_{name} is missing (the generated {name})")
            if masks[name].shape != case.grid.shape:
                raise ExportError(f"{plan_dir}/case.npz: mask_{name} shape {masks[name].shape} does not match the grid")
    plan_json = plan_dir / "plan.json"
    reporting: dict = {}
    if plan_json.is_file():
        try:
            meta = json.loads(plan_json.read_text())
        except json.JSONDecodeError as exc:
            raise ExportError(f"{plan_json}: not valid JSON ({exc})") from exc
        reporting = meta.get("reporting", {}) if isinstance(meta, dict) else {}
        if not isinstance(reporting, dict):
            reporting = {}
    return case, doses, masks, reporting


def plan_dose_info(plan_dir: Path) -> dict:
    """plan.json's ``dose`` object (quantity, unit, rbe, rbe_model); a physical dose in Gy when the file
    or the key is absent. ExportError when it is there but not one of the known forms."""
    physical = {"quantity": "physical", "unit": "Gy", "rbe": 1.0, "rbe_model": "none"}
    path = Path(plan_dir) / "plan.json"
    if not path.is_file():
        return physical
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc
    dose = meta.get("dose") if isinstance(meta, dict) else None
    if dose is None:
        return physical
    known = {("physical", "Gy"), ("RBE-weighted", "Gy(RBE)")}
    rbe = dose.get("rbe") if isinstance(dose, dict) else None
    if not isinstance(dose, dict) or (dose.get("quantity"), dose.get("unit")) not in known \
            or isinstance(rbe, bool) or not isinstance(rbe, (int, float)) or not rbe > 0:
        raise ExportError(f"{path}: 'dose' is {dose!r}; expected quantity/unit 'physical'/'Gy' or "
                          "'RBE-weighted'/'Gy(RBE)' with a positive 'rbe'")
    return dose


def new_course_labels(dose: dict) -> tuple[str, str, str, str]:
    """(file name, DoseType, DoseComment, series description) of the new course's RTDOSE."""
    if dose["unit"] == "Gy(RBE)":
        comment = f"new course, RBE-weighted, Gy(RBE), constant RBE {float(dose['rbe']):g}"
        return NEW_COURSE_RBE_FILE, "EFFECTIVE", comment, "reirrad-opt new course dose Gy(RBE)"
    return NEW_COURSE_FILE, "PHYSICAL", "new course, physical dose", "reirrad-opt new course dose"


def _reference_dataset(case: Case, reference_dir: Path) -> Dataset:
    folder = scan_folder(reference_dir)
    ident = folder.identity()
    for key in ("study_instance_uid", "frame_of_reference_uid"):
        if ident[key] != case.source[key]:
            raise ExportError(f"{reference_dir}: its {key} {ident[key]!r} is not the case's {case.source[key]!r}; "
                              "give the folder the case was imported from")
    rs_uid = case.source.get("structure_set_sop_instance_uid", "")
    found = [e for e in folder.rtstruct if get_str(e.ds, "SOPInstanceUID") == rs_uid]
    if rs_uid and not found:
        raise ExportError(f"{reference_dir}: the structure set {rs_uid} the case was imported with is not in this folder")
    entries = found or folder.ct or folder.entries
    return entries[0].ds


def export_plan(plan_dir: str | os.PathLike, reference_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Write the new course of ``plan_dir`` as DICOM into ``out_dir`` (see the module doc).

    Returns the written files: new-course RTDOSE, cumulative-EQD2 RTDOSE, RTSTRUCT. Raises
    ExportError (nothing written) when an input is missing or inconsistent.
    """
    plan_dir, reference_dir, out = Path(plan_dir), Path(reference_dir), Path(out_dir)
    case, doses, masks, reporting = _load_plan_folder(plan_dir)
    reference = _reference_dataset(case, reference_dir)
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"{out}: exists and is not a folder")
        others = [p.name for p in out.iterdir() if p.name not in (*OUTPUT_FILES, MARKER_NAME)]
        if others:
            raise ExportError(f"{out}: exists and holds other files ({', '.join(sorted(others)[:5])}); "
                              "give a new or empty output folder")
    dose_info = plan_dose_info(plan_dir)
    new_file, new_type, new_comment, new_description = new_course_labels(dose_info)
    comment, full = eqd2_comments(reporting, dose_info["unit"])
    datasets = {
        new_file: build_rtdose(doses["new_course_gy"], case.grid, case, reference, dose_type=new_type,
                               comment=new_comment, description=new_description, series_number=901),
        EQD2_FILE: build_rtdose(doses["cumulative_eqd2_gy"], case.grid, case, reference, dose_type="EFFECTIVE",
                                comment=comment, image_comments=full,
                                description="reirrad-opt cumulative EQD2", series_number=902),
        STRUCT_FILE: build_rtstruct(masks, case.grid, case, reference, series_number=903),
    }
    with atomic_dir(out_dir) as tmp:  # out_dir may be a checked OutputTarget (its command and flags apply)
        for name, ds in datasets.items():
            ds.save_as(tmp / name, enforce_file_format=True)
    return [out / name for name in datasets]
