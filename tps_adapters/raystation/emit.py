"""Write the RayStation script: its settings as constants at the top, then the template body."""
from __future__ import annotations

from dataclasses import dataclass, field

from reirrad_opt import __version__

from .calls import DEFAULT_VERSION, calls_for
from .template import BODY


@dataclass(frozen=True)
class ScriptSettings:
    """What the emitted script is set up with (each becomes an upper-case constant the user may edit).

    Doses never appear here: the script reads them, in cGy, from tps_goals.json. ``timeout_s`` is in
    seconds, ``interval_months`` in months, ``voxel_mm`` in mm.
    """

    raystation_version: str = DEFAULT_VERSION
    reirrad_command: tuple[str, ...] = ("reirrad-opt",)
    exchange_root: str = r"C:\reirrad-opt\exchange"
    timeout_s: int = 3600
    protocol: str = "npc_reirradiation_2021"
    fractionation: str = "bid-1.2"
    modality: str = "photon"
    beam_count: int = 9
    gantry_angles_deg: tuple[float, ...] = ()
    prior_beam_set: str | None = None
    prior_n_fractions: int | None = None
    prior_modality: str = "photon"
    interval_months: float | None = None
    rbe: float | None = None
    prior_rbe: float | None = None
    roi_map: dict = field(default_factory=dict)
    absent: tuple[str, ...] = ()
    limit_level: str = "planned"
    voxel_mm: float | None = None
    synthetic_recurrence: dict | None = None
    export_prior_plan: bool = False
    use_generated_rois: bool = False
    optimization_index: int = 0
    weight_by_priority: dict = field(default_factory=lambda: {1: 100.0, 2: 10.0, 3: 1.0})


_COMMENTS = {
    "REIRRAD_COMMAND": "the reirrad-opt command (a list: the program and any leading arguments)",
    "EXCHANGE_ROOT": "a new exchange folder is made here for every run",
    "TIMEOUT_S": "seconds before the run is stopped",
    "PRIOR_BEAM_SET": "'Plan:BeamSet' whose dose is the prior course, computed on the current examination",
    "PRIOR_N_FRACTIONS": "fractions of the prior course",
    "INTERVAL_MONTHS": "months since the end of the prior course",
    "ROI_MAP": "ROI name in this case -> TG-263 name used by the protocol",
    "ABSENT": "protocol organs not contoured because they lie outside the field",
    "LIMIT_LEVEL": "'planned' (the tier reirrad-opt held each limit to), 'desirable' or 'acceptable'",
    "SYNTHETIC_RECURRENCE": "research/test only: {'near': ORGAN} places a spherical rGTV in the prior target",
    "USE_GENERATED_ROIS": "True once result/dicom/RS_new_course_targets.dcm (rCTV, PTV) is imported",
    "OPTIMIZATION_INDEX": "which PlanOptimizations entry receives the functions",
    "WEIGHT_BY_PRIORITY": "objective weight by protocol priority",
}


def emit(settings: ScriptSettings) -> str:
    """The text of the RayStation script for ``settings`` (ValueError for an unknown version)."""
    calls = calls_for(settings.raystation_version)
    values = {
        "REIRRAD_COMMAND": list(settings.reirrad_command), "EXCHANGE_ROOT": settings.exchange_root,
        "TIMEOUT_S": int(settings.timeout_s), "PROTOCOL": settings.protocol, "FRACTIONATION": settings.fractionation,
        "MODALITY": settings.modality, "BEAM_COUNT": int(settings.beam_count),
        "GANTRY_ANGLES_DEG": [float(a) for a in settings.gantry_angles_deg],
        "PRIOR_BEAM_SET": settings.prior_beam_set, "PRIOR_N_FRACTIONS": settings.prior_n_fractions,
        "PRIOR_MODALITY": settings.prior_modality, "INTERVAL_MONTHS": settings.interval_months, "RBE": settings.rbe,
        "PRIOR_RBE": settings.prior_rbe, "ROI_MAP": dict(settings.roi_map), "ABSENT": list(settings.absent),
        "LIMIT_LEVEL": settings.limit_level, "VOXEL_MM": settings.voxel_mm,
        "SYNTHETIC_RECURRENCE": None if settings.synthetic_recurrence is None else dict(settings.synthetic_recurrence),
        "EXPORT_PRIOR_PLAN": bool(settings.export_prior_plan), "USE_GENERATED_ROIS": bool(settings.use_generated_rois),
        "OPTIMIZATION_INDEX": int(settings.optimization_index),
        "WEIGHT_BY_PRIORITY": {int(k): float(v) for k, v in settings.weight_by_priority.items()},
        "CALLS": calls.as_dict(),
    }
    lines = [
        f"# reirrad-opt {__version__}: RayStation {calls.version} script ({calls.python}).",
        "# Exports the current examination, its structure set and the prior dose into a new exchange folder,",
        "# runs 'reirrad-opt tps-run', and adds the returned goals (levels in cGy) as clinical goals and",
        "# optimization functions to the current plan. Checked against the documented scripting signatures",
        "# with a test double, not in a live RayStation: review the result before use.",
        "",
        "# ---- settings (edit here) ----",
    ]
    for name, value in values.items():
        comment = _COMMENTS.get(name)
        lines.append(f"{name} = {value!r}" + (f"  # {comment}" if comment else ""))
    lines.append("# ---- end of settings ----")
    return "\n".join(lines) + "\n" + BODY
