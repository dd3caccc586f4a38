"""CT number (HU) to relative electron density (photons) and to relative stopping power
(particles).

Both curves are piecewise linear in HU through three anchor materials, and are constant-slope
extrapolated above the bone anchor up to 3071 HU (the largest 12-bit CT number):

============  =======  ======================  =============================================
material        HU     relative e- density     stopping-power ratio to water (SPR)
============  =======  ======================  =============================================
air           -1000    0.001                   0.001
water            0     1.000                   1.000
cortical bone  1500    1.781                   1.700
============  =======  ======================  =============================================

Sources and reasoning:

* Below 0 HU the curve is the air-water mixing line, ``RED = 1 + HU/1000``: a mixture of water
  and air has exactly this CT number by the definition of the Hounsfield scale, and lung and
  low-density soft tissue lie close to it (e.g. Schneider, Pedroni & Lomax 1996, Phys. Med. Biol.
  41:111, their fig. 3).
* Cortical bone is ICRU Report 46 cortical bone (mass density 1.92 g/cm^3, Z/A 0.5148, so an
  electron density relative to water of 1.92 * 0.5148 / 0.5551 = 1.781). Its stopping-power
  ratio follows from the Bethe formula at 100 MeV with mean excitation energies I = 75 eV
  (water, ICRU 49) and I = 106.4 eV (ICRP cortical bone, as used by NIST PSTAR):
  ``SPR = RED * L(106.4 eV) / L(75 eV) = 1.781 * 0.955 = 1.700``.
* 1500 HU for cortical bone is a typical value at 120 kVp; the HU axis is scanner-specific, so
  a clinical calibration (stoichiometric, Schneider et al. 1996) should replace this table via
  :class:`HUCurve` when one is available. The test phantoms of this project are built with these
  very HU values, so on them the curves are exact.

Between anchors the curves are linear (water-bone mixing line above 0 HU). Values outside
[-1024, 3071] HU are rejected, not clipped.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HU_MIN = -1024.0
HU_MAX = 3071.0


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

        Raises ValueError if any CT number is outside [-1024, 3071] HU or not finite."""
        ct = np.asarray(ct_hu, dtype=np.float32)
        lo, hi = float(np.min(ct)), float(np.max(ct))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < HU_MIN - 1e-3 or hi > HU_MAX + 1e-3:
            raise ValueError(f"{self.name}: CT numbers must be finite and within [{HU_MIN:g}, {HU_MAX:g}] HU, "
                             f"got [{lo:g}, {hi:g}]")
        hu = np.asarray(self.hu, dtype=np.float64)
        val = np.asarray(self.value, dtype=np.float64)
        # linear extrapolation beyond the end anchors (np.interp would clamp)
        if hu[0] > HU_MIN:
            slope = (val[1] - val[0]) / (hu[1] - hu[0])
            hu = np.concatenate([[HU_MIN], hu])
            val = np.concatenate([[max(0.0, val[0] + slope * (HU_MIN - self.hu[0]))], val])
        if hu[-1] < HU_MAX:
            slope = (val[-1] - val[-2]) / (hu[-1] - hu[-2])
            val = np.concatenate([val, [val[-1] + slope * (HU_MAX - hu[-1])]])
            hu = np.concatenate([hu, [HU_MAX]])
        return np.interp(ct, hu, val).astype(np.float32)

    def to_dict(self) -> dict:
        return {"name": self.name, "hu": list(self.hu), "value": list(self.value), "source": self.source}


RED_CURVE = HUCurve(
    "relative electron density",
    hu=(-1000.0, 0.0, 1500.0),
    value=(0.001, 1.0, 1.781),
    source="air-water mixing line below 0 HU; water-bone line to ICRU 46 cortical bone (RED 1.781) at 1500 HU",
)

SPR_CURVE = HUCurve(
    "stopping-power ratio",
    hu=(-1000.0, 0.0, 1500.0),
    value=(0.001, 1.0, 1.700),
    source="air-water mixing line below 0 HU; water-bone line to ICRU 46 cortical bone (SPR 1.700, Bethe, "
           "I = 106.4 eV vs 75 eV for water) at 1500 HU",
)


def relative_electron_density(ct_hu: np.ndarray, curve: HUCurve = RED_CURVE) -> np.ndarray:
    """Relative electron density (to water) from CT numbers (HU); float32."""
    return curve(ct_hu)


def stopping_power_ratio(ct_hu: np.ndarray, curve: HUCurve = SPR_CURVE) -> np.ndarray:
    """Proton stopping-power ratio (to water) from CT numbers (HU); float32."""
    return curve(ct_hu)
