"""OpenKBP patient folders -> :class:`reirrad_opt.case.Case` (the OpenKBP dose as the prior course).

The OpenKBP grand-challenge data (Babier et al., Med Phys 2021; ``data-description.pdf``) store each
patient as sparse CSV files on a 128 x 128 x 128 grid: a header line ``,data`` then ``index,value``
rows, ``index`` being the flat C-order index into the (128, 128, 128) array. Only non-zero values are
listed; a structure file lists its voxels with an empty value.

Axes of the OpenKBP array ``a[i0, i1, i2]`` (checked on the anatomy of the shipped patients: the
spinal cord lies posterior to the mandible, the left parotid at higher i1 than the right one, the
brainstem at lower i2 than the oesophagus):

* ``i0``: rows, towards the patient's posterior (+y in DICOM LPS);
* ``i1``: columns, towards the patient's left (+x);
* ``i2``: slices, towards the feet (-z).

``voxel_dimensions.csv`` holds (row spacing, column spacing, slice thickness) in mm. The data carry
no patient coordinates: the grid is centred on (0, 0, 0) mm (stated in the case notes).

CT values are stored with a +1024 offset in a mix of 12- and 16-bit ranges; as the data
description recommends they are clipped to 0-4095, then HU = value - 1024 (absent voxels: -1024 HU).
The OpenKBP plans were prescribed 70 / 63 / 56 Gy in 35 fractions (PTV70 / PTV63 / PTV56); the
prior course is therefore 70 Gy in 35 fractions unless told otherwise. OpenKBP has no body contour:
``External`` is derived from the CT (largest connected region above -400 HU, holes filled slice by
slice), stated in the notes.

Checks (see docs/input-checks.md): a 0-byte ct.csv, dose.csv or voxel_dimensions.csv and a
repeated index in any file are errors; a structure file that is empty (0 bytes) or lists no
voxel is reported as an empty structure and not imported; raw CT values must lie in the 16-bit
range 0-65535; voxel sizes, the prior fractionation and the prior dose go through
:mod:`reirrad_opt.plausibility` (a zero prior dose, or one that covers none of the PTVs, needs
its ``--accept-...`` flag, recorded in ``case.source["input_overrides"]``). A ``--structure-map`` entry
that names no structure file of the folder, and a coarsening that would leave a contoured structure
without a voxel, are errors.
"""
from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Collection

import numpy as np
from scipy import ndimage

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure, canonical_name
from reirrad_opt.plausibility import (DEFAULT_BOUNDS, PlausibilityBounds, check_ct_hu, check_prior_dose,
                                      check_prior_fractionation, check_spacing_mm, record_overrides)

SHAPE = (128, 128, 128)
OPENKBP_ROIS = ("Brainstem", "SpinalCord", "RightParotid", "LeftParotid", "Esophagus", "Larynx", "Mandible",
                "PTV56", "PTV63", "PTV70")
BODY_THRESHOLD_HU = -400.0
RAW_CT_RANGE = (0.0, 65535.0)  # stored CT values: 12- or 16-bit, HU + 1024


class OpenKBPFormatError(ValueError):
    """An OpenKBP patient folder with a missing or malformed file (the message names it)."""


class EmptyCSVError(OpenKBPFormatError):
    """An OpenKBP CSV file of 0 bytes (not even the header line)."""


def _loadtxt(path: Path, **kwargs) -> np.ndarray:
    """np.loadtxt without its warning for a header-only file (an empty structure or dose, which the
    caller reports in its own words)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input contained no data")
        return np.loadtxt(path, **kwargs)


def read_sparse_csv(path: Path, with_values: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """(flat indices, values or None) of an OpenKBP sparse CSV; OpenKBPFormatError names the file
    (EmptyCSVError for a 0-byte file); a repeated index is an error (it would overwrite a voxel)."""
    if Path(path).stat().st_size == 0:
        raise EmptyCSVError(f"{path}: the file is empty (0 bytes); an OpenKBP sparse CSV starts with the header ',data'")
    try:
        with open(path) as fh:
            header = fh.readline().strip()
        if header.replace(" ", "") not in (",data", "index,data", ""):
            raise OpenKBPFormatError(f"{path}: header {header!r}; expected ',data'")
        if with_values:
            table = _loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
            if table.size and table.shape[1] != 2:
                raise OpenKBPFormatError(f"{path}: expected two columns (index, value), found {table.shape[1]}")
            idx = table[:, 0] if table.size else np.zeros(0)
            values = table[:, 1] if table.size else np.zeros(0)
        else:
            idx = _loadtxt(path, delimiter=",", skiprows=1, usecols=0, ndmin=1)
            values = None
    except OpenKBPFormatError:
        raise
    except (ValueError, IndexError) as exc:
        raise OpenKBPFormatError(f"{path}: not an OpenKBP sparse CSV ({exc})") from exc
    if idx.size and (np.any(idx != np.round(idx)) or idx.min() < 0 or idx.max() >= np.prod(SHAPE)):
        raise OpenKBPFormatError(f"{path}: indices must be integers in [0, {np.prod(SHAPE)}) (flat C order of a "
                                 f"{SHAPE} grid); found {idx.min():g}..{idx.max():g}")
    if values is not None and not np.all(np.isfinite(values)):
        raise OpenKBPFormatError(f"{path}: non-finite values")
    if idx.size:
        uniq, counts = np.unique(idx, return_counts=True)
        if uniq.size != idx.size:
            repeated = uniq[counts > 1]
            raise OpenKBPFormatError(f"{path}: {repeated.size} index(es) listed more than once (first: {int(repeated[0])}, "
                                     f"{int(counts.max())} times); a later row would silently overwrite an earlier one")
    return idx.astype(np.int64), values


def _dense(idx: np.ndarray, values: np.ndarray | None, dtype) -> np.ndarray:
    out = np.zeros(int(np.prod(SHAPE)), dtype=dtype)
    out[idx] = True if values is None else values
    return out.reshape(SHAPE)


def to_case_axes(volume: np.ndarray) -> np.ndarray:
    """OpenKBP array [i0 (y), i1 (x), i2 (-z)] -> project array [z, y, x] with z ascending."""
    return np.ascontiguousarray(np.transpose(volume, (2, 0, 1))[::-1])


def body_from_ct(ct_hu: np.ndarray, threshold_hu: float = BODY_THRESHOLD_HU) -> np.ndarray:
    """The largest connected region above ``threshold_hu``, with holes filled slice by slice."""
    above = ct_hu > threshold_hu
    labels, n = ndimage.label(above)
    if n == 0:
        return above
    sizes = ndimage.sum_labels(above, labels, index=np.arange(1, n + 1))
    body = labels == (int(np.argmax(sizes)) + 1)
    for k in range(body.shape[0]):
        if body[k].any():
            body[k] = ndimage.binary_fill_holes(body[k])
    return body


def _applies(exported: str, roi: str) -> bool:
    """Whether a --structure-map entry naming ``exported`` renames the OpenKBP structure ``roi`` (the
    matching rule of :func:`canonical_name`: the same name, or equal ignoring case and separators)."""
    probe = "\x00probe"
    return canonical_name(roi, {probe: exported}) == probe


def check_structure_map(root: Path, structure_map: dict[str, str] | None) -> None:
    """ValueError for a --structure-map entry whose exported name is none of the structure files of
    the patient folder (it would be silently ignored); the message lists the folder's structures."""
    present = [roi for roi in OPENKBP_ROIS if (root / f"{roi}.csv").is_file()]
    for canonical, exported in (structure_map or {}).items():
        if not any(_applies(exported, roi) for roi in present):
            raise ValueError(f"--structure-map {canonical}={exported}: {root} has no structure {exported!r}; its "
                             f"structures (OpenKBP names, one CSV file each): {', '.join(present) or 'none'}")


def load_openkbp_case(
    path: str | os.PathLike,
    *,
    interval_months: float | None,
    prior_fractions: int = 35,
    prior_prescription_gy: float = 70.0,
    structure_map: dict[str, str] | None = None,
    name: str | None = None,
    accept: Collection[str] = (),
    bounds: PlausibilityBounds = DEFAULT_BOUNDS,
) -> Case:
    """Read an OpenKBP patient folder (``pt_*``) into a Case; the OpenKBP dose is the prior course.

    Args:
        path: the patient folder (ct.csv, dose.csv, voxel_dimensions.csv, structure CSVs).
        interval_months: months since the prior course; required (OpenKBP does not record it).
        prior_fractions, prior_prescription_gy: the prior course (default 70 Gy in 35 fractions,
            as in the OpenKBP data description).
        structure_map: canonical name -> OpenKBP name overrides for the TG-263 mapping.
        name: case name (default: the folder name).
        accept: override keys confirmed by the user ('zero_prior', 'prior_off_target'; see
            :data:`reirrad_opt.plausibility.OVERRIDE_FLAGS`), recorded in ``source["input_overrides"]``.
        bounds: the plausibility bounds.
    """
    root = Path(path).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    if interval_months is None:
        raise OpenKBPFormatError(f"{root}: OpenKBP does not record the interval since the prior course; give it "
                                 "(--interval-months MONTHS)")
    for required in ("ct.csv", "dose.csv", "voxel_dimensions.csv"):
        if not (root / required).is_file():
            raise OpenKBPFormatError(f"{root / required}: missing (an OpenKBP patient folder holds ct.csv, dose.csv, "
                                     "voxel_dimensions.csv and one CSV per structure)")
    try:
        vox = np.loadtxt(root / "voxel_dimensions.csv", delimiter=",", ndmin=1).ravel()
    except ValueError as exc:
        raise OpenKBPFormatError(f"{root / 'voxel_dimensions.csv'}: not numeric ({exc})") from exc
    if vox.size != 3 or not np.all(np.isfinite(vox)) or vox.min() <= 0:
        raise OpenKBPFormatError(f"{root / 'voxel_dimensions.csv'}: expected three positive voxel sizes in mm, "
                                 f"got {vox.tolist()}")
    check_structure_map(root, structure_map)
    check_spacing_mm(vox, f"{root / 'voxel_dimensions.csv'}", bounds)
    check_prior_fractionation(prior_fractions, prior_prescription_gy, str(root), bounds)
    spacing = (float(vox[2]), float(vox[0]), float(vox[1]))  # (dz, dy, dx)
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(SHAPE, spacing))
    grid = Grid(SHAPE, spacing, origin)
    notes = [
        "OpenKBP: axes i0 -> +y (posterior), i1 -> +x (left), i2 -> -z (inferior); reordered to (z, y, x)",
        "OpenKBP: no patient coordinates in the data; the grid is centred on (0, 0, 0) mm",
        "OpenKBP: CT = clip(value, 0, 4095) - 1024 HU (absent voxels -1024 HU), as the data description recommends",
    ]
    idx, values = read_sparse_csv(root / "ct.csv")
    if values.size and (values.min() < RAW_CT_RANGE[0] or values.max() > RAW_CT_RANGE[1]):
        raise OpenKBPFormatError(f"{root / 'ct.csv'}: stored CT values from {values.min():.6g} to {values.max():.6g}; "
                                 f"expected {RAW_CT_RANGE[0]:g} to {RAW_CT_RANGE[1]:g} (HU + 1024, 12 or 16 bits)")
    ct_hu = to_case_axes(np.clip(_dense(idx, values, np.float32), 0, 4095) - 1024).astype(np.float32)
    notes.extend(check_ct_hu(ct_hu, str(root / "ct.csv"), bounds))
    idx, values = read_sparse_csv(root / "dose.csv")
    if values.size and values.min() < 0:
        raise OpenKBPFormatError(f"{root / 'dose.csv'}: negative dose values")
    dose = to_case_axes(_dense(idx, values, np.float32))
    structures: dict[str, Structure] = {}
    rois, empty = [], []
    for roi in OPENKBP_ROIS:
        f = root / f"{roi}.csv"
        if not f.is_file():
            notes.append(f"OpenKBP: {roi} not contoured for this patient")
            continue
        try:
            idx, _ = read_sparse_csv(f, with_values=False)
        except EmptyCSVError:
            idx = None
        if idx is None or idx.size == 0:
            empty.append(roi)
            notes.append(f"OpenKBP: {f.name} is {'empty (0 bytes)' if idx is None else 'a header without voxels'}; "
                         f"structure {roi} not imported")
            continue
        mask = to_case_axes(_dense(idx, None, bool))
        cname = canonical_name(roi, structure_map)
        if cname in structures:
            raise OpenKBPFormatError(f"{f}: maps to {cname!r}, already used; adjust --structure-map")
        structures[cname] = Structure(cname, mask)
        rois.append({"name": cname, "exported_name": roi, "volume_cc": round(float(mask.sum()) * grid.voxel_volume_cc, 4)})
    if "External" not in structures:
        body = body_from_ct(ct_hu)
        structures = {"External": Structure("External", body, "external"), **structures}
        notes.append(f"OpenKBP: no body contour; External = largest connected region above {BODY_THRESHOLD_HU:g} HU "
                     "with holes filled slice by slice")
    prior = PriorCourse(n_fractions=prior_fractions, interval_months=float(interval_months), modality="photon",
                        prescription_gy=prior_prescription_gy,
                        description=f"OpenKBP plan: {prior_prescription_gy:g} Gy in {prior_fractions} fx to PTV70 "
                                    "(9-field 6 MV IMRT)")
    targets = {n: s.mask for n, s in structures.items() if s.role == "target"}
    overrides = check_prior_dose(dose, prior_prescription_gy, targets, str(root / "dose.csv"), bounds, accept)
    source = {"kind": "openkbp", "reference_dir": str(root), "patient": root.name, "rois": rois, "empty_rois": empty,
              "notes": notes}
    record_overrides(source, overrides)
    return Case(name or root.name, grid, ct_hu, structures, dose, prior, source)


def crop_to_body(case: Case, margin_vox: int = 2) -> Case:
    """The case cropped to the bounding box of its External (plus ``margin_vox`` voxels): only
    air outside the body is removed, so dose calculation is unchanged."""
    body = case.body
    idx = np.argwhere(body)
    lo = np.maximum(idx.min(axis=0) - margin_vox, 0)
    hi = np.minimum(idx.max(axis=0) + margin_vox + 1, case.grid.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    grid = Grid(tuple(int(b - a) for a, b in zip(lo, hi)), case.grid.spacing_mm,
                tuple(o + s * a for o, s, a in zip(case.grid.origin_mm, case.grid.spacing_mm, lo)))
    structures = {n: Structure(n, s.mask[box], s.role) for n, s in case.structures.items()}
    source = dict(case.source)
    source["notes"] = list(case.source.get("notes", [])) + [
        f"cropped to the External's bounding box (+{margin_vox} voxels): shape {grid.shape}"]
    return Case(case.name, grid, case.ct_hu[box], structures, case.prior_dose_gy[box], case.prior, source,
                tuple(dataclasses.replace(p, dose_gy=p.dose_gy[box]) for p in case.further_priors))


def _coarse_masks(case: Case, factor: int) -> dict[str, np.ndarray]:
    """The structure masks :func:`coarsen` makes (crop to the body, trim, blocks at least half inside)."""
    case = crop_to_body(case, margin_vox=factor)
    shape = tuple(n // factor for n in case.grid.shape)
    out = {}
    for n, s in case.structures.items():
        m = s.mask[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor]
        out[n] = m.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5)) >= 0.5
    return out


def _largest_factor_keeping(case: Case, factor: int) -> int:
    """The largest coarsening factor below ``factor`` that leaves every non-empty structure non-empty."""
    had = [n for n, s in case.structures.items() if s.mask.any()]
    for f in range(factor - 1, 1, -1):
        masks = _coarse_masks(case, f)
        if all(masks[n].any() for n in had):
            return f
    return 1


def coarsen(case: Case, factor: int) -> Case:
    """The case on a grid ``factor`` times coarser along every axis (block averages): CT and prior
    dose are block means, a structure keeps the blocks at least half inside it. The grid is first
    cropped to the body and trimmed to a multiple of ``factor``. ValueError when a structure that
    has voxels would have none (naming it and the largest factor that keeps every structure)."""
    if int(factor) != factor or factor < 1:
        raise ValueError(f"coarsening factor must be a positive integer, got {factor}")
    factor = int(factor)
    original = case
    case = crop_to_body(case, margin_vox=factor)
    if factor == 1:
        return case
    shape = tuple(n // factor for n in case.grid.shape)
    if min(shape) < 1:
        raise ValueError(f"coarsening by {factor} leaves no voxel along an axis of {case.grid.shape}")

    def block_mean(a: np.ndarray) -> np.ndarray:
        a = a[: shape[0] * factor, : shape[1] * factor, : shape[2] * factor].astype(np.float64)
        return a.reshape(shape[0], factor, shape[1], factor, shape[2], factor).mean(axis=(1, 3, 5))

    spacing = tuple(s * factor for s in case.grid.spacing_mm)
    origin = tuple(o + s * (factor - 1) / 2 for o, s in zip(case.grid.origin_mm, case.grid.spacing_mm))
    grid = Grid(shape, spacing, origin)
    structures = {n: Structure(n, block_mean(s.mask) >= 0.5, s.role) for n, s in case.structures.items()}
    emptied = [n for n, s in case.structures.items() if s.mask.any() and not structures[n].mask.any()]
    if emptied:
        volumes = ", ".join(f"{n} ({case.structures[n].volume_cc(case.grid):.2f} cc)" for n in emptied)
        keeps = _largest_factor_keeping(original, factor)
        raise ValueError(f"--coarsen {factor}: voxels of {tuple(round(s, 3) for s in spacing)} mm would empty "
                         f"{volumes} (a structure keeps only the blocks at least half inside it); use a smaller "
                         f"--coarsen ({keeps} keeps every structure)")
    source = dict(case.source)
    source["notes"] = list(case.source.get("notes", [])) + [
        f"coarsened by {factor} per axis (block means of CT and dose; a structure keeps blocks at least half inside): "
        f"{grid.shape} voxels of {tuple(round(s, 3) for s in spacing)} mm"]
    return Case(case.name, grid, block_mean(case.ct_hu).astype(np.float32), structures,
                block_mean(case.prior_dose_gy).astype(np.float32), case.prior, source,
                tuple(dataclasses.replace(p, dose_gy=block_mean(p.dose_gy).astype(np.float32))
                      for p in case.further_priors))
