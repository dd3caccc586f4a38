"""Fit the build-up part of the 6 MV photon kernel (``reirrad_opt/dose/photon.py``).

    python3 tools/fit_photon_buildup.py

Held fixed: the deep part of the kernel (``mu, s_p, k_2, s_2, k_3, s_3`` of ``SIX_MV``).
Fitted, by weighted least squares: ``b0, lambda_b`` (photon build-up) and ``c_e, lambda_e, s_e``
(contaminating electrons) to

* the surface dose of square fields 5, 10, 15, 20 and 25 cm at SSD 100 cm: 9.9, 15.6, 21.6, 27.2,
  32.4 % of the maximum (corrected CC13 chamber, "present study" of Table 4 of J. Med. Phys.
  45(3):175-181, 2020, doi:10.4103/jmp.JMP_53_20), weight 1 / 0.5 points;
* the depth of maximum of 10 x 10 cm^2, 15 mm (BJR Supplement 25), weight 1 / 0.5 mm;
* the 10 x 10 cm^2 PDD at 5/10/15/20/25 cm, 86.8/67.0/51.0/38.7/29.4 % (BJR Supplement 25), weight
  1 / 0.5 points.

The other rows of that Table 4 are NOT used: ``tests/test_dose_photon_published.py`` checks the
kernel against them. Prints the fitted values (rounded as ``SIX_MV`` holds them) and the model's
surface dose, d_max and PDD(10 cm) per field size.
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reirrad_opt.dose.photon import SIX_MV, central_axis_depth_dose  # noqa: E402

SURFACE_PCT = {50.0: 9.9, 100.0: 15.6, 150.0: 21.6, 200.0: 27.2, 250.0: 32.4}   # field side (mm) -> %
PDD_10X10_PCT = {50.0: 86.8, 100.0: 67.0, 150.0: 51.0, 200.0: 38.7, 250.0: 29.4}  # depth (mm) -> %
DMAX_10X10_MM = 15.0
DEPTH_MM = np.linspace(0.0, 300.0, 3001)
NAMES = ("b0", "lambda_b_mm", "c_e", "lambda_e_mm", "s_e_mm")


def params(x):
    return replace(SIX_MV, **dict(zip(NAMES, map(float, x))))


def pdd(field_mm: float, x) -> np.ndarray:
    dose = central_axis_depth_dose(field_mm, DEPTH_MM, p=params(x))
    return 100.0 * dose / dose.max()


def residuals(x) -> np.ndarray:
    r = [(pdd(f, x)[0] - v) / 0.5 for f, v in SURFACE_PCT.items()]
    ten = pdd(100.0, x)
    r.append((DEPTH_MM[np.argmax(ten)] - DMAX_10X10_MM) / 0.5)
    r += [(np.interp(d, DEPTH_MM, ten) - v) / 0.5 for d, v in PDD_10X10_PCT.items()]
    return np.array(r)


def main() -> None:
    start = [0.05, 4.0, 0.3, 2.0, 60.0]
    fit = least_squares(residuals, start, bounds=([0, 0.5, 0, 0.3, 5], [1, 20, 5, 30, 300]))
    for name, value in zip(NAMES, fit.x):
        print(f"{name} = {value:.4g}")
    print(f"weighted residual sum of squares: {2 * fit.cost:.2f} over {fit.fun.size} data")
    for f in SURFACE_PCT:
        curve = pdd(f, fit.x)
        print(f"{f / 10:.0f} x {f / 10:.0f} cm2: surface {curve[0]:.1f} %, d_max {DEPTH_MM[np.argmax(curve)]:.1f} mm, "
              f"PDD(10 cm) {np.interp(100.0, DEPTH_MM, curve):.1f} %")


if __name__ == "__main__":
    main()
