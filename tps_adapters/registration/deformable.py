"""Deformable registration (SimpleITK B-spline, Mattes mutual information) initialised by a rigid
registration, and the check of its deformation (Jacobian determinant).

Deformable mapping of a prior course's dose is uncertain (tissue that shrank or was resected has
no true correspondence; dose does not deform with tissue in every case): the result always
carries a warning, and the rigid part is kept for the record.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .errors import RegistrationError
from .result import Registration, affine_transform
from .rigid import box_mask, mutual_information_method, prepare

DEFORMABLE_WARNING = ("deformable registration: mapping a prior course's dose through a deformation is uncertain "
                      "(anatomy changed, tissue lost or gained has no true correspondence); review the QA figure and "
                      "consider a dose margin (--prior-dose-margin-mm) or the rigid mapping")


@dataclass(frozen=True)
class DeformableSettings:
    """Settings of :func:`register_deformable`.

    Attributes:
        algorithm: 'demons' (default: symmetric-forces demons on the CT numbers, for two CTs) or
            'bspline' (B-spline with Mattes mutual information).
        working_voxel_mm: isotropic voxel (mm) of the images registered.
        demons_iterations: demons iterations per pyramid level.
        demons_smoothing_mm: Gaussian smoothing (mm) of the demons displacement field (its stiffness).
        control_point_spacing_mm: B-spline control-point spacing (mm) at the finest level.
        shrink_factors, smoothing_sigmas_mm: pyramid levels (coarsest first).
        histogram_bins, sampling_fraction, iterations, seed: as for the rigid registration.
    """

    algorithm: str = "demons"
    working_voxel_mm: float = 3.0
    demons_iterations: int = 60
    demons_smoothing_mm: float = 6.0
    control_point_spacing_mm: float = 40.0
    shrink_factors: tuple[int, ...] = (2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (3.0, 0.0)
    histogram_bins: int = 50
    sampling_fraction: float = 0.2
    iterations: int = 100
    seed: int = 12345

    def __post_init__(self) -> None:
        if self.algorithm not in ("demons", "bspline"):
            raise ValueError(f"deformable algorithm must be 'demons' or 'bspline', got {self.algorithm!r}")


def jacobian_statistics(transform: sitk.Transform, reference: sitk.Image, mask: sitk.Image | None = None) -> dict:
    """Statistics of the Jacobian determinant of ``transform`` on the grid of ``reference``
    (within ``mask`` if given): min, max, mean, and the fraction of voxels <= 0 (folded)."""
    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, reference.GetSize(),
                                              reference.GetOrigin(), reference.GetSpacing(), reference.GetDirection())
    jac = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(field))
    if mask is not None:
        jac = jac[sitk.GetArrayFromImage(mask).astype(bool)]
    return {"min": float(jac.min()), "max": float(jac.max()), "mean": float(jac.mean()),
            "folded_fraction": float(np.mean(jac <= 0.0)), "voxels": int(jac.size)}


def register_deformable(fixed_ct: sitk.Image, moving_ct: sitk.Image, rigid: Registration, *,
                        settings: DeformableSettings = DeformableSettings(), region_xyz_mm=None) -> Registration:
    """Deformation (new -> prior points, LPS mm) composed after ``rigid``: the new point goes first
    through the deformation, then through the rigid transform. RegistrationError when the
    deformation folds (a Jacobian determinant <= 0 within the region)."""
    fixed = prepare(fixed_ct, settings.working_voxel_mm)
    moving = prepare(moving_ct, settings.working_voxel_mm)
    if settings.algorithm == "demons":
        return _demons(fixed, moving, rigid, settings, box_mask(fixed, region_xyz_mm))
    extent = np.array(fixed.GetSize()) * np.array(fixed.GetSpacing())
    mesh = [max(1, int(round(e / settings.control_point_spacing_mm))) for e in extent]
    bspline = sitk.BSplineTransformInitializer(fixed, mesh, order=3)
    method = mutual_information_method(fixed, region_xyz_mm, settings)
    method.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=settings.iterations,
                                maximumNumberOfCorrections=5, maximumNumberOfFunctionEvaluations=4 * settings.iterations)
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    rigid_t = affine_transform(rigid.matrix)
    method.SetMovingInitialTransform(rigid_t)
    method.SetInitialTransform(bspline, inPlace=True)
    try:
        method.Execute(fixed, moving)
    except RuntimeError as exc:
        raise RegistrationError(f"deformable registration of the prior CT onto the new CT failed: {exc}") from exc
    # a point x of the new CT goes first through the B-spline, then through the rigid transform
    composite = sitk.CompositeTransform([rigid_t, bspline])
    jac = _checked_jacobian(bspline, fixed, box_mask(fixed, region_xyz_mm))
    details = {"rigid_metric_value": rigid.metric_value, "control_point_spacing_mm": settings.control_point_spacing_mm,
               "mesh_size_xyz": mesh, "iterations": int(method.GetOptimizerIteration()),
               "stop": method.GetOptimizerStopConditionDescription(), "working_voxel_mm": settings.working_voxel_mm,
               "jacobian": jac, "warning": DEFORMABLE_WARNING}
    return Registration("deformable", rigid.matrix, composite, rigid.new_frame_uid, rigid.prior_frame_uid,
                        "Mattes mutual information", float(method.GetMetricValue()),
                        f"SimpleITK {sitk.Version_VersionString()} B-spline", details)


def _checked_jacobian(deformation: sitk.Transform, fixed: sitk.Image, mask: sitk.Image | None) -> dict:
    jac = jacobian_statistics(deformation, fixed, mask)
    if jac["folded_fraction"] > 0:
        raise RegistrationError(f"deformable registration folds space: Jacobian determinant down to {jac['min']:.3f}, "
                                f"{100 * jac['folded_fraction']:.2f} % of the region <= 0; smooth the deformation more, "
                                "use the rigid registration, or a REG")
    return jac


def _demons(fixed: sitk.Image, moving: sitk.Image, rigid: Registration, settings: DeformableSettings,
            mask: sitk.Image | None) -> Registration:
    """Symmetric-forces demons between the new CT and the prior CT resampled through ``rigid``
    (both HU + 1000 on the working grid); the field is smoothed by ``demons_smoothing_mm``."""
    rigid_t = affine_transform(rigid.matrix)
    moved = sitk.Resample(moving, fixed, rigid_t, sitk.sitkLinear, 0.0)
    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetNumberOfIterations(settings.demons_iterations)
    demons.SetSmoothDisplacementField(True)
    demons.SetStandardDeviations(settings.demons_smoothing_mm / settings.working_voxel_mm)
    try:
        field = demons.Execute(fixed, moved)
    except RuntimeError as exc:
        raise RegistrationError(f"deformable (demons) registration of the prior CT onto the new CT failed: {exc}") from exc
    field = sitk.Cast(field, sitk.sitkVectorFloat64)
    deformation = sitk.DisplacementFieldTransform(sitk.Image(field))
    jac = _checked_jacobian(deformation, fixed, mask)
    composite = sitk.CompositeTransform([rigid_t, deformation])
    details = {"algorithm": "demons (symmetric forces)", "rigid_metric_value": rigid.metric_value,
               "demons_smoothing_mm": settings.demons_smoothing_mm, "iterations": int(demons.GetElapsedIterations()),
               "rms_change": float(demons.GetRMSChange()), "working_voxel_mm": settings.working_voxel_mm,
               "jacobian": jac, "warning": DEFORMABLE_WARNING}
    return Registration("deformable", rigid.matrix, composite, rigid.new_frame_uid, rigid.prior_frame_uid,
                        "demons mean squared difference", float(demons.GetMetric()),
                        f"SimpleITK {sitk.Version_VersionString()} demons", details)
