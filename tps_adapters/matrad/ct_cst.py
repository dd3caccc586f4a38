"""matRad ``ct`` and ``cst`` (a MATLAB v5 file) -> :class:`reirrad_opt.case.Case`.

matRad conventions (matRad wiki "The ct struct" / "The cst cell"; matRad_calcDoseInit.m):

* ``ct.cubeHU`` (or ``ct.cubeHU{1}``: one cube per CT scenario, the first is used) is indexed
  (y, x, z): MATLAB row, column, slice; ``ct.cubeDim`` = [Ny Nx Nz]; ``ct.resolution.x/y/z`` in mm.
* ``ct.x``, ``ct.y``, ``ct.z`` are the voxel-centre coordinates in mm; for a CT imported from DICOM
  they are the patient coordinates (DICOM LPS). A ``ct`` without them gets the coordinates matRad's
  dose calculation gives it (``resolution * (0 .. N-1) - resolution / 2``), stated in the notes.
* ``cst`` is an (n x 6) cell: {index, name, type ('TARGET' / 'OAR'), {linear indices}, properties,
  objectives}; the indices are 1-based and column-major into the (Ny, Nx, Nz) cube (one cell entry
  per scenario, the first is used).

The case's arrays are in reirrad-opt's (z, y, x) order. matRad holds no prior course: a prior dose
is read from a second .mat (a matRad ``resultGUI.physicalDose`` of the prior plan, or another
named variable) on the same cube; without it the prior dose is zero, which the plausibility check
refuses unless ``zero_prior`` is accepted (``--accept-zero-prior``). The original cube geometry
is kept in ``case.source['matrad_ct']`` so a result can be written back on matRad's CT grid.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Collection

import numpy as np

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure, canonical_name, default_role
from reirrad_opt.plausibility import (DEFAULT_BOUNDS, PlausibilityBounds, check_ct_hu, check_prior_dose,
                                      check_prior_fractionation, check_spacing_mm, record_overrides)

from .matfile import MatFileError, field, first_cell, has_field, load_mat

CST_TYPES = {"TARGET": "target", "OAR": "oar", "IGNORED": "other"}


def matrad_axes_mm(ct, shape_yxz: tuple[int, int, int], where: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(x, y, z) voxel-centre coordinates (mm) of a matRad ct whose cubes are (Ny, Nx, Nz), and notes."""
    res = field(ct, "resolution", where)
    spacing = [float(field(res, a, f"{where}.resolution")) for a in ("x", "y", "z")]
    check_spacing_mm(spacing, f"{where}.resolution (x, y, z)")
    ny, nx, nz = shape_yxz
    if all(has_field(ct, a) for a in ("x", "y", "z")):
        axes = [np.atleast_1d(np.asarray(field(ct, a, where), dtype=float)).ravel() for a in ("x", "y", "z")]
        if tuple(a.size for a in axes) != (nx, ny, nz):
            raise MatFileError(f"{where}.x/y/z have {tuple(a.size for a in axes)} values; expected (Nx, Ny, Nz) = "
                               f"{(nx, ny, nz)} from cubeHU's shape (Ny, Nx, Nz) = {tuple(shape_yxz)}")
        for a, s, name in zip(axes, spacing, "xyz"):
            if a.size > 1 and not np.allclose(np.diff(a), s, atol=1e-3 * s):
                raise MatFileError(f"{where}.{name}: voxel centres not equally spaced by resolution.{name} = {s:g} mm")
        return axes[0], axes[1], axes[2], []
    axes = [s * np.arange(n) - s / 2 for s, n in zip(spacing, (nx, ny, nz))]
    return axes[0], axes[1], axes[2], [f"{where} has no x/y/z: voxel centres at resolution x (0 .. N-1) - "
                                       "resolution/2 mm, as matRad's dose calculation places them (not patient "
                                       "coordinates)"]


def _cube(ct, where: str) -> np.ndarray:
    if not has_field(ct, "cubeHU"):
        raise MatFileError(f"{where}.cubeHU is missing: reirrad-opt needs the CT in HU (ct.cube holds relative "
                           "electron densities, whose HU calibration the file does not carry); "
                           f"the struct has {', '.join(ct._fieldnames)}")
    cube = first_cell(field(ct, "cubeHU", where))
    cube = np.asarray(cube, dtype=np.float64) if cube is not None else np.zeros(0)
    if cube.ndim != 3:
        raise MatFileError(f"{where}.cubeHU must be a 3-D array (Ny, Nx, Nz), got shape {cube.shape}")
    return cube


def matrad_to_case_axes(cube: np.ndarray) -> np.ndarray:
    """A matRad cube (y, x, z) -> reirrad-opt's (z, y, x)."""
    return np.ascontiguousarray(np.transpose(cube, (2, 0, 1)))


def case_to_matrad_axes(volume: np.ndarray) -> np.ndarray:
    """A (z, y, x) volume -> matRad's (y, x, z)."""
    return np.ascontiguousarray(np.transpose(volume, (1, 2, 0)))


def _cst_rows(cst, where: str) -> list:
    rows = np.asarray(cst, dtype=object)
    if rows.ndim == 1 and rows.size and not isinstance(rows[0], np.ndarray):
        rows = rows[None, :]          # a one-structure cst squeezed to one row
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise MatFileError(f"{where}: expected an (n x 6) cell {{index, name, type, indices, ...}}, got shape "
                           f"{rows.shape}")
    return list(rows)


def load_matrad_case(path: str | os.PathLike, *, interval_months: float, prior_fractions: int = 1,
                     prior_prescription_gy: float | None = None, prior_dose: str | os.PathLike | None = None,
                     prior_dose_variable: str = "resultGUI.physicalDose", prior_modality: str = "photon",
                     structure_map: dict[str, str] | None = None, name: str | None = None,
                     accept: Collection[str] = (), bounds: PlausibilityBounds = DEFAULT_BOUNDS) -> Case:
    """Read matRad ``ct`` and ``cst`` from ``path`` into a Case.

    Args:
        interval_months: months from the prior course to the new one.
        prior_fractions, prior_prescription_gy: the prior course's fractionation (Gy, whole course).
        prior_dose: a .mat holding the prior course's dose per fraction (Gy, as matRad's resultGUI
            holds it) on the same cube; multiplied by ``prior_fractions``;
            None for none (a zero prior dose, accepted only with ``'zero_prior'`` in ``accept``).
        prior_dose_variable: the variable in ``prior_dose``, with struct fields after dots.
        prior_modality: modality of the prior course ('photon'; a particle dose must be RBE-weighted
            already, e.g. matRad's ``resultGUI.RBExD``).
        structure_map: canonical name -> name in the cst (``--structure-map``), e.g. {"PTV": "OuterTarget"}.
    """
    path = Path(path)
    mat = load_mat(path, "matRad ct and cst")
    for key in ("ct", "cst"):
        if key not in mat:
            raise MatFileError(f"{path}: variable {key!r} is missing (expected matRad ct and cst; the file holds "
                               f"{', '.join(k for k in mat if not k.startswith('__')) or 'nothing'})")
    ct, where = mat["ct"], f"{path}: ct"
    cube = _cube(ct, where)
    x, y, z, axis_notes = matrad_axes_mm(ct, cube.shape, where)
    ny, nx, nz = cube.shape
    res = field(ct, "resolution", where)
    spacing = tuple(float(field(res, a, f"{where}.resolution")) for a in ("z", "y", "x"))
    grid = Grid((nz, ny, nx), spacing, (float(z[0]), float(y[0]), float(x[0])))
    notes = ["matRad: cubes indexed (y, x, z), cst indices 1-based column-major; reordered to (z, y, x)"]
    notes += axis_notes
    ct_hu = matrad_to_case_axes(cube).astype(np.float32)
    notes.extend(check_ct_hu(ct_hu, f"{where}.cubeHU", bounds))
    if has_field(ct, "numOfCtScen") and int(np.asarray(field(ct, "numOfCtScen", where)).ravel()[0]) > 1:
        notes.append("matRad: several CT scenarios; the first (nominal) one is used")

    structures: dict[str, Structure] = {}
    rois = []
    for row in _cst_rows(mat["cst"], f"{path}: cst"):
        cst_name, cst_type = str(row[1]), str(row[2]).upper()
        lin = first_cell(row[3])
        lin = np.zeros(0, dtype=np.int64) if lin is None else np.asarray(lin, dtype=np.float64).ravel()
        if lin.size and (lin.min() < 1 or lin.max() > cube.size or np.any(lin != np.round(lin))):
            raise MatFileError(f"{path}: cst structure {cst_name!r}: indices must be whole numbers from 1 to "
                               f"{cube.size} (1-based into cubeHU), got {lin.min():g} to {lin.max():g}")
        if lin.size == 0:
            notes.append(f"matRad: cst structure {cst_name!r} has no voxels; not imported")
            continue
        iy, ix, iz = np.unravel_index(lin.astype(np.int64) - 1, (ny, nx, nz), order="F")
        mask = np.zeros(grid.shape, dtype=bool)
        mask[iz, iy, ix] = True
        cname = canonical_name(cst_name, structure_map)
        role = default_role(cname)
        if role == "oar" and CST_TYPES.get(cst_type) == "target":
            role = "target"
        if cname in structures:
            raise MatFileError(f"{path}: cst structures {rois[[r['name'] for r in rois].index(cname)]['cst_name']!r} "
                               f"and {cst_name!r} both map to {cname!r}; adjust --structure-map")
        structures[cname] = Structure(cname, mask, role)
        rois.append({"name": cname, "cst_name": cst_name, "cst_type": cst_type,
                     "volume_cc": round(float(mask.sum()) * grid.voxel_volume_cc, 4)})

    check_prior_fractionation(prior_fractions, prior_prescription_gy, str(path), bounds)
    if prior_dose is None:
        dose = np.zeros(grid.shape, dtype=np.float32)
        dose_where = f"{path} (no --prior-dose)"
        description = "no prior dose given (matRad holds none)"
    else:
        # matRad's doses are per fraction (its objectives are divided by pln.numOfFractions)
        dose = read_cube(prior_dose, prior_dose_variable, cube.shape, "prior dose per fraction (Gy)")
        dose = (matrad_to_case_axes(dose) * float(prior_fractions)).astype(np.float32)
        dose_where = f"{prior_dose}: {prior_dose_variable}"
        description = (f"prior dose from {Path(prior_dose).name} ({prior_dose_variable}, per fraction) x "
                       f"{prior_fractions} fractions")
    prior = PriorCourse(n_fractions=prior_fractions, interval_months=float(interval_months), modality=prior_modality,
                        prescription_gy=prior_prescription_gy, description=description,
                        dose_type="PHYSICAL" if prior_modality == "photon" else "EFFECTIVE",
                        rbe=1.0 if prior_modality == "photon" else "already applied")
    targets = {n: s.mask for n, s in structures.items() if s.role == "target"}
    overrides = check_prior_dose(dose, prior_prescription_gy, targets, dose_where, bounds, accept)
    source = {"kind": "matrad", "file": str(path.resolve()), "rois": rois, "notes": notes,
              "matrad_ct": {"cube_dim_yxz": [ny, nx, nz], "x0_mm": float(x[0]), "y0_mm": float(y[0]),
                            "z0_mm": float(z[0]), "resolution_xyz_mm": [spacing[2], spacing[1], spacing[0]]}}
    record_overrides(source, overrides)
    return Case(name or path.stem, grid, ct_hu, structures, dose, prior, source)


def read_cube(path: str | os.PathLike, variable: str, shape_yxz: tuple[int, int, int], what: str) -> np.ndarray:
    """A 3-D array named ``variable`` ('a.b.c' for struct fields) from a .mat, checked against
    ``shape_yxz`` (matRad's (Ny, Nx, Nz)); MatFileError names the file and variable."""
    mat = load_mat(path, f"{what} as {variable}")
    head, *fields = variable.split(".")
    if head not in mat:
        raise MatFileError(f"{path}: variable {head!r} is missing (expected {what} as {variable}; the file holds "
                           f"{', '.join(k for k in mat if not k.startswith('__')) or 'nothing'})")
    value, where = mat[head], f"{path}: {head}"
    for f in fields:
        value, where = field(value, f, where), f"{where}.{f}"
    value = np.asarray(first_cell(value), dtype=np.float64)
    if value.shape != tuple(shape_yxz):
        raise MatFileError(f"{where}: shape {value.shape}; expected the CT cube's (Ny, Nx, Nz) = {tuple(shape_yxz)}")
    return value
