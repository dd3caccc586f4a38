"""Test-side exporter: an OpenKBP patient written as a TPS would hand it to ``reirrad-opt tps-run``.

:func:`write_exchange` writes ``EXCHANGE_DIR/dicom/`` and ``EXCHANGE_DIR/request.json``:

* a CT series: one CT Image Storage file per slice of the OpenKBP grid, stored value = HU + 1024
  (uint16, RescaleSlope 1, RescaleIntercept -1024, so the HU read back are exact), axial
  (ImageOrientationPatient 1/0/0/0/1/0), ImagePositionPatient at each slice's first voxel centre;
* an RTSTRUCT of the OpenKBP structures under TPS-style names (``BrainStem``, ``Spinal Cord``, ...),
  the body the OpenKBP loader derives from the CT (``BODY``, EXTERNAL) and a synthetic recurrence
  (``GTV_recur``) placed next to the brainstem as ``import-openkbp --recurrence-near`` does;
* an RTDOSE (PLAN, PHYSICAL, Gy) of the OpenKBP dose, the prior course of 70 Gy in 35 fractions.

All objects share one Patient ID, StudyInstanceUID and FrameOfReferenceUID; the RTSTRUCT refers to
the CT slices. The RTSTRUCT and RTDOSE come from the product's exporters
(:func:`tps_adapters.dicom.export.build_rtstruct` / ``build_rtdose``); the CT slices are written here
in the same style (the product has no CT-series writer: it never needs to write a CT).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import format_number_as_ds

from reirrad_opt.case import Case
from tps_adapters.dicom.export import _base_dataset, build_rtdose, build_rtstruct
from tps_adapters.dicom.scan import CT_IMAGE
from tps_adapters.openkbp import load_openkbp_case
from tps_adapters.recurrence import place_recurrence

HU_OFFSET = 1024
#: case structure name -> (ROI name in the RTSTRUCT, RT ROI Interpreted Type)
TPS_ROIS = {
    "External": ("BODY", "EXTERNAL"),
    "Brainstem": ("BrainStem", "ORGAN"),
    "SpinalCord": ("Spinal Cord", "ORGAN"),
    "Parotid_L": ("Parotid Lt", "ORGAN"),
    "Parotid_R": ("Parotid Rt", "ORGAN"),
    "Esophagus": ("Esophagus", "ORGAN"),
    "Larynx": ("Larynx", "ORGAN"),
    "Bone_Mandible": ("Mandible", "ORGAN"),
    "PTV70": ("PTV70", "PTV"),
    "PTV63": ("PTV63", "PTV"),
    "PTV56": ("PTV56", "PTV"),
    "rGTV": ("GTV_recur", "GTV"),
}
#: protocol organs OpenKBP does not contour (npc_reirradiation_2021): declared absent in the request
NOT_IN_OPENKBP = ("OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lobe_Temporal_L", "Lobe_Temporal_R",
                  "A_Carotid_L", "A_Carotid_R")
PRIOR_FRACTIONS = 35


@dataclass(frozen=True)
class Exchange:
    """What was written: the folder, the OpenKBP case (with its rGTV) on its own grid, the ROI
    names as written in the RTSTRUCT (case name -> ROI name) and the files of ``dicom/``."""

    folder: Path
    case: Case
    roi_names: dict[str, str]
    ct_files: tuple[Path, ...]
    rtstruct: Path
    rtdose: Path


def _reference(patient: str) -> Dataset:
    ref = Dataset()
    ref.SpecificCharacterSet = "ISO_IR 100"
    ref.PatientName = f"OpenKBP^{patient}"
    ref.PatientID = f"OKBP_{patient}"
    ref.PatientBirthDate = ""
    ref.PatientSex = ""
    ref.StudyDate, ref.StudyTime = "20240101", "080000"
    ref.StudyID = "1"
    ref.AccessionNumber = ""
    ref.ReferringPhysicianName = ""
    ref.StudyDescription = "OpenKBP head and neck (test export)"
    return ref


def _ct_slice(case: Case, reference: Dataset, k: int, series_uid: str) -> Dataset:
    """Slice ``k`` (ascending z) of ``case.ct_hu`` as a CT Image Storage dataset."""
    z_axis, y_axis, x_axis = case.grid.axis_coordinates_mm()
    dz, dy, dx = case.grid.spacing_mm
    ds = _base_dataset(CT_IMAGE, reference, case, "CT", "OpenKBP planning CT", 1)
    ds.SeriesInstanceUID = series_uid
    ds.InstanceNumber = k + 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientPosition = "HFS"
    ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in (x_axis[0], y_axis[0], z_axis[k])]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [format_number_as_ds(float(dy)), format_number_as_ds(float(dx))]
    ds.SliceThickness = format_number_as_ds(float(dz))
    ds.SliceLocation = format_number_as_ds(float(z_axis[k]))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = case.grid.shape[1], case.grid.shape[2]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -HU_OFFSET
    ds.RescaleType = "HU"
    stored = np.rint(case.ct_hu[k].astype(np.float64) + HU_OFFSET)
    if stored.min() < 0 or stored.max() > 65535:
        raise ValueError(f"slice {k}: HU {case.ct_hu[k].min()}..{case.ct_hu[k].max()} do not fit uint16 with "
                         f"offset {HU_OFFSET}")
    ds.PixelData = np.ascontiguousarray(stored.astype("<u2")).tobytes()
    return ds


def openkbp_case_with_recurrence(patient_dir: Path, near: str = "Brainstem", radius_mm: float = 12.0) -> Case:
    """The OpenKBP patient (70 Gy / 35 fx prior) with a synthetic rGTV next to ``near``."""
    case = load_openkbp_case(patient_dir, interval_months=24, prior_fractions=PRIOR_FRACTIONS)
    return place_recurrence(case, near, radius_mm)


def write_exchange(patient_dir: str | Path, folder: str | Path, request: dict) -> Exchange:
    """Write ``folder/dicom/`` (CT series, RTSTRUCT, RTDOSE of the OpenKBP patient) and
    ``folder/request.json`` (``request`` as given). See the module doc."""
    patient_dir, folder = Path(patient_dir), Path(folder)
    case = openkbp_case_with_recurrence(patient_dir)
    dicom = folder / "dicom"
    dicom.mkdir(parents=True)
    reference = _reference(patient_dir.name)
    series_uid = generate_uid()
    source = copy.deepcopy(case.source)
    source.update(study_instance_uid=generate_uid(), frame_of_reference_uid=generate_uid(),
                  ct_series_instance_uid=series_uid)
    out_case = Case(case.name, case.grid, case.ct_hu, case.structures, case.prior_dose_gy, case.prior, source)

    ct_files, uids = [], []
    for k in range(case.grid.shape[0]):
        ds = _ct_slice(out_case, reference, k, series_uid)
        path = dicom / f"CT.{k + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        ct_files.append(path)
        uids.append(ds.SOPInstanceUID)
    source["ct_sop_instance_uids"] = uids
    source["ct_slice_z_mm"] = [float(z) for z in case.grid.axis_coordinates_mm()[0]]

    missing = sorted(set(case.structures) - set(TPS_ROIS))
    if missing:
        raise ValueError(f"{patient_dir}: structures {missing} have no TPS name in TPS_ROIS")
    names = {n: TPS_ROIS[n][0] for n in case.structures}
    rs = build_rtstruct({names[n]: s.mask for n, s in case.structures.items()}, case.grid, out_case, reference,
                        series_number=2)
    rs.SeriesDescription = "OpenKBP structures"
    rs.StructureSetLabel = "OpenKBP"
    rs.StructureSetName = "OpenKBP structures"
    interpreted = {TPS_ROIS[n][0]: TPS_ROIS[n][1] for n in case.structures}
    by_number = {item.ROINumber: item for item in rs.StructureSetROISequence}
    for obs in rs.RTROIObservationsSequence:
        item = by_number[obs.ReferencedROINumber]
        obs.RTROIInterpretedType = interpreted[item.ROIName]
        item.ROIGenerationAlgorithm = "MANUAL"
        item.ROIGenerationDescription = "OpenKBP"
    rs_path = dicom / "RS.openkbp.dcm"
    rs.save_as(rs_path, enforce_file_format=True)
    source["structure_set_sop_instance_uid"] = rs.SOPInstanceUID      # the RTDOSE refers to it

    rd = build_rtdose(case.prior_dose_gy, case.grid, out_case, reference, dose_type="PHYSICAL",
                      comment="OpenKBP plan 70 Gy in 35 fx", description="OpenKBP prior course", series_number=3)
    rd_path = dicom / "RD.openkbp.dcm"
    rd.save_as(rd_path, enforce_file_format=True)

    (folder / "request.json").write_text(json.dumps(request, indent=2), encoding="utf-8")
    return Exchange(folder, case, names, tuple(ct_files), rs_path, rd_path)
