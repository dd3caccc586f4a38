"""The result every registration method returns: how points of the new CT map to the prior CT."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

METHODS = ("identity", "reg", "rigid", "deformable")


@dataclass(frozen=True)
class Registration:
    """A mapping from the new course's frame of reference to the prior course's.

    Attributes:
        method: 'identity', 'reg' (a DICOM Spatial Registration object), 'rigid' or 'deformable'.
        matrix: 4 x 4 homogeneous matrix taking a point of the new CT (LPS mm) to the prior CT
            (LPS mm); for 'deformable' the rigid part that initialised it.
        transform: the same mapping as a SimpleITK transform (new -> prior points); a composite
            with the B-spline for 'deformable'.
        new_frame_uid, prior_frame_uid: the two Frame of Reference UIDs.
        metric: name of the similarity metric ('' when none was computed).
        metric_value: its final value (Mattes mutual information: more negative is better).
        source: where the transform comes from (REG file name, 'SimpleITK 2.5.7', ...).
        details: method-specific facts (iterations, region box in mm, Jacobian statistics, ...).
    """

    method: str
    matrix: np.ndarray
    transform: sitk.Transform
    new_frame_uid: str = ""
    prior_frame_uid: str = ""
    metric: str = ""
    metric_value: float | None = None
    source: str = ""
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"registration method must be one of {METHODS}, got {self.method!r}")
        m = np.asarray(self.matrix, dtype=float)
        if m.shape != (4, 4) or not np.allclose(m[3], (0, 0, 0, 1)):
            raise ValueError(f"registration matrix must be 4 x 4 with last row (0, 0, 0, 1), got {m.tolist()}")
        object.__setattr__(self, "matrix", m)

    @property
    def translation_mm(self) -> tuple[float, float, float]:
        """Translation (x, y, z) in mm of the matrix part: the prior point of the new origin."""
        return tuple(float(v) for v in self.matrix[:3, 3])

    @property
    def rotation_deg(self) -> tuple[float, float, float]:
        """Rotation of the matrix part as angles (about x, y, z) in degrees, R = Rz Ry Rx."""
        return euler_xyz_deg(self.matrix[:3, :3])

    @property
    def rotation_angle_deg(self) -> float:
        """Total rotation angle (degrees) of the matrix part, whatever its axis."""
        r = self.matrix[:3, :3]
        return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))

    def summary(self) -> str:
        """One readable line: method, frames, rotation (degrees), translation (mm), metric."""
        if self.method == "identity":
            return (f"identity (no registration): the prior dose's frame of reference {self.prior_frame_uid or '?'} "
                    f"is taken as the new CT's {self.new_frame_uid or '?'}")
        rx, ry, rz = self.rotation_deg
        tx, ty, tz = self.translation_mm
        what = {"reg": f"DICOM Spatial Registration {self.source}", "rigid": f"rigid registration ({self.source})",
                "deformable": f"deformable registration ({self.source}), initialised by a rigid one"}[self.method]
        text = (f"{what}: new CT frame {self.new_frame_uid} -> prior frame {self.prior_frame_uid}; rotation "
                f"({rx:.2f}, {ry:.2f}, {rz:.2f}) degrees about (x, y, z), translation ({tx:.1f}, {ty:.1f}, {tz:.1f}) mm")
        if self.method == "deformable":
            text += " (rigid part)"
        if self.metric:
            text += f"; {self.metric} {self.metric_value:.4f}"
        jac = self.details.get("jacobian")
        if jac:
            text += (f"; Jacobian determinant {jac['min']:.3f} to {jac['max']:.3f} (mean {jac['mean']:.3f}), "
                     f"{jac['folded_fraction'] * 100:.3f} % folded")
        return text

    def record(self) -> dict:
        """JSON-ready facts for case.json (``source['prior_mapping']['registration']``)."""
        out = {"method": self.method, "new_frame_of_reference_uid": self.new_frame_uid,
               "prior_frame_of_reference_uid": self.prior_frame_uid,
               "matrix_new_to_prior": [[round(float(v), 9) for v in row] for row in self.matrix],
               "rotation_deg_xyz": [round(v, 4) for v in self.rotation_deg],
               "translation_mm_xyz": [round(v, 4) for v in self.translation_mm],
               "metric": self.metric, "metric_value": self.metric_value, "source": self.source}
        out.update(self.details)
        return out


def euler_xyz_deg(r: np.ndarray) -> tuple[float, float, float]:
    """Angles (about x, y, z; degrees) of a rotation matrix R = Rz Ry Rx."""
    ry = np.arcsin(-np.clip(r[2, 0], -1.0, 1.0))
    rx = np.arctan2(r[2, 1], r[2, 2])
    rz = np.arctan2(r[1, 0], r[0, 0])
    return tuple(float(np.degrees(a)) for a in (rx, ry, rz))


def affine_transform(matrix: np.ndarray) -> sitk.Transform:
    """A 4 x 4 homogeneous matrix (points in LPS mm) as a SimpleITK affine transform."""
    m = np.asarray(matrix, dtype=float)
    t = sitk.AffineTransform(3)
    t.SetMatrix(tuple(m[:3, :3].ravel()))
    t.SetTranslation(tuple(m[:3, 3]))
    return t


def matrix_of(transform: sitk.Transform) -> np.ndarray:
    """The 4 x 4 homogeneous matrix of a SimpleITK matrix-offset transform (Euler, affine, ...)."""
    inner = transform
    if inner.GetName() == "CompositeTransform":
        inner = sitk.CompositeTransform(inner).GetNthTransform(0)
    e = sitk.Euler3DTransform() if inner.GetName() == "Euler3DTransform" else None
    if e is not None:
        e = sitk.Euler3DTransform(inner)
        m3, c, tr = np.array(e.GetMatrix()).reshape(3, 3), np.array(e.GetCenter()), np.array(e.GetTranslation())
    else:
        a = sitk.AffineTransform(inner)
        m3, c, tr = np.array(a.GetMatrix()).reshape(3, 3), np.array(a.GetCenter()), np.array(a.GetTranslation())
    out = np.eye(4)
    out[:3, :3] = m3
    out[:3, 3] = tr + c - m3 @ c  # ITK: T(x) = M (x - c) + c + t
    return out


def identity_registration(new_frame_uid: str, prior_frame_uid: str) -> Registration:
    """The prior frame taken as the new one (no transform)."""
    return Registration("identity", np.eye(4), sitk.Transform(3, sitk.sitkIdentity), new_frame_uid, prior_frame_uid,
                        source="none")
