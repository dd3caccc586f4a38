"""DICOM import on small synthetic series written here with pydicom, with analytic truth:

* the CT holds HU = f(x, y, z), a known function of the patient position, so any axis flip,
  transposition or sorting error shows up as a wrong HU at a known point;
* the RTDOSE holds a dose linear in x, y and z, which trilinear resampling reproduces exactly,
  so every GridFrameOffsetVector form, frame order and summation type must give that dose.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tps_adapters.dicom import (DoseCoverageWarning, GeometryError, MissingDataError, MixedInputError,
                                PriorCourseError, SliceGapError, UnsupportedDoseError, load_case)
from tps_adapters.dicom.scan import CT_IMAGE, RT_DOSE, RT_ION_PLAN, RT_PLAN, RT_STRUCT

STUDY, FOR, PATIENT = generate_uid(), generate_uid(), "SYN001"


def hu_field(x, y, z):
    return np.round(2 * (3.0 * x - 2.0 * y + 5.0 * z)) / 2  # multiples of 0.5 HU


def dose_field(x, y, z):
    return 10.0 + 0.2 * x - 0.1 * y + 0.3 * z  # linear: trilinear resampling is exact


def _base(sop_class, modality, series=None):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.PatientName = modality, PATIENT, "SYN^TEST"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = STUDY, series or generate_uid(), FOR
    return ds


def write_ct(folder: Path, z=(-4.0, -2.0, 0.0, 2.0, 4.0, 6.0), ny=10, nx=12, dr=1.5, dc=1.0,
             orientation=(1, 0, 0, 0, 1, 0), ipp_xy=(-6.0, -7.0), tilt=0.0, thickness=None) -> list[Path]:
    series = generate_uid()
    r, c = np.array(orientation[:3], float), np.array(orientation[3:], float)
    paths = []
    for k, zk in enumerate(z):
        ds = _base(CT_IMAGE, "CT", series)
        ipp = np.array([ipp_xy[0], ipp_xy[1], zk])
        rows, cols = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        pos = ipp + cols[..., None] * dc * r + rows[..., None] * dr * c
        hu = hu_field(pos[..., 0], pos[..., 1], pos[..., 2])
        ds.ImagePositionPatient = [float(v) for v in ipp]
        ds.ImageOrientationPatient = list(orientation)
        ds.PixelSpacing = [dr, dc]
        ds.SliceThickness = thickness[k] if thickness else 2.0
        ds.GantryDetectorTilt = tilt
        ds.PatientPosition = "HFS"
        ds.Rows, ds.Columns = ny, nx
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1000
        ds.PixelData = np.round((hu + 1000) / 0.5).astype("<u2").tobytes()
        ds.InstanceNumber = k + 1
        p = folder / f"img_{(k * 7) % len(z)}_{k}.dcm"  # names unrelated to position
        ds.save_as(p, enforce_file_format=True)
        paths.append(p)
    return paths


def write_rtstruct(folder: Path, rois: dict[str, list[tuple[float, np.ndarray]]], types=None) -> Path:
    ds = _base(RT_STRUCT, "RTSTRUCT")
    rfor = Dataset()
    rfor.FrameOfReferenceUID = FOR
    ds.ReferencedFrameOfReferenceSequence = Sequence([rfor])
    ss, rc, obs = [], [], []
    for n, (name, contours) in enumerate(rois.items(), start=1):
        a = Dataset()
        a.ROINumber, a.ROIName, a.ReferencedFrameOfReferenceUID = n, name, FOR
        ss.append(a)
        b = Dataset()
        b.ReferencedROINumber = n
        items = []
        for z, xy in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(xy)
            c.ContourData = [float(v) for v in np.column_stack([xy, np.full(len(xy), z)]).ravel()]
            items.append(c)
        b.ContourSequence = Sequence(items)
        rc.append(b)
        o = Dataset()
        o.ObservationNumber, o.ReferencedROINumber = n, n
        o.RTROIInterpretedType = (types or {}).get(name, "ORGAN")
        obs.append(o)
    ds.StructureSetROISequence, ds.ROIContourSequence, ds.RTROIObservationsSequence = Sequence(ss), Sequence(rc), Sequence(obs)
    p = folder / "structures.dcm"
    ds.save_as(p, enforce_file_format=True)
    return p


def write_rtdose(folder: Path, name="dose.dcm", *, z0=-6.0, nz=8, dz=2.0, y0=-8.0, ny=9, dy=2.0, x0=-7.0, nx=10,
                 dx=2.0, summation="PLAN", dose_type="PHYSICAL", units="GY", offsets="relative", descending=False,
                 factor=1.0, scaling=1e-4, plan_uid="", beams=()) -> Path:
    ds = _base(RT_DOSE, "RTDOSE")
    z = z0 + dz * np.arange(nz)
    if descending:
        z = z[::-1]
    y = y0 + dy * np.arange(ny)
    x = x0 + dx * np.arange(nx)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    dose = factor * dose_field(xx, yy, zz)
    ds.ImagePositionPatient = [x0, y0, float(z[0])]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [dy, dx]
    ds.Rows, ds.Columns, ds.NumberOfFrames = ny, nx, nz
    ds.FrameIncrementPointer = pydicom.tag.Tag(0x3004, 0x000C)
    ds.GridFrameOffsetVector = [float(v) for v in ((z - z[0]) if offsets == "relative" else z)]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 32, 32, 31, 0
    ds.DoseGridScaling = scaling
    ds.DoseUnits, ds.DoseType, ds.DoseSummationType = units, dose_type, summation
    if plan_uid:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = RT_PLAN, plan_uid
        if beams:
            fg = Dataset()
            fg.ReferencedFractionGroupNumber = 1
            items = []
            for b in beams:
                it = Dataset()
                it.ReferencedBeamNumber = b
                items.append(it)
            fg.ReferencedBeamSequence = Sequence(items)
            ref.ReferencedFractionGroupSequence = Sequence([fg])
        ds.ReferencedRTPlanSequence = Sequence([ref])
    ds.PixelData = np.round(dose / scaling).astype("<u4").tobytes()
    p = folder / name
    ds.save_as(p, enforce_file_format=True)
    return p


def write_rtplan(folder: Path, fractions=(30,), rx=60.0, beams=(1, 2), ion=False, radiation="PHOTON") -> tuple[Path, str]:
    ds = _base(RT_ION_PLAN if ion else RT_PLAN, "RTPLAN")
    ds.RTPlanLabel = "SYN"
    ref = Dataset()
    ref.DoseReferenceNumber, ref.DoseReferenceStructureType, ref.DoseReferenceType = 1, "SITE", "TARGET"
    ref.TargetPrescriptionDose = rx
    ds.DoseReferenceSequence = Sequence([ref])
    fgs = []
    for g, n in enumerate(fractions, start=1):
        fg = Dataset()
        fg.FractionGroupNumber, fg.NumberOfFractionsPlanned = g, n
        fg.ReferencedBeamSequence = Sequence([])
        fgs.append(fg)
    ds.FractionGroupSequence = Sequence(fgs)
    items = []
    for b in beams:
        it = Dataset()
        it.BeamNumber, it.RadiationType, it.TreatmentDeliveryType = b, radiation, "TREATMENT"
        items.append(it)
    setattr(ds, "IonBeamSequence" if ion else "BeamSequence", Sequence(items))
    p = folder / "plan.dcm"
    ds.save_as(p, enforce_file_format=True)
    return p, ds.SOPInstanceUID


def box(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


@pytest.fixture
def basic(tmp_path):
    """CT (6 slices), RTSTRUCT with a box ROI and an empty ROI, PLAN dose, RTPLAN (30 fx)."""
    write_ct(tmp_path)
    write_rtstruct(tmp_path, {"BODY": [(z, box(-6.5, -7.5, 5.5, 6.5)) for z in (-4, -2, 0, 2, 4, 6)],
                              "Brain Stem": [(z, box(-2.5, -2.5, 2.5, 2.5)) for z in (0, 2)], "Empty": []},
                   types={"BODY": "EXTERNAL"})
    _, uid = write_rtplan(tmp_path)
    write_rtdose(tmp_path, plan_uid=uid)
    (tmp_path / "README.txt").write_text("not DICOM")
    return tmp_path


def check_ct_and_dose(case, dose_factor=1.0):
    g = case.grid
    zc, yc, xc = np.meshgrid(*g.axis_coordinates_mm(), indexing="ij")
    np.testing.assert_allclose(case.ct_hu, hu_field(xc, yc, zc), atol=1e-3)
    np.testing.assert_allclose(case.prior_dose_gy, dose_factor * dose_field(xc, yc, zc), atol=2e-3 * dose_factor)


def test_basic_import_is_exact(basic):
    case = load_case(basic, interval_months=18)
    assert case.grid.shape == (6, 10, 12) and case.grid.spacing_mm == (2.0, 1.5, 1.0)
    assert case.grid.origin_mm == (-4.0, -7.0, -6.0)
    check_ct_and_dose(case)
    assert set(case.structures) == {"External", "Brainstem"}
    assert case.structures["External"].role == "external"
    # Brainstem box [-2.5, 2.5] mm x [-2.5, 2.5] mm on planes 0 and 2 (half caps: 0..2 mm): slices z = 0, 2
    bs = case["Brainstem"].mask
    assert list(np.flatnonzero(bs.any(axis=(1, 2)))) == [2, 3]
    # y centres -7 + 1.5 j in [-2.5, 2.5): -2.5 (on the lower edge: inside), -1, 0.5, 2; x centres -6 + i: -2..2;
    # with the default half end caps both planes are end planes: each slice keeps half its 20 voxels
    assert bs.sum() == 2 * 4 * 5 // 2
    assert case.source["end_caps"] == "half"
    full = load_case(basic, interval_months=18, end_caps="full")
    assert full["Brainstem"].mask.sum() == 2 * 4 * 5 and full.source["end_caps"] == "full"
    assert case.prior == case.prior.__class__(30, 18.0, "photon", 60.0, case.prior.description)
    src = case.source
    assert src["kind"] == "dicom" and src["empty_rois"] == ["Empty"]
    assert src["ct_slice_z_mm"] == [-4.0, -2.0, 0.0, 2.0, 4.0, 6.0] and len(src["ct_sop_instance_uids"]) == 6
    assert any("README.txt" in n for n in src["notes"])


@pytest.mark.parametrize("orientation,ipp_xy,transposed", [
    ((-1, 0, 0, 0, -1, 0), (5.0, 6.5), False),   # prone: rows and columns reversed
    ((0, 1, 0, 1, 0, 0), (-6.0, -7.0), True),    # decubitus: rows run along x
    ((0, -1, 0, -1, 0, 0), (3.0, 9.5), True),
])
def test_reoriented_ct_lands_on_ascending_axes(tmp_path, orientation, ipp_xy, transposed):
    write_ct(tmp_path, orientation=orientation, ipp_xy=ipp_xy, ny=10, nx=12, dr=1.5 if not transposed else 1.0,
             dc=1.0 if not transposed else 1.5)
    write_rtdose(tmp_path, ny=11)
    case = load_case(tmp_path, interval_months=6, prior_fractions=30)
    check_ct_and_dose(case)
    assert any("reordered" in n for n in case.source["notes"])


@pytest.mark.parametrize("offsets,descending", [("relative", False), ("absolute", False), ("relative", True),
                                                ("absolute", True)])
def test_grid_frame_offset_forms(tmp_path, offsets, descending):
    write_ct(tmp_path)
    write_rtdose(tmp_path, offsets=offsets, descending=descending)
    check_ct_and_dose(load_case(tmp_path, interval_months=6, prior_fractions=30))


def test_beam_doses_are_summed_and_fraction_dose_multiplied(tmp_path):
    write_ct(tmp_path)
    _, uid = write_rtplan(tmp_path, fractions=(25,), beams=(1, 2))
    write_rtdose(tmp_path, "b1.dcm", summation="BEAM", factor=0.25, plan_uid=uid, beams=(1,))
    write_rtdose(tmp_path, "b2.dcm", summation="BEAM", factor=0.75, plan_uid=uid, beams=(2,))
    case = load_case(tmp_path, interval_months=6)
    check_ct_and_dose(case)
    assert case.prior.n_fractions == 25
    # a missing beam dose is refused, naming the beam
    (tmp_path / "b2.dcm").unlink()
    with pytest.raises(MissingDataError, match=r"beam\(s\) \[2\]"):
        load_case(tmp_path, interval_months=6)
    (tmp_path / "b1.dcm").unlink()
    write_rtdose(tmp_path, "fx.dcm", summation="FRACTION", factor=1 / 25, plan_uid=uid, scaling=1e-6)
    case = load_case(tmp_path, interval_months=6)
    check_ct_and_dose(case)
    assert any("FRACTION dose multiplied by the 25" in n for n in case.source["notes"])


def test_relative_units_need_a_reference(tmp_path):
    write_ct(tmp_path)
    write_rtdose(tmp_path, units="RELATIVE", factor=0.02)
    with pytest.raises(UnsupportedDoseError, match="RELATIVE"):
        load_case(tmp_path, interval_months=6, prior_fractions=30)
    check_ct_and_dose(load_case(tmp_path, interval_months=6, prior_fractions=30, relative_dose_reference_gy=50.0))


def test_effective_dose_refused_for_photons_accepted_for_protons(tmp_path):
    write_ct(tmp_path)
    write_rtdose(tmp_path, dose_type="EFFECTIVE")
    with pytest.raises(UnsupportedDoseError, match="EFFECTIVE"):
        load_case(tmp_path, interval_months=6, prior_fractions=30)
    case = load_case(tmp_path, interval_months=6, prior_fractions=30, prior_modality="proton")
    check_ct_and_dose(case)
    assert any("RBE" in n for n in case.source["notes"])
    # an RT Ion Plan states the modality
    _, uid = write_rtplan(tmp_path, fractions=(33,), ion=True, radiation="PROTON")
    case = load_case(tmp_path, interval_months=6)
    assert case.prior.modality == "proton" and case.prior.n_fractions == 33


def test_prior_course_is_never_guessed(tmp_path):
    write_ct(tmp_path)
    write_rtdose(tmp_path)
    with pytest.raises(PriorCourseError, match="--prior-fractions"):
        load_case(tmp_path, interval_months=6)
    with pytest.raises(PriorCourseError, match="--interval-months"):
        load_case(tmp_path, prior_fractions=30)
    write_rtplan(tmp_path, fractions=(25, 5))
    with pytest.raises(PriorCourseError, match=r"fraction groups"):
        load_case(tmp_path, interval_months=6)
    case = load_case(tmp_path, interval_months=6, prior_fractions=30)
    assert case.prior.n_fractions == 30


def test_dose_grid_not_covering_a_structure_warns_with_the_fraction(tmp_path):
    write_ct(tmp_path)
    # dose grid x centres -7.5 .. -1.5 mm (covering up to -0.5 mm): of the ROI's x centres -2 .. 2 mm
    # only -2 and -1 are covered: 60 % of the ROI lies outside
    write_rtdose(tmp_path, nx=4, x0=-7.5)
    write_rtstruct(tmp_path, {"Cord": [(z, box(-2.5, -2.5, 2.5, 2.5)) for z in (0, 2)]})
    with pytest.warns(DoseCoverageWarning, match=r"SpinalCord.*60\.0 %"):
        case = load_case(tmp_path, interval_months=6, prior_fractions=30)
    assert case.prior_dose_gy[:, :, case.grid.axis_coordinates_mm()[2] > -0.49].max() == 0.0


def test_non_uniform_slices_are_resampled_and_stated(tmp_path):
    z = (-4.0, -2.0, 0.0, 2.0, 5.0, 8.0)
    write_ct(tmp_path, z=z, thickness=[2, 2, 2, 2, 3, 3])
    write_rtdose(tmp_path, nz=9)
    case = load_case(tmp_path, interval_months=6, prior_fractions=30)
    assert case.grid.spacing_mm[0] == 2.0 and case.grid.shape[0] == 7  # -4 .. 8 in 2 mm
    check_ct_and_dose(case)  # HU linear in z: linear interpolation between slices is exact
    assert any("resampled linearly in z" in n for n in case.source["notes"])


@pytest.mark.parametrize("kwargs,error,match", [
    ({"z": (-4.0, -2.0, 0.0, 4.0, 6.0)}, SliceGapError, "missing"),
    ({"z": (-4.0, -2.0, 0.0, 0.0, 2.0)}, GeometryError, "same position"),
    ({"tilt": 12.0}, GeometryError, "Tilt"),
    ({"orientation": (1, 0, 0, 0, 0.996, 0.087)}, GeometryError, "oblique"),
    ({"orientation": (0, 1, 0, 0, 0, -1)}, GeometryError, "not axial"),
])
def test_geometry_refusals(tmp_path, kwargs, error, match):
    write_ct(tmp_path, **kwargs)
    write_rtdose(tmp_path)
    with pytest.raises(error, match=match):
        load_case(tmp_path, interval_months=6, prior_fractions=30)


def test_mixed_patients_and_two_plan_doses_are_refused(tmp_path):
    write_ct(tmp_path)
    write_rtdose(tmp_path, "a.dcm")
    write_rtdose(tmp_path, "b.dcm")
    with pytest.raises(MixedInputError, match="plan-level RTDOSE"):
        load_case(tmp_path, interval_months=6, prior_fractions=30)
    (tmp_path / "b.dcm").unlink()
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    ds.PatientID = "SOMEONE_ELSE"
    ds.save_as(tmp_path / "a.dcm")
    with pytest.raises(MixedInputError, match="SOMEONE_ELSE"):
        load_case(tmp_path, interval_months=6, prior_fractions=30)


def test_no_ct_needs_the_dose_grid_and_an_assumed_hu(tmp_path):
    write_rtdose(tmp_path)
    with pytest.raises(MissingDataError, match="no CT series"):
        load_case(tmp_path, interval_months=6, prior_fractions=30)
    with pytest.raises(MissingDataError, match="assume"):
        load_case(tmp_path, interval_months=6, prior_fractions=30, grid="dose")
    case = load_case(tmp_path, interval_months=6, prior_fractions=30, grid="dose", assume_hu=0.0)
    assert case.grid.shape == (8, 9, 10) and np.all(case.ct_hu == 0)
    zc, yc, xc = np.meshgrid(*case.grid.axis_coordinates_mm(), indexing="ij")
    np.testing.assert_allclose(case.prior_dose_gy, dose_field(xc, yc, zc), atol=2e-3)


def test_voxel_resampling_option(basic):
    case = load_case(basic, interval_months=6, voxel_mm=(2.0, 3.0, 2.0))
    assert case.grid.spacing_mm == (2.0, 3.0, 2.0) and case.grid.origin_mm == (-4.0, -7.0, -6.0)
    check_ct_and_dose(case)


def test_structure_map_and_name_collisions(basic):
    write_rtstruct(basic, {"GTV_recur": [(0.0, box(-2, -2, 2, 2))], "BRSTEM": [(2.0, box(-2, -2, 2, 2))],
                           "Brain Stem": [(4.0, box(-2, -2, 2, 2))]})
    with pytest.raises(ValueError, match="both map to 'Brainstem'"):
        load_case(basic, interval_months=6)
    write_rtstruct(basic, {"GTV_recur": [(0.0, box(-2, -2, 2, 2))], "BRSTEM": [(2.0, box(-2, -2, 2, 2))]})
    case = load_case(basic, interval_months=6, structure_map={"rGTV": "GTV_recur"})
    assert set(case.structures) == {"rGTV", "Brainstem"} and case["rGTV"].role == "target"


@pytest.mark.parametrize("encoding,space", [("raw", "left-posterior-superior"), ("gzip", "left-posterior-superior"),
                                            ("gzip", "right-anterior-superior")])
def test_nrrd_reader_geometry_and_values(tmp_path, encoding, space):
    import gzip

    from tps_adapters.dicom.nrrd import read_nrrd

    nx, ny, nz = 4, 3, 2
    data = np.arange(nx * ny * nz, dtype="<f4")  # x fastest
    payload = data.tobytes() if encoding == "raw" else gzip.compress(data.tobytes())
    header = (f"NRRD0004\ntype: float\ndimension: 3\nspace: {space}\nsizes: {nx} {ny} {nz}\n"
              "space directions: (2,0,0) (0,3,0) (0,0,5)\nkinds: domain domain domain\nendian: little\n"
              f"encoding: {encoding}\nspace origin: (10,20,30)\n\n")
    p = tmp_path / "d.nrrd"
    p.write_bytes(header.encode() + payload)
    volume, grid = read_nrrd(p)
    assert grid.shape == (nz, ny, nx) and grid.spacing_mm == (5.0, 3.0, 2.0)
    expected = data.reshape(nz, ny, nx)
    if space.startswith("left"):
        assert grid.origin_mm == (30.0, 20.0, 10.0)
        np.testing.assert_array_equal(volume, expected)
    else:  # RAS (10, 20) is LPS (-10, -20); x and y run towards smaller LPS values in the file
        assert grid.origin_mm == (30.0, -20.0 - 3.0 * (ny - 1), -10.0 - 2.0 * (nx - 1))
        np.testing.assert_array_equal(volume, expected[:, ::-1, ::-1])
