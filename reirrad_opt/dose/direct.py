"""Direct dose calculation of a weighted beam or field, column by column over all voxels in the
body, with the analytic kernels (no lookup tables, cells, thresholds or sampling). Slow; used to
check the influence matrix and for small problems."""
from __future__ import annotations

import numpy as np

from ..geometry import Grid
from .beams import ParticleField, PhotonBeam
from .hu_tables import RED_CURVE, SPR_CURVE, HUCurve
from .particle import spot_dose
from .particle_engine import PARALLEL_SOURCE_MM
from .photon import SIX_MV, PhotonKernelParams, bixel_dose
from .raytrace import radiological_depth


def direct_dose(grid: Grid, ct_hu: np.ndarray, body_mask: np.ndarray, beam: PhotonBeam | ParticleField,
                weights: np.ndarray | None = None, photon_params: PhotonKernelParams = SIX_MV,
                red_curve: HUCurve = RED_CURVE, spr_curve: HUCurve = SPR_CURVE) -> np.ndarray:
    """Dose (Gy, grid.shape) of one beam or field with column ``weights`` (default all 1)."""
    body = np.asarray(body_mask, dtype=bool)
    grid.check_array(body, "body_mask")
    n = beam.n_columns
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
    if w.size != n:
        raise ValueError(f"weights: expected {n} values, got {w.size}")
    photon = isinstance(beam, PhotonBeam)
    density = (red_curve if photon else spr_curve)(ct_hu)
    density[~body] = 0.0
    voxels = np.flatnonzero(body)
    rt = radiological_depth(beam.frame, grid, density, voxels, step_fraction=1.0 if photon else 0.5)
    dose = np.zeros(voxels.size)
    for j in range(n):
        if w[j] == 0:
            continue
        if photon:
            dose += w[j] * bixel_dose(rt.a_mm - beam.bixel_u_mm[j], rt.b_mm - beam.bixel_v_mm[j], rt.depth_mm,
                                      rt.w_mm, beam.bixel_mm, photon_params)
        else:
            r = np.hypot(rt.a_mm - beam.spot_u_mm[j], rt.b_mm - beam.spot_v_mm[j])
            dose += w[j] * spot_dose(r, rt.depth_mm, beam.spot_energy_mev[j], beam.ion, beam.beam_model,
                                      distance_mm=rt.w_mm - PARALLEL_SOURCE_MM, rs_wet_mm=beam.spot_rs_wet_mm[j])
    out = np.zeros(grid.n_voxels)
    out[voxels] = dose
    return out.reshape(grid.shape)
