"""The dose influence matrix: sparse dose per unit weight of every bixel or spot, with the beams,
the grid and per-column metadata; disk format and cache.

``matrix[i, j]`` is the dose (Gy) in voxel ``i`` (flat C-order index of the full grid, axes
z, y, x) per unit weight of column ``j``. Unit weights: photons, see :mod:`.photon` (1 Gy at
d_max of a 10 x 10 cm^2 field at SSD 100 cm); particles, ``particles_per_unit_weight`` primary
particles of the ion (1e8 protons, 1e7 carbon ions), see :mod:`.particle`. Particle doses are
physical doses (multiply by the RBE, 1.1 for protons, for Gy(RBE)).

Entries below ``rel_cutoff`` times a column's maximum are sampled, not dropped (see
:mod:`.engine`), so ``matrix @ weights`` is an unbiased estimate of the full pencil-beam dose.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp

from ..atomic import atomic_file
from ..geometry import Grid
from ..progress import Progress
from ..progress import detail as progress_detail
from ..progress import step as progress_step
from ..threads import n_threads
from .beams import ParticleField, PhotonBeam, beam_from_dict
from .hu_tables import RED_CURVE, SPR_CURVE, HUCurve
from .particle import ion_species
from .engine import return_freed_memory, to_csc
from .range_shift import RangeShift
from .particle_engine import particle_block
from .photon import SIX_MV, PhotonKernelParams
from .photon_engine import photon_block

ENGINE_VERSION = "reirrad-dose-3"
FILE_FORMAT = "reirrad-influence-1"


class Columns(dict):
    """Per-column metadata arrays (a dict with attribute access).

    Keys: ``beam`` (int32 beam index), ``u_mm``, ``v_mm`` (BEV lateral position at the isocentre
    plane, mm); for particles also ``energy_mev`` (MeV, MeV/u for carbon) and ``range_r80_mm``
    (water-equivalent R80 of the pristine peak, mm).
    """

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"columns have no {name!r}; they have {sorted(self)}") from None

    @property
    def n(self) -> int:
        """Number of columns."""
        return int(self["beam"].size)


@dataclass
class InfluenceMatrix:
    """Sparse dose influence matrix with its grid, beams and column metadata.

    Attributes:
        matrix: CSR (n_voxels x n_columns), float32, Gy per unit weight.
        grid: the dose grid (rows are its flat C-order voxels).
        beams: the PhotonBeam or ParticleField objects, in column order.
        modality: 'photon', 'proton' or 'carbon'.
        columns: per-column metadata (see :class:`Columns`).
        rel_cutoff: the relative threshold used (see :mod:`.engine`).
        meta: model parameters, HU curves, timing and cache key.
    """

    matrix: sp.csr_matrix
    grid: Grid
    beams: list
    modality: str
    columns: Columns
    rel_cutoff: float
    meta: dict = field(default_factory=dict)

    @property
    def n_columns(self) -> int:
        return int(self.matrix.shape[1])

    def beam_columns(self, beam_index: int) -> np.ndarray:
        """Column indices of one beam or field."""
        return np.flatnonzero(self.columns["beam"] == beam_index)

    def dose(self, weights) -> np.ndarray:
        """Physical dose (Gy, float64, shape grid.shape) of non-negative column weights."""
        w = np.asarray(weights, dtype=np.float64).ravel()
        if w.size != self.n_columns:
            raise ValueError(f"weights: expected {self.n_columns} values (one per column), got {w.size}")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("weights must be finite and >= 0")
        return (self.matrix @ w).reshape(self.grid.shape)

    # ---- disk format: one .npz (sparse arrays, column arrays, JSON metadata)
    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to ``path`` (a .npz file)."""
        path = Path(path)
        m = self.matrix
        meta = {"format": FILE_FORMAT, "grid": self.grid.to_dict(), "modality": self.modality,
                "rel_cutoff": self.rel_cutoff, "beams": [b.to_dict() for b in self.beams], "meta": self.meta,
                "shape": list(m.shape)}
        arrays = {"data": m.data, "indices": m.indices, "indptr": m.indptr,
                  "meta_json": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)}
        for k, v in self.columns.items():
            arrays[f"col_{k}"] = v
        with atomic_file(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "InfluenceMatrix":
        """Read a file written by :meth:`save`; ValueError names what is wrong."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: influence matrix file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                files = set(z.files)
                for key in ("data", "indices", "indptr", "meta_json"):
                    if key not in files:
                        raise ValueError(f"{path}: array {key!r} is missing (not an influence matrix file)")
                meta = json.loads(bytes(z["meta_json"]).decode())
                if meta.get("format") != FILE_FORMAT:
                    raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FILE_FORMAT!r}")
                matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(meta["shape"]))
                columns = Columns({k[4:]: z[k] for k in files if k.startswith("col_")})
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ValueError(f"{path}: cannot read influence matrix ({exc})") from exc
        grid = Grid.from_dict(meta["grid"])
        beams = [beam_from_dict(b) for b in meta["beams"]]
        return cls(matrix, grid, beams, meta["modality"], columns, float(meta["rel_cutoff"]), meta.get("meta", {}))


def _modality(beams: Sequence) -> str:
    if not beams:
        raise ValueError("beams_or_fields is empty: give at least one beam or field")
    kinds = {b.modality for b in beams}
    if len(kinds) != 1:
        raise ValueError(f"beams_or_fields mixes modalities {sorted(kinds)}; one influence matrix holds one modality")
    for b in beams:
        if not isinstance(b, (PhotonBeam, ParticleField)):
            raise ValueError(f"beams_or_fields: expected PhotonBeam or ParticleField objects, got {type(b).__name__}")
    return kinds.pop()


def cache_key(grid: Grid, ct_hu: np.ndarray, mask: np.ndarray, beams: Sequence, rel_cutoff: float,
              extra: dict) -> str:
    """SHA-256 of every input that changes the matrix."""
    h = hashlib.sha256()
    h.update(ENGINE_VERSION.encode())
    h.update(json.dumps(grid.to_dict(), sort_keys=True).encode())
    h.update(np.ascontiguousarray(ct_hu, dtype=np.float32).tobytes())
    h.update(np.packbits(np.ascontiguousarray(mask, dtype=bool)).tobytes())
    h.update(json.dumps([b.to_dict() for b in beams], sort_keys=True).encode())
    h.update(repr(float(rel_cutoff)).encode())
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def compute_influence(grid: Grid, ct_hu: np.ndarray, body_mask: np.ndarray, beams_or_fields: Sequence, *,
                      target_mask: np.ndarray | None = None, rel_cutoff: float = 1e-3,
                      cache_dir: str | os.PathLike | None = None,
                      progress: Callable[[str], None] | None = None,
                      photon_params: PhotonKernelParams = SIX_MV, red_curve: HUCurve = RED_CURVE,
                      spr_curve: HUCurve = SPR_CURVE, range_shift: RangeShift | None = None) -> InfluenceMatrix:
    """Dose influence matrix of photon beams or particle fields.

    Args:
        grid: the dose grid.
        ct_hu: CT numbers (HU) on the grid.
        body_mask: voxels that can receive dose (the external contour); outside it the density is
            taken as zero (no couch, no air attenuation).
        beams_or_fields: PhotonBeam objects (photon_beams) or ParticleField objects
            (particle_fields), all of one modality.
        target_mask: optional target; its voxels are computed even where they fall outside the
            body mask.
        rel_cutoff: relative threshold of each column below which entries are sampled (0 < x < 1).
        cache_dir: folder for cached matrices (key: hash of every input; a leading ``~`` is the user's home
            folder); None disables caching.
        progress: callable receiving progress messages; None prints to a terminal only.
        photon_params, red_curve, spr_curve: model data (defaults documented in the modules).
        range_shift: particles only: a range error applied to the stopping power and the depths (robust
            evaluation's range scenarios, :mod:`.range_shift`); None or zero for the planned range.
    """
    t0 = time.perf_counter()
    report = progress if progress is not None else Progress()
    beams = list(beams_or_fields)
    modality = _modality(beams)
    ct_hu = np.asarray(ct_hu)
    grid.check_array(ct_hu, "ct_hu")
    body = np.asarray(body_mask, dtype=bool)
    grid.check_array(body, "body_mask")
    if target_mask is not None:
        target = np.asarray(target_mask, dtype=bool)
        grid.check_array(target, "target_mask")
        body = body | target
    if not body.any():
        raise ValueError("body_mask is empty: no voxel can receive dose")
    if not (0.0 < float(rel_cutoff) < 1.0):
        raise ValueError(f"rel_cutoff must be in (0, 1), got {rel_cutoff}")
    rel_cutoff = float(rel_cutoff)
    extra = {"photon": photon_params.to_dict(), "red": red_curve.to_dict()} if modality == "photon" else \
        {"ion": ion_species(modality).to_dict(), "spr": spr_curve.to_dict()}
    shift = range_shift if range_shift is not None and not range_shift.is_zero else None
    if shift is not None:
        if modality == "photon":
            raise ValueError("range_shift: a range error applies to particle fields, not to photon beams")
        extra["range_shift"] = shift.to_dict()
    key = cache_key(grid, ct_hu, body, beams, rel_cutoff, extra)
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir).expanduser() / f"influence-{key[:32]}.npz"   # '~/...' as a shell reads it
        if cache_path.is_file():
            try:
                inf = InfluenceMatrix.load(cache_path)
                if inf.meta.get("key") == key:
                    report(f"influence: loaded from cache {cache_path.name}")
                    return inf
            except ValueError:
                pass  # unreadable cache entry: recompute and overwrite
    curve = red_curve if modality == "photon" else spr_curve
    density = curve(ct_hu)
    if shift is not None:
        density = density * shift.spr_factor
    density[~body] = 0.0
    voxels = np.flatnonzero(body)

    def one_beam(bi: int):
        tb = time.perf_counter()
        beam = beams[bi]
        if modality == "photon":
            blk = photon_block(beam, bi, grid, density, voxels, rel_cutoff, photon_params)
        else:
            blk = particle_block(beam, bi, grid, density, voxels, rel_cutoff,
                                 depth_offset_mm=shift.absolute_mm if shift is not None else 0.0)
        return blk, time.perf_counter() - tb

    # beams in parallel threads (numpy releases the GIL in the array work; each beam's random
    # sampling is seeded from its index, so the matrix does not depend on the thread count)
    blocks = []
    with ThreadPoolExecutor(max_workers=_n_threads(len(beams))) as pool:
        for bi, (blk, seconds) in enumerate(pool.map(one_beam, range(len(beams)))):
            blocks.append(blk)
            return_freed_memory()   # the finished beam's working arrays
            beam = beams[bi]
            progress_step(report, "influence: beam", bi + 1, len(beams), time.perf_counter() - t0,
                          f"gantry {beam.gantry_deg:g}, couch {beam.couch_deg:g}: {beam.n_columns} columns, "
                          f"{blk.nnz / 1e6:.2f} M entries, {seconds:.1f} s")
    del density
    matrix = to_csc(blocks, grid.n_voxels)       # local rows mapped to grid rows while copying
    del blocks
    return_freed_memory()
    matrix = matrix.tocsr()                      # transposition: column indices sorted within rows
    matrix.has_sorted_indices = True
    matrix.sum_duplicates()
    _to_int32(matrix)
    columns = _columns(beams, modality)
    meta = {"key": key, "engine": ENGINE_VERSION, "seconds": round(time.perf_counter() - t0, 3),
            "unit_weight": _unit_weight_text(modality), **extra}
    inf = InfluenceMatrix(matrix, grid, beams, modality, columns, rel_cutoff, meta)
    if cache_path is not None:
        inf.save(cache_path)
    progress_detail(report, f"influence: {matrix.shape[1]} columns, {matrix.nnz / 1e6:.1f} M non-zeros, "
                            f"{time.perf_counter() - t0:.1f} s")
    return inf


def _n_threads(n_beams: int) -> int:
    """Threads for the beams: :func:`~reirrad_opt.threads.n_threads`, at most one per beam."""
    return max(1, min(n_threads(), n_beams))


def _to_int32(m: sp.csr_matrix) -> None:
    if m.nnz < 2 ** 31 - 1 and m.shape[0] < 2 ** 31 - 1 and m.shape[1] < 2 ** 31 - 1:
        m.indices = m.indices.astype(np.int32, copy=False)
        m.indptr = m.indptr.astype(np.int32, copy=False)
    if m.data.dtype != np.float32:
        m.data = m.data.astype(np.float32)


def _columns(beams: Sequence, modality: str) -> Columns:
    if modality == "photon":
        return Columns(
            beam=np.concatenate([np.full(b.n_columns, i, dtype=np.int32) for i, b in enumerate(beams)]),
            u_mm=np.concatenate([b.bixel_u_mm for b in beams]),
            v_mm=np.concatenate([b.bixel_v_mm for b in beams]))
    return Columns(
        beam=np.concatenate([np.full(b.n_columns, i, dtype=np.int32) for i, b in enumerate(beams)]),
        u_mm=np.concatenate([b.spot_u_mm for b in beams]),
        v_mm=np.concatenate([b.spot_v_mm for b in beams]),
        energy_mev=np.concatenate([b.spot_energy_mev for b in beams]),
        range_r80_mm=np.concatenate([b.spot_range_mm for b in beams]))


def _unit_weight_text(modality: str) -> str:
    if modality == "photon":
        return "1 Gy at d_max on the axis of a 10x10 cm2 field of unit-weight bixels on water at SSD 100 cm"
    ion = ion_species(modality)
    return f"{ion.particles_per_unit_weight:.0e} primary {ion.name} ions per unit spot weight"
