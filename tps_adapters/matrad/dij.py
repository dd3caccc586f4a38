"""External dose-influence matrices -> :class:`reirrad_opt.dose.InfluenceMatrix` on a case's grid.

Two formats:

* matRad: a .mat with ``dij`` whose ``physicalDose`` is a cell of sparse matrices (voxels x
  bixels; the first, nominal scenario is used). Rows are 1-based column-major voxel indices of
  the dose grid, (Ny, Nx, Nz) as in ``dij.doseGrid.dimensions`` (older matRad: ``dij.dimensions``
  on the CT grid); ``dij.doseGrid.x/y/z`` are the voxel centres (mm). matRad's doses are per
  fraction (matRad divides its objectives' doses by ``pln.numOfFractions``): an entry is Gy per
  fraction per unit bixel weight. ``dij.beamNum`` gives each column's beam (1-based).
* .npz with CSR (or CSC) arrays: ``data``, ``indices``, ``indptr``, ``shape`` (as
  ``scipy.sparse.save_npz`` writes them, e.g. pyRadPlan's ``dij.physical_dose.flat[0]``), rows in
  C order of the case grid (z, y, x; x fastest, as pyRadPlan/SimpleITK number voxels), Gy per unit
  weight for the whole course, or per fraction when the file holds ``per_fraction`` = 1 (pyRadPlan,
  like matRad, computes per-fraction doses). Optional: ``grid_shape_zyx``, ``spacing_mm_zyx``,
  ``origin_mm_zyx`` (checked against the case when present) and ``beam`` (column -> beam index).

The grid is checked against the case's: shape, voxel size and (when the file gives it) the
first voxel centre within 0.01 mm. A per-fraction matrix is multiplied by the new course's number of
fractions (whole-course Gy per unit weight), so the plan's weights are the engine's per-fraction
weights as they are.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from reirrad_opt.case import Case
from reirrad_opt.dose.influence import Columns, InfluenceMatrix

from .matfile import MatFileError, field, first_cell, has_field, load_mat

ORIGIN_TOL_MM = 0.01


def read_influence(path: str | os.PathLike, case: Case, modality: str, n_fractions: int) -> InfluenceMatrix:
    """The influence matrix in ``path`` (.mat with matRad ``dij``, or .npz CSR arrays) on ``case.grid``
    (Gy per unit weight for the whole course of ``n_fractions``), after checking its grid."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--influence {path}: file not found")
    if path.suffix.lower() == ".npz":
        return _read_npz(path, case, modality, n_fractions)
    if path.suffix.lower() == ".mat":
        return _read_matrad(path, case, modality, n_fractions)
    raise MatFileError(f"--influence {path}: expected a matRad .mat (dij.physicalDose) or an .npz with CSR arrays "
                       f"(data, indices, indptr, shape)")


def _check_grid(path: Path, case: Case, shape_zyx, spacing_zyx, origin_zyx) -> None:
    g = case.grid
    if tuple(int(n) for n in shape_zyx) != g.shape:
        raise MatFileError(f"--influence {path}: dose grid of {tuple(int(n) for n in shape_zyx)} voxels (z, y, x); "
                           f"the case's grid is {g.shape}: compute the matrix on the case's grid (matRad: "
                           f"pln.propDoseCalc.doseGrid.resolution = the case's voxel size)")
    if spacing_zyx is not None and not np.allclose(spacing_zyx, g.spacing_mm, atol=1e-4):
        raise MatFileError(f"--influence {path}: voxel size {tuple(float(s) for s in spacing_zyx)} mm (z, y, x); the "
                           f"case's is {g.spacing_mm} mm")
    if origin_zyx is not None and not np.allclose(origin_zyx, g.origin_mm, atol=ORIGIN_TOL_MM):
        raise MatFileError(f"--influence {path}: first voxel centre {tuple(round(float(o), 3) for o in origin_zyx)} "
                           f"mm (z, y, x); the case's is {g.origin_mm} mm (more than {ORIGIN_TOL_MM} mm apart)")


def _finish(path: Path, matrix: sp.csr_matrix, case: Case, modality: str, beam: np.ndarray | None,
            meta: dict) -> InfluenceMatrix:
    if matrix.shape[0] != case.grid.n_voxels:
        raise MatFileError(f"--influence {path}: {matrix.shape[0]} rows; expected one per voxel of the case's grid "
                           f"{case.grid.shape} ({case.grid.n_voxels})")
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    if matrix.nnz and not np.all(np.isfinite(matrix.data)):
        raise MatFileError(f"--influence {path}: {int((~np.isfinite(matrix.data)).sum())} entries are not finite")
    if matrix.nnz and float(matrix.data.min()) < 0:
        raise MatFileError(f"--influence {path}: negative entries (minimum {float(matrix.data.min()):.3g} Gy); dose "
                           "per unit weight must be >= 0")
    matrix.sum_duplicates()
    matrix.sort_indices()
    n = matrix.shape[1]
    if beam is None:
        beam = np.zeros(n, dtype=np.int32)
    beam = np.asarray(beam).ravel()
    if beam.size != n:
        raise MatFileError(f"--influence {path}: {beam.size} beam numbers for {n} columns")
    columns = Columns(beam=beam.astype(np.int32))
    meta = {"source": str(path.name), **meta,
            "unit_weight": meta.get("unit_weight", "as defined by the engine that computed the matrix")}
    return InfluenceMatrix(matrix, case.grid, [], modality, columns, 0.0, meta)


def _read_npz(path: Path, case: Case, modality: str, n_fractions: int) -> InfluenceMatrix:
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise MatFileError(f"--influence {path}: cannot be read as .npz ({exc})") from exc
    with z:
        for key in ("data", "indices", "indptr", "shape"):
            if key not in z.files:
                raise MatFileError(f"--influence {path}: array {key!r} is missing; expected CSR arrays data, "
                                   f"indices, indptr and shape (as scipy.sparse.save_npz writes them)")
        fmt = bytes(z["format"]).decode() if "format" in z.files else "csr"
        shape = tuple(int(n) for n in z["shape"])
        if fmt not in ("csr", "csc") or len(shape) != 2:
            raise MatFileError(f"--influence {path}: format {fmt!r} with shape {shape}; expected a 2-D 'csr' or 'csc' "
                               "matrix (voxels x columns)")
        cls = sp.csr_matrix if fmt == "csr" else sp.csc_matrix
        try:
            matrix = cls((z["data"], z["indices"], z["indptr"]), shape=shape).tocsr()
        except ValueError as exc:
            raise MatFileError(f"--influence {path}: inconsistent {fmt.upper()} arrays ({exc})") from exc
        get = {k: np.asarray(z[k], dtype=float) for k in ("grid_shape_zyx", "spacing_mm_zyx", "origin_mm_zyx")
               if k in z.files}
        beam = np.asarray(z["beam"]) if "beam" in z.files else None
        per_fraction = bool(np.asarray(z["per_fraction"]).ravel()[0]) if "per_fraction" in z.files else False
    if per_fraction:
        matrix = matrix * float(n_fractions)
    if "grid_shape_zyx" in get:
        _check_grid(path, case, get["grid_shape_zyx"], get.get("spacing_mm_zyx"), get.get("origin_mm_zyx"))
        checked = "shape" + (", voxel size" if "spacing_mm_zyx" in get else "") + \
                  (", origin" if "origin_mm_zyx" in get else "")
    else:
        checked = "row count only (the file has no grid_shape_zyx, spacing_mm_zyx, origin_mm_zyx)"
    meta = {"format": "npz CSR", "grid_checked": checked, "row_order": "C order (z, y, x)"}
    if per_fraction:
        meta.update(scaled_by_fractions=int(n_fractions),
                    unit_weight=f"the file's column weight per fraction (matrix x {int(n_fractions)} fractions)")
    return _finish(path, matrix, case, modality, beam, meta)


def _read_matrad(path: Path, case: Case, modality: str, n_fractions: int) -> InfluenceMatrix:
    mat = load_mat(path, "matRad dij")
    if "dij" not in mat:
        raise MatFileError(f"--influence {path}: variable 'dij' is missing (expected matRad's dij with physicalDose; "
                           f"the file holds {', '.join(k for k in mat if not k.startswith('__')) or 'nothing'})")
    dij, where = mat["dij"], f"--influence {path}: dij"
    matrix = first_cell(field(dij, "physicalDose", where))
    if not sp.issparse(matrix):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.dtype == object:
            raise MatFileError(f"{where}.physicalDose{{1}}: expected a (voxels x bixels) matrix, got "
                               f"{type(matrix).__name__} of shape {getattr(matrix, 'shape', None)}")
        matrix = sp.csc_matrix(matrix)
    if has_field(dij, "doseGrid"):
        g, gw = field(dij, "doseGrid", where), f"{where}.doseGrid"
    else:
        g, gw = dij, where
    dims = np.asarray(field(g, "dimensions", gw), dtype=int).ravel()
    if dims.size != 3:
        raise MatFileError(f"{gw}.dimensions: expected [Ny Nx Nz], got {dims.tolist()}")
    ny, nx, nz = (int(n) for n in dims)
    res = field(g, "resolution", gw)
    spacing = tuple(float(field(res, a, f"{gw}.resolution")) for a in ("z", "y", "x"))
    origin = None
    if all(has_field(g, a) for a in ("x", "y", "z")):
        origin = tuple(float(np.atleast_1d(np.asarray(field(g, a, gw), dtype=float)).ravel()[0]) for a in "zyx")
    _check_grid(path, case, (nz, ny, nx), spacing, origin)
    if matrix.shape[0] != ny * nx * nz:
        raise MatFileError(f"{where}.physicalDose{{1}}: {matrix.shape[0]} rows; expected Ny*Nx*Nz = {ny * nx * nz}")
    coo = matrix.tocoo()
    r = coo.row.astype(np.int64)
    iy, ix, iz = r % ny, (r // ny) % nx, r // (ny * nx)        # column-major (y, x, z)
    rows = (iz * ny + iy) * nx + ix                              # C order (z, y, x)
    data = coo.data.astype(np.float64) * float(n_fractions)     # per fraction -> whole course
    csr = sp.csr_matrix((data, (rows, coo.col)), shape=(nz * ny * nx, matrix.shape[1]))
    beam = None
    if has_field(dij, "beamNum"):
        beam = np.asarray(field(dij, "beamNum", where), dtype=np.int64).ravel() - 1
    if has_field(dij, "radiationMode"):
        mode = str(field(dij, "radiationMode", where)).lower()
        expected = {"photons": "photon", "protons": "proton", "carbon": "carbon"}.get(mode, mode)
        if expected != modality:
            raise MatFileError(f"{where}.radiationMode is {mode!r}; the plan's --modality is {modality!r}")
    return _finish(path, csr, case, modality, beam,
                   {"format": "matRad dij.physicalDose{1}", "row_order": "converted from column-major (y, x, z)",
                    "grid_checked": "shape, voxel size" + (", origin" if origin is not None else ""),
                    "scaled_by_fractions": int(n_fractions),
                    "unit_weight": f"matRad bixel weight per fraction (dij x {int(n_fractions)} fractions)"})
