"""The protocol's [options]: the known options, their defaults, and the check of each value.

Clinical options only (optic-nerve rule, limit choice, near-min metric, alpha/beta default, evaluation
sampling, RBE, absent structures). Engine and numerical settings live in
:class:`reirrad_opt.planning_settings.PlanningSettings`; the few that protocol files used to hold are
still read here with a FutureWarning (``LEGACY_PROTOCOL_OPTIONS``).
"""
from __future__ import annotations

import warnings
from typing import Any

from ..planning_settings import LEGACY_PROTOCOL_OPTIONS, PlanningSettings
from ..rbe import PROTON_RBE, RBE_MAX, RBE_MIN
from .model import MAX_LIMIT_PCT_RX, ProtocolError, parse_metric

MAX_EVALUATION_FINE_FACTOR = 6    # sub-voxel samples per axis (6^3 = 216 per voxel) at most

# Known options, their defaults and allowed values (a tuple) or type.
OPTION_DEFAULTS: dict[str, Any] = {
    "optic_nerve_rule": "bilateral",
    "limit_choice": "desirable_then_acceptable",
    "near_min_metric": "D98%",
    "default_alpha_beta_gy": 3.0,
    "type1_prior_dose_threshold_gy": 20.0,
    "max_dose_pct_rx": 115.0,
    # planning settings, deprecated here (PlanningSettings holds them and their defaults)
    "hold_dvh_points": PlanningSettings.hold_dvh_points,
    "engine": PlanningSettings.engine,
    "target_homogeneity_weight": PlanningSettings.target_homogeneity_weight,
    "target_floor_pct_rx": PlanningSettings.target_floor_pct_rx,
    "evaluation_fine_factor": 3,        # sub-voxel samples per axis of the evaluation and of the caps' points
    "absent_structures": (),            # protocol structures declared not contoured (outside the field)
    "rbe_proton": PROTON_RBE,           # constant RBE of proton plans (Gy(RBE) = RBE x physical dose)
}
OPTION_CHOICES: dict[str, tuple] = {
    "limit_choice": ("desirable_then_acceptable", "desirable", "acceptable"),
    "optic_nerve_rule": ("bilateral", "unilateral", "unilateral-L", "unilateral-R"),
    "engine": ("first-order", "lp"),
}


def read_options(ld, t: Any) -> dict[str, Any]:
    """The [options] table ``t`` checked and merged over OPTION_DEFAULTS; ``ld`` is the protocol loader
    (its ``fail``, ``number`` and line locator name the file, key and line in errors)."""
    where = "[options]"
    line = ld.loc.header("options")
    if not isinstance(t, dict):
        raise ld.fail(where, "expected a table", line)
    out = dict(OPTION_DEFAULTS)
    for key, value in t.items():
        kline = ld.loc.key(key, line)
        if key in LEGACY_PROTOCOL_OPTIONS:
            at = f" (line {kline})" if kline else ""
            warnings.warn(f"{ld.path}: [options] {key}{at} is a planning setting, not clinical "
                          f"content: set it in a settings file's [settings] table (reirrad-opt plan --settings "
                          f"FILE) or plan(settings=PlanningSettings(...)); the protocol option is read for now "
                          f"and will be refused in a later version", FutureWarning, stacklevel=3)
        if key == "d003cc_as_voxel_max":
            # a retired option: the optimizer always holds D0.03cc (and Dmax) limits as voxel maxima,
            # the conservative reading; 'false' was accepted and silently ignored
            if value is not True:
                raise ld.fail(f"{where} {key}", "only true is possible: the optimizer always holds D0.03cc "
                              "limits as voxel maxima (delete the line)", kline)
            warnings.warn(f"{ld.path}: [options] {key} (line {kline}) is no longer an option (D0.03cc limits "
                          f"are always held as voxel maxima): delete the line", FutureWarning, stacklevel=3)
            continue
        value = check_option_value(ld, where, key, value, kline)
        out[key] = value
    return out


def check_option_value(ld, where: str, key: str, value: Any, kline: int | None) -> Any:
    """The checked (and normalised) value of option ``key``, from a protocol file's [options] or from the caller;
    ``ld.fail`` names the file, ``where`` and the line."""
    if key in OPTION_CHOICES and value not in OPTION_CHOICES[key]:
        raise ld.fail(f"{where} {key}", f"expected one of {OPTION_CHOICES[key]}, got {value!r}", kline)
    if key == "hold_dvh_points" and not isinstance(value, bool):
        raise ld.fail(f"{where} {key}", f"expected true or false, got {value!r}", kline)
    if key in ("default_alpha_beta_gy", "max_dose_pct_rx"):
        ld.number(value, f"{where} {key}", kline, positive=True)
    if key == "max_dose_pct_rx" and not 100.0 <= float(value) <= MAX_LIMIT_PCT_RX:
        # a ceiling below Rx contradicts the target's coverage goals; far above it is no ceiling
        raise ld.fail(f"{where} {key}", f"expected a ceiling from 100 to {MAX_LIMIT_PCT_RX:g} % of Rx, got "
                      f"{value!r}", kline)
    if key in ("type1_prior_dose_threshold_gy", "target_homogeneity_weight"):
        ld.number(value, f"{where} {key}", kline, minimum=0.0)
    if key == "target_floor_pct_rx":
        ld.number(value, f"{where} {key}", kline, minimum=0.0)
        if float(value) > 100.0:
            raise ld.fail(f"{where} {key}", f"expected a percentage of Rx from 0 to 100 (the window's "
                          f"upper edge is Rx), got {value!r}", kline)
    if key == "evaluation_fine_factor" and (isinstance(value, bool) or not isinstance(value, int)
                                            or not 1 <= value <= MAX_EVALUATION_FINE_FACTOR):
        raise ld.fail(f"{where} {key}", f"expected a whole number of samples per axis from 1 (voxel "
                      f"centres) to {MAX_EVALUATION_FINE_FACTOR}, got {value!r}", kline)
    if key == "rbe_proton" and not RBE_MIN <= ld.number(value, f"{where} {key}", kline) <= RBE_MAX:
        raise ld.fail(f"{where} {key}", f"expected a constant RBE from {RBE_MIN:g} to {RBE_MAX:g} (1.1 by "
                      f"convention), got {value!r}", kline)
    if key == "absent_structures":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ld.fail(f"{where} {key}", f"expected a list of structure names, e.g. "
                          f"[\"OpticChiasm\"], got {value!r}", kline)
        value = tuple(value)
    if key == "near_min_metric":
        try:
            spec = parse_metric(str(value))
        except ValueError as exc:
            raise ld.fail(f"{where} {key}", str(exc), kline) from None
        if spec.kind != "D_pct":
            raise ld.fail(f"{where} {key}", f"expected a D<x>% metric such as 'D98%', got {value!r}", kline)
        value = spec.name
    return value


def check_caller_options(ld, overrides: dict[str, Any]) -> dict[str, Any]:
    """Options given by the caller (``load_protocol(options=...)``, the CLI, a study) checked as a file's are;
    the ProtocolError names the protocol file they were applied to."""
    return {key: check_option_value(ld, "[options] (given by the caller)", key, value, None)
            for key, value in overrides.items()}
