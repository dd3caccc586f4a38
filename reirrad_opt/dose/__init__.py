"""Dose influence engines: beam geometry, ray tracing, photon and particle pencil beams, and the
sparse :class:`InfluenceMatrix` with its cache. See docs/dose.md for the models and their limits."""
from .beams import ParticleField, PhotonBeam, default_layer_spacing_mm, particle_fields, photon_beams
from .ct_calibration import DEFAULT_CT_CALIBRATION, CTCalibration, CTCalibrationError, load_ct_calibration
from .geometry import BeamFrame
from .hu_tables import RED_CURVE, SPR_CURVE, HUCurve, relative_electron_density, stopping_power_ratio
from .influence import Columns, InfluenceMatrix, compute_influence

__all__ = [
    "PhotonBeam", "ParticleField", "photon_beams", "particle_fields", "compute_influence", "InfluenceMatrix",
    "Columns", "BeamFrame", "HUCurve", "RED_CURVE", "SPR_CURVE", "relative_electron_density",
    "stopping_power_ratio", "default_layer_spacing_mm", "CTCalibration", "CTCalibrationError",
    "DEFAULT_CT_CALIBRATION", "load_ct_calibration",
]
