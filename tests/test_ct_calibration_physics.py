"""The default (stoichiometric) CT calibration against the Bethe formula and NIST data.

The stopping-power ratio of reference tissues is computed HERE, from their elemental composition,
with the Bethe formula (no shell, density or Barkas corrections) and Bragg additivity of the mean
excitation energy (ICRU Report 37 values for elements in compounds: H 19.2, C 81, N 82, O 106,
Cl 180 eV, the others 1.13 x the elemental I), against water with I = 75.0 eV (ICRU Report 49, as
the package). Each tissue is placed on the CT-number axis by the calibration's own HU model (the
generic scanner), and the curve must read its SPR within 1.5 % at 100 and at 150 MeV.

The test tissues are NOT the ones the curve was built from (ICRP Publication 110 media):
* ICRU Report 44 tissues (Woodard & White; as in NIST's XCOM Table 2 and ICRU Report 46);
* ICRP Publication 23 Reference Man tissues as NIST's ESTAR/PSTAR material list gives them
  (their NIST I-values: adipose 63.2, skeletal muscle 75.3, brain 73.3, cortical bone 106.4,
  lung 75.3 eV, which the additivity of this file reproduces within 2.5 %).
Lung is taken at the inflated density 0.26 g/cm^3 (ICRU 46) with each set's lung composition.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from reirrad_opt.dose.ct_reference_data import Material
from reirrad_opt.dose.hu_tables import RED_CURVE, SPR_CURVE
from reirrad_opt.dose.stoichiometric import default_segments, generic_scanner

ME_MEV = 0.51099895
MP_MEV = 938.272
I_WATER_EV = 75.0
# element: (Z, A g/mol, I eV for Bragg additivity in compounds, ICRU 37)
ELEMENT = {"H": (1, 1.008, 19.2), "C": (6, 12.011, 81.0), "N": (7, 14.007, 82.0), "O": (8, 15.999, 106.0),
           "Na": (11, 22.990, 1.13 * 149), "Mg": (12, 24.305, 1.13 * 156), "Si": (14, 28.086, 1.13 * 173),
           "P": (15, 30.974, 1.13 * 173), "S": (16, 32.06, 1.13 * 180), "Cl": (17, 35.45, 180.0),
           "K": (19, 39.098, 1.13 * 190), "Ca": (20, 40.078, 1.13 * 191), "Fe": (26, 55.845, 1.13 * 286),
           "Zn": (30, 65.38, 1.13 * 330)}
WATER = (1.0, {"H": 0.111894, "O": 0.888106})

# name: (density g/cm^3, mass fractions); ICRU Report 44
ICRU44 = {
    "adipose (ICRU 44)": (0.95, {"H": .114, "C": .598, "N": .007, "O": .278, "Na": .001, "S": .001, "Cl": .001}),
    "skeletal muscle (ICRU 44)": (1.05, {"H": .102, "C": .143, "N": .034, "O": .710, "Na": .001, "P": .002,
                                         "S": .003, "Cl": .001, "K": .004}),
    "brain (ICRU 44)": (1.04, {"H": .107, "C": .145, "N": .022, "O": .712, "Na": .002, "P": .004, "S": .002,
                               "Cl": .003, "K": .003}),
    "cortical bone (ICRU 44)": (1.92, {"H": .034, "C": .155, "N": .042, "O": .435, "Na": .001, "Mg": .002,
                                       "P": .103, "S": .003, "Ca": .225}),
    "lung, inflated (ICRU 44)": (0.26, {"H": .103, "C": .105, "N": .031, "O": .749, "Na": .002, "P": .002,
                                        "S": .003, "Cl": .003, "K": .002}),
}
# name: (density, mass fractions, NIST I-value eV); ICRP Publication 23 via NIST ESTAR/PSTAR
ICRP23 = {
    "adipose (ICRP 23)": (0.92, {"H": .119477, "C": .637240, "N": .007970, "O": .232333, "Na": .0005, "Mg": .00002,
                                 "P": .00016, "S": .00073, "Cl": .00119, "K": .00032, "Ca": .00002, "Fe": .00002,
                                 "Zn": .00002}, 63.2),
    "skeletal muscle (ICRP 23)": (1.04, {"H": .100637, "C": .10783, "N": .02768, "O": .754773, "Na": .00075,
                                         "Mg": .00019, "P": .0018, "S": .00241, "Cl": .00079, "K": .00302,
                                         "Ca": .00003, "Fe": .00004, "Zn": .00005}, 75.3),
    "brain (ICRP 23)": (1.03, {"H": .110667, "C": .12542, "N": .01328, "O": .737723, "Na": .00184, "Mg": .00015,
                               "P": .00354, "S": .00177, "Cl": .00236, "K": .0031, "Ca": .00009, "Fe": .00005,
                               "Zn": .00001}, 73.3),
    "cortical bone (ICRP 23)": (1.85, {"H": .047234, "C": .14433, "N": .04199, "O": .446096, "Mg": .0022,
                                       "P": .10497, "S": .00315, "Ca": .20993, "Zn": .0001}, 106.4),
    "lung, inflated (ICRP 23)": (0.26, {"H": .101278, "C": .10231, "N": .02865, "O": .757072, "Na": .00184,
                                        "Mg": .00073, "P": .0008, "S": .00225, "Cl": .00266, "K": .00194,
                                        "Ca": .00009, "Fe": .00037, "Zn": .00001}, 75.3),
}


def electron_density_per_gram(w: dict) -> float:
    total = sum(w.values())
    return sum(f / total * ELEMENT[e][0] / ELEMENT[e][1] for e, f in w.items())


def bragg_i_ev(w: dict) -> float:
    lam = {e: f * ELEMENT[e][0] / ELEMENT[e][1] for e, f in w.items()}
    s = sum(lam.values())
    return math.exp(sum(v / s * math.log(ELEMENT[e][2]) for e, v in lam.items()))


def stopping_number(i_ev: float, t_mev: float) -> float:
    gamma = 1 + t_mev / MP_MEV
    b2 = 1 - 1 / gamma ** 2
    r = ME_MEV / MP_MEV
    tmax = 2 * ME_MEV * b2 * gamma ** 2 / (1 + 2 * gamma * r + r * r)
    return 0.5 * math.log(2 * ME_MEV * b2 * gamma ** 2 * tmax / (i_ev * 1e-6) ** 2) - b2


def bethe_spr(rho: float, w: dict, t_mev: float, i_ev: float | None = None) -> float:
    red = rho * electron_density_per_gram(w) / (WATER[0] * electron_density_per_gram(WATER[1]))
    i_ev = bragg_i_ev(w) if i_ev is None else i_ev
    return red * stopping_number(i_ev, t_mev) / stopping_number(I_WATER_EV, t_mev)


TISSUES = {**{k: v for k, v in ICRU44.items()}, **{k: v[:2] for k, v in ICRP23.items()}}
# ICRU 44 cortical bone holds more calcium and phosphorus per electron (Ca 22.5 %, P 10.3 %) than the
# ICRP 110 mineral bone the curve's bone line passes (21.3 %, 9.4 %): on the generic scanner it reads
# at 1594 HU, where the curve gives SPR 1.723 against 1.690 (+2.0 %) and RED 1.808 against 1.781
# (+1.55 %); with a 60 or 80 keV scanner the gap is +2.2 / +1.7 %. A single-energy CT cannot tell the
# two bone compositions apart (ICRP 23 cortical bone reads +0.7 %).
BONE_GAP = pytest.mark.xfail(strict=True, reason="single-energy CT: ICRU 44 cortical bone reads +2.0 % SPR, "
                                                  "+1.55 % RED on the default curve (composition, see comment)")


def _cases(names, gap_on_bone: bool = True):
    return [pytest.param(n, marks=BONE_GAP) if gap_on_bone and n == "cortical bone (ICRU 44)" else n
            for n in sorted(names)]


@pytest.mark.parametrize("energy_mev", [100.0, 150.0])
@pytest.mark.parametrize("name", _cases(TISSUES))
def test_curve_reads_the_bethe_spr_of_reference_tissues(name, energy_mev):
    rho, w = TISSUES[name]
    hu = generic_scanner().hu(Material(name, rho, w, "reference", "test"))
    expected = bethe_spr(rho, w, energy_mev)
    read = float(SPR_CURVE(np.array([hu]))[0])
    assert read == pytest.approx(expected, rel=0.015), f"{name} at {hu:.0f} HU"


@pytest.mark.parametrize("name", _cases(TISSUES))
def test_curve_reads_the_electron_density_of_reference_tissues(name):
    rho, w = TISSUES[name]
    hu = generic_scanner().hu(Material(name, rho, w, "reference", "test"))
    red = rho * electron_density_per_gram(w) / electron_density_per_gram(WATER[1])
    assert float(RED_CURVE(np.array([hu]))[0]) == pytest.approx(red, rel=0.015), f"{name} at {hu:.0f} HU"


def test_water_reads_exactly_one():
    assert bethe_spr(*WATER, 100.0, i_ev=I_WATER_EV) == pytest.approx(1.0, abs=1e-12)   # the test's reference
    assert float(SPR_CURVE(np.array([0.0]))[0]) == 1.0
    assert float(RED_CURVE(np.array([0.0]))[0]) == 1.0
    assert generic_scanner().hu(Material("water", *WATER, "reference", "test")) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", sorted(ICRP23))
def test_bragg_additivity_reproduces_nist_i_values(name):
    """Checks this file's I-value rule against NIST's tabulated I of the same compositions."""
    _, w, nist_i = ICRP23[name]
    assert bragg_i_ev(w) == pytest.approx(nist_i, rel=0.025)


def test_hu_model_predicts_aluminium_it_was_not_fitted_to():
    """NIST SRD 126: aluminium (2.699 g/cm^3) mu/rho 0.2778 / 0.2018 cm^2/g at 60 / 80 keV, water
    0.2059 / 0.1837; log-log at 70 keV. The generic scanner's k1, k2 were fitted to tissues and
    B-100, not to aluminium (Z 13), so this checks the model's Z dependence."""
    def at70(a60, a80):
        t = math.log(70 / 60) / math.log(80 / 60)
        return math.exp((1 - t) * math.log(a60) + t * math.log(a80))
    mu_ratio = 2.699 * at70(0.2778, 0.2018) / at70(0.2059, 0.1837)
    hu_nist = 1000 * (mu_ratio - 1)
    hu_model = generic_scanner().hu(Material("aluminium", 2.699, {"Al": 1.0}, "reference", "test"))
    assert hu_model == pytest.approx(hu_nist, rel=0.03)


@pytest.mark.parametrize("curve", [SPR_CURVE, RED_CURVE])
def test_default_curves_cover_the_ct_range_and_never_decrease(curve):
    hu = np.asarray(curve.hu)
    assert hu[0] == -1024.0 and hu[-1] == 3071.0
    assert np.all(np.diff(curve.value) >= 0)
    with pytest.raises(ValueError, match="refused, not clipped"):
        curve(np.array([0.0, 3100.0]))


@pytest.mark.parametrize("key", ["spr", "red"])
def test_default_curves_have_the_tissue_segments(key):
    names = [s.name for s in default_segments(key)]
    for group in ("air", "lung", "adipose", "soft tissue", "bone"):
        assert group in names
    fitted = {s.name: s for s in default_segments(key)}
    assert fitted["bone"].hu_to == 3071.0 and "mineral bone (cortical)" in fitted["bone"].tissues
