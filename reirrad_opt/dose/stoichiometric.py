"""The stoichiometric CT calibration (Schneider, Pedroni & Lomax 1996, Phys. Med. Biol. 41:111;
Schneider, Bortfeld & Schlegel 2000, Phys. Med. Biol. 45:459), built from reference tissues.

Method:

1. **CT numbers of tissues** from their composition with Schneider's parametrisation of the
   linear attenuation coefficient: the photoelectric effect ~ Z^3.62, coherent scattering ~ Z^1.86
   and Compton scattering (Klein-Nishina) per electron::

       HU = 1000 (rho_e,rel f(tissue) / f(water) - 1),
       f = 1 + k1 sum_i lambda_i Z_i^3.62 + k2 sum_i lambda_i Z_i^1.86

   with ``lambda_i`` the fraction of the tissue's electrons that belong to element ``i``. A clinic
   fits the scanner constants ``k1, k2`` to CT numbers measured in tissue-substitute inserts of
   known composition. Here the **generic scanner** is a mono-energetic 70 keV beam (about the
   effective energy of a 120 kVp scan behind a head): ``k1, k2`` are fitted by linear least squares
   to NIST attenuation coefficients of materials of known composition
   (:data:`~.ct_reference_data.NIST_ATTENUATION`, log-log interpolated to 70 keV).
2. **Relative electron density** ``rho_e,rel = rho sum_i w_i Z_i/A_i / (rho sum w Z/A)_water``.
3. **Stopping-power ratio** from the Bethe formula (no shell, density or Barkas corrections;
   below 0.1 % for tissues at therapeutic energies) at 100 MeV, mean excitation energies by Bragg
   additivity (``ln I = sum_i lambda_i ln I_i``, element values of ICRU 37 for compounds) against
   I = 75.0 eV for water::

       SPR = rho_e,rel L(I) / L(I_water),   L(I) = 1/2 ln(2 m c^2 beta^2 gamma^2 T_max / I^2) - beta^2

4. **Segments**: the ICRP 110 tissues (:data:`~.ct_reference_data.ICRP110_TISSUES`) are placed at
   their (HU, RED, SPR) and the curves are straight segments per tissue group, as Schneider et al.
   draw them: air to lung (the air-lung mixing line), adipose (least squares through the adipose
   tissues), soft tissue (least squares through the soft tissues, through water at 0 HU), bone
   (least squares through the skeletal media above the soft tissues, extended to 3071 HU), joined
   by straight lines across the gaps between groups; constant air below -1000 HU.

What the default curve is for: a generic scanner. The HU of a tissue depends on the scanner, its
tube voltage, filtration, reconstruction and the patient's size (cortical bone reads from about
1200 to 1900 HU on clinical 120 kVp scans); a clinic supplies its own calibration (``--ct-calibration
FILE``, :mod:`.ct_calibration`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .ct_reference_data import (AIR, AIR_I_EV, ELEMENTS, ICRP110_TISSUES, NIST_ATTENUATION, WATER, WATER_I_EV,
                                Material)

ELECTRON_MASS_MEV = 0.51099895
PROTON_MASS_MEV = 938.27208816
PHOTO_EXPONENT = 3.62          # Schneider et al. 1996 (after Rutherford et al. 1976)
COHERENT_EXPONENT = 1.86
GENERIC_SCANNER_KEV = 70.0
SPR_ENERGY_MEV = 100.0
HU_MIN = -1024.0               # below air: padding of CT images
HU_MAX = 3071.0                # the largest 12-bit CT number
AIR_HU = -1000.0


def _fractions(m: Material) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w normalised, Z, A g/mol, I eV in compounds) of a material's elements."""
    els = [ELEMENTS[s] for s in m.mass_fractions]
    w = np.array(list(m.mass_fractions.values()), dtype=float)
    return (w / w.sum(), np.array([e.z for e in els], float), np.array([e.a_g_mol for e in els]),
            np.array([e.i_compound_ev for e in els]))


def electrons_per_gram(m: Material) -> float:
    """sum_i w_i Z_i / A_i (mol of electrons per gram)."""
    w, z, a, _ = _fractions(m)
    return float(np.sum(w * z / a))


def relative_electron_density(m: Material) -> float:
    """Electron density relative to water (dimensionless)."""
    return m.density_g_cm3 * electrons_per_gram(m) / (WATER.density_g_cm3 * electrons_per_gram(WATER))


def electron_fractions(m: Material) -> tuple[np.ndarray, np.ndarray]:
    """(lambda_i, Z_i): the share of the material's electrons that belong to each element."""
    w, z, a, _ = _fractions(m)
    lam = w * z / a
    return lam / lam.sum(), z


def mean_excitation_energy_ev(m: Material) -> float:
    """Mean excitation energy (eV) by Bragg additivity: ``ln I = sum_i lambda_i ln I_i``."""
    w, z, a, i_ev = _fractions(m)
    lam = w * z / a
    return float(math.exp(np.sum(lam * np.log(i_ev)) / lam.sum()))


def stopping_number(i_ev: float, energy_mev: float = SPR_ENERGY_MEV) -> float:
    """Bethe stopping number ``L`` of a proton of kinetic energy ``energy_mev`` (MeV) in a medium
    of mean excitation energy ``i_ev`` (eV); no shell, density or Barkas corrections."""
    gamma = 1.0 + energy_mev / PROTON_MASS_MEV
    beta2 = 1.0 - 1.0 / gamma ** 2
    bg2 = beta2 * gamma ** 2
    ratio = ELECTRON_MASS_MEV / PROTON_MASS_MEV
    t_max = 2.0 * ELECTRON_MASS_MEV * bg2 / (1.0 + 2.0 * gamma * ratio + ratio ** 2)
    i_mev = i_ev * 1e-6
    return 0.5 * math.log(2.0 * ELECTRON_MASS_MEV * bg2 * t_max / i_mev ** 2) - beta2


def stopping_power_ratio(m: Material, energy_mev: float = SPR_ENERGY_MEV, i_ev: float | None = None) -> float:
    """Proton stopping power relative to water (Bethe; water I = 75.0 eV); ``i_ev`` overrides the
    material's Bragg-additivity I."""
    i_m = mean_excitation_energy_ev(m) if i_ev is None else i_ev
    return relative_electron_density(m) * stopping_number(i_m, energy_mev) / stopping_number(WATER_I_EV, energy_mev)


@dataclass(frozen=True)
class ScannerModel:
    """Schneider's CT-number model of one scanner (see module docstring).

    Attributes:
        k1: photoelectric constant (K_ph / K_KN), dimensionless.
        k2: coherent-scattering constant (K_coh / K_KN), dimensionless.
        name: what the constants describe.
    """

    k1: float
    k2: float
    name: str

    def attenuation_factor(self, m: Material) -> float:
        """``f = 1 + k1 sum lambda Z^3.62 + k2 sum lambda Z^1.86`` (attenuation per electron, in
        units of the Klein-Nishina term)."""
        lam, z = electron_fractions(m)
        return 1.0 + self.k1 * float(np.sum(lam * z ** PHOTO_EXPONENT)) + \
            self.k2 * float(np.sum(lam * z ** COHERENT_EXPONENT))

    def hu(self, m: Material) -> float:
        """CT number (HU) of a material on this scanner."""
        return 1000.0 * (relative_electron_density(m) * self.attenuation_factor(m)
                         / self.attenuation_factor(WATER) - 1.0)


def nist_mu_rho(point, energy_kev: float) -> float:
    """A material's NIST mu/rho (cm^2/g) at ``energy_kev``, log-log interpolated between 60 and 80 keV."""
    t = math.log(energy_kev / 60.0) / math.log(80.0 / 60.0)
    return math.exp((1 - t) * math.log(point.mu_rho_60kev_cm2_g) + t * math.log(point.mu_rho_80kev_cm2_g))


@lru_cache(maxsize=4)
def generic_scanner(energy_kev: float = GENERIC_SCANNER_KEV) -> ScannerModel:
    """The scanner constants that reproduce NIST attenuation at ``energy_kev`` (keV).

    For each reference material ``r = (mu/rho_e)/(mu/rho_e)_water`` from NIST must equal
    ``f(m)/f(water)``; that is linear in (k1, k2): ``k1 (r X_w - X_m) + k2 (r Y_w - Y_m) = 1 - r``
    with ``X = sum lambda Z^3.62``, ``Y = sum lambda Z^1.86``; solved by least squares."""
    water = next(p for p in NIST_ATTENUATION if p.material is WATER)
    lam_w, z_w = electron_fractions(WATER)
    xw, yw = float(np.sum(lam_w * z_w ** PHOTO_EXPONENT)), float(np.sum(lam_w * z_w ** COHERENT_EXPONENT))
    rows, rhs = [], []
    for p in NIST_ATTENUATION:
        if p is water:
            continue
        r = (nist_mu_rho(p, energy_kev) / electrons_per_gram(p.material)) / \
            (nist_mu_rho(water, energy_kev) / electrons_per_gram(WATER))
        lam, z = electron_fractions(p.material)
        x, y = float(np.sum(lam * z ** PHOTO_EXPONENT)), float(np.sum(lam * z ** COHERENT_EXPONENT))
        rows.append([r * xw - x, r * yw - y])
        rhs.append(1.0 - r)
    (k1, k2), *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
    return ScannerModel(float(k1), float(k2), f"generic scanner: Schneider's model fitted to NIST attenuation at "
                                              f"{energy_kev:g} keV")


@dataclass(frozen=True)
class TissuePoint:
    """A reference tissue on the calibration plane: CT number (HU), relative electron density and
    stopping-power ratio (dimensionless), mean excitation energy (eV)."""

    name: str
    group: str
    hu: float
    red: float
    spr: float
    i_ev: float


def tissue_point(m: Material, scanner: ScannerModel, energy_mev: float = SPR_ENERGY_MEV) -> TissuePoint:
    i_ev = AIR_I_EV if m is AIR else WATER_I_EV if m is WATER else mean_excitation_energy_ev(m)
    return TissuePoint(m.name, m.group, scanner.hu(m), relative_electron_density(m),
                       stopping_power_ratio(m, energy_mev, i_ev), i_ev)


@dataclass(frozen=True)
class Segment:
    """One straight piece of a calibration curve: ``value`` goes linearly from ``values[0]`` at
    ``hu_from`` to ``values[1]`` at ``hu_to`` (HU; values dimensionless).

    Attributes:
        name: 'air', 'lung', 'adipose', 'soft tissue', 'bone' or 'between ...' (a joining line).
        tissues: the reference tissues it was fitted to (empty for joining lines).
    """

    name: str
    hu_from: float
    hu_to: float
    values: tuple[float, float]
    tissues: tuple[str, ...] = ()


def _line(points: list[TissuePoint], key: str, through: tuple[float, float] | None = None) -> tuple[float, float]:
    """(intercept, slope) of the least-squares line of ``key`` against HU, optionally through a point."""
    hu = np.array([p.hu for p in points])
    v = np.array([getattr(p, key) for p in points])
    if through is not None:
        x0, y0 = through
        slope = float(np.sum((hu - x0) * (v - y0)) / np.sum((hu - x0) ** 2))
        return y0 - slope * x0, slope
    slope, intercept = np.polyfit(hu, v, 1)
    return float(intercept), float(slope)


def _fitted(name: str, lo: float, hi: float, line: tuple[float, float], tissues: list[TissuePoint]) -> Segment:
    return Segment(name, lo, hi, (line[0] + line[1] * lo, line[0] + line[1] * hi), tuple(p.name for p in tissues))


@lru_cache(maxsize=8)
def default_segments(key: str, energy_kev: float = GENERIC_SCANNER_KEV, energy_mev: float = SPR_ENERGY_MEV
                     ) -> tuple[Segment, ...]:
    """The segments of the default curve of ``key`` ('red' or 'spr') from -1024 to 3071 HU.

    Air below -1000 HU; the air-lung mixing line; the adipose line (least squares through the
    adipose tissues); the soft-tissue line (least squares through the soft tissues, through water:
    0 HU reads exactly 1); the bone line (least squares through the skeletal media above the soft
    tissues, to 3071 HU); joining lines across the gaps. Fatty tissues have a higher SPR and RED
    than water-like tissues of the same CT number, so the adipose line crosses water's value below
    0 HU; it stops there and the curve stays at water's value up to 0 HU (non-decreasing: tissues
    between, mixtures of fat and soft tissue, read at most about 3 % low)."""
    if key not in ("red", "spr"):
        raise ValueError(f"key must be 'red' or 'spr', got {key!r}")
    scanner = generic_scanner(energy_kev)
    pts = [tissue_point(m, scanner, energy_mev) for m in ICRP110_TISSUES]
    air = getattr(tissue_point(AIR, scanner, energy_mev), key)
    water = getattr(tissue_point(WATER, scanner, energy_mev), key)
    lung = [p for p in pts if p.group == "lung"]
    adipose = [p for p in pts if p.group == "adipose"]
    soft = [p for p in pts if p.group == "soft"]
    soft_top = max(p.hu for p in soft)
    bone = [p for p in pts if p.group == "bone" and p.hu > soft_top]
    fitted = [Segment("air", HU_MIN, AIR_HU, (air, air))]
    lung_line = _line(lung + [TissuePoint("air", "air", AIR_HU, air, air, AIR_I_EV)], key, (AIR_HU, air))
    fitted.append(_fitted("lung", AIR_HU, max(p.hu for p in lung), lung_line, lung))
    fat = _line(adipose, key)
    fat_hi = max(p.hu for p in adipose)
    if fat[0] + fat[1] * fat_hi > water:
        fat_hi = (water - fat[0]) / fat[1]
    fitted.append(_fitted("adipose", min(p.hu for p in adipose), fat_hi, fat, adipose))
    fitted.append(_fitted("soft tissue", 0.0, soft_top, _line(soft, key, (0.0, water)), soft))
    fitted.append(_fitted("bone", min(p.hu for p in bone), HU_MAX, _line(bone, key), bone))
    out = []
    for a, b in zip(fitted, fitted[1:]):
        out.append(a)
        if b.hu_from > a.hu_to:
            out.append(Segment(f"between {a.name} and {b.name}", a.hu_to, b.hu_from, (a.values[1], b.values[0])))
    out.append(fitted[-1])
    return tuple(out)


def curve_anchors(segments: tuple[Segment, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(HU, value) anchors of the piecewise-linear curve through ``segments`` (consecutive
    segments share their end points)."""
    hu: list[float] = []
    val: list[float] = []
    for s in segments:
        for h, x in ((s.hu_from, s.values[0]), (s.hu_to, s.values[1])):
            if hu and abs(h - hu[-1]) < 1e-9:
                continue
            hu.append(float(h))
            val.append(float(x))
    return tuple(hu), tuple(val)


def reference_points(energy_kev: float = GENERIC_SCANNER_KEV, energy_mev: float = SPR_ENERGY_MEV
                     ) -> tuple[TissuePoint, ...]:
    """Air, water and the ICRP 110 tissues on the generic scanner (for reports and figures)."""
    scanner = generic_scanner(energy_kev)
    return tuple(tissue_point(m, scanner, energy_mev) for m in (AIR, WATER, *ICRP110_TISSUES))
