"""Rigid registration of the prior CT onto the new CT (SimpleITK): Mattes mutual information,
multi-resolution, optionally restricted to a box of the new CT (e.g. around the target and the
priority-1 organs, where the prior dose matters most).

Both CTs are first brought to an isotropic working grid (``RigidSettings.working_voxel_mm``,
smoothed), then registered on a pyramid (``shrink_factors``) with a regular-step gradient
descent; the initial transform aligns the centres of mass of the two CTs' intensity (the
patient), which catches shifts of several centimetres.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from .errors import RegistrationError
from .images import resample_isotropic
from .result import Registration, affine_transform, matrix_of

#: HU added before registering so that air is close to 0 and the intensity is positive
HU_OFFSET = 1000.0


@dataclass(frozen=True)
class RigidSettings:
    """Settings of :func:`register_rigid`.

    Attributes:
        working_voxel_mm: isotropic voxel (mm) of the images registered (finest pyramid level).
        shrink_factors: pyramid levels (coarsest first), in working voxels.
        smoothing_sigmas_mm: Gaussian smoothing (mm) at each level.
        histogram_bins: Mattes mutual information bins.
        sampling_fraction: fraction of the fixed voxels sampled by the metric (random, seeded).
        iterations: largest number of optimizer iterations per level.
        seed: random seed of the metric sampling (a fixed seed gives the same result every run).
    """

    working_voxel_mm: float = 3.0
    shrink_factors: tuple[int, ...] = (4, 2, 1)
    smoothing_sigmas_mm: tuple[float, ...] = (6.0, 3.0, 0.0)
    histogram_bins: int = 50
    sampling_fraction: float = 0.25
    iterations: int = 200
    seed: int = 12345

    def __post_init__(self) -> None:
        if self.working_voxel_mm <= 0 or not 0 < self.sampling_fraction <= 1 or self.iterations < 1:
            raise ValueError(f"rigid registration settings out of range: {self}")
        if len(self.shrink_factors) != len(self.smoothing_sigmas_mm):
            raise ValueError("shrink_factors and smoothing_sigmas_mm need one value per pyramid level")


def box_mask(fixed: sitk.Image, box_xyz_mm: tuple[tuple[float, float, float], tuple[float, float, float]] | None
             ) -> sitk.Image | None:
    """A mask image (uint8) of ``fixed`` that is 1 inside the box (low xyz, high xyz) in LPS mm."""
    if box_xyz_mm is None:
        return None
    lo, hi = (np.asarray(v, dtype=float) for v in box_xyz_mm)
    size = np.array(fixed.GetSize())
    idx = [np.asarray(fixed.GetOrigin())[a] + np.asarray(fixed.GetSpacing())[a] * np.arange(size[a]) for a in range(3)]
    inside = [(c >= lo[a]) & (c <= hi[a]) for a, c in enumerate(idx)]
    mask = inside[2][:, None, None] & inside[1][None, :, None] & inside[0][None, None, :]
    if mask.sum() < 1000:
        raise RegistrationError(f"registration region {lo.round(1).tolist()} .. {hi.round(1).tolist()} mm holds only "
                                f"{int(mask.sum())} voxels of the working grid; widen it")
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(fixed)
    return image


def mutual_information_method(fixed: sitk.Image, region_xyz_mm, settings) -> sitk.ImageRegistrationMethod:
    """A registration method with Mattes mutual information (``settings.histogram_bins``), a seeded
    random sample of ``settings.sampling_fraction`` of the fixed voxels, restricted to the region
    (low xyz, high xyz in LPS mm, or None for the whole image), and linear interpolation; the
    caller adds the transform and the optimizer."""
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=settings.histogram_bins)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(settings.sampling_fraction, settings.seed)
    mask = box_mask(fixed, region_xyz_mm)
    if mask is not None:
        method.SetMetricFixedMask(mask)
    method.SetInterpolator(sitk.sitkLinear)
    return method


def prepare(image: sitk.Image, voxel_mm: float) -> sitk.Image:
    """CT (HU) -> float32 working image (HU + 1000, isotropic ``voxel_mm``)."""
    shifted = sitk.Cast(image, sitk.sitkFloat32) + HU_OFFSET
    return resample_isotropic(shifted, voxel_mm, default_value=0.0)


def register_rigid(fixed_ct: sitk.Image, moving_ct: sitk.Image, *, settings: RigidSettings = RigidSettings(),
                   region_xyz_mm=None, new_frame_uid: str = "", prior_frame_uid: str = "") -> Registration:
    """Rigid transform taking points of ``fixed_ct`` (the new CT, HU) to ``moving_ct`` (the prior
    CT, HU), both in LPS mm. ``region_xyz_mm``: ((x, y, z) low, (x, y, z) high) box of the new CT
    where the metric is evaluated (None: everywhere)."""
    fixed = prepare(fixed_ct, settings.working_voxel_mm)
    moving = prepare(moving_ct, settings.working_voxel_mm)
    initial = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler3DTransform(),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    method = mutual_information_method(fixed, region_xyz_mm, settings)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3,
                                                    numberOfIterations=settings.iterations,
                                                    relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel(list(settings.shrink_factors))
    method.SetSmoothingSigmasPerLevel(list(settings.smoothing_sigmas_mm))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    try:
        final = method.Execute(fixed, moving)
    except RuntimeError as exc:  # ITK: too few samples overlap, ...
        raise RegistrationError(f"rigid registration of the prior CT onto the new CT failed: {exc}. "
                                "Check that both CTs show the same anatomy, or give a DICOM REG") from exc
    metric = float(method.GetMetricValue())
    details = {"iterations": int(method.GetOptimizerIteration()),
               "stop": method.GetOptimizerStopConditionDescription(),
               "working_voxel_mm": settings.working_voxel_mm, "shrink_factors": list(settings.shrink_factors),
               "sampling_fraction": settings.sampling_fraction,
               "region_xyz_mm": None if region_xyz_mm is None else [list(map(float, v)) for v in region_xyz_mm]}
    matrix = matrix_of(final)
    return Registration("rigid", matrix, affine_transform(matrix), new_frame_uid, prior_frame_uid,
                        "Mattes mutual information", metric, f"SimpleITK {sitk.Version_VersionString()}", details)
