"""The Dask task graph of a study, its progress lines, and the run from the first task to the table.

The graph, per influence key (case, modality, gantry angles, bixel or spot spacing)::

    case-<name>  ──►  influence-<key>  ──►  variant-<key> (one per variant sharing the matrix)
       (built once per case; every influence of the case depends on it)

Each case is built once, each dose-influence matrix computed once and handed to every variant
that shares it (plan(..., influence=...)); variants that change only radiobiology,
fractionation, interval, slip or protocol options never recompute it. The client holds futures
of the variant tasks only, so a case or a matrix is released from worker memory as soon as its
last variant has finished; the variants of one matrix get one priority, earlier groups higher,
so a group finishes before the next one's matrices pile up.

Results are written by this process (the client) as the variants finish, one file each (see
:mod:`.results`); workers need no access to the output folder unless plan folders are asked for.
"""
from __future__ import annotations

import contextlib
import os
import platform
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .. import __version__
from ..atomic import atomic_file
from ..progress import SILENT, Progress
from . import folder as study_folder
from .results import ResultStore, assemble, write_table
from .spec import StudySpec
from .tasks import build_case, compute_influence_for, failed, plan_job


@dataclass(frozen=True)
class ClusterSettings:
    """Where the study runs.

    Attributes:
        scheduler: address of an existing Dask scheduler (``tcp://host:8786``); None starts a
            local cluster on this machine.
        workers: local cluster: worker processes (default: the machine's cores).
        threads_per_worker: local cluster: threads per worker (default 1: a plan keeps one core busy).
        memory_limit_gb: local cluster: memory limit per worker (GB); None: Dask's default (the
            machine's memory shared between the workers).
        processes: local cluster: workers in separate processes (True) or as threads of this one.
    """

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit_gb: float | None = None
    processes: bool = True


@dataclass(frozen=True)
class StudyRun:
    """What a run of a study did (counts of plans; seconds)."""

    out: Path
    n_jobs: int
    n_reused: int
    n_run: int
    n_done: int
    n_failed: int
    n_influence: int
    wall_s: float
    verdicts: dict


@contextlib.contextmanager
def open_client(settings: ClusterSettings) -> Iterator:
    """A dask.distributed Client: connected to ``settings.scheduler``, or to a local cluster
    started here and closed on exit."""
    from dask.distributed import Client, LocalCluster

    if settings.scheduler:
        client = Client(settings.scheduler, timeout="30s")
        try:
            yield client
        finally:
            client.close()
        return
    n = settings.workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    kwargs = {}
    if settings.processes:
        # the influence's beam threads follow the worker's threads (numpy's are set to 1 by Dask)
        kwargs["env"] = {"REIRRAD_THREADS": str(settings.threads_per_worker)}
    cluster = LocalCluster(n_workers=int(n), threads_per_worker=settings.threads_per_worker,
                           processes=settings.processes,
                           memory_limit=f"{settings.memory_limit_gb}GB" if settings.memory_limit_gb else "auto",
                           dashboard_address=":0", **kwargs)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def dashboard_address(client) -> str | None:
    """The Dask dashboard's address when the scheduler serves one (an HTTP port and bokeh
    installed on the scheduler: without bokeh the port serves only a page asking for it)."""
    try:
        if "dashboard" not in client.scheduler_info().get("services", {}):
            return None
        if not client.run_on_scheduler(_has_bokeh):
            return None
        return client.dashboard_link
    except Exception:  # a scheduler out of reach: no address to show
        return None


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def run_study(spec: StudySpec, out: Path, client, *, plan_folders: bool = False, retry_failed: bool = False,
              overwrite: bool = False, progress: Progress = SILENT) -> StudyRun:
    """Run the jobs of ``spec`` that have no result in ``out`` on ``client``; write each result
    as it finishes, then the table, study.html and study.json.

    Args:
        spec: the checked study.
        out: the output folder, checked by :func:`.folder.prepare_study_folder`.
        client: a dask.distributed Client.
        plan_folders: also write each plan's folder under ``out/plans`` (from the workers).
        retry_failed: run again the variants whose stored result is a failure.
        overwrite: run every variant again, whatever is stored.
        progress: where the progress lines go.
    """
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    study_folder.start(out)
    store = ResultStore(out)
    todo, reused = [], 0
    for job in spec.jobs:
        stored = None if overwrite else store.read(job)
        if stored is None or (retry_failed and stored["status"] == "failed"):
            todo.append(job)
        else:
            reused += 1
    stray = store.stray(spec)
    n_groups = len({j.influence_key for j in todo})
    progress(f"study {spec.name}: {len(spec.jobs)} plans ({len(spec.cases)} case(s) x {len(spec.variants)} "
             f"variant(s)); {reused} have a result in {out} (kept), {len(todo)} to run on {n_groups} "
             f"dose-influence matrices")
    if stray:
        progress(f"study: {len(stray)} result file(s) in {store.folder} belong to no variant of this study "
                 f"(kept, not in the table)")
    n_done = n_failed = 0
    if todo:
        link = dashboard_address(client)
        progress(f"study: Dask dashboard at {link}" if link else
                 "study: no Dask dashboard (the scheduler serves none; it needs bokeh installed there)")
        n_done, n_failed = _run_graph(spec, out, client, todo, store, plan_folders, progress)
    table, lines = assemble(spec, store)
    write_table(table, out)
    verdicts = _verdict_counts(table)
    wall = time.perf_counter() - t0
    run = StudyRun(out, len(spec.jobs), reused, len(todo), n_done, n_failed, n_groups, round(wall, 3), verdicts)
    _write_study_json(spec, out, client, run, started)
    from .page import write_page

    write_page(out, spec, table, lines, run)
    study_folder.finish(out)
    return run


def _run_graph(spec: StudySpec, out: Path, client, todo: list, store: ResultStore, plan_folders: bool,
               progress: Progress) -> tuple[int, int]:
    from dask.distributed import as_completed

    token = uuid.uuid4().hex[:8]   # keys unique to this run: a shared scheduler may still hold an earlier run's
    groups: dict[str, list] = {}
    for job in todo:
        groups.setdefault(job.influence_key, []).append(job)
    cases: dict[str, object] = {}
    futures = {}
    for gi, (ikey, jobs) in enumerate(groups.items()):
        priority = len(groups) - gi
        case = jobs[0].case
        if case.content_key not in cases:
            cases[case.content_key] = client.submit(build_case, case, key=f"case-{case.name}-{token}",
                                                    priority=priority, pure=False)
        case_future = cases[case.content_key]
        influence = client.submit(compute_influence_for, case_future, jobs[0].variant,
                                  key=f"influence-{ikey[:16]}-{token}", priority=priority, pure=False)
        for job in jobs:
            plan_dir = str(out / "plans" / f"{job.case.name}-{job.file_stem[:12]}") if plan_folders else None
            future = client.submit(plan_job, case_future, influence, job, spec.protocol_path, spec.record, plan_dir,
                                   key=f"variant-{job.file_stem}-{token}", priority=priority, pure=False)
            futures[future.key] = (future, job)
    del cases, influence, case_future  # the variants hold them; released once their last variant is done

    t0 = time.perf_counter()
    finished = n_failed = 0
    pending = [f for f, _ in futures.values()]
    try:
        for future in as_completed(pending):
            job = futures[future.key][1]
            if future.status == "finished":
                record = future.result()
            else:  # the case or influence task (or the worker) failed: the variant's row says so
                exc = future.exception()
                record = failed(exc, "".join(_format_tb(future)))
            store.write(spec, job, record)
            future.release()
            finished += 1
            n_failed += record["status"] == "failed"
            elapsed = time.perf_counter() - t0
            left = len(pending) - finished
            eta = f", about {elapsed / finished * left:.0f} s left" if left else ""
            running = _running(client, len(pending) - finished)
            what = "failed: " + record["columns"].get("error_class", "") if record["status"] == "failed" \
                else record["columns"].get("verdict", "done")
            progress(f"study: {finished}/{len(pending)} done ({n_failed} failed, {running} running), elapsed "
                     f"{elapsed:.0f} s{eta}; {job.case.name} {_label(job)}: {what}")
    except BaseException:
        client.cancel(pending)
        raise
    return finished - n_failed, n_failed


def _format_tb(future) -> list[str]:
    import traceback

    try:
        return traceback.format_tb(future.traceback())
    except Exception:  # no traceback to show (a lost worker)
        return []


def _running(client, unfinished: int) -> int:
    """Variants being planned now: those the workers hold, at most one per worker thread (a
    worker's list includes tasks queued behind the running ones)."""
    try:
        processing = client.processing()
        threads = sum(client.nthreads().values())
    except Exception:  # the count is only for the progress line
        return 0
    held = sum(1 for keys in processing.values() for k in keys if str(k).startswith("variant-"))
    return min(held, threads, unfinished)


def _label(job) -> str:
    v = job.variant
    parts = [v.modality, v.fractionation, f"recovery {v.recovery}", f"{job.interval_months:g} months",
             f"{v.beams} beams"]
    if v.slip:
        parts.append(f"slip {v.slip}")
    if v.settings:
        parts.append(f"settings {Path(v.settings).name}")
    parts += [f"{k}={val}" for k, val in v.options]
    return ", ".join(parts)


def _verdict_counts(table) -> dict:
    if table.empty:
        return {}
    if "verdict" in table.columns:
        words = [("failed: " + str(c)) if s == "failed" else str(v)
                 for s, v, c in zip(table["status"], table["verdict"], table["error_class"])]
    else:
        words = list(table["status"])
    counts: dict[str, int] = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return dict(sorted(counts.items()))


def versions() -> dict:
    """Versions of the software a study ran with."""
    import numpy
    import scipy

    out = {"reirrad_opt": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
           "scipy": scipy.__version__}
    for name in ("dask", "distributed", "pandas", "pyarrow"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = None
    return out


def _write_study_json(spec: StudySpec, out: Path, client, run: StudyRun, started: str) -> None:
    import json

    try:
        info = client.scheduler_info()
        cluster = {"scheduler": info.get("address"), "workers": len(info.get("workers", {})),
                   "threads": sum(w.get("nthreads", 0) for w in info.get("workers", {}).values()),
                   "memory_limit_per_worker_GB": sorted({round(w.get("memory_limit", 0) / 1e9, 2)
                                                         for w in info.get("workers", {}).values()})}
    except Exception:  # a scheduler that no longer answers: the study's own record is still written
        cluster = {}
    content = {"study": spec.to_dict(), "versions": versions(), "cluster": cluster,
               "run": {"started_utc": started, "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "wall_s": run.wall_s, "plans": run.n_jobs, "reused": run.n_reused, "run": run.n_run,
                       "done": run.n_done, "failed": run.n_failed, "influence_matrices": run.n_influence},
               "verdicts": run.verdicts}
    with atomic_file(out / "study.json", "w") as fh:
        json.dump(content, fh, indent=2, default=str)
        fh.write("\n")
