"""The work a Dask worker does in a study: build a case, compute a dose-influence matrix, plan one
variant on it. Plain functions of picklable arguments; they write nothing except, when asked, the
variant's plan folder.

``plan()`` and ``compute_influence`` are looked up when called (not bound at import), so the same
functions serve a local cluster, a remote one, and tests that count or replace them.
"""
from __future__ import annotations

import dataclasses
import resource
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..case import Case
from ..planning_settings import load_settings
from ..protocol import load_protocol
from .spec import CaseSpec
from .variants import Job, Variant, recovery_model, slip_value


@dataclass(frozen=True)
class TaskFailure:
    """What a case or influence task returns instead of raising: the variants that depend on it
    record it in their rows (a raised exception would also reach Dask's logs as a traceback)."""

    error_class: str
    message: str
    traceback: str
    stage: str


def _failure(exc: Exception, stage: str) -> TaskFailure:
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return TaskFailure(type(exc).__name__, message, traceback.format_exc(), stage)


def build_case(spec: CaseSpec) -> Case | TaskFailure:
    """The case of ``spec`` (the phantom built, or the folder loaded), with rCTV/PTV derived if it
    lacks them (so every influence and plan of the case sees the same targets)."""
    from ..case import load_case
    from ..planning import ensure_target_volumes

    try:
        if spec.phantom is not None:
            from phantoms.npc import make_npc_phantom

            case = make_npc_phantom(**dict(spec.parameters), name=spec.name)
        else:
            case = load_case(spec.folder)
        ensure_target_volumes(case)
        return case
    except Exception as exc:  # recorded in every row of the case
        return _failure(exc, f"case {spec.name}")


def compute_influence_for(case: Case | TaskFailure, variant: Variant):
    """The physical dose-influence matrix (Gy per unit weight) of ``variant``'s beams on ``case``,
    built exactly as ``plan()`` builds it (same beams, target mask and cut-off); a TaskFailure
    when the case failed or the computation raises."""
    if isinstance(case, TaskFailure):
        return case
    try:
        return _influence(case, variant)
    except Exception as exc:  # recorded in every row that shares the matrix
        return _failure(exc, "dose-influence matrix")


def _influence(case: Case, variant: Variant):
    from .. import dose

    ptv = case.structures["PTV"].mask
    angles = list(variant.gantry_angles_deg)
    if variant.modality == "photon":
        beams = dose.photon_beams(case.grid, ptv, gantry_angles_deg=angles, bixel_mm=variant.bixel_mm)
    else:
        beams = dose.particle_fields(case.grid, ptv, case.ct_hu, gantry_angles_deg=angles,
                                     spot_spacing_mm=variant.spot_spacing_mm, ion=variant.modality)
    return dose.compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=ptv, cache_dir=None,
                                  progress=lambda message: None)


def case_for_job(case: Case, job: Job) -> Case:
    """A shallow copy of ``case`` with the job's interval: plan() may add structures to its case,
    and tasks on one worker share the case object. With several prior courses the job's interval
    is the time since the most recent course; the others keep their time before it (every interval
    moves by the same number of months)."""
    wanted = float(job.interval_months)
    courses = [p.course for p in case.prior_courses]
    latest = min(c.interval_months for c in courses)
    moved = [dataclasses.replace(c, interval_months=wanted if c.interval_months == latest
                                 else c.interval_months + (wanted - latest)) for c in courses]
    further = tuple(dataclasses.replace(p, course=c) for p, c in zip(case.further_priors, moved[1:]))
    return dataclasses.replace(case, structures=dict(case.structures), prior=moved[0], source=dict(case.source),
                               further_priors=further)


def protocol_for(protocol_path: Path, variant: Variant):
    """The protocol with the variant's fractionation, optic-nerve rule, options and slip."""
    protocol = load_protocol(protocol_path, optic_nerve_rule=variant.optic_nerve_rule,
                             fractionation=variant.fractionation, options=dict(variant.options))
    if variant.slip is not None:
        slip = slip_value(variant.slip)
        protocol = dataclasses.replace(protocol, slips={p: slip for p in protocol.slips})
    return protocol


def plan_job(case: Case, influence, job: Job, protocol_path: Path, record: tuple[str, ...],
             plan_dir: str | None = None) -> dict:
    """Plan ``job`` on the shared ``influence`` and measure it.

    Returns ``{"status": "done", "columns": {...}, "lines": {...}}`` (see
    :func:`reirrad_opt.study.results.measured_columns`), or ``{"status": "failed", "columns":
    {"error_class", "error_message"}, "traceback": ...}`` when the variant raises: a failing
    variant never sinks the study. With ``plan_dir`` the plan folder is written there (the folder
    must be reachable from the worker at that path).
    """
    from .. import planning
    from .results import measured_columns

    t0 = time.perf_counter()
    for dependency in (case, influence):
        if isinstance(dependency, TaskFailure):
            record = failed_record(dependency.error_class, f"{dependency.stage}: {dependency.message}")
            record["traceback"] = dependency.traceback
            return record
    try:
        variant = job.variant
        settings = load_settings(variant.settings) if variant.settings else None
        result = planning.plan(case_for_job(case, job), protocol_for(protocol_path, variant),
                               modality=variant.modality, gantry_angles_deg=list(variant.gantry_angles_deg),
                               recovery=recovery_model(variant.recovery), bixel_mm=variant.bixel_mm or 5.0,
                               spot_spacing_mm=variant.spot_spacing_mm or 5.0, influence=influence,
                               rbe=variant.rbe, settings=settings)
        columns, lines = measured_columns(result, record, influence)
        if plan_dir is not None:
            from ..report.plan_folder import write_plan_folder

            write_plan_folder(result, Path(plan_dir))
            columns["plan_folder"] = str(Path(plan_dir).name)
        if "timings" in record:
            columns["time_plan_s"] = round(time.perf_counter() - t0, 3)
            columns["worker_peak_rss_MB"] = round(_peak_rss_mb(), 1)
        if "notes" in columns:  # the long text last
            columns["notes"] = columns.pop("notes")
        return {"status": "done", "columns": columns, "lines": lines}
    except Exception as exc:  # recorded in the variant's row; the study goes on
        return failed(exc, traceback.format_exc())


def failed(exc: BaseException, tb: str = "") -> dict:
    """The record of a variant that raised (or whose task was lost, e.g. with its worker)."""
    message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    record = failed_record(type(exc).__name__, message)
    record["traceback"] = tb
    return record


def failed_record(error_class: str, message: str) -> dict:
    return {"status": "failed", "columns": {"error_class": error_class, "error_message": message}, "lines": {}}


def _peak_rss_mb() -> float:
    """Peak resident memory of this worker process so far (MB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 1024.0 ** 2
