"""Reference data of the default CT calibration: elements, human tissues and photon attenuation.

Everything the stoichiometric calibration (:mod:`.stoichiometric`) is built from, with its source.
Mass fractions are of the whole tissue (they sum to 1 within the rounding of the source, 0.1 %);
densities in g/cm^3; mean excitation energies in eV.

Sources:

* **Elements**: standard atomic weights (IUPAC); mean excitation energies of elements bound in
  compounds and condensed media as ICRU Report 37 (1984) and ICRU Report 49 (1993) prescribe for
  Bragg additivity (Seltzer & Berger 1982): H 19.2, C 81.0, N 82.0, O 106.0, F 112.0 and Cl 180.0
  eV; every other element 1.13 x its elemental value (Na 149, Mg 156, Al 166, P 173, S 180, Ar 188,
  K 190, Ca 191, Fe 286, Zn 330, I 491 eV). Water's own I is 75.0 eV (ICRU 49), the value the
  proton range-energy relation of :mod:`.particle` uses too.
* **Tissues** (:data:`ICRP110_TISSUES`): the media of the ICRP adult reference computational
  phantoms, ICRP Publication 110 (2009), Annex A, Table A.2 (adult male; elemental mass
  fractions to 0.1 %), grouped as Schneider et al. group them (lung, adipose, soft tissue, bone).
  The large intestine (equal to the small intestine) and the bone media that repeat another one
  exactly (lower arm, hand, leg and foot spongiosa equal femora lower half) are listed once.
* **Attenuation** (:data:`NIST_ATTENUATION`): mass attenuation coefficients mu/rho (cm^2/g,
  with coherent scattering) at 60 and 80 keV from NIST Standard Reference Database 126 (Hubbell &
  Seltzer, X-Ray Mass Attenuation Coefficients, Table 4), for materials whose composition NIST
  states (ICRU Report 44 tissues, B-100 bone-equivalent plastic). They set the photon scale of
  the generic scanner (see :mod:`.stoichiometric`).
* **Air**: dry air near sea level, 1.20479e-3 g/cm^3, I = 85.7 eV (NIST).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

WATER_I_EV = 75.0          # ICRU Report 49
WATER_DENSITY_G_CM3 = 1.0


@dataclass(frozen=True)
class Element:
    """A chemical element: atomic number, standard atomic weight (g/mol) and its mean excitation
    energy when bound in a compound (eV, ICRU 37 rules for Bragg additivity)."""

    symbol: str
    z: int
    a_g_mol: float
    i_compound_ev: float


def _el(symbol: str, z: int, a: float, i_elemental_ev: float, i_compound_ev: float | None = None) -> Element:
    return Element(symbol, z, a, i_compound_ev if i_compound_ev is not None else 1.13 * i_elemental_ev)


ELEMENTS: Mapping[str, Element] = MappingProxyType({e.symbol: e for e in (
    _el("H", 1, 1.008, 19.2, 19.2), _el("C", 6, 12.011, 78.0, 81.0), _el("N", 7, 14.007, 82.0, 82.0),
    _el("O", 8, 15.999, 95.0, 106.0), _el("F", 9, 18.998, 115.0, 112.0), _el("Na", 11, 22.990, 149.0),
    _el("Mg", 12, 24.305, 156.0), _el("Al", 13, 26.982, 166.0), _el("P", 15, 30.974, 173.0),
    _el("S", 16, 32.06, 180.0), _el("Cl", 17, 35.45, 174.0, 180.0), _el("Ar", 18, 39.948, 188.0), _el("K", 19, 39.098, 190.0),
    _el("Ca", 20, 40.078, 191.0), _el("Fe", 26, 55.845, 286.0), _el("Zn", 30, 65.38, 330.0),
    _el("I", 53, 126.904, 491.0),
)})


@dataclass(frozen=True)
class Material:
    """A material of known composition.

    Attributes:
        name: what it is.
        density_g_cm3: mass density (g/cm^3).
        mass_fractions: element symbol -> mass fraction (normalised to 1 when used).
        group: 'air', 'lung', 'adipose', 'soft', 'bone' (tissue group of the calibration), or
            'reference' (a material that only sets the scanner's photon scale).
        source: where the composition comes from.
    """

    name: str
    density_g_cm3: float
    mass_fractions: Mapping[str, float]
    group: str
    source: str

    def __post_init__(self) -> None:
        unknown = sorted(set(self.mass_fractions) - set(ELEMENTS))
        if unknown:
            raise ValueError(f"material {self.name!r}: unknown elements {unknown}")
        total = sum(self.mass_fractions.values())
        if not 0.98 <= total <= 1.02 or min(self.mass_fractions.values()) < 0 or self.density_g_cm3 <= 0:
            raise ValueError(f"material {self.name!r}: mass fractions sum to {total:.4f} (expected 1) or a value "
                             f"is negative, density {self.density_g_cm3}")
        object.__setattr__(self, "mass_fractions", MappingProxyType(dict(self.mass_fractions)))


_ICRP110 = "ICRP Publication 110 (2009), Annex A, Table A.2, adult male"
# element order of the rows below
_COLUMNS = ("H", "C", "N", "O", "Na", "Mg", "P", "S", "Cl", "K", "Ca", "Fe", "I")

# name, group, density (g/cm^3), mass fractions in % in the order of _COLUMNS
_ICRP110_ROWS = (
    ("lung (compressed, with blood)", "lung", 0.382, (10.3, 10.7, 3.2, 74.6, 0.2, 0, 0.2, 0.3, 0.3, 0.2, 0, 0, 0)),
    ("adipose tissue", "adipose", 0.950, (11.4, 58.8, 0.8, 28.7, 0.1, 0, 0, 0.1, 0.1, 0, 0, 0, 0)),
    ("medullary cavity (yellow marrow)", "adipose", 0.980, (11.5, 63.6, 0.7, 23.9, 0.1, 0, 0, 0.1, 0.1, 0, 0, 0, 0)),
    ("breast (mammary gland)", "adipose", 1.020, (11.2, 51.6, 1.1, 35.8, 0.1, 0, 0, 0.1, 0.1, 0, 0, 0, 0)),
    ("skin", "soft", 1.090, (10.0, 19.9, 4.2, 65.0, 0.2, 0, 0.1, 0.2, 0.3, 0.1, 0, 0, 0)),
    ("blood", "soft", 1.060, (10.2, 11.0, 3.3, 74.5, 0.1, 0, 0.1, 0.2, 0.3, 0.2, 0, 0.1, 0)),
    ("muscle", "soft", 1.050, (10.2, 14.2, 3.4, 71.1, 0.1, 0, 0.2, 0.3, 0.1, 0.4, 0, 0, 0)),
    ("liver", "soft", 1.050, (10.2, 13.0, 3.1, 72.5, 0.2, 0, 0.2, 0.3, 0.2, 0.3, 0, 0, 0)),
    ("pancreas", "soft", 1.050, (10.5, 15.5, 2.5, 70.6, 0.2, 0, 0.2, 0.1, 0.2, 0.2, 0, 0, 0)),
    ("brain", "soft", 1.050, (10.7, 14.3, 2.3, 71.3, 0.2, 0, 0.4, 0.2, 0.3, 0.3, 0, 0, 0)),
    ("heart", "soft", 1.050, (10.4, 13.8, 2.9, 71.9, 0.1, 0, 0.2, 0.2, 0.2, 0.3, 0, 0, 0)),
    ("eye", "soft", 1.050, (9.7, 18.1, 5.3, 66.3, 0, 0, 0.1, 0.3, 0.1, 0, 0.1, 0, 0)),
    ("kidney", "soft", 1.050, (10.3, 12.4, 3.1, 73.1, 0.2, 0, 0.2, 0.2, 0.2, 0.2, 0.1, 0, 0)),
    ("stomach", "soft", 1.040, (10.5, 11.4, 2.5, 75.0, 0.1, 0, 0.1, 0.1, 0.2, 0.1, 0, 0, 0)),
    ("small intestine", "soft", 1.040, (10.5, 11.3, 2.6, 75.0, 0.1, 0, 0.1, 0.1, 0.2, 0.1, 0, 0, 0)),
    ("spleen", "soft", 1.040, (10.2, 11.1, 3.3, 74.3, 0.1, 0, 0.2, 0.2, 0.3, 0.2, 0, 0.1, 0)),
    ("thyroid", "soft", 1.040, (10.4, 11.7, 2.6, 74.5, 0.2, 0, 0.1, 0.1, 0.2, 0.1, 0, 0, 0.1)),
    ("urinary bladder", "soft", 1.040, (10.5, 9.6, 2.6, 76.1, 0.2, 0, 0.2, 0.2, 0.3, 0.3, 0, 0, 0)),
    ("testes", "soft", 1.040, (10.6, 10.0, 2.1, 76.4, 0.2, 0, 0.1, 0.2, 0.2, 0.2, 0, 0, 0)),
    ("adrenals", "soft", 1.030, (10.4, 22.1, 2.8, 63.7, 0.1, 0, 0.2, 0.3, 0.2, 0.2, 0, 0, 0)),
    ("oesophagus", "soft", 1.030, (10.4, 21.3, 2.9, 64.4, 0.1, 0, 0.2, 0.3, 0.2, 0.2, 0, 0, 0)),
    ("gall bladder, trachea, thymus, tonsils, ureters, prostate", "soft", 1.030,
     (10.4, 23.1, 2.8, 62.7, 0.1, 0, 0.2, 0.3, 0.2, 0.2, 0, 0, 0)),
    ("lymph", "soft", 1.030, (10.8, 4.2, 1.1, 83.1, 0.3, 0, 0, 0.1, 0.4, 0, 0, 0, 0)),
    ("gastro-intestinal contents", "soft", 1.040, (10.0, 22.2, 2.2, 64.4, 0.1, 0, 0.2, 0.3, 0.1, 0.4, 0.1, 0, 0)),
    ("urine", "soft", 1.040, (10.7, 0.3, 1.0, 87.3, 0.4, 0, 0.1, 0, 0, 0.2, 0, 0, 0)),
    ("cartilage", "soft", 1.100, (9.6, 9.9, 2.2, 74.4, 0.5, 0, 2.2, 0.9, 0.3, 0, 0, 0, 0)),
    ("sacrum, spongiosa", "bone", 1.031, (10.5, 41.9, 2.7, 43.2, 0.1, 0, 0.4, 0.2, 0.2, 0.1, 0.6, 0.1, 0)),
    ("sternum, spongiosa", "bone", 1.041, (10.4, 40.9, 2.7, 43.8, 0.1, 0, 0.6, 0.2, 0.2, 0.1, 0.9, 0.1, 0)),
    ("cervical spine, spongiosa", "bone", 1.050, (10.3, 40.0, 2.7, 44.4, 0.1, 0, 0.7, 0.2, 0.2, 0.1, 1.2, 0.1, 0)),
    ("thoracic spine, spongiosa", "bone", 1.074, (9.9, 37.6, 2.7, 45.9, 0.1, 0, 1.2, 0.2, 0.2, 0.1, 2.0, 0.1, 0)),
    ("femora lower half, lower arm, hand, lower leg, foot, spongiosa", "bone", 1.108,
     (9.7, 43.9, 1.7, 38.1, 0.2, 0, 2.1, 0.3, 0.1, 0, 3.9, 0, 0)),
    ("lumbar spine, spongiosa", "bone", 1.112, (9.5, 34.0, 2.8, 48.0, 0.1, 0, 1.8, 0.3, 0.2, 0.1, 3.2, 0, 0)),
    ("pelvis, spongiosa", "bone", 1.123, (9.4, 36.0, 2.5, 45.4, 0.2, 0, 2.1, 0.3, 0.2, 0.1, 3.8, 0, 0)),
    ("femora upper half, spongiosa", "bone", 1.124, (9.4, 38.5, 2.2, 43.0, 0.2, 0, 2.2, 0.3, 0.1, 0, 4.1, 0, 0)),
    ("clavicles, spongiosa", "bone", 1.151, (9.1, 34.8, 2.4, 45.7, 0.2, 0, 2.6, 0.3, 0.1, 0, 4.8, 0, 0)),
    ("cranium, spongiosa", "bone", 1.157, (9.0, 33.5, 2.5, 46.7, 0.2, 0, 2.6, 0.3, 0.2, 0.1, 4.9, 0, 0)),
    ("ribs, spongiosa", "bone", 1.165, (8.9, 29.2, 2.9, 50.7, 0.2, 0, 2.6, 0.4, 0.2, 0.1, 4.8, 0, 0)),
    ("scapulae, spongiosa", "bone", 1.183, (8.7, 30.9, 2.6, 48.3, 0.2, 0.1, 3.0, 0.4, 0.2, 0, 5.6, 0, 0)),
    ("humeri upper half, spongiosa", "bone", 1.205, (8.5, 28.8, 2.6, 49.8, 0.2, 0.1, 3.3, 0.4, 0.2, 0, 6.1, 0, 0)),
    ("mandible, spongiosa", "bone", 1.228, (8.3, 26.6, 2.7, 51.1, 0.3, 0.1, 3.6, 0.4, 0.2, 0, 6.7, 0, 0)),
    ("mineral bone (cortical)", "bone", 1.920, (3.6, 15.9, 4.2, 44.8, 0.3, 0.2, 9.4, 0.3, 0, 0, 21.3, 0, 0)),
    ("teeth", "bone", 2.750, (2.2, 9.5, 2.9, 42.1, 0, 0.7, 13.7, 0, 0, 0, 28.9, 0, 0)),
)


def _fractions(percent: tuple[float, ...]) -> dict[str, float]:
    return {el: p / 100.0 for el, p in zip(_COLUMNS, percent) if p}


ICRP110_TISSUES: tuple[Material, ...] = tuple(
    Material(name, rho, _fractions(pct), group, _ICRP110) for name, group, rho, pct in _ICRP110_ROWS)

WATER = Material("water", WATER_DENSITY_G_CM3, {"H": 0.111894, "O": 0.888106}, "reference", "H2O")
AIR = Material("air (dry, near sea level)", 1.20479e-3, {"C": 0.000124, "N": 0.755267, "O": 0.231781, "Ar": 0.012827},
               "air", "NIST (dry air near sea level)")
AIR_I_EV = 85.7            # NIST


@dataclass(frozen=True)
class AttenuationPoint:
    """A material's NIST mass attenuation coefficients (cm^2/g, with coherent scattering)."""

    material: Material
    mu_rho_60kev_cm2_g: float
    mu_rho_80kev_cm2_g: float


_NIST126 = "NIST Standard Reference Database 126, Table 4 (composition: ICRU Report 44 via NIST Table 2)"
NIST_ATTENUATION: tuple[AttenuationPoint, ...] = (
    AttenuationPoint(WATER, 0.2059, 0.1837),
    AttenuationPoint(Material("adipose tissue (ICRU 44)", 0.95, {"H": 0.114, "C": 0.598, "N": 0.007, "O": 0.278,
                                                                  "Na": 0.001, "S": 0.001, "Cl": 0.001},
                              "reference", _NIST126), 0.1974, 0.1800),
    AttenuationPoint(Material("skeletal muscle (ICRU 44)", 1.05, {"H": 0.102, "C": 0.143, "N": 0.034, "O": 0.710,
                                                                   "Na": 0.001, "P": 0.002, "S": 0.003, "Cl": 0.001,
                                                                   "K": 0.004}, "reference", _NIST126), 0.2048, 0.1823),
    AttenuationPoint(Material("lung tissue (ICRU 44)", 1.05, {"H": 0.103, "C": 0.105, "N": 0.031, "O": 0.749,
                                                               "Na": 0.002, "P": 0.002, "S": 0.003, "Cl": 0.003,
                                                               "K": 0.002}, "reference", _NIST126), 0.2053, 0.1826),
    AttenuationPoint(Material("cortical bone (ICRU 44)", 1.92, {"H": 0.034, "C": 0.155, "N": 0.042, "O": 0.435,
                                                                 "Na": 0.001, "Mg": 0.002, "P": 0.103, "S": 0.003,
                                                                 "Ca": 0.225}, "reference", _NIST126), 0.3148, 0.2229),
    AttenuationPoint(Material("B-100 bone-equivalent plastic", 1.45, {"H": 0.065471, "C": 0.536945, "N": 0.0215,
                                                                       "O": 0.032085, "F": 0.167411, "Ca": 0.176589},
                              "reference", "NIST Standard Reference Database 126, Tables 2 and 4"), 0.2738, 0.2076),
)
