"""Particle (proton, carbon-ion) pencil-beam physics in water.

* **Range-energy relation**: CSDA range from the Bethe stopping-power formula (no shell, Barkas
  or density corrections) integrated numerically, water mean excitation energy I = 75 eV
  (ICRU Report 49, the value used by NIST PSTAR), ``Z/A`` = 0.55509. Below 1 MeV per nucleon the
  Bragg-Kleeman rule ``R = 0.0022 cm * E^1.77`` (Bortfeld 1997) supplies the few micrometres of
  residual range. For protons this agrees with the PSTAR CSDA ranges to better than 0.2 % from
  70 to 230 MeV. Heavier ions use the same formula with charge ``z`` (ranges scale as
  ``(M/M_p) / z^2`` at equal velocity).
* **Proton integrated depth dose (IDD)**: Monte Carlo curves (MCsquare) of mono-energetic pencil
  beams in water, interpolated in range (:mod:`.proton_idd`); R80 follows the CSDA range.
* **Energy spread**: the mono-energetic IDD convolved in depth with a Gaussian of the range spread
  ``sigma_R = sigma_E / S(E)`` (``S`` the Bethe mass stopping power), ``sigma_E`` from the beam
  model (:mod:`.beam_model`).
* **Range straggling** (layer spacing, carbon): ``sigma_mono = 0.012 cm * R0^0.935`` (R0 in cm;
  Bortfeld 1997, eq. 18).
* **Lateral spread**: Gaussian with ``sigma^2(z) = sigma_air^2 + sigma_MCS^2(z)``; ``sigma_MCS``
  from Highland's formula with its logarithmic term in the thick-target form of Gottschalk et al.
  (1993, Nucl. Instrum. Methods B 74:467, eq. for the rms displacement):
  ``sigma_MCS(z) = 14.1 MeV z_ion (1 + log10(z / X0) / 9) [int_0^z ((z - z') / pv(z'))^2 dz' / X0]^(1/2)``
  (X0 = 36.08 cm for water), ``pv`` from the residual energy at each depth. ``sigma_air`` is the
  in-air spot sigma at the isocentre from the beam model.
* **Carbon ions** (12C): Bortfeld's analytical Bragg curve (Bortfeld 1997, Med. Phys. 24:2024,
  eqs. 26-29: parabolic-cylinder functions for the straggled peak, p = 1.77) with ion-specific
  range, straggling
  reduced by ``sqrt(M_p / M)`` and nuclear fluence loss ``beta`` = 0.04 /cm with no local
  absorption, plus a fragment component: energy carried by fragments produced along the path,
  deposited as a dose that builds up to the peak and falls linearly to zero at twice the range
  (the fragmentation tail). This is a qualitative model.

All lengths returned in mm (water: 1 g/cm^2 = 10 mm), energies in MeV per nucleon for carbon and
MeV for protons.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache

import numpy as np
from scipy.integrate import cumulative_trapezoid
from scipy.ndimage import gaussian_filter1d
from scipy.special import gamma as gamma_fn
from scipy.special import pbdv

from .beam_model import BeamModel, default_beam_model
from .proton_idd import proton_idd

MEV_PER_G_TO_GY = 1.602176634e-10   # 1 MeV/g in Gy
ME_MEV = 0.51099895                 # electron rest energy
K_BETHE = 0.307075                  # MeV cm^2 / mol
WATER_Z_OVER_A = 0.55509
WATER_I_EV = 75.0                   # ICRU 49 / NIST PSTAR
WATER_X0_CM = 36.08                 # radiation length of water
HIGHLAND_ES_MEV = 14.1
BRAGG_KLEEMAN_ALPHA_CM = 0.0022     # cm MeV^-p (Bortfeld 1997)
BRAGG_KLEEMAN_P = 1.77


@dataclass(frozen=True)
class IonSpecies:
    """Physical and model constants of an ion species.

    Attributes:
        name: 'proton' or 'carbon'.
        charge: z.
        nucleons: A (energies are per nucleon).
        mass_mev: rest energy of the ion (MeV).
        beta_per_cm: nuclear fluence-loss coefficient (Bortfeld's beta).
        gamma_local: fraction of the nuclear-interaction energy absorbed locally.
        epsilon: low-energy fluence contamination (Bortfeld's epsilon).
        straggling_scale: factor on the proton straggling formula.
        fragment_fraction: fraction of the energy lost in nuclear reactions that fragments deposit
            (tail model; 0 for protons).
        particles_per_unit_weight: number of primary particles of one unit of spot weight.
    """

    name: str
    charge: int
    nucleons: int
    mass_mev: float
    beta_per_cm: float
    gamma_local: float
    epsilon: float
    straggling_scale: float
    fragment_fraction: float
    particles_per_unit_weight: float

    def to_dict(self) -> dict:
        return asdict(self)


# proton beta/gamma/epsilon are used by bortfeld_idd only (the proton kernel is the Monte Carlo table)
PROTON = IonSpecies("proton", 1, 1, 938.272088, beta_per_cm=0.012, gamma_local=0.6, epsilon=0.0,
                    straggling_scale=1.0, fragment_fraction=0.0, particles_per_unit_weight=1e8)
CARBON = IonSpecies("carbon", 6, 12, 11174.86, beta_per_cm=0.04, gamma_local=0.0, epsilon=0.0,
                    straggling_scale=float(np.sqrt(938.272088 / 11174.86)), fragment_fraction=0.5,
                    particles_per_unit_weight=1e7)
IONS = {"proton": PROTON, "carbon": CARBON}


def ion_species(name: str) -> IonSpecies:
    try:
        return IONS[name]
    except KeyError:
        raise ValueError(f"ion must be one of {sorted(IONS)}, got {name!r}") from None


def bethe_mass_stopping_power(kinetic_mev: np.ndarray, ion: IonSpecies = PROTON) -> np.ndarray:
    """Electronic mass stopping power of water (MeV cm^2/g) for an ion of total kinetic energy
    ``kinetic_mev`` (Bethe formula, I = 75 eV, no shell/Barkas/density corrections)."""
    t = np.asarray(kinetic_mev, dtype=np.float64)
    g = 1.0 + t / ion.mass_mev
    b2 = 1.0 - 1.0 / g ** 2
    r = ME_MEV / ion.mass_mev
    wmax = 2 * ME_MEV * b2 * g ** 2 / (1 + 2 * g * r + r ** 2)
    i_mev = WATER_I_EV * 1e-6
    return K_BETHE * WATER_Z_OVER_A * ion.charge ** 2 / b2 * (
        0.5 * np.log(2 * ME_MEV * b2 * g ** 2 * wmax / i_mev ** 2) - b2)


@dataclass(frozen=True)
class RangeTable:
    """CSDA range in water versus energy per nucleon (mm, MeV/u), monotonic."""

    energy_mev_u: np.ndarray
    range_mm: np.ndarray

    def range_mm_at(self, energy_mev_u) -> np.ndarray:
        e = np.asarray(energy_mev_u, dtype=np.float64)
        if np.any(e < self.energy_mev_u[0]) or np.any(e > self.energy_mev_u[-1]):
            raise ValueError(f"energy must be within [{self.energy_mev_u[0]:g}, {self.energy_mev_u[-1]:g}] MeV/u, "
                             f"got [{e.min():g}, {e.max():g}]")
        return np.exp(np.interp(np.log(e), np.log(self.energy_mev_u), np.log(self.range_mm)))

    def energy_at_range(self, range_mm) -> np.ndarray:
        r = np.asarray(range_mm, dtype=np.float64)
        if np.any(r < self.range_mm[0]) or np.any(r > self.range_mm[-1]):
            raise ValueError(f"range must be within [{self.range_mm[0]:.3g}, {self.range_mm[-1]:.4g}] mm water, "
                             f"got [{r.min():.4g}, {r.max():.4g}]")
        return np.exp(np.interp(np.log(r), np.log(self.range_mm), np.log(self.energy_mev_u)))


@lru_cache(maxsize=4)
def range_table(ion_name: str = "proton") -> RangeTable:
    """CSDA range table of ``ion_name`` in water, 1 to 500 MeV/u."""
    ion = ion_species(ion_name)
    e_u = np.geomspace(1.0, 500.0, 4000)
    t = e_u * ion.nucleons
    inv_s = 1.0 / bethe_mass_stopping_power(t, ion)          # g/cm^2 per MeV
    r_cm = cumulative_trapezoid(inv_s, t, initial=0.0)
    # residual range below 1 MeV/u: proton Bragg-Kleeman, scaled to the ion at equal velocity
    r0_cm = BRAGG_KLEEMAN_ALPHA_CM * 1.0 ** BRAGG_KLEEMAN_P * (ion.mass_mev / PROTON.mass_mev) / ion.charge ** 2
    return RangeTable(e_u, 10.0 * (r_cm + r0_cm))


def csda_range_mm(energy_mev_u, ion: str = "proton") -> np.ndarray:
    """CSDA range in water (mm) at energy per nucleon (MeV/u; MeV for protons)."""
    return range_table(ion).range_mm_at(energy_mev_u)


def energy_for_range(range_mm, ion: str = "proton") -> np.ndarray:
    """Energy per nucleon (MeV/u) whose CSDA range in water is ``range_mm``."""
    return range_table(ion).energy_at_range(range_mm)


def straggling_sigma_mm(range_mm: float, ion: IonSpecies = PROTON) -> float:
    """Range straggling sigma (mm) of a mono-energetic beam: Bortfeld's ``0.012 R0^0.935`` (cm)
    scaled for the ion."""
    return 10.0 * ion.straggling_scale * 0.012 * (range_mm / 10.0) ** 0.935


def range_spread_mm(energy_mev_u: float, spread_rel: float, ion: IonSpecies = PROTON) -> float:
    """Range sigma (mm) in water of a beam with relative 1-sigma energy spread ``spread_rel``:
    ``sigma_E / S(E)`` with the Bethe mass stopping power ``S`` (MeV cm^2/g) of the whole ion."""
    if spread_rel <= 0:
        return 0.0
    t = float(energy_mev_u) * ion.nucleons
    return 10.0 * spread_rel * t / float(bethe_mass_stopping_power(t, ion))


def bortfeld_idd(depth_mm: np.ndarray, energy_mev_u: float, ion: IonSpecies = PROTON) -> np.ndarray:
    """Laterally integrated dose of one primary particle, MeV cm^2/g, at water depths (mm).

    Bortfeld (1997) eq. 29 near the peak (depth > R0 - 10 sigma), its non-straggled limit eq. 26
    elsewhere (the two agree where they meet). For ions with ``fragment_fraction`` > 0 a
    fragment component is added (see module docstring)."""
    z = np.asarray(depth_mm, dtype=np.float64) / 10.0           # cm
    r0 = float(csda_range_mm(energy_mev_u, ion.name)) / 10.0     # cm
    e0 = float(energy_mev_u) * ion.nucleons                      # MeV per ion
    p = BRAGG_KLEEMAN_P
    alpha = r0 / e0 ** p
    sigma = straggling_sigma_mm(r0 * 10.0, ion) / 10.0
    beta, gam, eps = ion.beta_per_cm, ion.gamma_local, ion.epsilon
    coef = beta / p + gam * beta + eps / r0
    pre = 1.0 / ((1.0 + beta * r0) * p * alpha ** (1.0 / p))
    out = np.zeros_like(z)
    zeta = (r0 - z) / sigma
    far = zeta > 10.0
    if np.any(far):
        rr = r0 - z[far]
        out[far] = pre * (rr ** (1.0 / p - 1.0) + p * coef * rr ** (1.0 / p))
    near = ~far & (zeta > -12.0)
    if np.any(near):
        g1, g2 = _parabolic_cylinder_terms(zeta[near])
        front = sigma ** (1.0 / p) * gamma_fn(1.0 / p) / (np.sqrt(2 * np.pi) * p * alpha ** (1.0 / p) * (1.0 + beta * r0))
        out[near] = front * (g1 / sigma + coef * g2)
    out = np.maximum(out, 0.0)
    if ion.fragment_fraction > 0:
        out += _fragment_idd(z, r0, e0, sigma, ion)
    return out


ZETA_STEP = 0.002


@lru_cache(maxsize=1)
def _parabolic_cylinder_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``exp(-zeta^2/4) D_v(-zeta)`` for v = -1/p and -1/p - 1 on a fine grid of zeta in [-12, 10]
    (they depend on zeta only, p = 1.77 being fixed)."""
    zeta = np.arange(-12.0, 10.0 + ZETA_STEP, ZETA_STEP)
    p = BRAGG_KLEEMAN_P
    e = np.exp(-zeta ** 2 / 4.0)
    return zeta, e * pbdv(-1.0 / p, -zeta)[0], e * pbdv(-1.0 / p - 1.0, -zeta)[0]


def _parabolic_cylinder_terms(zeta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interpolated ``exp(-zeta^2/4) D_v(-zeta)`` (see :func:`_parabolic_cylinder_table`)."""
    z, t1, t2 = _parabolic_cylinder_table()
    return np.interp(zeta, z, t1), np.interp(zeta, z, t2)


def _fragment_idd(z_cm: np.ndarray, r0: float, e0: float, sigma: float, ion: IonSpecies) -> np.ndarray:
    """Fragment dose (MeV cm^2/g per primary): proportional to the number of primaries lost so far
    up to the peak, then falling linearly to zero at 2 R0; its integral is ``fragment_fraction``
    of half the energy removed from the primaries by nuclear reactions."""
    beta = ion.beta_per_cm
    lost = 1.0 - np.exp(-beta * np.clip(z_cm, 0.0, r0))
    shape = np.where(z_cm <= r0, lost, (1.0 - np.exp(-beta * r0)) * np.clip(1.0 - (z_cm - r0) / r0, 0.0, None))
    # integral of the shape over depth (cm), analytic
    lost_r0 = 1.0 - np.exp(-beta * r0)
    integral = (r0 - lost_r0 / beta) + 0.5 * r0 * lost_r0
    energy = ion.fragment_fraction * 0.5 * e0 * lost_r0
    return np.where(z_cm >= 0, energy / integral * shape, 0.0)


HIGHLAND_MIN_X0 = 1e-3     # below this thickness (in X0) the log term is held at its value there


def mcs_sigma_mm(depth_mm: np.ndarray, energy_mev_u: float, ion: IonSpecies = PROTON) -> np.ndarray:
    """Multiple-Coulomb-scattering sigma (mm, projected) at water depths (mm); constant beyond the range.

    Highland's formula with its logarithmic term in Gottschalk's thick-target form (module
    docstring): ``sigma(z) = E_s z_ion (1 + log10(z/X0)/9) sqrt(int_0^z (z - z')^2 / (pv)^2 dz'/X0)``,
    E_s = 14.1 MeV, the residual energy at z' from the range-energy relation."""
    r0 = float(csda_range_mm(energy_mev_u, ion.name))
    tab = range_table(ion.name)
    zp = np.linspace(0.0, r0 * (1 - 1e-4), 2001)                   # mm
    resid = np.maximum(r0 - zp, tab.range_mm[0] * 1.0001)
    t = energy_for_range(resid, ion.name) * ion.nucleons             # MeV per ion
    pc = np.sqrt(t ** 2 + 2 * t * ion.mass_mev)
    pv = pc ** 2 / (t + ion.mass_mev)
    x0_mm = WATER_X0_CM * 10.0
    tscat = (ion.charge / pv) ** 2 / x0_mm                            # 1/(MeV^2 mm)
    a0 = cumulative_trapezoid(tscat, zp, initial=0.0)
    a1 = cumulative_trapezoid(tscat * zp, zp, initial=0.0)
    a2 = cumulative_trapezoid(tscat * zp ** 2, zp, initial=0.0)
    z = np.clip(np.asarray(depth_mm, dtype=np.float64), 0.0, zp[-1])
    A0, A1, A2 = (np.interp(z, zp, a) for a in (a0, a1, a2))
    integral = np.sqrt(np.maximum(z ** 2 * A0 - 2 * z * A1 + A2, 0.0))
    log_term = 1.0 + np.log10(np.maximum(z / x0_mm, HIGHLAND_MIN_X0)) / 9.0
    return HIGHLAND_ES_MEV * log_term * integral


@dataclass
class SpotKernel:
    """Tabulated depth kernel of one energy (see :func:`spot_kernel`).

    ``idd[k]`` is the laterally integrated dose (Gy mm^2 per unit weight) and ``sigma[k]`` the
    lateral sigma (mm) at water depth ``k * step_mm``; zero dose beyond the table. ``range_mm``
    is the CSDA range in the patient (behind the range shifter, if any), ``sigma_air_mm`` the
    in-air sigma at the isocentre included in ``sigma`` (with the range shifter's scattering)."""

    energy_mev_u: float
    range_mm: float
    step_mm: float
    idd: np.ndarray
    sigma: np.ndarray
    sigma_air_mm: float = 0.0
    rs_wet_mm: float = 0.0
    peak_axis_gy: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.peak_axis_gy = float(np.max(self.idd / (2 * np.pi * self.sigma ** 2)))


@lru_cache(maxsize=512)
def spot_kernel(energy_mev_u: float, ion_name: str = "proton", step_mm: float = 0.05,
                beam: BeamModel | None = None, rs_wet_mm: float = 0.0) -> SpotKernel:
    """Tabulate IDD (Gy mm^2 per unit weight) and lateral sigma (mm) versus water depth.

    Protons: the Monte Carlo IDD (:mod:`.proton_idd`); carbon: :func:`bortfeld_idd`. Both are
    convolved in depth with the range spread of the beam model's energy spread; the lateral sigma
    adds the model's in-air spot sigma at the isocentre and the scattering sigma in quadrature.
    ``beam`` None: the shipped generic model of the ion. ``rs_wet_mm`` > 0: the beam crosses the
    model's range shifter of that water-equivalent thickness first (the depth dose is shifted by
    it; its scattering widens the spot as a water slab would, see :func:`range_shifter_sigma_mm`)."""
    ion = ion_species(ion_name)
    beam = default_beam_model(ion_name) if beam is None else beam
    if beam.ion != ion_name:
        raise ValueError(f"beam model {beam.name!r} is for {beam.ion}, not {ion_name}")
    r_nozzle = float(csda_range_mm(energy_mev_u, ion_name))
    r0 = r_nozzle - rs_wet_mm
    if rs_wet_mm > 0 and (beam.range_shifter is None or r0 <= float(range_table(ion_name).range_mm[0])):
        raise ValueError(f"a {energy_mev_u:g} MeV spot behind a {rs_wet_mm:g} mm range shifter: the beam model "
                         f"{beam.name!r} has {'no' if beam.range_shifter is None else 'not enough'} range for it")
    s = straggling_sigma_mm(r_nozzle, ion)
    s_e = range_spread_mm(energy_mev_u, float(beam.energy_spread_rel(energy_mev_u)), ion)
    zmax = (2.0 * r0) if ion.fragment_fraction > 0 else (r0 + 6.0 * float(np.hypot(s, s_e)) + 1.0)
    z = step_mm * np.arange(int(np.ceil(zmax / step_mm)) + 2)
    if ion_name == "proton":
        per_primary = proton_idd(z + rs_wet_mm, energy_mev_u)
    else:
        per_primary = bortfeld_idd(z + rs_wet_mm, energy_mev_u, ion)
    if s_e > 0:
        # the entrance plateau continues before the surface ('nearest'); zero beyond the table
        per_primary = gaussian_filter1d(per_primary, s_e / step_mm, mode="nearest", truncate=5.0)
        per_primary[-1] = 0.0
    idd = per_primary * 100.0 * MEV_PER_G_TO_GY * ion.particles_per_unit_weight
    s_air = float(beam.sigma_air_mm(energy_mev_u))
    e_in = float(energy_mev_u)
    if rs_wet_mm > 0:
        s_air = float(np.hypot(s_air, range_shifter_sigma_mm(energy_mev_u, rs_wet_mm,
                                                             beam.range_shifter.isocenter_distance_mm, ion)))
        e_in = float(energy_for_range(r0, ion_name))
    sig = np.hypot(s_air, mcs_sigma_mm(z, e_in, ion))
    return SpotKernel(float(energy_mev_u), r0, step_mm, idd.astype(np.float32), sig.astype(np.float32),
                      sigma_air_mm=s_air, rs_wet_mm=float(rs_wet_mm))


def range_shifter_sigma_mm(energy_mev_u: float, wet_mm: float, isocenter_distance_mm: float,
                           ion: IonSpecies = PROTON) -> float:
    """Spot sigma (mm) added at the isocentre by scattering in a range shifter, taken as a water
    slab of thickness ``wet_mm`` whose downstream face is ``isocenter_distance_mm`` upstream:
    Highland's angle with its logarithmic term (Gottschalk 1993 thick-target form),
    ``theta0 = 14.1 MeV z (1 + log10(L/X0)/9) sqrt(int_0^L dx / (pv)^2 / X0)``, and the
    Fermi-Eyges displacement of a uniform slab followed by a drift D,
    ``sigma = theta0 sqrt(D^2 + D L + L^2/3)``."""
    r_in = float(csda_range_mm(energy_mev_u, ion.name))
    x = np.linspace(0.0, wet_mm, 401)
    t = energy_for_range(np.maximum(r_in - x, range_table(ion.name).range_mm[0] * 1.0001), ion.name) * ion.nucleons
    pv = (t ** 2 + 2 * t * ion.mass_mev) / (t + ion.mass_mev)
    x0_mm = WATER_X0_CM * 10.0
    theta0 = HIGHLAND_ES_MEV * ion.charge * (1.0 + np.log10(max(wet_mm / x0_mm, HIGHLAND_MIN_X0)) / 9.0) * \
        np.sqrt(np.trapezoid(1.0 / pv ** 2, x) / x0_mm)
    d, l_mm = isocenter_distance_mm, wet_mm
    return float(theta0 * np.sqrt(d * d + d * l_mm + l_mm * l_mm / 3.0))


def spot_dose(r_mm: np.ndarray, depth_mm: np.ndarray, energy_mev_u: float, ion: str = "proton",
              beam: BeamModel | None = None, distance_mm=0.0, rs_wet_mm: float = 0.0) -> np.ndarray:
    """Dose (Gy) per unit weight of one spot at lateral distance ``r_mm`` from its axis and water
    depth ``depth_mm`` (direct evaluation from the tabulated kernel); ``distance_mm``: the points'
    distance downstream of the isocentre (the beam model's spot-size growth); ``rs_wet_mm``: the
    range shifter in front of the spot (see :func:`spot_kernel`)."""
    beam = default_beam_model(ion) if beam is None else beam
    k = spot_kernel(float(energy_mev_u), ion, beam=beam, rs_wet_mm=float(rs_wet_mm))
    idx = np.rint(np.asarray(depth_mm) / k.step_mm).astype(np.int64)
    ok = (idx >= 0) & (idx < k.idd.size)
    idx = np.clip(idx, 0, k.idd.size - 1)
    sig = k.sigma[idx].astype(np.float64)
    if beam.sigma_growth_mm_per_mm != 0.0:
        s_w = k.sigma_air_mm + beam.sigma_growth_mm_per_mm * np.asarray(distance_mm, dtype=np.float64)
        sig = np.sqrt(np.maximum(sig ** 2 - k.sigma_air_mm ** 2, 0.0) + s_w ** 2)
    g = np.exp(-0.5 * (np.asarray(r_mm) / sig) ** 2) / (2 * np.pi * sig ** 2)
    return np.where(ok, k.idd[idx] * g, 0.0)


def r80_mm(depth_mm: np.ndarray, dose: np.ndarray) -> float:
    """Distal depth (mm) where a depth-dose curve falls to 80 % of its maximum (linear interpolation)."""
    d = np.asarray(depth_mm, dtype=float)
    y = np.asarray(dose, dtype=float)
    return _distal_level(d, y, 0.8)


def _distal_level(d: np.ndarray, y: np.ndarray, level: float) -> float:
    k = int(np.argmax(y))
    target = level * y[k]
    tail = np.flatnonzero(y[k:] < target)
    if tail.size == 0:
        raise ValueError("depth-dose curve does not fall below the level beyond its maximum")
    j = k + int(tail[0])
    return float(np.interp(target, [y[j], y[j - 1]], [d[j], d[j - 1]]))


def distal_falloff_mm(depth_mm: np.ndarray, dose: np.ndarray, high: float = 0.8, low: float = 0.2) -> float:
    """Distal 80-20 % (by default) fall-off distance (mm) of a depth-dose curve."""
    d = np.asarray(depth_mm, dtype=float)
    y = np.asarray(dose, dtype=float)
    return _distal_level(d, y, low) - _distal_level(d, y, high)
