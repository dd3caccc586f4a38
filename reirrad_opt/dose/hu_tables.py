"""CT number (HU) to relative electron density (photons) and to relative stopping power
(particles): the piecewise-linear :class:`HUCurve` and the default curves.

The default curves :data:`RED_CURVE` and :data:`SPR_CURVE` are the stoichiometric calibration of
a generic scanner (Schneider et al. 1996/2000), computed at import from reference tissues
(ICRP Publication 110), NIST photon attenuation and the Bethe formula: see
:mod:`.stoichiometric` for the method and :mod:`.ct_reference_data` for the data. They hold
straight segments for air, lung, adipose tissue, soft tissue (through water: 0 HU reads exactly
1) and bone, from -1024 to 3071 HU. They describe a generic scanner: a clinic supplies its own
calibration (``--ct-calibration FILE``, :mod:`.ct_calibration`).

A curve converts only CT numbers within its own table: a CT number outside [first HU, last HU]
is refused with a ValueError that names the curve's source, never clipped or extrapolated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .stoichiometric import HU_MAX, HU_MIN, curve_anchors, default_segments  # noqa: F401


@dataclass(frozen=True)
class HUCurve:
    """A piecewise-linear conversion from CT number (HU) to a relative quantity.

    Attributes:
        name: what the curve gives ('relative electron density', 'stopping-power ratio').
        hu: anchor CT numbers, strictly increasing (HU).
        value: the quantity at each anchor (dimensionless, relative to water).
        source: where the anchors come from (free text, printed in reports).
    """

    name: str
    hu: tuple[float, ...]
    value: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        hu = np.asarray(self.hu, dtype=float)
        val = np.asarray(self.value, dtype=float)
        if hu.ndim != 1 or hu.size < 2 or hu.size != val.size:
            raise ValueError(f"HU curve {self.name!r}: needs >= 2 anchors with one value each, "
                             f"got {hu.size} HU and {val.size} values")
        if np.any(np.diff(hu) <= 0):
            raise ValueError(f"HU curve {self.name!r}: anchor HU must be strictly increasing, got {list(hu)}")
        if np.any(val < 0) or not np.all(np.isfinite(val)):
            raise ValueError(f"HU curve {self.name!r}: values must be finite and >= 0, got {list(val)}")

    def __call__(self, ct_hu: np.ndarray) -> np.ndarray:
        """Convert CT numbers (HU, any shape) to the relative quantity (float32, same shape).

        Raises ValueError (naming the curve's source) if any CT number is not finite or lies
        outside the curve's table [first HU, last HU]."""
        ct = np.asarray(ct_hu, dtype=np.float32)
        if ct.size == 0:
            return ct.astype(np.float32)
        lo, hi = float(np.min(ct)), float(np.max(ct))
        first, last = float(self.hu[0]), float(self.hu[-1])
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < first - 1e-3 or hi > last + 1e-3:
            outside = int(np.count_nonzero(~np.isfinite(ct) | (ct < first - 1e-3) | (ct > last + 1e-3)))
            raise ValueError(f"{self.name} ({self.source}): CT numbers must be finite and within the table's "
                             f"{first:g} to {last:g} HU, got {lo:g} to {hi:g} HU ({outside} voxels outside); "
                             f"CT numbers outside a calibration are refused, not clipped")
        return np.interp(ct, np.asarray(self.hu, dtype=np.float64),
                         np.asarray(self.value, dtype=np.float64)).astype(np.float32)

    def to_dict(self) -> dict:
        return {"name": self.name, "hu": list(self.hu), "value": list(self.value), "source": self.source}


_DEFAULT_SOURCE = ("default stoichiometric calibration: generic scanner (Schneider's model at 70 keV fitted to NIST "
                   "attenuation), ICRP 110 tissues, Bethe SPR at 100 MeV (I water 75 eV)")

RED_CURVE = HUCurve("relative electron density", *curve_anchors(default_segments("red")), source=_DEFAULT_SOURCE)
SPR_CURVE = HUCurve("stopping-power ratio", *curve_anchors(default_segments("spr")), source=_DEFAULT_SOURCE)


def relative_electron_density(ct_hu: np.ndarray, curve: HUCurve = RED_CURVE) -> np.ndarray:
    """Relative electron density (to water) from CT numbers (HU); float32."""
    return curve(ct_hu)


def stopping_power_ratio(ct_hu: np.ndarray, curve: HUCurve = SPR_CURVE) -> np.ndarray:
    """Proton stopping-power ratio (to water) from CT numbers (HU); float32."""
    return curve(ct_hu)
