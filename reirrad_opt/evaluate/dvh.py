"""Dose-volume histograms in absolute (cc) and relative (%) volume.

A :class:`DVH` holds either the dose *samples* of a structure with their volumes (exact metrics,
built by :func:`dvh` or :meth:`DVH.from_samples`) or only a tabulated cumulative curve (e.g. a
TPS export, :meth:`DVH.from_cumulative`), from which metrics are interpolated.

Conventions (samples, sorted from the hottest):

* ``V(x)`` = total volume of the samples whose dose is >= x.
* ``D(v cc)`` = the dose at which the hottest ``v`` cc are reached: on the axis of cumulative
  volume from the hottest sample, each dose level (samples of equal dose, within 1e-9 Gy, form one
  level) stands at the middle of its own volume, and the dose is interpolated linearly between
  levels (held at Dmax / Dmin beyond the first / last midpoint). For a dose that varies linearly across evenly
  sampled layers this is exact; the plain "dose of the sample that completes v" would be biased
  by half a sample's thickness times the gradient. ``D(x %)`` is ``D(x/100 * total volume)``.
* Dmax / Dmin / Dmean are the extreme and volume-weighted mean doses of the samples.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..geometry import Grid


# A tabulated cumulative curve may rise by this much (% of the structure volume) from one bin to the
# next before it is refused: rounding in TPS exports (Eclipse: 0.00022 %), far below any clinical volume.
RISE_TOLERANCE_PCT = 0.01


class VolumeBeyondStructure(ValueError):
    """A D<v> metric asked for more volume than the structure has."""


@dataclass
class DVH:
    """Cumulative DVH.

    Attributes:
        dose_gy: dose axis (Gy), ascending, starting at 0.
        volume_cc: volume receiving >= each dose (cc), non-increasing.
        total_cc: structure volume (cc).
        sample_dose_gy: the dose samples sorted in DESCENDING order (None for a tabulated curve).
        sample_volume_cc: the volume of each sample (cc), same order.
        notes: what was corrected in a tabulated curve (see :meth:`from_cumulative`).
    """

    dose_gy: np.ndarray
    volume_cc: np.ndarray
    total_cc: float
    sample_dose_gy: np.ndarray | None = field(default=None, repr=False)
    sample_volume_cc: np.ndarray | None = field(default=None, repr=False)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_samples(cls, dose_gy, volume_cc, bin_gy: float = 0.01) -> "DVH":
        """DVH of dose samples with their volumes (cc); the curve is tabulated every ``bin_gy``."""
        d = np.asarray(dose_gy, dtype=float).ravel()
        w = np.broadcast_to(np.asarray(volume_cc, dtype=float), d.shape).ravel()
        if d.size == 0:
            raise ValueError("DVH: no dose samples (empty structure)")
        if not np.all(np.isfinite(d)):
            raise ValueError("DVH: dose samples must be finite")
        if np.any(w < 0) or not np.all(np.isfinite(w)) or w.sum() <= 0:
            raise ValueError("DVH: sample volumes must be finite, >= 0 and not all zero")
        if bin_gy <= 0:
            raise ValueError(f"DVH: bin_gy must be > 0, got {bin_gy}")
        order = np.argsort(-d, kind="stable")
        d, w = d[order], w[order]
        total = float(w.sum())
        top = max(float(d[0]), 0.0)
        axis = np.arange(int(np.floor(top / bin_gy)) + 2) * bin_gy   # last point > Dmax: V = 0 there
        # V(x) = sum of w where d >= x; d is descending, so count the samples with d >= x.
        n_at_least = np.searchsorted(-d, -axis, side="right")
        cum = np.concatenate([[0.0], np.cumsum(w)])
        return cls(axis, cum[n_at_least], total, d, w)

    @classmethod
    def from_cumulative(cls, dose_gy, volume_cc, *, rise_tolerance_pct: float = RISE_TOLERANCE_PCT,
                        what: str = "DVH.from_cumulative") -> "DVH":
        """DVH from a tabulated cumulative curve (dose ascending, volume non-increasing, the first
        volume being the structure's). Metrics are interpolated linearly on the curve.

        TPS exports carry rounding noise: Eclipse's own table rises by 0.00022 % of OrbitRight's
        volume in its last bin. A rise of the volume from one bin to the next of at most
        ``rise_tolerance_pct`` % of the structure volume (default 0.01 %) is such noise: the curve is
        made non-increasing by a running minimum and the fix is stated in :attr:`notes`. A larger
        rise is an error naming the bin (``what`` names the curve in messages)."""
        d = np.asarray(dose_gy, dtype=float)
        v = np.asarray(volume_cc, dtype=float)
        if d.shape != v.shape or d.ndim != 1 or d.size < 2:
            raise ValueError(f"{what}: dose and volume must be 1-D of equal length >= 2")
        if not (np.all(np.isfinite(d)) and np.all(np.isfinite(v))):
            raise ValueError(f"{what}: dose and volume must be finite numbers")
        if np.any(np.diff(d) < 0):
            i = int(np.flatnonzero(np.diff(d) < 0)[0])
            raise ValueError(f"{what}: dose must be ascending; bin {i + 1} ({d[i + 1]:g} Gy) follows {d[i]:g} Gy")
        if v[0] <= 0:
            raise ValueError(f"{what}: the first volume (the structure's) must be > 0, got {v[0]:g} cc")
        if not 0 <= rise_tolerance_pct < 100:
            raise ValueError(f"{what}: rise_tolerance_pct must be in [0, 100) %, got {rise_tolerance_pct}")
        running_min = np.minimum.accumulate(v)
        rise = v - running_min          # how far each bin lies above the lowest volume before it
        notes: list[str] = []
        if np.any(rise > 0):
            i = int(np.argmax(rise))
            pct = 100.0 * float(rise[i]) / float(v[0])
            where = f"bin {i} ({d[i]:g} Gy): {v[i]:.6g} cc after {running_min[i]:.6g} cc at a lower dose"
            if pct > rise_tolerance_pct:
                raise ValueError(f"{what}: the cumulative volume rises with dose at {where}, a rise of {pct:.3g} % of "
                                 f"the structure volume (tolerance {rise_tolerance_pct:g} %); not a cumulative DVH")
            n = int(np.count_nonzero(rise > 0))
            notes.append(f"{what}: the volume rises with dose in {n} bin(s), at most {pct:.2g} % of the structure "
                         f"volume ({where}), within the {rise_tolerance_pct:g} % tolerance: made non-increasing "
                         "by a running minimum")
            v = running_min
        return cls(d, v, float(v[0]), notes=notes)

    # ------------------------------------------------------------------ properties
    @property
    def volume_pct(self) -> np.ndarray:
        """Volume receiving >= each dose, in % of the structure."""
        return 100.0 * self.volume_cc / self.total_cc

    @property
    def has_samples(self) -> bool:
        return self.sample_dose_gy is not None

    @property
    def max_gy(self) -> float:
        if self.has_samples:
            return float(self.sample_dose_gy[0])
        nz = np.flatnonzero(self.volume_cc > 0)
        return float(self.dose_gy[min(nz[-1] + 1, self.dose_gy.size - 1)]) if nz.size else 0.0

    @property
    def min_gy(self) -> float:
        if self.has_samples:
            return float(self.sample_dose_gy[-1])
        full = np.flatnonzero(self.volume_cc >= self.total_cc * (1 - 1e-9))
        return float(self.dose_gy[full[-1]])

    @property
    def mean_gy(self) -> float:
        """Volume-weighted mean dose; for a tabulated curve (1/V) * integral of V(D) dD
        (trapezoid rule: dose spread evenly within each bin)."""
        if self.has_samples:
            return float(np.dot(self.sample_dose_gy, self.sample_volume_cc) / self.total_cc)
        v, d = self.volume_cc, self.dose_gy
        return float(np.sum(0.5 * (v[1:] + v[:-1]) * np.diff(d)) / self.total_cc)

    # ------------------------------------------------------------------ metrics
    def d_at_volume_cc(self, volume_cc: float, *, beyond: str = "raise") -> float:
        """Minimum dose (Gy) to the hottest ``volume_cc`` cc.

        ``beyond``: what to do when ``volume_cc`` exceeds the structure volume: 'raise'
        (:class:`VolumeBeyondStructure`) or 'min' (return Dmin; the caller must say so)."""
        v = float(volume_cc)
        if not np.isfinite(v) or v <= 0:
            raise ValueError(f"DVH: volume must be > 0 cc, got {volume_cc}")
        if v > self.total_cc * (1 + 1e-9):
            if beyond == "min":
                return self.min_gy
            raise VolumeBeyondStructure(f"D{v:g}cc asked for {v:g} cc but the structure has {self.total_cc:.4g} cc")
        if self.has_samples:
            dose, vol = self._dose_groups()
            mid = np.cumsum(vol) - 0.5 * vol
            return float(np.interp(v, mid, dose))
        # tabulated curve: V(D) non-increasing; the largest D with V(D) >= v, interpolated linearly
        vol, dose = self.volume_cc, self.dose_gy
        idx = np.flatnonzero(vol >= v)
        i = int(idx[-1])
        if i + 1 >= vol.size or vol[i + 1] == vol[i]:
            return float(dose[i])
        t = (vol[i] - v) / (vol[i] - vol[i + 1])
        return float(dose[i] + t * (dose[i + 1] - dose[i]))

    def _dose_groups(self) -> tuple[np.ndarray, np.ndarray]:
        """Samples with equal dose (within 1e-9 Gy) merged: (dose descending, group volume)."""
        if getattr(self, "_groups", None) is None:
            d, w = self.sample_dose_gy, self.sample_volume_cc
            starts = np.concatenate([[0], np.flatnonzero(np.diff(d) < -1e-9) + 1])
            self._groups = (d[starts], np.add.reduceat(w, starts))
        return self._groups

    def d_at_volume_pct(self, percent: float, *, beyond: str = "raise") -> float:
        """Minimum dose (Gy) to the hottest ``percent`` % of the structure (D98% = near-min)."""
        p = float(percent)
        if not 0 < p <= 100:
            raise ValueError(f"DVH: percent must be in (0, 100], got {percent}")
        return self.d_at_volume_cc(p / 100.0 * self.total_cc, beyond=beyond)

    def v_at_dose_gy(self, dose_gy: float, unit: str = "cc") -> float:
        """Volume receiving >= ``dose_gy`` in 'cc' or '%' of the structure."""
        x = float(dose_gy)
        if self.has_samples:
            n = int(np.searchsorted(-self.sample_dose_gy, -x, side="right"))
            v = float(self.sample_volume_cc[:n].sum())
        else:
            if x <= self.dose_gy[0]:
                v = float(self.volume_cc[0])
            elif x >= self.dose_gy[-1]:
                v = float(self.volume_cc[-1]) if x == self.dose_gy[-1] else 0.0
            else:
                v = float(np.interp(x, self.dose_gy, self.volume_cc))
        if unit == "cc":
            return v
        if unit == "%":
            return 100.0 * v / self.total_cc
        raise ValueError(f"DVH: unit must be 'cc' or '%', got {unit!r}")

    def to_dict(self, max_points: int = 200) -> dict:
        """JSON-ready curve (at most ``max_points`` points) and summary."""
        step = max(1, int(np.ceil(self.dose_gy.size / max_points)))
        return {"total_cc": self.total_cc, "dose_gy": self.dose_gy[::step].round(4).tolist(),
                "volume_pct": self.volume_pct[::step].round(4).tolist(),
                "mean_gy": self.mean_gy, "max_gy": self.max_gy, "min_gy": self.min_gy}


def dvh(dose_gy: np.ndarray, mask: np.ndarray, grid: Grid, bin_gy: float = 0.01, *, fine_factor: int = 1,
        fine_mask: np.ndarray | None = None, fine_grid: Grid | None = None) -> DVH:
    """DVH of ``dose_gy`` (Gy, on ``grid``) in the structure ``mask``.

    ``fine_factor`` > 1 supersamples every voxel of the mask into ``fine_factor``^3 sub-voxels
    and interpolates the dose trilinearly at their centres; ``fine_mask`` on ``fine_grid`` (a finer
    rasterisation of the structure) replaces the mask's own sub-voxels. See
    :mod:`reirrad_opt.evaluate.sampling`.
    """
    from .sampling import structure_samples

    samples = structure_samples(dose_gy, mask, grid, fine_factor=fine_factor, fine_mask=fine_mask, fine_grid=fine_grid)
    return DVH.from_samples(samples.dose_gy, samples.volume_cc, bin_gy=bin_gy)
