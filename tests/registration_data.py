"""Known-truth data for the registration tests: a "new" CT series and RTSTRUCT written under a new
Frame of Reference by moving a real CT through a known transform (SimpleITK resampling, which is
independent of the import's own mapping code), and REG objects written with pydicom."""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tps_adapters.dicom import read_ct_series, scan_folder
from tps_adapters.registration.images import to_image


def rotation_z(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])


def true_matrix(deg_z: float, shift_xyz_mm, centre_xyz_mm) -> np.ndarray:
    """4 x 4: new point -> prior point, a rotation of ``deg_z`` degrees about the cranio-caudal axis
    through ``centre`` and a shift (mm)."""
    r, c = rotation_z(deg_z), np.asarray(centre_xyz_mm, dtype=float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + np.asarray(shift_xyz_mm, dtype=float)
    return m


def read_prior_ct(folder: Path):
    f = scan_folder(folder)
    return read_ct_series([e.path for e in f.ct], [e.ds for e in f.ct])


def resample_ct(ct, transform: sitk.Transform, origin_xyz, spacing_xyz, size_xyz) -> np.ndarray:
    """The prior CT (HU) seen through ``transform`` (new -> prior points) on a new grid; [z, y, x]."""
    image = to_image(ct.hu, ct.grid)
    out = sitk.Resample(image, [int(s) for s in size_xyz], transform, sitk.sitkLinear, [float(o) for o in origin_xyz],
                        [float(s) for s in spacing_xyz], (1, 0, 0, 0, 1, 0, 0, 0, 1), -1000.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def write_ct_series(folder: Path, hu: np.ndarray, origin_xyz, spacing_xyz, template: Path, *, frame_uid: str,
                    patient_id: str | None = None) -> tuple[str, str]:
    """Write ``hu`` [z, y, x] as a CT series (int16, slope 1) with the template's patient and a new
    study, series and frame of reference; returns (Series, Study) Instance UIDs."""
    folder.mkdir(parents=True, exist_ok=True)
    tpl = pydicom.dcmread(template)
    series, study = generate_uid(), generate_uid()
    for k in range(hu.shape[0]):
        ds = copy.deepcopy(tpl)
        for tag in ("SmallestImagePixelValue", "LargestImagePixelValue", "WindowCenter", "WindowWidth"):
            if tag in ds:
                del ds[tag]
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame_uid
        if patient_id is not None:
            ds.PatientID = patient_id
        ds.ImagePositionPatient = [float(origin_xyz[0]), float(origin_xyz[1]), float(origin_xyz[2] + k * spacing_xyz[2])]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [float(spacing_xyz[1]), float(spacing_xyz[0])]
        ds.SliceThickness = float(spacing_xyz[2])
        ds.InstanceNumber = k + 1
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
        ds.PixelData = np.round(hu[k]).astype("<i2").tobytes()
        ds.save_as(folder / f"CT{k:04d}.dcm", enforce_file_format=True)
    return series, study


def write_moved_rtstruct(src: Path, dst: Path, new_to_prior: np.ndarray, frame_uid: str, series_uid: str, study_uid: str,
                         patient_id: str | None = None) -> None:
    """Copy of RTSTRUCT ``src`` with every contour point p moved to new_to_prior^-1 p (the new
    frame) and the frame / series references replaced."""
    ds = pydicom.dcmread(src)
    inv = np.linalg.inv(new_to_prior)
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study_uid
    if "FrameOfReferenceUID" in ds:
        ds.FrameOfReferenceUID = frame_uid
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if patient_id is not None:
        ds.PatientID = patient_id
    for rfor in ds.get("ReferencedFrameOfReferenceSequence", []):
        rfor.FrameOfReferenceUID = frame_uid
        for study in rfor.get("RTReferencedStudySequence", []):
            for series in study.get("RTReferencedSeriesSequence", []):
                series.SeriesInstanceUID = series_uid
                if "ContourImageSequence" in series:
                    del series.ContourImageSequence
    for item in ds.StructureSetROISequence:
        item.ReferencedFrameOfReferenceUID = frame_uid
    for roi in ds.ROIContourSequence:
        for c in roi.get("ContourSequence", []):
            if "ContourImageSequence" in c:
                del c.ContourImageSequence
            pts = np.asarray(c.ContourData, dtype=float).reshape(-1, 3)
            moved = pts @ inv[:3, :3].T + inv[:3, 3]
            c.ContourData = [f"{v:.4f}" for v in moved.ravel()]
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)


def write_reg(path: Path, new_frame: str, prior_frame: str, prior_to_new: np.ndarray, patient_id: str) -> None:
    """A Spatial Registration in the new frame: the new frame's item is the identity, the prior
    frame's item carries ``prior_to_new`` (prior point -> new point), as PS3.3 C.20.2 defines."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = "REG", patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = generate_uid(), generate_uid(), new_frame
    items = []
    for uid, m in ((new_frame, np.eye(4)), (prior_frame, prior_to_new)):
        mat = Dataset()
        mat.FrameOfReferenceTransformationMatrixType = "RIGID"
        mat.FrameOfReferenceTransformationMatrix = [f"{v:.10g}" for v in np.asarray(m).ravel()]
        mreg = Dataset()
        mreg.MatrixSequence = Sequence([mat])
        item = Dataset()
        item.FrameOfReferenceUID = uid
        item.MatrixRegistrationSequence = Sequence([mreg])
        items.append(item)
    ds.RegistrationSequence = Sequence(items)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


PELVIS = "raystation_alderson_pelvis_pydosert"
NEW_VOXEL_MM = 4.0


class KnownTruth:
    """The prior folder (real data, read in place), the written new folder and the true transform."""

    def __init__(self, prior_dir: Path, new_dir: Path, matrix: np.ndarray, new_frame: str, ptv_centre_new: np.ndarray,
                 ct):
        self.prior_dir, self.new_dir, self.matrix, self.new_frame = prior_dir, new_dir, matrix, new_frame
        self.ptv_centre_new, self.prior_ct = ptv_centre_new, ct


def new_grid_box(ct, voxel_mm: float = NEW_VOXEL_MM, inset_mm: float = 20.0):
    z, y, x = ct.grid.axis_coordinates_mm()
    origin = (x[0] + inset_mm, y[0] + inset_mm, z[0] + 2 * voxel_mm)
    size = tuple(int((hi - lo - 2 * d) // voxel_mm) + 1
                 for lo, hi, d in ((x[0], x[-1], inset_mm), (y[0], y[-1], inset_mm), (z[0], z[-1], 2 * voxel_mm)))
    return origin, (voxel_mm,) * 3, size


def write_new_course(root: Path, prior_dir: Path, ct, transform: sitk.Transform, matrix_for_contours: np.ndarray,
                     patient_id: str | None = None, voxel_mm: float = NEW_VOXEL_MM) -> tuple[Path, str]:
    """Write a new CT (the prior CT seen through ``transform``) and the moved RTSTRUCT into ``root``."""
    from tps_adapters.dicom import scan_folder as scan

    origin, spacing, size = new_grid_box(ct, voxel_mm)
    hu = resample_ct(ct, transform, origin, spacing, size)
    frame = generate_uid()
    template = scan(prior_dir).ct[0].path
    series, study = write_ct_series(root / "CT", hu, origin, spacing, template, frame_uid=frame, patient_id=patient_id)
    rs = scan(prior_dir).rtstruct[0].path
    write_moved_rtstruct(rs, root / "RS" / "RS_new.dcm", matrix_for_contours, frame, series, study, patient_id=patient_id)
    return root, frame


def ptv_centre_prior(prior_dir: Path) -> np.ndarray:
    """Mean of the PTV contour points (x, y, z mm) of the prior RTSTRUCT."""
    from tps_adapters.dicom import scan_folder as scan

    ds = pydicom.dcmread(scan(prior_dir).rtstruct[0].path)
    number = next(int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == "PTV")
    roi = next(r for r in ds.ROIContourSequence if int(r.ReferencedROINumber) == number)
    pts = np.concatenate([np.asarray(c.ContourData, dtype=float).reshape(-1, 3) for c in roi.ContourSequence])
    return pts.mean(axis=0)


def truth_dose(truth: KnownTruth, grid, transform: sitk.Transform | None = None) -> np.ndarray:
    """The prior dose (Gy, as the one-folder import reads it on its dose grid) resampled by SimpleITK
    through the true transform onto ``grid``; 0 Gy outside the dose grid."""
    from tps_adapters.dicom import load_case

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = load_case(truth.prior_dir, grid="dose", interval_months=24, assume_hu=-1000)
    image = to_image(prior.prior_dose_gy, prior.grid)
    t = transform if transform is not None else affine_of(truth.matrix)
    out = sitk.Resample(image, list(grid.shape[::-1]), t, sitk.sitkLinear, list(grid.origin_mm[::-1]),
                        list(grid.spacing_mm[::-1]), (1, 0, 0, 0, 1, 0, 0, 0, 1), 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out)


def affine_of(matrix: np.ndarray) -> sitk.Transform:
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(np.asarray(matrix)[:3, :3].ravel()))
    t.SetTranslation(tuple(np.asarray(matrix)[:3, 3]))
    return t


@pytest.fixture(scope="module")
def known_truth_case(realdata, tmp_path_factory) -> KnownTruth:
    """The pelvis moved by 4 degrees about z (through the CT centre) and (6, -4, 3) mm."""
    prior_dir = realdata / PELVIS
    if not prior_dir.is_dir():
        pytest.fail(f"real-data folder missing: {prior_dir}")
    ct = read_prior_ct(prior_dir)
    z, y, x = ct.grid.axis_coordinates_mm()
    centre = ((x[0] + x[-1]) / 2, (y[0] + y[-1]) / 2, (z[0] + z[-1]) / 2)
    matrix = true_matrix(4.0, (6.0, -4.0, 3.0), centre)
    new_dir, frame = write_new_course(tmp_path_factory.mktemp("new_course"), prior_dir, ct, affine_of(matrix), matrix)
    ptv_new = np.linalg.solve(matrix, np.append(ptv_centre_prior(prior_dir), 1.0))[:3]
    return KnownTruth(prior_dir, new_dir, matrix, frame, ptv_new, ct)


def bump_field(ct, centre_xyz, amplitude_mm, sigma_mm: float, voxel_mm: float = 4.0) -> sitk.Transform:
    """A smooth displacement u(x) = a exp(-|x - c|^2 / (2 sigma^2)) (a: (x, y, z) mm), on a 4 mm
    grid over the CT, as a transform x -> x + u(x) (new point -> prior point)."""
    z, y, x = ct.grid.axis_coordinates_mm()
    gx, gy, gz = (np.arange(a[0], a[-1] + voxel_mm, voxel_mm) for a in (x, y, z))
    zz, yy, xx = np.meshgrid(gz, gy, gx, indexing="ij")
    r2 = (xx - centre_xyz[0]) ** 2 + (yy - centre_xyz[1]) ** 2 + (zz - centre_xyz[2]) ** 2
    w = np.exp(-r2 / (2 * sigma_mm ** 2))
    field = np.stack([amplitude_mm[0] * w, amplitude_mm[1] * w, amplitude_mm[2] * w], axis=-1)
    image = sitk.GetImageFromArray(field.astype(np.float64), isVector=True)
    image.SetOrigin((float(gx[0]), float(gy[0]), float(gz[0])))
    image.SetSpacing((voxel_mm,) * 3)
    return sitk.DisplacementFieldTransform(image)
