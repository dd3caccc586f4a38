"""Reader of the CORT TG-119 phantom in matRad format (``TG119.mat``: ``ct`` and ``cst``) into a
:class:`reirrad_opt.case.Case`, and resampling of a case to another voxel size.

matRad conventions handled here: ``ct.cubeHU`` is indexed (y, x, z) (MATLAB row, column,
slice); ``cst{i,4}`` holds 1-based, column-major linear indices into that cube;
``ct.resolution`` gives the voxel size (mm) and ``ct.x``, ``ct.y``, ``ct.z`` the voxel-centre
coordinates (mm), which for this phantom equal DICOM LPS (ImagePositionPatient, HFS).

Structure names: ``OuterTarget`` -> ``PTV`` (role target), ``Core`` (role oar), ``BODY`` ->
``External`` (role external); the original names are kept in ``case.source['cst_names']``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reirrad_opt.case import Case, CaseFormatError, PriorCourse  # noqa: E402
from reirrad_opt.geometry import Grid, Structure  # noqa: E402

DEFAULT_NAMES = {"OuterTarget": ("PTV", "target"), "Core": ("Core", "oar"), "BODY": ("External", "external")}


def default_path() -> Path:
    """``$REIRRAD_REALDATA/cort_tg119_matrad/TG119.mat``; FileNotFoundError if unset or missing."""
    root = os.environ.get("REIRRAD_REALDATA")
    if not root:
        raise FileNotFoundError("REIRRAD_REALDATA is not set: cannot locate cort_tg119_matrad/TG119.mat")
    path = Path(root) / "cort_tg119_matrad" / "TG119.mat"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: TG-119 phantom file not found")
    return path


def _field(struct, name: str, path: Path):
    try:
        return getattr(struct, name)
    except AttributeError:
        raise CaseFormatError(f"{path}: ct has no field {name!r}") from None


def load_tg119(path: str | os.PathLike | None = None, names: dict | None = None) -> Case:
    """Read ``TG119.mat`` into a Case (CT in HU, structures, zero prior dose)."""
    from scipy.io import loadmat

    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: TG-119 phantom file not found")
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several error types for corrupt files
        raise CaseFormatError(f"{path}: cannot be read as a MATLAB file ({exc})") from exc
    for key in ("ct", "cst"):
        if key not in mat:
            raise CaseFormatError(f"{path}: variable {key!r} is missing (expected matRad ct and cst)")
    ct = mat["ct"]
    cube = np.asarray(_field(ct, "cubeHU", path), dtype=np.float64)
    if cube.dtype == object:
        cube = np.asarray(cube.item(), dtype=np.float64)
    if cube.ndim != 3:
        raise CaseFormatError(f"{path}: ct.cubeHU must be 3-D, got shape {cube.shape}")
    res = _field(ct, "resolution", path)
    dx, dy, dz = float(res.x), float(res.y), float(res.z)
    x = np.atleast_1d(np.asarray(_field(ct, "x", path), dtype=float))
    y = np.atleast_1d(np.asarray(_field(ct, "y", path), dtype=float))
    z = np.atleast_1d(np.asarray(_field(ct, "z", path), dtype=float))
    ny, nx, nz = cube.shape
    if (x.size, y.size, z.size) != (nx, ny, nz):
        raise CaseFormatError(f"{path}: ct.x/y/z lengths {(x.size, y.size, z.size)} do not match cubeHU {(nx, ny, nz)}")
    grid = Grid((nz, ny, nx), (dz, dy, dx), (z[0], y[0], x[0]))
    ct_hu = np.clip(np.transpose(cube, (2, 0, 1)), -1024.0, 3071.0).astype(np.float32)
    names = DEFAULT_NAMES if names is None else names
    structures, cst_names = {}, []
    for row in np.atleast_2d(mat["cst"]):
        cname = str(row[1])
        cst_names.append(cname)
        lin = np.asarray(row[3], dtype=np.int64).ravel() - 1
        if lin.size and (lin.min() < 0 or lin.max() >= cube.size):
            raise CaseFormatError(f"{path}: cst structure {cname!r} has indices outside the cube")
        iy, ix, iz = np.unravel_index(lin, (ny, nx, nz), order="F")
        mask = np.zeros(grid.shape, dtype=bool)
        mask[iz, iy, ix] = True
        name, role = names.get(cname, (cname, "other"))
        structures[name] = Structure(name, mask, role)
    return Case("TG119", grid, ct_hu, structures, np.zeros(grid.shape, dtype=np.float32),
                PriorCourse(n_fractions=1, interval_months=0.0, modality="none",
                            description="no prior course (CORT TG-119 benchmark geometry)"),
                {"file": str(path), "format": "matRad ct/cst", "cst_names": cst_names})


def resample_case(case: Case, spacing_mm: float | tuple[float, float, float]) -> Case:
    """Resample a case onto a grid of ``spacing_mm`` (scalar or (dz, dy, dx)) covering the same
    extent: CT by trilinear interpolation, masks by nearest neighbour, prior dose trilinear."""
    sp_new = np.broadcast_to(np.asarray(spacing_mm, dtype=float), (3,))
    g = case.grid
    lo = np.asarray(g.origin_mm)
    hi = lo + np.asarray(g.spacing_mm) * (np.asarray(g.shape) - 1)
    shape = tuple(int(np.floor((hi[a] - lo[a]) / sp_new[a])) + 1 for a in range(3))
    new = Grid(shape, tuple(sp_new), tuple(lo))
    idx = [(new.origin_mm[a] + new.spacing_mm[a] * np.arange(shape[a]) - g.origin_mm[a]) / g.spacing_mm[a]
           for a in range(3)]
    coords = np.stack(np.meshgrid(*idx, indexing="ij"))

    def interp(vol, order):
        return ndimage.map_coordinates(vol, coords, order=order, mode="nearest", prefilter=False)

    structures = {n: Structure(s.name, interp(s.mask.astype(np.uint8), 0).astype(bool), s.role)
                  for n, s in case.structures.items()}
    return Case(case.name, new, interp(case.ct_hu, 1).astype(np.float32), structures,
                np.maximum(interp(case.prior_dose_gy, 1), 0).astype(np.float32), case.prior,
                {**case.source, "resampled_from_spacing_mm": list(g.spacing_mm)})
