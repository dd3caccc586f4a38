"""Dose mapping, the conservative margin and REG parsing on synthetic data (no real data needed)."""
from __future__ import annotations

import numpy as np
import pytest
from pydicom.uid import generate_uid

from registration_data import rotation_z, write_reg
from reirrad_opt.geometry import Grid
from tps_adapters.registration import (Registration, RegistrationError, affine_transform, identity_registration,
                                       map_to_grid, max_within_margin, read_registration, reg_registration)
from tps_adapters.registration.result import euler_xyz_deg


def _rigid(matrix):
    return Registration("rigid", matrix, affine_transform(matrix))


def test_a_linear_dose_maps_exactly_through_a_rigid_transform():
    # trilinear interpolation reproduces a linear field exactly: the mapped dose at x must be the
    # linear function evaluated at the transformed point M x
    src = Grid((20, 24, 26), (3.0, 2.5, 2.0), (-30.0, -30.0, -25.0))
    z, y, x = np.meshgrid(*src.axis_coordinates_mm(), indexing="ij")
    coef = np.array([0.1, -0.05, 0.2])  # Gy per mm along x, y, z
    dose = (20.0 + coef[0] * x + coef[1] * y + coef[2] * z).astype(np.float64)
    m = np.eye(4)
    m[:3, :3] = rotation_z(5.0)
    m[:3, 3] = (2.0, -3.0, 1.5)
    dst = Grid((8, 10, 12), (4.0, 3.0, 3.0), (-12.0, -12.0, -12.0))
    mapped, covered = map_to_grid(dose, src, _rigid(m), dst)
    zz, yy, xx = np.meshgrid(*dst.axis_coordinates_mm(), indexing="ij")
    pts = np.stack([xx, yy, zz], axis=-1) @ m[:3, :3].T + m[:3, 3]
    expected = 20.0 + pts @ coef
    assert covered.all()
    assert np.allclose(mapped, expected, atol=1e-9)


def test_points_beyond_the_prior_dose_grid_are_flagged_and_get_zero():
    src = Grid((5, 5, 5), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))  # centres 0..8 mm, covers -1..9 mm
    dose = np.full(src.shape, 10.0)
    m = np.eye(4)
    m[0, 3] = 6.0  # new x -> prior x + 6 mm
    dst = Grid((1, 1, 6), (2.0, 2.0, 1.0), (4.0, 4.0, 0.0))  # new x = 0..5 -> prior x = 6..11
    mapped, covered = map_to_grid(dose, src, _rigid(m), dst)
    assert covered[0, 0].tolist() == [True, True, True, True, False, False]  # 6, 7, 8, 9 | 10, 11
    assert mapped[0, 0].tolist() == [10.0, 10.0, 10.0, 10.0, 0.0, 0.0]
    same, cov = map_to_grid(dose, src, identity_registration("1.2", "1.2"), src)
    assert cov.all() and np.array_equal(same, dose)


def test_margin_is_the_maximum_within_the_radius_on_an_anisotropic_grid():
    grid = Grid((9, 11, 11), (3.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    dose = np.zeros(grid.shape)
    dose[4, 5, 5] = 50.0
    out = max_within_margin(dose, grid, 2.5)
    # brute force: voxels whose centre is within 2.5 mm of the hot voxel's centre
    zz, yy, xx = np.meshgrid(*(np.arange(n) * s for n, s in zip(grid.shape, grid.spacing_mm)), indexing="ij")
    near = (zz - 12.0) ** 2 + (yy - 5.0) ** 2 + (xx - 5.0) ** 2 <= 2.5 ** 2
    assert np.array_equal(out == 50.0, near)
    assert near[4].sum() == 21 and not near[3].any()  # 2.5 mm reaches no neighbouring 3 mm slice
    assert np.array_equal(max_within_margin(dose, grid, 0.0), dose)
    with pytest.raises(ValueError, match="margin"):
        max_within_margin(dose, grid, -1.0)


def test_reg_file_gives_the_transform_between_its_frames(tmp_path):
    new, prior = generate_uid(), generate_uid()
    m = np.eye(4)
    m[:3, :3] = rotation_z(-7.0)
    m[:3, 3] = (10.0, 5.0, -2.0)  # new -> prior
    write_reg(tmp_path / "reg.dcm", new, prior, np.linalg.inv(m), "P1")
    reg = read_registration(tmp_path / "reg.dcm")
    assert reg.links(new, prior) and reg.links(prior, new) and not reg.links(new, generate_uid())
    r = reg_registration(reg, new, prior)
    assert np.allclose(r.matrix, m, atol=1e-8)
    assert r.rotation_deg[2] == pytest.approx(-7.0) and r.translation_mm == pytest.approx((10.0, 5.0, -2.0))
    assert np.allclose(reg.new_to_prior(prior, new), np.linalg.inv(m), atol=1e-8)
    other = generate_uid()
    with pytest.raises(RegistrationError, match=r"reg\.dcm.*links the frames of reference.*not the new CT"):
        reg.new_to_prior(other, prior)


def test_reg_with_a_non_rigid_matrix_is_refused(tmp_path):
    m = np.diag([1.2, 1.0, 1.0, 1.0])
    write_reg(tmp_path / "scaled.dcm", generate_uid(), generate_uid(), m, "P1")
    with pytest.raises(RegistrationError, match="scaled.dcm.*not a rigid rotation"):
        read_registration(tmp_path / "scaled.dcm")


def test_rotation_angles_of_known_matrices():
    assert euler_xyz_deg(rotation_z(4.0)) == pytest.approx((0.0, 0.0, 4.0))
    c, s = np.cos(np.radians(3.0)), np.sin(np.radians(3.0))
    rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    assert euler_xyz_deg(rx) == pytest.approx((3.0, 0.0, 0.0))
    m = np.eye(4)
    m[:3, :3] = rotation_z(4.0) @ rx
    assert _rigid(m).rotation_angle_deg == pytest.approx(np.degrees(np.arccos((np.trace(m[:3, :3]) - 1) / 2)))


def test_deformable_spatial_registration_is_recognised_and_refused(tmp_path):
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian

    new, prior = generate_uid(), generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.66.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(tmp_path / "dsr.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID, ds.FrameOfReferenceUID = "REG", "P1", new
    item = Dataset()
    item.SourceFrameOfReferenceUID = prior
    ds.DeformableRegistrationSequence = Sequence([item])
    ds.save_as(tmp_path / "dsr.dcm", enforce_file_format=True)
    reg = read_registration(tmp_path / "dsr.dcm")
    assert reg.deformable and reg.links(new, prior)
    with pytest.raises(RegistrationError, match=r"dsr\.dcm: a Deformable Spatial Registration.*not supported"):
        reg.new_to_prior(new, prior)
