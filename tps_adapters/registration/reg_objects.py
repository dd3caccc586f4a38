"""DICOM Spatial Registration objects (REG) -> the rigid mapping between two frames of reference.

A Spatial Registration (SOP class 1.2.840.10008.5.1.4.1.1.66.1) has its own Frame of Reference
UID (0020,0052), the registration's coordinate system, and a Registration Sequence (0070,0308)
with one item per registered frame: its Frame of Reference UID and a Frame of Reference
Transformation Matrix (3006,00C6; 16 values, row-major) that takes a point of that frame into
the registration's system (PS3.3 C.20.2). Two items A and B thus link the frames:
``x_B = M_B^-1 M_A x_A``. Only RIGID (and RIGID_SCALE with unit scale) matrices are used.

Deformable Spatial Registration objects (1.2.840.10008.5.1.4.1.1.66.3) are recognised and refused
with a clear message: their deformation grids are not read.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from tps_adapters.dicom.values import get_str

from .errors import RegistrationError
from .result import Registration, affine_transform

SPATIAL_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.1"
DEFORMABLE_REGISTRATION = "1.2.840.10008.5.1.4.1.1.66.3"
REG_SOP_CLASSES = (SPATIAL_REGISTRATION, DEFORMABLE_REGISTRATION)
#: largest deviation of R^T R from the identity accepted as a rigid rotation
ORTHONORMAL_TOLERANCE = 1e-4


@dataclass(frozen=True)
class SpatialRegistration:
    """One REG file: frame UID -> 4 x 4 matrix into the registration's coordinate system.

    Attributes:
        path: the file.
        frame_uid: the REG's own Frame of Reference UID.
        matrices: registered Frame of Reference UID -> matrix (LPS mm, that frame -> REG frame).
        deformable: True for a Deformable Spatial Registration (its matrices are not used).
        patient_id: Patient ID of the REG.
    """

    path: Path
    frame_uid: str
    matrices: dict
    deformable: bool = False
    patient_id: str = ""

    def links(self, new_uid: str, prior_uid: str) -> bool:
        """True when the REG holds both frames (its own frame counts as the identity)."""
        frames = set(self.matrices) | {self.frame_uid}
        return new_uid in frames and prior_uid in frames

    def new_to_prior(self, new_uid: str, prior_uid: str) -> np.ndarray:
        """4 x 4 matrix taking a point of ``new_uid`` (LPS mm) to ``prior_uid``; RegistrationError
        when the REG does not link them."""
        if self.deformable:
            raise RegistrationError(f"{self.path}: a Deformable Spatial Registration object; its deformation grid is "
                                    "not supported. Export a rigid Spatial Registration, or let the import register "
                                    "the CTs (--registration rigid or deformable)")
        if not self.links(new_uid, prior_uid):
            held = sorted(set(self.matrices) | {self.frame_uid})
            raise RegistrationError(f"{self.path}: this Spatial Registration links the frames of reference {held}, not "
                                    f"the new CT's {new_uid} and the prior CT's {prior_uid}; it belongs to other "
                                    "series. Give the REG of these two series, or another --registration")
        a = self.matrices.get(new_uid, np.eye(4))
        b = self.matrices.get(prior_uid, np.eye(4))
        return np.linalg.solve(b, a)


def _matrix(item, path: Path) -> np.ndarray:
    frame = get_str(item, "FrameOfReferenceUID")
    seqs = item.get("MatrixRegistrationSequence", []) or []
    if not seqs:
        raise RegistrationError(f"{path}: Registration Sequence item for frame {frame} has no Matrix Registration "
                                "Sequence (0070,0309)")
    total = np.eye(4)
    for mseq in seqs:
        for m in mseq.get("MatrixSequence", []) or []:
            kind = get_str(m, "FrameOfReferenceTransformationMatrixType").upper()
            values = m.get("FrameOfReferenceTransformationMatrix")
            if values is None or len(values) != 16:
                raise RegistrationError(f"{path}: Frame of Reference Transformation Matrix (3006,00C6) of frame {frame} "
                                        f"must hold 16 numbers, got {values!r}")
            mat = np.asarray([float(v) for v in values]).reshape(4, 4)
            if not np.all(np.isfinite(mat)) or not np.allclose(mat[3], (0, 0, 0, 1), atol=1e-6):
                raise RegistrationError(f"{path}: the transformation matrix of frame {frame} is not a homogeneous "
                                        f"matrix (last row {mat[3].tolist()}, expected 0 0 0 1)")
            r = mat[:3, :3]
            if kind not in ("RIGID", "RIGID_SCALE", "") or \
                    np.max(np.abs(r.T @ r - np.eye(3))) > ORTHONORMAL_TOLERANCE or np.linalg.det(r) <= 0:
                raise RegistrationError(f"{path}: the transformation matrix of frame {frame} (type {kind or 'unset'}) is "
                                        "not a rigid rotation and translation; only RIGID registrations are used for a "
                                        "prior dose")
            total = mat @ total
    return total


def read_registration(path: str | os.PathLike) -> SpatialRegistration:
    """Read one REG file; RegistrationError names the file and what is wrong."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises several kinds on a broken file
        raise RegistrationError(f"{path}: cannot be read as DICOM ({exc})") from exc
    sop = get_str(ds, "SOPClassUID")
    if sop not in REG_SOP_CLASSES:
        raise RegistrationError(f"{path}: SOP class {sop!r} is not a Spatial Registration "
                                f"({SPATIAL_REGISTRATION}) or Deformable Spatial Registration ({DEFORMABLE_REGISTRATION})")
    frame = get_str(ds, "FrameOfReferenceUID")
    if sop == DEFORMABLE_REGISTRATION:
        frames = {get_str(i, "SourceFrameOfReferenceUID"): np.eye(4)
                  for i in ds.get("DeformableRegistrationSequence", []) or []}
        return SpatialRegistration(path, frame, frames, deformable=True, patient_id=get_str(ds, "PatientID"))
    items = ds.get("RegistrationSequence", []) or []
    if not items:
        raise RegistrationError(f"{path}: no Registration Sequence (0070,0308); nothing links two frames of reference")
    matrices = {}
    for item in items:
        uid = get_str(item, "FrameOfReferenceUID")
        if not uid:
            raise RegistrationError(f"{path}: a Registration Sequence item has no Frame of Reference UID")
        matrices[uid] = _matrix(item, path)
    return SpatialRegistration(path, frame, matrices, patient_id=get_str(ds, "PatientID"))


def find_registrations(paths) -> list[SpatialRegistration]:
    """The REG objects among ``paths`` (files that are not REG are skipped)."""
    found = []
    for p in paths:
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:  # not DICOM: not a registration either
            continue
        if get_str(ds, "SOPClassUID") in REG_SOP_CLASSES:
            found.append(read_registration(p))
    return found


def reg_registration(reg: SpatialRegistration, new_uid: str, prior_uid: str) -> Registration:
    """The :class:`Registration` (method 'reg') a REG gives between the two frames."""
    matrix = reg.new_to_prior(new_uid, prior_uid)
    return Registration("reg", matrix, affine_transform(matrix), new_uid, prior_uid, source=reg.path.name,
                        details={"reg_file": str(reg.path), "reg_frame_of_reference_uid": reg.frame_uid})
