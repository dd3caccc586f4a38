"""The photon kernel's build-up region against published 6 MV data it was NOT fitted to.

The kernel's parameters (reirrad_opt/dose/photon.py, SIX_MV) were fitted to BJR Supplement 25
central-axis data (d_max, PDD at 5-25 cm) and a 6 mm penumbra; tests/test_dose_photon.py checks
those. This file holds independent data:

* Surface dose of a 6 MV 10 x 10 cm^2 field at SSD 100 cm, in % of the maximum dose, as collected
  in Table 4 of J. Med. Phys. 45(3):175-181 (2020), doi:10.4103/jmp.JMP_53_20 (PMC7810143):
  Bilge et al. 15.0 and Akbas et al. 16.6 (Markus parallel-plate chamber), Devic et al. 16.0 and
  Sigamani et al. 18.0 (radiochromic film), Parsai et al. 16.0 (extrapolation chamber) and 16.1
  (corrected parallel-plate chamber), Apipunyasopon et al. 16.5 (Monte Carlo) and the paper's own
  15.6 (corrected CC13 chamber): 15.0 to 18.0 %. Tolerance: 3 percentage points beyond that span
  (the spread between detectors), i.e. 12 to 21 %.

The model states a surface dose (``b0``, the build-up factor at zero depth) and gives 44 % for
this field: the build-up is an exponential of 4.7 mm fitted for the depth of maximum dose, not for
the surface, where the dose comes from contaminating electrons and backscatter. The test is marked
xfail (strict) with that gap; the kernel is not refitted to these data.
"""
from __future__ import annotations

import numpy as np
import pytest

from reirrad_opt.dose.photon import SIX_MV, central_axis_depth_dose

PUBLISHED_SURFACE_DOSE_PCT = {"Bilge": 15.0, "Akbas": 16.6, "Devic": 16.0, "Sigamani": 18.0, "Parsai (extrap.)": 16.0,
                              "Parsai (pp)": 16.1, "Apipunyasopon (MC)": 16.5, "J Med Phys 2020": 15.6}
TOLERANCE_PCT_POINTS = 3.0


def model_surface_dose_pct() -> float:
    """Central-axis dose at the surface of a 10 x 10 cm^2 field at SSD 100 cm, % of its maximum."""
    depth = np.linspace(0.0, 60.0, 6001)
    dose = central_axis_depth_dose(100.0, depth, p=SIX_MV)
    return float(100.0 * dose[0] / dose.max())


@pytest.mark.xfail(strict=True, reason="the kernel's surface dose is 44 % of the maximum for 6 MV 10x10, "
                                       "published values are 15.0-18.0 %: its exponential build-up was fitted for "
                                       "d_max, not the surface")
def test_surface_dose_of_a_10x10_field_matches_published_6mv_data():
    lo = min(PUBLISHED_SURFACE_DOSE_PCT.values()) - TOLERANCE_PCT_POINTS
    hi = max(PUBLISHED_SURFACE_DOSE_PCT.values()) + TOLERANCE_PCT_POINTS
    assert lo <= model_surface_dose_pct() <= hi


def test_the_surface_dose_gap_is_what_the_xfail_states():
    """Keeps the xfail reason honest: the model's surface dose is 40-46 % (44.1 % when written)."""
    assert 40.0 <= model_surface_dose_pct() <= 46.0
