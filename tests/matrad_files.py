"""Small matRad files for tests, written with scipy.io.savemat in matRad's conventions: cubes indexed
(y, x, z), cst indices 1-based and column-major, dij rows column-major over (Ny, Nx, Nz), doses per
fraction."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.io import savemat


def linear_index(row: int, col: int, slc: int, shape_yxz) -> int:
    """MATLAB's sub2ind(shape, row, col, slice), all 1-based."""
    ny, nx, _ = shape_yxz
    return row + (col - 1) * ny + (slc - 1) * ny * nx


def ct_struct(cube_hu: np.ndarray, res_xyz=(6.0, 6.0, 6.0), first_xyz=(-30.0, -24.0, 10.0),
              as_cell: bool = False) -> dict:
    """matRad's ct; ``as_cell``: cubeHU as a 1x1 cell {cube}, as matRad keeps one cube per CT scenario."""
    ny, nx, nz = cube_hu.shape
    cube = cube_hu
    if as_cell:
        cube = np.empty((1, 1), dtype=object)
        cube[0, 0] = cube_hu
    x0, y0, z0 = first_xyz
    rx, ry, rz = res_xyz
    return {"cubeHU": cube,
            "resolution": {"x": rx, "y": ry, "z": rz},
            "x": x0 + rx * np.arange(nx), "y": y0 + ry * np.arange(ny), "z": z0 + rz * np.arange(nz),
            "cubeDim": np.array([ny, nx, nz], dtype=float), "numOfCtScen": 1.0}


def cst_cell(structures: list[tuple[str, str, np.ndarray]]) -> np.ndarray:
    """(name, type, 1-based linear indices) -> an (n x 6) cell like matRad's cst."""
    cst = np.empty((len(structures), 6), dtype=object)
    for i, (name, kind, idx) in enumerate(structures):
        cell = np.empty((1, 1), dtype=object)
        cell[0, 0] = np.asarray(idx, dtype=float).reshape(-1, 1)
        cst[i] = [float(i), name, kind, cell, {"Priority": 1.0}, np.empty((0, 0), dtype=object)]
    return cst


def write_ct_cst(path: Path, cube_hu: np.ndarray, structures, **ct_kwargs) -> Path:
    savemat(path, {"ct": ct_struct(cube_hu, **ct_kwargs), "cst": cst_cell(structures)})
    return path


def box_phantom(path: Path, shape_yxz=(16, 20, 12)) -> Path:
    """A water box in air with a cubic 'OuterTarget' and a 'Core' next to it, 6 mm voxels."""
    ny, nx, nz = shape_yxz
    cube = np.full(shape_yxz, -1000.0)
    cube[2:-2, 2:-2, 1:-1] = 0.0
    body = np.zeros(shape_yxz, bool)
    body[2:-2, 2:-2, 1:-1] = True
    target = np.zeros(shape_yxz, bool)
    target[6:10, 6:11, 4:8] = True
    core = np.zeros(shape_yxz, bool)
    core[6:10, 12:14, 4:8] = True

    def idx(mask):
        return np.flatnonzero(mask.ravel(order="F")) + 1

    return write_ct_cst(path, cube, [("Core", "OAR", idx(core)), ("OuterTarget", "TARGET", idx(target)),
                                     ("BODY", "OAR", idx(body))])


def write_dij(path: Path, matrix_f_order: sp.spmatrix, shape_yxz, res_xyz=(6.0, 6.0, 6.0),
              first_xyz=(-30.0, -24.0, 10.0), beam_num=None) -> Path:
    """A matRad dij with physicalDose{1} = ``matrix_f_order`` (rows column-major over (Ny, Nx, Nz))."""
    ny, nx, nz = shape_yxz
    x0, y0, z0 = first_xyz
    rx, ry, rz = res_xyz
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = sp.csc_matrix(matrix_f_order, dtype=np.float64)
    n = matrix_f_order.shape[1]
    dij = {"physicalDose": cell,
           "doseGrid": {"dimensions": np.array([ny, nx, nz], dtype=float), "resolution": {"x": rx, "y": ry, "z": rz},
                        "x": x0 + rx * np.arange(nx), "y": y0 + ry * np.arange(ny), "z": z0 + rz * np.arange(nz)},
           "numOfBeams": 1.0 if beam_num is None else float(np.max(beam_num)),
           "beamNum": np.ones(n) if beam_num is None else np.asarray(beam_num, dtype=float),
           "totalNumOfBixels": float(n)}
    savemat(path, {"dij": dij})
    return path
