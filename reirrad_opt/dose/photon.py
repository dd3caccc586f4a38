"""Photon pencil-beam kernel for a 6 MV-like beam.

Model (dose per unit bixel weight at a point with radiological depth ``d`` (mm), distance ``w``
from the source along the central axis (mm) and iso-plane lateral offsets ``(x, y)`` (mm) from
the bixel centre; bixel width ``h`` at the isocentre)::

    D = N * (SAD / w)^2 * sum_i f_i(d) * E(x; s_i) * E(y; s_i)

    f_1(d) = B(d) exp(-mu d)                            primary photons
    f_2(d) = f_1(d) k_2 d / 100 mm,  f_3 = f_1 k_3 d / 100 mm   near and far phantom scatter
    f_e(d) = c_e exp(-d / lambda_e)                     contaminating electrons
    B(d)   = 1 - (1 - b0) exp(-d / lambda_b)            build-up of the photon dose
    s_1 = s_p,  s_2,  s_3,  s_e                         Gaussian widths (iso plane, mm)
    E(x;s) = [erf((x + h/2)/(s sqrt 2)) - erf((x - h/2)/(s sqrt 2))] / 2   (Gaussian * bixel)

The photon part is the differential scatter-air-ratio picture of a pencil beam (Mohan & Chui
1987, Med. Phys. 14:70) with Gaussian radial kernels, so the laterally integrated scatter of an
infinitely broad field grows linearly with depth (scatter-to-primary ratio ``(k_2 + k_3) d /
100``) and the field-size dependence of the depth dose comes from the widths ``s_2, s_3``. The
surface dose of a 6 MV beam rises from about 10 % of the maximum for 5 x 5 cm^2 to about 32 % for
25 x 25 cm^2, largely from electrons set in motion in the linac head and the air: they are a
fourth component, broad (``s_e``) and shallow (``lambda_e``), as in the electron-contamination
term of convolution/superposition engines, so the surface dose grows with the field size as
measured (at the surface they give about 20 / 47 / 76 % of the dose of a 5 / 10 / 25 cm square
field, 2 mm deep about 2.5 / 8.5 / 24 %). The widths are constant in the
isocentre plane (so they scale with the distance from the source in the patient); the penumbra
widens with depth as the scatter weights grow. Heterogeneities enter only through the
radiological depth ``d`` along the ray (no lateral density scaling).

Parameters (:data:`SIX_MV`). The scatter part (``mu, k_2, s_2, k_3, s_3``) comes from the kernel's
first fit, made jointly with a 2.32 mm primary width, an earlier build-up and a 6 mm penumbra at
10 cm, to representative 6 MV data at SSD 100 cm: PDD 86.8 / 67.0 / 51.0 / 38.7 / 29.4 % at 5 / 10 /
15 / 20 / 25 cm for 10 x 10 cm^2; PDD(10) 62.8 % for 5 x 5 and 70.6 % for 20 x 20 cm^2, i.e. a beam
of quality TPR20,10 ~ 0.67 as tabulated in BJR Supplement 25; it has been held since. The build-up
(``b0, lambda_b, c_e, lambda_e, s_e``) was fitted with the rest held (the depth doses do not depend on
``s_p``), to the 10 x 10 cm^2 PDDs, a depth of maximum of 1.5 cm
(BJR Supplement 25) and ONE set of surface doses: the corrected CC13 chamber of Table 4 of J. Med.
Phys. 45(3):175 (2020), doi:10.4103/jmp.JMP_53_20: 9.9 / 15.6 / 21.6 / 27.2 / 32.4 % for 5 / 10 /
15 / 20 / 25 cm square fields. The primary width ``s_p`` gives the 80-20 % penumbra of 10 x 10
cm^2 at 10 cm depth measured with TLD and extrapolated to a detector of zero size, 4.2 mm (Kron,
Elliott & Metcalfe, Med. Phys. 20:1429, 1993). ``python3 tools/fit_photon_kernel.py`` repeats
both fits. The other data sets of that Table 4 and the other penumbras are kept for the tests
(``tests/test_dose_photon_published.py``).

Normalisation ``N``: a 10 x 10 cm^2 field of unit-weight bixels on water at SSD 100 cm gives
1 Gy at the depth of maximum on the central axis (one unit of weight ~ 100 MU of a linac
calibrated to 1 cGy/MU under those conditions).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.special import erf

SAD_MM = 1000.0


@dataclass(frozen=True)
class PhotonKernelParams:
    """Parameters of the photon pencil-beam model (see module docstring); lengths in mm.

    ``b0`` is the photon build-up factor at zero depth and ``c_e`` the contaminating electrons'
    depth factor at zero depth (both dimensionless, in the units of the primary's ``f_1``, which is
    0.89 at d_max). Widths and lengths must be positive; ``c_e = 0`` leaves the electrons out.
    """

    mu_per_mm: float = 0.00597
    b0: float = 0.073
    lambda_b_mm: float = 4.06
    s_p_mm: float = 1.58
    k2: float = 0.218
    s2_mm: float = 12.0
    k3: float = 0.225
    s3_mm: float = 45.1
    c_e: float = 0.284
    lambda_e_mm: float = 4.03
    s_e_mm: float = 77.7
    name: str = "6MV"

    def __post_init__(self) -> None:
        for key in ("mu_per_mm", "lambda_b_mm", "s_p_mm", "s2_mm", "s3_mm", "lambda_e_mm", "s_e_mm"):
            if not getattr(self, key) > 0:
                raise ValueError(f"photon kernel {self.name}: {key} = {getattr(self, key)!r}; expected > 0")
        for key in ("k2", "k3", "c_e"):
            if not getattr(self, key) >= 0:
                raise ValueError(f"photon kernel {self.name}: {key} = {getattr(self, key)!r}; expected >= 0")
        if not 0.0 <= self.b0 <= 1.0:
            raise ValueError(f"photon kernel {self.name}: b0 = {self.b0!r}; expected a surface factor in [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)


SIX_MV = PhotonKernelParams()
N_COMPONENTS = 4


def component_depth_factors(depth_mm: np.ndarray, p: PhotonKernelParams = SIX_MV) -> np.ndarray:
    """Depth factors ``f_i(d)`` of primary, near scatter, far scatter and contaminating
    electrons (dimensionless), shape (4, ...)."""
    d = np.maximum(np.asarray(depth_mm, dtype=np.float64), 0.0)
    primary = (1.0 - (1.0 - p.b0) * np.exp(-d / p.lambda_b_mm)) * np.exp(-p.mu_per_mm * d)
    return np.stack([primary, primary * (p.k2 * d / 100.0), primary * (p.k3 * d / 100.0),
                     p.c_e * np.exp(-d / p.lambda_e_mm)])


def component_sigmas(p: PhotonKernelParams = SIX_MV) -> np.ndarray:
    """Gaussian widths ``s_i`` (mm, iso plane) of the four components, shape (4,)."""
    return np.array([p.s_p_mm, p.s2_mm, p.s3_mm, p.s_e_mm])


def aperture_profile(x_mm: np.ndarray, sigma_mm: np.ndarray, width_mm: float) -> np.ndarray:
    """``E(x; s)``: a unit-height box of ``width_mm`` convolved with a normalised Gaussian."""
    x = np.asarray(x_mm, dtype=np.float64)
    s = np.asarray(sigma_mm, dtype=np.float64) * np.sqrt(2.0)
    return 0.5 * (erf((x + 0.5 * width_mm) / s) - erf((x - 0.5 * width_mm) / s))


def unnormalised_dose(x_mm, y_mm, depth_mm, w_mm, width_mm: float, p: PhotonKernelParams = SIX_MV,
                      length_mm: float | None = None) -> np.ndarray:
    """Model dose without ``N`` for an aperture centred on the axis: ``width_mm`` along x and
    ``length_mm`` along y (iso plane, mm; default square)."""
    length_mm = width_mm if length_mm is None else length_mm
    f = component_depth_factors(depth_mm, p)
    S = component_sigmas(p)
    lat = sum(f[i] * aperture_profile(x_mm, S[i], width_mm) * aperture_profile(y_mm, S[i], length_mm)
              for i in range(N_COMPONENTS))
    return (SAD_MM / np.asarray(w_mm, dtype=np.float64)) ** 2 * lat


@lru_cache(maxsize=8)
def normalisation(p: PhotonKernelParams = SIX_MV) -> float:
    """``N`` (Gy per unit weight): 1 Gy at d_max on the axis of 10 x 10 cm^2 at SSD 100 cm."""
    d = np.linspace(0.0, 60.0, 6001)
    dose = unnormalised_dose(0.0, 0.0, d, SAD_MM + d, 100.0, p)
    return float(1.0 / dose.max())


def bixel_dose(x_mm, y_mm, depth_mm, w_mm, bixel_mm: float, p: PhotonKernelParams = SIX_MV) -> np.ndarray:
    """Dose (Gy) per unit weight of one bixel of width ``bixel_mm`` at offsets (x, y) (iso plane,
    mm), radiological depth ``depth_mm`` and source distance ``w_mm`` (direct evaluation)."""
    return normalisation(p) * unnormalised_dose(x_mm, y_mm, depth_mm, w_mm, bixel_mm, p)


def central_axis_depth_dose(field_mm: float, depth_mm: np.ndarray, ssd_mm: float = SAD_MM,
                            p: PhotonKernelParams = SIX_MV) -> np.ndarray:
    """Analytic central-axis dose (Gy per unit weight) of a square field of side ``field_mm``
    (defined at the isocentre plane) on water at ``ssd_mm``."""
    d = np.asarray(depth_mm, dtype=np.float64)
    return normalisation(p) * unnormalised_dose(0.0, 0.0, d, ssd_mm + d, field_mm, p)


def penumbra_80_20_mm(width_mm: float, length_mm: float, depth_mm: float, p: PhotonKernelParams = SIX_MV) -> float:
    """80-20 % width (mm, at the depth) of the cross profile over the ``width_mm`` side of a rectangular
    field (sides at the isocentre) on water at SSD 100 cm, normalised on the central axis."""
    x = np.linspace(0.0, 0.75 * width_mm + 60.0, 30001)        # iso-plane offsets (mm)
    prof = unnormalised_dose(x, 0.0, depth_mm, SAD_MM + depth_mm, width_mm, p, length_mm)
    prof = prof / prof[0]
    return float((np.interp(-0.2, -prof, x) - np.interp(-0.8, -prof, x)) * (SAD_MM + depth_mm) / SAD_MM)


def lateral_table(bixel_mm: float, reach_mm: float, step_mm: float, p: PhotonKernelParams = SIX_MV
                  ) -> tuple[np.ndarray, int]:
    """``E_i(x_q)`` for the four components at ``x_q = (q - q0) * step_mm``, |x| <= reach:
    returns (table of shape (n, 4), q0)."""
    q0 = int(np.ceil(reach_mm / step_mm)) + 2
    x = step_mm * (np.arange(2 * q0 + 1) - q0)
    S = component_sigmas(p)
    return aperture_profile(x[:, None], S[None, :], bixel_mm), q0
