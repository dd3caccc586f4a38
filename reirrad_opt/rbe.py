"""Relative biological effectiveness (RBE): which constant turns a physical dose into Gy(RBE).

Particle plans are optimized and evaluated on the RBE-weighted dose, Gy(RBE) = RBE x physical dose
(Gy), with a constant RBE: 1.1 for protons unless the user or the protocol (option ``rbe_proton``)
sets another value. Photons (and electrons) have RBE 1 by definition: their dose unit stays Gy.

Carbon and heavier ions are refused without an explicit RBE: their RBE varies with LET, dose per
fraction and tissue (variable-RBE models such as LEM or MKM are out of scope), so a constant is not
defensible for a clinical verdict. With an explicit RBE the plan is made, and every output says
that a constant RBE was assumed.

The same rules give the RBE of a *prior* course imported as a PHYSICAL dose
(:func:`prior_rbe_factor`).
"""
from __future__ import annotations

import re

from dataclasses import dataclass

from .cli import InputError

RBE_MIN = 0.5
RBE_MAX = 5.0
PROTON_RBE = 1.1                   # the clinical convention (ICRU 78)
LOW_LET_MODALITIES = ("photon", "electron")
# the radiation types a prior course can have been (as an RT (Ion) Plan names them: RadiationType, and an ion's
# atomic number); another ion is written "ion(Z=<n>)"
PRIOR_MODALITIES = ("photon", "electron", "proton", "neutron", "helium", "carbon", "oxygen", "neon")


def is_prior_modality(text: object) -> bool:
    """Whether ``text`` names a radiation type a prior course can have been (:data:`PRIOR_MODALITIES` or
    'ion(Z=<n>)')."""
    return isinstance(text, str) and (text in PRIOR_MODALITIES or re.fullmatch(r"ion\(Z=\d+\)", text) is not None)
RBE_ALREADY_APPLIED = "already applied"   # PriorCourse.rbe of an EFFECTIVE (RBE-weighted) prior dose


@dataclass(frozen=True)
class RBESetting:
    """The RBE of a plan's new course.

    Attributes:
        modality: 'photon', 'proton', 'carbon', ...
        rbe: the constant (dimensionless); 1.0 for photons.
        source: where it came from ('photon: RBE 1 by definition', 'default for protons',
            'protocol option rbe_proton', 'given explicitly (--rbe)').
        assumed_constant_for_ion: True for an ion heavier than a proton planned with a constant RBE
            (stated loudly in the notes and reports).
    """

    modality: str
    rbe: float
    source: str
    assumed_constant_for_ion: bool = False

    @property
    def is_particle(self) -> bool:
        return self.modality not in LOW_LET_MODALITIES

    @property
    def dose_unit(self) -> str:
        """'Gy' for photons, 'Gy(RBE)' for particles."""
        return "Gy(RBE)" if self.is_particle else "Gy"

    @property
    def quantity(self) -> str:
        """'physical' (photons) or 'RBE-weighted' (particles)."""
        return "RBE-weighted" if self.is_particle else "physical"

    @property
    def model(self) -> str:
        """'constant' (particles) or 'none' (photons)."""
        return "constant" if self.is_particle else "none"

    def to_dict(self) -> dict:
        """plan.json's ``dose`` object."""
        return {"quantity": self.quantity, "unit": self.dose_unit, "rbe": float(self.rbe), "rbe_model": self.model}

    def notes(self) -> list[str]:
        """What the plan's notes must say about its dose quantity."""
        if not self.is_particle:
            return []
        out = [f"dose: RBE-weighted, Gy(RBE) = {self.rbe:g} x physical dose (constant RBE, {self.source}); the optimizer "
               f"and the evaluation used this dose, the physical dose is it / {self.rbe:g}"]
        if self.assumed_constant_for_ion:
            out.append(f"WARNING: a CONSTANT RBE of {self.rbe:g} was ASSUMED for {self.modality} ions. Their RBE varies "
                       "with LET, dose per fraction and tissue (variable-RBE models such as LEM or MKM are not "
                       "modelled): this plan's Gy(RBE) values and verdict rest on that assumption")
        return out


def check_rbe_value(rbe: float, what: str) -> float:
    """``rbe`` as a float within [RBE_MIN, RBE_MAX]; InputError naming ``what`` otherwise."""
    if isinstance(rbe, bool):
        raise InputError(f"{what}: expected a number from {RBE_MIN:g} to {RBE_MAX:g}, got {rbe!r}")
    try:
        value = float(rbe)
    except (TypeError, ValueError):
        raise InputError(f"{what}: expected a number from {RBE_MIN:g} to {RBE_MAX:g}, got {rbe!r}") from None
    if not RBE_MIN <= value <= RBE_MAX:
        raise InputError(f"{what}: an RBE of {value:g} is outside {RBE_MIN:g}-{RBE_MAX:g} (protons 1.1 by "
                         "convention); expected a constant RBE in that range")
    return value


def resolve_rbe(modality: str, rbe: float | None = None, options: dict | None = None) -> RBESetting:
    """The RBE of a new course of ``modality`` ('particle' means proton).

    Args:
        rbe: an explicit RBE (``--rbe``); an error for photons; required for ions heavier than protons.
        options: the protocol's options (``rbe_proton`` is used for protons when ``rbe`` is None).

    Raises:
        InputError: photons with an RBE, an RBE outside 0.5-5, or carbon (or a heavier ion) without one.
    """
    modality = "proton" if modality == "particle" else modality
    if modality in LOW_LET_MODALITIES:
        if rbe is not None:
            raise InputError(f"--rbe {rbe}: a {modality} plan has RBE 1 by definition (its dose is in Gy); give --rbe "
                             "only for particle plans")
        return RBESetting(modality, 1.0, f"{modality}: RBE 1 by definition")
    if rbe is not None:
        value = check_rbe_value(rbe, "--rbe")
        return RBESetting(modality, value, "given explicitly (--rbe)", assumed_constant_for_ion=modality != "proton")
    if modality == "proton":
        opt = (options or {}).get("rbe_proton")
        if opt is not None and float(opt) != PROTON_RBE:
            return RBESetting(modality, check_rbe_value(opt, "protocol option rbe_proton"),
                              "protocol option rbe_proton")
        return RBESetting(modality, PROTON_RBE, f"default for protons ({PROTON_RBE:g})")
    raise InputError(f"{modality} plan without an RBE: the RBE of {modality} ions varies with LET, dose per fraction "
                     "and tissue, so a constant RBE cannot support a clinical verdict, and variable-RBE models (LEM, "
                     "MKM) are out of scope. Give --rbe X (a constant from 0.5 to 5) to plan anyway with that "
                     "constant assumed; every output will say so")


def prior_rbe_factor(modality: str, prior_rbe: float | None, where: str) -> tuple[float, str]:
    """The RBE that turns a PHYSICAL prior dose of ``modality`` into Gy(RBE), and how it was chosen.

    Photons and electrons: 1 (``prior_rbe`` is then an error). Protons: ``prior_rbe`` or 1.1.
    Any other particle: ``prior_rbe`` is required. ``where`` names the input in error messages.
    """
    if modality in LOW_LET_MODALITIES:
        if prior_rbe is not None:
            raise InputError(f"{where}: --prior-rbe {prior_rbe} given for a {modality} prior course, whose RBE is 1 by "
                             "definition; give it only for a particle prior course")
        return 1.0, f"{modality}: RBE 1"
    if prior_rbe is not None:
        return check_rbe_value(prior_rbe, "--prior-rbe"), "given explicitly (--prior-rbe)"
    if modality == "proton":
        return PROTON_RBE, f"default for protons ({PROTON_RBE:g})"
    raise InputError(f"{where}: the prior course is a PHYSICAL {modality} dose; its RBE varies with LET and is not "
                     "modelled, so the constant that turns it into Gy(RBE) must be given (--prior-rbe X, 0.5-5)")
