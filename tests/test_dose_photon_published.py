"""The photon kernel's build-up and penumbra against published 6 MV data it was NOT fitted to.

The kernel's parameters (reirrad_opt/dose/photon.py, SIX_MV) were fitted to BJR Supplement 25
central-axis data (d_max, PDD at 5-25 cm), ONE row of surface doses (the corrected CC13 chamber,
"present study", of Table 4 of J. Med. Phys. 45(3):175-181 (2020), doi:10.4103/jmp.JMP_53_20,
PMC7810143) and ONE penumbra: 4.2 mm for 10 x 10 cm^2 at 10 cm depth (Kron, Elliott & Metcalfe, "The
penumbra of a 6-MV x-ray beam as measured by thermoluminescent dosimetry and evaluated using an inverse
square root function", Med. Phys. 20(5):1429-1438, 1993; LiF ribbons and rods of 1, 3.1 and 6 mm,
extrapolated to a detector of zero size). tests/test_dose_photon.py checks the central axis.

Independent data used here:

* Surface dose of 6 MV square and rectangular fields at SSD 100 cm, in % of the maximum, from the
  OTHER rows of that Table 4 (separate studies of different linacs and detectors; Parsai et al.'s two
  rows are one group's two detectors): Bilge et al. and Akbas et al. (Markus parallel-plate chamber),
  Devic et al. and Sigamani et al. (radiochromic film), Butson et al. (Markus/film), Parsai et al.
  (extrapolation chamber; corrected parallel-plate chamber) and Apipunyasopon et al. (Monte Carlo,
  EGS4nrc). Their medians lie within 0.6 points of the fitted row, so the square fields test the fit's
  consistency; Butson et al.'s 8 x 8 and 10 x 20 cm^2 fields are the ones the fit never saw.
* The 80-20 % penumbra of 6 MV at d_max (1.5 cm) and 10 cm: Kron et al.'s other values (10 x 10 cm^2
  at d_max 2.3 mm; 20 x 20 cm^2 2.7 and 4.1 mm), and the central-axis penumbra of a 1 x 20 cm^2 field
  at 10 cm, 3.7 mm (SD 0.3 mm), from Table 2 of J. Appl. Clin. Med. Phys. 12(3):142-160 (2011),
  doi:10.1120/jacmp.v12i3.3475. Tolerance 1 mm (the distance-to-agreement commonly asked of a beam
  model in a field edge).
"""
from __future__ import annotations

import numpy as np
import pytest

from reirrad_opt.dose.photon import SAD_MM, SIX_MV, penumbra_80_20_mm, unnormalised_dose

# field (cm x cm at the isocentre) -> {study: surface dose in % of the maximum}; Table 4 of J Med Phys 45:175
PUBLISHED_SURFACE_DOSE_PCT = {
    (5, 5): {"Bilge": 10.0, "Akbas": 10.8, "Devic": 10.5, "Sigamani": 12.0, "Parsai (extrap.)": 10.5,
             "Parsai (pp)": 10.3, "Apipunyasopon (MC)": 10.3},
    (8, 8): {"Butson": 14.0},
    (10, 10): {"Bilge": 15.0, "Akbas": 16.6, "Devic": 16.0, "Sigamani": 18.0, "Parsai (extrap.)": 16.0,
               "Parsai (pp)": 16.1, "Apipunyasopon (MC)": 16.5},
    (10, 20): {"Butson": 21.0},
    (15, 15): {"Devic": 21.7, "Sigamani": 22.0, "Parsai (extrap.)": 21.5, "Parsai (pp)": 21.9,
               "Apipunyasopon (MC)": 22.2},
    (20, 20): {"Bilge": 23.0, "Akbas": 28.1, "Sigamani": 27.0},
    (25, 25): {"Sigamani": 31.5, "Parsai (extrap.)": 31.5, "Parsai (pp)": 32.2, "Apipunyasopon (MC)": 30.9},
}
MEDIAN_TOLERANCE_PCT_POINTS = 1.5      # against the median of the studies at one field size
SINGLE_TOLERANCE_PCT_POINTS = 2.0      # against a field size measured by one study only
# (field width, field length, depth), mm -> 80-20 % penumbra across the width (mm); independent of the fit
PUBLISHED_PENUMBRA_MM = {(100.0, 100.0, 15.0): ("Kron 1993", 2.3), (200.0, 200.0, 15.0): ("Kron 1993", 2.7),
                         (200.0, 200.0, 100.0): ("Kron 1993", 4.1), (10.0, 200.0, 100.0): ("JACMP 12:142", 3.7)}
PENUMBRA_TOLERANCE_MM = 1.0


def central_axis_pct(field_cm: tuple[int, int], depth_mm: np.ndarray, p=SIX_MV) -> np.ndarray:
    """Central-axis depth dose of a rectangular field (sides at the isocentre) on water at SSD 100 cm,
    in % of its maximum, straight from the model's components."""
    d = np.asarray(depth_mm, dtype=np.float64)
    dose = unnormalised_dose(0.0, 0.0, d, SAD_MM + d, 10.0 * field_cm[0], p, length_mm=10.0 * field_cm[1])
    return 100.0 * dose / dose.max()


def model_surface_dose_pct(field_cm: tuple[int, int]) -> float:
    return float(central_axis_pct(field_cm, np.linspace(0.0, 60.0, 6001))[0])


@pytest.mark.parametrize("field", sorted(PUBLISHED_SURFACE_DOSE_PCT))
def test_surface_dose_matches_published_6mv_data(field):
    studies = PUBLISHED_SURFACE_DOSE_PCT[field]
    model = model_surface_dose_pct(field)
    if len(studies) >= 3:
        assert model == pytest.approx(float(np.median(list(studies.values()))), abs=MEDIAN_TOLERANCE_PCT_POINTS)
    else:
        for value in studies.values():
            assert model == pytest.approx(value, abs=SINGLE_TOLERANCE_PCT_POINTS)


def test_surface_dose_grows_with_field_size_as_measured():
    """From 5 x 5 to 25 x 25 cm^2 the studies measuring both give a rise of 19.5 to 21.9 points
    (Sigamani 19.5, Parsai 21.0 / 21.9, Apipunyasopon 20.6)."""
    rise = model_surface_dose_pct((25, 25)) - model_surface_dose_pct((5, 5))
    rises = [PUBLISHED_SURFACE_DOSE_PCT[(25, 25)][s] - PUBLISHED_SURFACE_DOSE_PCT[(5, 5)][s]
             for s in PUBLISHED_SURFACE_DOSE_PCT[(25, 25)] if s in PUBLISHED_SURFACE_DOSE_PCT[(5, 5)]]
    assert min(rises) - 1.0 <= rise <= max(rises) + 1.0


def test_build_up_is_monotonic_to_a_maximum_at_12_to_18_mm():
    """Rises from the surface to d_max without a dip (the electron term must not create a shoulder)."""
    depth = np.linspace(0.0, 30.0, 3001)
    for field in ((5, 5), (10, 10), (25, 25)):
        pdd = central_axis_pct(field, depth)
        k = int(np.argmax(pdd))
        assert 12.0 <= depth[k] <= 18.0
        assert np.all(np.diff(pdd[:k + 1]) > 0)


@pytest.mark.parametrize("field", sorted(PUBLISHED_PENUMBRA_MM))
def test_penumbra_matches_published_6mv_data(field):
    source, measured = PUBLISHED_PENUMBRA_MM[field]
    assert penumbra_80_20_mm(*field) == pytest.approx(measured, abs=PENUMBRA_TOLERANCE_MM), source

