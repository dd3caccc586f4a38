"""A plan written back for matRad: ``resultGUI.w`` and ``resultGUI.physicalDose`` in a MATLAB v5 file.

matRad's doses are per fraction (see :mod:`.dij`), so the file holds the new course's dose per
fraction, ``physicalDose = (plan dose, Gy) / n_fractions``, on the CT cube of the matRad case,
indexed (Ny, Nx, Nz) like ``ct.cubeHU``, and ``w`` as a column vector, per fraction: for a plan
computed on a matRad ``dij`` (``plan --influence``, a per-fraction matrix) the plan's weights as
they are, so ``dij.physicalDose{1} * w`` reproduces ``physicalDose`` on the dose grid; for a
whole-course matrix (reirrad-opt's own) the plan's weights / n_fractions. A particle plan also
gets ``RBExDose`` (constant RBE x physical dose, as matRad_calcCubes names it). A case grid different from the CT cube (cropped
or coarsened at import) is interpolated trilinearly onto the CT voxel centres, as matRad itself
interpolates its dose grid onto the CT grid; voxels more than half a voxel outside the case grid
get 0 Gy.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from .ct_cst import case_to_matrad_axes


def dose_on_matrad_ct(dose_zyx: np.ndarray, case_grid, matrad_ct: dict) -> np.ndarray:
    """A dose (Gy) on the case grid -> matRad's CT cube (Ny, Nx, Nz), interpolated if the grids differ."""
    ny, nx, nz = (int(n) for n in matrad_ct["cube_dim_yxz"])
    rx, ry, rz = (float(r) for r in matrad_ct["resolution_xyz_mm"])
    origin = (float(matrad_ct["z0_mm"]), float(matrad_ct["y0_mm"]), float(matrad_ct["x0_mm"]))
    same = (case_grid.shape == (nz, ny, nx) and np.allclose(case_grid.spacing_mm, (rz, ry, rx))
            and np.allclose(case_grid.origin_mm, origin, atol=1e-3))
    if same:
        return case_to_matrad_axes(np.asarray(dose_zyx, dtype=np.float64))
    axes = [(o + s * np.arange(n) - go) / gs for o, s, n, go, gs in
            zip(origin, (rz, ry, rx), (nz, ny, nx), case_grid.origin_mm, case_grid.spacing_mm)]
    coords = np.stack(np.meshgrid(*axes, indexing="ij"))
    out = ndimage.map_coordinates(np.asarray(dose_zyx, dtype=np.float64), coords, order=1, mode="nearest",
                                  prefilter=False)
    inside = np.ones(out.shape, dtype=bool)
    for a, n in enumerate(case_grid.shape):
        inside &= (coords[a] >= -0.5) & (coords[a] <= n - 0.5)
    out[~inside] = 0.0
    return case_to_matrad_axes(out)


def write_result_gui(path: str | os.PathLike, plan) -> Path:
    """Write ``resultGUI`` (w, physicalDose, and RBExDose for particles) of ``plan`` (a
    :class:`reirrad_opt.planning.Plan` on a case imported from matRad) to ``path`` (.mat, v5)."""
    from scipy.io import savemat

    matrad_ct = plan.case.source.get("matrad_ct")
    if not matrad_ct:
        raise ValueError(f"case {plan.case.name!r} was not imported from matRad (no source.matrad_ct): its CT cube "
                         "is unknown, so no resultGUI can be written for it")
    n_fx = int(plan.fractionation.n_fractions)
    physical = dose_on_matrad_ct(plan.physical_dose_gy, plan.case.grid, matrad_ct) / n_fx
    # a per-fraction matrix (matRad's dij) was scaled by n_fx on reading, so its own weights are the
    # plan's; a whole-course matrix (reirrad-opt's, an .npz) gives per-fraction weights w / n_fx
    per_fraction_matrix = "scaled_by_fractions" in plan.influence.meta
    w = np.asarray(plan.weights, dtype=np.float64) / (1.0 if per_fraction_matrix else n_fx)
    result = {"w": w.reshape(-1, 1), "physicalDose": physical}
    if plan.dose_unit != "Gy":
        result["RBExDose"] = physical * float(plan.rbe)
    external = plan.influence.meta.get("format")
    note = (f"reirrad-opt plan: doses in Gy per fraction ({n_fx} fractions; whole course = x {n_fx}); "
            + (f"w: weights of the columns of the matrix given to plan --influence, per fraction "
               f"({plan.influence.meta.get('source')}, {external})"
               if external else "w: reirrad-opt's own bixel/spot weights per fraction (not matRad stf bixels)"))
    path = Path(path)
    savemat(path, {"resultGUI": result, "reirrad_note": note}, do_compression=True, oned_as="column")
    return path
