"""``plan()``: influence, lexicographic optimization and independent evaluation of one case.

This is the Python API behind ``reirrad-opt plan``; it writes no files (see
:mod:`reirrad_opt.report.plan_folder` for that).
"""
from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .case import Case
from .geometry import Structure, recurrent_target_volumes
from .optimize import OptimizationOutcome, build_problem, optimize_plan
from .planning_settings import LEGACY_PROTOCOL_OPTIONS, PlanningSettings, SettingsError
from .robust.scenarios import ScenarioSettings
from .progress import SILENT, Progress
from .recorded_paths import protocol_reference
from .rbe import resolve_rbe

if TYPE_CHECKING:   # annotations only: these modules import the planner's neighbours
    from .dose import CTCalibration, InfluenceMatrix
    from .evaluate.verdict import PlanEvaluation
    from .protocol import Fractionation, Protocol
    from .robust import RobustEvaluation

DEFAULT_PHOTON_ANGLES_DEG = tuple(float(a) for a in range(0, 360, 40))   # 9 equispaced IMRT beams
DEFAULT_PARTICLE_ANGLES_DEG = (90.0, 270.0, 180.0)  # two laterals and a posterior field
MODALITIES = ("photon", "proton", "particle", "carbon")


@dataclass
class Plan:
    """A re-irradiation plan and its independent evaluation.

    Attributes:
        case: the case planned (with rCTV/PTV if they were derived).
        protocol: the protocol (with the chosen fractionation).
        fractionation: the new course's fractionation.
        modality: 'photon' or a particle ('proton', 'carbon').
        beams: beam / field objects of the dose engine.
        influence: the physical dose-influence matrix (Gy per unit weight; as computed and cached); the
            optimizer saw ``rbe`` x this matrix.
        weights: optimized bixel / spot weights (>= 0).
        new_dose_gy: the new course's dose on the case grid as optimized and evaluated: physical (Gy)
            for photons, RBE-weighted (Gy(RBE) = rbe x physical) for particles.
        optimization: what the optimizer did (stages, limit tier, diagnosis): its beliefs.
        evaluation: the independent evaluation of ``new_dose_gy`` (the verdict).
        timing_s: wall time per phase (s).
        notes: everything assumed or derived on the way.
        rbe: the constant RBE of the new course (1.0 for photons; see :mod:`reirrad_opt.rbe`).
        dose_unit: 'Gy' (photons) or 'Gy(RBE)' (particles), the unit of ``new_dose_gy`` and of the
            evaluation's dose rows.
        rbe_source: where the RBE came from (default, protocol option, --rbe).
        settings: how the plan was computed (engine, its constants, truncation, ...).
        robust: the robust evaluation (every line in every setup / range scenario), when asked for.
        robust_optimization: the scenarios whose priority-1 caps the optimizer held (None: nominal only).
        ct_calibration: the CT calibration the dose engine used (:class:`~reirrad_opt.dose.CTCalibration`);
            None when the dose-influence matrix was supplied from outside.
    """

    case: Case
    protocol: Protocol
    fractionation: Fractionation
    modality: str
    beams: list
    influence: InfluenceMatrix
    weights: np.ndarray
    new_dose_gy: np.ndarray
    optimization: OptimizationOutcome
    evaluation: PlanEvaluation
    timing_s: dict[str, float]
    notes: list[str] = field(default_factory=list)
    rbe: float = 1.0
    dose_unit: str = "Gy"
    rbe_source: str = "photon: RBE 1 by definition"
    settings: PlanningSettings | None = None
    robust: RobustEvaluation | None = None
    robust_optimization: ScenarioSettings | None = None
    ct_calibration: CTCalibration | None = None

    @property
    def physical_dose_gy(self) -> np.ndarray:
        """The new course's physical dose (Gy): ``new_dose_gy / rbe``."""
        return self.new_dose_gy / np.float32(self.rbe)

    @property
    def dose_info(self) -> dict:
        """plan.json's ``dose`` object: quantity, unit, RBE and RBE model."""
        particle = self.dose_unit == "Gy(RBE)"
        return {"quantity": "RBE-weighted" if particle else "physical", "unit": self.dose_unit,
                "rbe": float(self.rbe), "rbe_model": "constant" if particle else "none"}

    def _ct_calibration_record(self) -> dict:
        """plan.json's ``ct_calibration``: the plan's calibration, or what a supplied matrix's metadata say."""
        if self.ct_calibration is not None:
            return self.ct_calibration.to_dict()
        meta = getattr(self.influence, "meta", None) or {}
        curve = meta.get("spr") or meta.get("red") or {}
        return {"source": "none: the dose-influence matrix was supplied", "sha256": None,
                "description": curve.get("source", "not recorded in the matrix")}

    @property
    def verdict(self) -> str:
        return self.evaluation.verdict

    @property
    def priority1_failed(self) -> bool:
        """True when a priority-1 line fails its acceptable limit, or misses its desirable level
        and has no acceptable limit (overall 'fail')."""
        return self.evaluation.verdict == "fail"

    @property
    def incomplete(self) -> bool:
        """True when no priority-1 line fails but one could not be evaluated (its organ is not
        contoured and not declared absent): overall 'incomplete', never a pass."""
        return self.evaluation.verdict == "incomplete"

    def to_dict(self) -> dict:
        """The content of plan.json (see docs/plan-json.md)."""
        frac = self.fractionation
        ev = self.evaluation.to_dict()
        return {
            "protocol": {"name": self.protocol.name, "path": protocol_reference(self.protocol),
                         "options": dict(self.protocol.options)},
            "prescription": {
                "eqd2_gy": self.protocol.prescription.eqd2_gy,
                "alpha_beta_gy": self.protocol.prescription.alpha_beta_gy,
                "fractionation": frac.name, "dose_per_fraction_gy": frac.dose_per_fraction_gy,
                "n_fractions": frac.n_fractions, "total_gy": frac.total_gy,
            },
            "case": {"name": self.case.name, "grid": self.case.grid.to_dict()},
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "modality": self.modality,
            "dose": self.dose_info,
            "ct_calibration": self._ct_calibration_record(),
            "beams": [_beam_dict(b) for b in self.beams],
            "beam_model": _beam_model_dict(self.beams),
            "engine": self.optimization.engine,
            "settings": self.settings.to_dict() if self.settings is not None else None,
            "robust": self.robust.to_dict() if self.robust is not None else None,
            "robust_optimization": (self.robust_optimization.to_dict() if self.robust_optimization is not None
                                    else None),
            "stages": [s.to_dict() for s in self.optimization.stages],
            "limit_tier": self.optimization.tier_by_goal,
            "diagnosis": self.optimization.diagnosis,
            "evaluation": ev.get("rows", []),
            "verdict": self.evaluation.verdict,
            "verdict_detail": ev.get("verdict_detail", ev.get("summary", "")),
            "absent_structures": ev.get("absent_structures", {}),
            "reporting": ev.get("reporting", {}),
            "timing_s": {k: round(float(v), 3) for k, v in self.timing_s.items()},
            "notes": self.notes + self.optimization.notes,
            "input_overrides": self.case.source.get("input_overrides", []),
            "versions": {"reirrad_opt": __version__, "python": platform.python_version(),
                         "numpy": np.__version__},
        }


def _beam_model_dict(beams) -> dict | None:
    """The particle machine model of the plan's fields (None for photons)."""
    models = [b.beam_model for b in beams if getattr(b, "beam_model", None) is not None]
    return models[0].to_dict() if models else None


def check_no_protocol_settings(protocol) -> None:
    """Refuse a protocol whose deprecated planning options differ from their defaults when planning settings
    are given: the settings decide how the plan is computed, and the protocol's values would be ignored."""
    from .protocol.options import OPTION_DEFAULTS

    set_here = {k: protocol.options[k] for k in LEGACY_PROTOCOL_OPTIONS
                if k in protocol.options and protocol.options[k] != OPTION_DEFAULTS[k]}
    if set_here:
        listed = ", ".join(f"{k} = {v!r}" for k, v in set_here.items())
        where = protocol.path if getattr(protocol, "path", None) else repr(protocol.name)
        raise SettingsError(f"protocol {where} sets {listed} in its [options], and planning settings are "
                            f"given, which decide how the plan is computed: the protocol's value would be ignored. "
                            f"Put it in the settings' [settings] table and delete it from the protocol")


def _beam_dict(beam) -> dict:
    """A beam (photons: its bixels) or field (particles: its spots and energy layers) as plan.json writes it;
    angles in degrees, lengths in mm."""
    out = {"gantry_deg": float(beam.gantry_deg), "couch_deg": float(beam.couch_deg),
           "isocenter_xyz_mm": [float(v) for v in beam.isocenter_xyz_mm]}
    if beam.modality == "photon":
        out.update(energy=beam.energy, bixel_mm=float(beam.bixel_mm), n_bixels=beam.n_columns)
    else:
        out.update(ion=beam.ion, spot_spacing_mm=float(beam.spot_spacing_mm), n_spots=beam.n_columns,
                   n_layers=int(beam.layer_energies_mev.size))
    return out


def ensure_target_volumes(case: Case, *, ctv_margin_mm: float = 5.0, ptv_margin_mm: float = 3.0,
                          oar_curtail_mm: float = 0.0) -> list[str]:
    """Derive rCTV and PTV from the rGTV with the consensus recipe when the case lacks them.

    Air (CT < -400 HU inside the body) and ``Bone_Skull`` (if present) are barriers; the
    brainstem, cord, chiasm and optic nerves are the critical organs. Returns notes."""
    for name in ("rGTV", "PTV"):
        if name in case.structures and not case.structures[name].mask.any():
            raise ValueError(f"case {case.name!r}: structure {name!r} is empty (no voxel on the {case.grid.shape} "
                             f"grid): a plan needs its target; check the contour or the grid")
    if "PTV" in case.structures:
        return []
    if "rGTV" not in case.structures:
        raise ValueError(f"case {case.name!r} has neither a PTV nor an rGTV: name the recurrent GTV "
                         f"(e.g. --structure-map rGTV=<name> at import)")
    body = case.body
    air = (case.ct_hu < -400) & body
    barriers = [case.structures["Bone_Skull"].mask] if "Bone_Skull" in case.structures else []
    critical = [case.structures[n].mask for n in ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L",
                                                  "OpticNrv_R") if n in case.structures]
    ctv, ptv = recurrent_target_volumes(case.structures["rGTV"].mask, body, case.grid, ctv_margin_mm=ctv_margin_mm,
                                        ptv_margin_mm=ptv_margin_mm, air=air, barriers=barriers,
                                        critical_oars=critical, oar_curtail_mm=oar_curtail_mm)
    case.structures["rCTV"] = Structure("rCTV", ctv, "target")
    case.structures["PTV"] = Structure("PTV", ptv, "target")
    return [f"rCTV = rGTV + {ctv_margin_mm:g} mm (body, minus air{' and Bone_Skull' if barriers else ''}, minus "
            f"critical organs + {oar_curtail_mm:g} mm); PTV = rCTV + {ptv_margin_mm:g} mm within the body"]


def plan(case: Case, protocol=None, *, modality: str = "photon", gantry_angles_deg=None, n_beams: int | None = None,
         fractionation: str | None = None, recovery=None, optic_nerve_rule: str | None = None,
         bixel_mm: float = 5.0, spot_spacing_mm: float = 5.0, cache_dir=None, solver: str | None = None,
         truncation: float | None = None, engine: str | None = None, engine_settings=None, influence=None,
         rbe: float | None = None, absent=None, settings: PlanningSettings | None = None, extra_terms=(),
         robust: ScenarioSettings | None = None, robust_optimization: ScenarioSettings | None = None,
         ct_calibration: CTCalibration | None = None, beam_model=None, progress: Progress = SILENT) -> Plan:
    """Plan a re-irradiation course for ``case`` under ``protocol`` (default: the NPC consensus).

    Neither ``case`` nor ``protocol`` is modified: the plan's ``case`` is a copy with rCTV/PTV added when
    they were derived, its ``protocol`` one with ``recovery`` applied.

    Args:
        case: the case (its prior course and structures).
        protocol: a Protocol, a path to a protocol TOML, or None for the shipped NPC protocol.
        modality: 'photon' (IMRT pencil beams) or 'proton' / 'carbon' ('particle' means proton).
        gantry_angles_deg: beam angles (deg, IEC); default 9 equispaced photon beams or 3 particle fields.
        n_beams: number of equispaced beams (instead of explicit angles).
        fractionation: the protocol's fractionation name (e.g. 'bid-1.2', 'qd-2.0'); default the protocol's.
        recovery: a RecoveryModel overriding the protocol's.
        optic_nerve_rule: 'bilateral' or 'unilateral' (overrides the protocol option).
        settings: how the plan is computed (:class:`~reirrad_opt.planning_settings.PlanningSettings`:
            engine, its constants, truncation, holds, homogeneity window); default the defaults with
            what the protocol's deprecated options (``engine``, ``hold_dvh_points``,
            ``target_homogeneity_weight``, ``target_floor_pct_rx``) set. The keywords below override it.
        engine: how the stages are solved, 'first-order' (L-BFGS-B with an augmented Lagrangian) or
            'lp' (the exact LP optimum of every stage, slower on fine grids). See
            :func:`reirrad_opt.optimize.optimize_plan`.
        engine_settings: the engine's constants, an instance of its settings class
            (:class:`~reirrad_opt.optimize.FirstOrderSettings`, :class:`~reirrad_opt.optimize.LPSettings`).
        truncation, solver: the settings' ``truncation`` and ``lp_solver``.
        extra_terms: user terms for the ``'cvxpy'`` engine: functions of the cvxpy expression of the new-course
            dose on the case grid (Gy, flat C order) returning constraints (kept in every stage) or convex
            scalar expressions (added to the last stage); see :mod:`reirrad_opt.optimize.engine_cvxpy`.
        influence: a precomputed :class:`~reirrad_opt.dose.InfluenceMatrix` on ``case.grid`` (Gy per unit
            weight; e.g. another dose engine's matrix, as benchmarks/optimize_tg119_peer.py builds one).
            The dose calculation is skipped and its beams are the plan's; ``modality``, the angles
            and the bixel or spot spacing must then describe it (they are not used to compute it).
        rbe: constant RBE of a particle plan (0.5-5); default the protocol option ``rbe_proton`` (1.1)
            for protons; required for carbon (InputError otherwise: its RBE is not constant); an error
            for photons. Particle plans are optimized and evaluated on rbe x the physical dose, Gy(RBE).
        absent: protocol structures declared absent (not contoured, outside the field): a list of
            names, or a mapping name -> how it was declared (the CLI's ``--absent``); added to the
            protocol option ``absent_structures``. Their lines read 'absent' and do not block a pass
            (see :mod:`reirrad_opt.absent`). Checked before any dose is computed: an unknown name or a
            structure the case contours is a ValueError.
        robust: evaluate the plan in the setup / range scenarios of these settings too
            (:func:`reirrad_opt.robust.robust_evaluation`; ``Plan.robust``); None: not (the CLI evaluates
            particle plans robustly by default). The verdict stays the nominal evaluation's.
        robust_optimization: hold every priority-1 organ cap in each scenario of these settings too
            (minimax; target coverage and lower priorities on the nominal scenario; see
            docs/robustness.md). The plan is then also evaluated in those scenarios (``robust`` defaults
            to the same settings), reusing their matrices.
        ct_calibration: CT number to stopping-power ratio (particles) and relative electron density
            (photons), :class:`~reirrad_opt.dose.CTCalibration` (``load_ct_calibration(path)``); default the
            stoichiometric calibration of a generic scanner. A physics input of the dose engine, recorded in
            plan.json; an error with ``influence`` (the matrix is already computed) and, for photons, when it
            has no RED column.
        beam_model: the particle machine (spot size, energy spread, range shifter): a
            :class:`~reirrad_opt.dose.beam_model.BeamModel` or a path to its TOML file (the CLI's
            ``--beam-model``); None: the shipped generic model. An error for photons.
    """
    from .dose import DEFAULT_CT_CALIBRATION, compute_influence, particle_fields, photon_beams
    from .dose.beam_model import BeamModel, load_beam_model
    from .absent import declared_absent
    from .evaluate import check_absent_not_contoured, evaluate_plan, metric_value
    from .protocol import Protocol, load_protocol
    from .protocol_names import check_protocol_names

    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    ion = {"particle": "proton", "proton": "proton", "carbon": "carbon"}.get(modality)
    if beam_model is not None:
        if ion is None:
            raise ValueError("beam_model: a beam model describes a particle machine; this is a photon plan")
        if not isinstance(beam_model, BeamModel):
            beam_model = load_beam_model(beam_model)
        if beam_model.ion != ion:
            raise ValueError(f"beam model {beam_model.source}: it is for {beam_model.ion}, the plan is {ion}")
    t_start = time.perf_counter()
    if influence is not None and ct_calibration is not None:
        raise ValueError("ct_calibration has no effect on a supplied dose-influence matrix: give one or the other")
    calibration = None if influence is not None else (ct_calibration or DEFAULT_CT_CALIBRATION)
    if calibration is not None and ion is None:
        calibration.red_curve()             # a photon plan needs RED: refused before any work
    if not isinstance(protocol, Protocol):
        protocol = load_protocol(protocol, optic_nerve_rule=optic_nerve_rule, fractionation=fractionation)
    else:
        if fractionation:
            protocol = protocol.with_fractionation(fractionation)
    check_protocol_names(case, protocol)
    if settings is not None:
        check_no_protocol_settings(protocol)
    rbe_setting = resolve_rbe("photon" if ion is None else ion, rbe, protocol.options)
    absent = declared_absent(protocol, absent)
    check_absent_not_contoured(case, protocol.goals, absent)
    if recovery is not None:
        protocol = dataclasses.replace(protocol, recovery=recovery)
    frac = protocol.prescription.fractionation
    rx_gy = float(frac.total_gy)
    case = dataclasses.replace(case, structures=dict(case.structures))   # the caller's case stays as it was
    notes = ensure_target_volumes(case)
    ptv = case.structures["PTV"].mask
    if gantry_angles_deg is None:
        if n_beams:
            gantry_angles_deg = [360.0 * k / n_beams for k in range(n_beams)]
        else:
            gantry_angles_deg = DEFAULT_PHOTON_ANGLES_DEG if ion is None else DEFAULT_PARTICLE_ANGLES_DEG
    gantry_angles_deg = [float(a) for a in gantry_angles_deg]

    t0 = time.perf_counter()
    if influence is not None:
        _check_influence(influence, case, "photon" if ion is None else ion)
        beams = influence.beams
    elif ion is None:
        beams = photon_beams(case.grid, ptv, gantry_angles_deg=gantry_angles_deg, bixel_mm=bixel_mm)
    else:
        beams = particle_fields(case.grid, ptv, case.ct_hu, gantry_angles_deg=gantry_angles_deg,
                                spot_spacing_mm=spot_spacing_mm, ion=ion, spr_curve=calibration.spr,
                                beam_model=beam_model)
    if influence is None:
        influence = compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=ptv, cache_dir=cache_dir,
                                      progress=progress, spr_curve=calibration.spr,
                                      **({} if ion is not None else {"red_curve": calibration.red_curve()}))
    t_influence = time.perf_counter() - t0
    progress(f"influence: ready for {len(beams)} {'beams' if ion is None else 'fields'} ({t_influence:.1f} s); "
             f"optimizing")

    t0 = time.perf_counter()
    how = (settings if settings is not None else PlanningSettings.from_protocol_options(protocol.options)) \
        .with_overrides(engine=engine, engine_settings=engine_settings, truncation=truncation, lp_solver=solver)
    engine = how.engine
    scenario_influences: dict = {}
    if robust_optimization is not None:
        from .robust import scenario_set
        from .robust.evaluation import scenario_influence

        if extra_terms:
            raise ValueError("robust_optimization with user terms (extra_terms) is not supported: the user terms "
                             "would see the scenario rows too")
        t1 = time.perf_counter()
        for scenario in scenario_set(robust_optimization, "photon" if ion is None else ion)[1:]:
            progress(f"robust optimization: scenario matrix, {scenario.name}")
            scenario_influences[scenario.name] = scenario_influence(case, beams, scenario, rel_cutoff=influence.rel_cutoff,
                                                                    cache_dir=cache_dir, ct_calibration=calibration)
        t_influence += time.perf_counter() - t1
        t0 += time.perf_counter() - t1   # the scenario matrices count as influence time, not optimization
        robust = robust if robust is not None else robust_optimization
    problem = build_problem(case, protocol, influence, how, rbe=rbe_setting.rbe,
                            scenario_matrices=[m.matrix for m in scenario_influences.values()],
                            scenario_names=list(scenario_influences))

    def read_metric(metric: str, dose_gy: np.ndarray, structure: str) -> float:
        """A goal's metric as the evaluation reads it (the optimizer aims its holds and limit tier at it)."""
        return metric_value(metric, dose_gy, problem.masks[structure], case.grid, rx_gy).value

    outcome = optimize_plan(problem, engine=engine, settings=how.engine_settings, solver=how.lp_solver,
                            truncation=how.truncation, hold_dvh_points=how.hold_dvh_points, read_metric=read_metric,
                            extra_terms=extra_terms, progress=progress)
    t_optimize = time.perf_counter() - t0

    t0 = time.perf_counter()
    new_dose = (influence.dose(outcome.weights) * rbe_setting.rbe).astype(np.float32)
    evaluation = evaluate_plan(case, protocol, new_dose, fractionation=frac, recovery=protocol.recovery,
                               dose_unit=rbe_setting.dose_unit, absent=absent)
    t_evaluate = time.perf_counter() - t0
    progress(f"evaluation: verdict {evaluation.verdict} ({t_evaluate:.1f} s)")
    timing = {"influence": t_influence, "optimize": t_optimize, "evaluate": t_evaluate}
    if robust_optimization is not None:
        notes = notes + [f"robust optimization: every priority-1 organ cap held in {len(scenario_influences)} "
                         f"scenarios besides the nominal one (setup {robust_optimization.setup_mm:g} mm"
                         + (f", range {robust_optimization.range_pct:g} % + {robust_optimization.range_mm:g} mm"
                            if ion is not None else "") + "); target coverage and lower priorities on the nominal "
                         "scenario"]
    result = Plan(case, protocol, frac, "photon" if ion is None else ion, list(beams), influence, outcome.weights,
                  new_dose, outcome, evaluation, timing, notes + rbe_setting.notes(), rbe=rbe_setting.rbe,
                  dose_unit=rbe_setting.dose_unit, rbe_source=rbe_setting.source, settings=how,
                  robust_optimization=robust_optimization, ct_calibration=calibration)
    if robust is not None:
        from .robust import robust_evaluation

        reuse = scenario_influences if robust == robust_optimization else None
        result.robust = robust_evaluation(result, robust, cache_dir=cache_dir, influences=reuse, progress=progress)
        timing["robust_evaluation"] = result.robust.seconds
        progress(f"robust evaluation: {len(result.robust.scenarios)} scenarios, priority 1 "
                 f"{'holds in every one' if result.robust.priority1_holds else 'FAILS in some'} "
                 f"({result.robust.seconds:.1f} s)")
    timing["total"] = time.perf_counter() - t_start
    return result


def _check_influence(influence, case: Case, modality: str) -> None:
    """A precomputed influence matrix must be on the case's grid, of the plan's modality, non-negative."""
    if influence.grid.shape != case.grid.shape or not np.allclose(influence.grid.spacing_mm, case.grid.spacing_mm) \
            or not np.allclose(influence.grid.origin_mm, case.grid.origin_mm, atol=1e-3):
        raise ValueError(f"influence matrix: its grid {influence.grid} is not the case's grid {case.grid}")
    if influence.matrix.shape[0] != int(np.prod(case.grid.shape)):
        raise ValueError(f"influence matrix: {influence.matrix.shape[0]} rows, expected one per voxel of the case's "
                         f"grid ({int(np.prod(case.grid.shape))})")
    if influence.modality != modality:
        raise ValueError(f"influence matrix: modality {influence.modality!r}, but the plan is {modality!r}")
    if influence.matrix.nnz and float(influence.matrix.data.min()) < 0:
        raise ValueError("influence matrix: negative entries (dose per unit weight must be >= 0 Gy)")
