"""``reirrad-opt study``: a plan-quality study (cases x variants) on Dask, a local cluster by
default or an existing scheduler. One row per plan in results.parquet and results.csv, the page
study.html, the record study.json. A study started again with the same --out runs only the
variants without a result. Exit 0 when every variant has planned, 5 when some failed (their rows
hold the error), 2 for a bad study file or output folder, 130 when interrupted (finished
variants are kept). See docs/study.md."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import EXIT_INTERRUPTED, EXIT_OK, InputError
from ._args import positive_float, positive_int
from ._help import plain_description
from ._progress import add_progress_arguments, progress_from_args

EXIT_VARIANTS_FAILED = 5   # some plans failed (1 is the operating system refusing a read or write)


def register(subparsers) -> None:
    p = subparsers.add_parser("study", help="run a plan-quality study (cases x variants) on Dask",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study_file", type=Path, metavar="STUDY.toml", help="the study (schema: docs/study.md)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="study folder: a new or empty folder, or this study's previous output (it resumes: "
                        "variants with a result are not run again); never an input folder")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler (e.g. tcp://host:8786); default: a local cluster")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="local cluster: worker processes (default: this machine's cores)")
    p.add_argument("--memory-limit", type=positive_float, default=None, metavar="GB",
                   help="local cluster: memory limit per worker in GB (default: the memory shared between workers)")
    p.add_argument("--plan-folders", action="store_true",
                   help="also write each plan's folder (plan.json, report.html, ...) under DIR/plans; the workers "
                        "must reach DIR at the same path")
    p.add_argument("--retry-failed", action="store_true",
                   help="run again the variants whose stored result is a failure")
    p.add_argument("--overwrite", action="store_true",
                   help="run every variant again, replacing the stored results one by one as they finish")
    add_progress_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..study import ClusterSettings, load_study, open_client, run_study
    from ..study.folder import prepare_study_folder

    _check_extra()
    if args.scheduler and (args.workers or args.memory_limit):
        raise InputError("--workers and --memory-limit set up the local cluster; with --scheduler the workers are "
                         "those started with 'dask worker' (give them --nworkers / --memory-limit there)")
    progress = progress_from_args(args)
    spec = load_study(args.study_file)                 # every check before any work
    out = prepare_study_folder(args.out, spec.inputs())
    settings = ClusterSettings(scheduler=args.scheduler, workers=args.workers, memory_limit_gb=args.memory_limit)
    where = args.scheduler or f"a local cluster of {args.workers or 'one worker per core'}"
    progress(f"study {spec.name}: starting on {where}")
    try:
        with open_client(settings) as client:
            result = run_study(spec, out, client, plan_folders=args.plan_folders, retry_failed=args.retry_failed,
                               overwrite=args.overwrite, progress=progress)
    except KeyboardInterrupt:
        from ..study.results import ResultStore

        store = ResultStore(out)
        have = sum(store.read(j) is not None for j in spec.jobs)
        print(f"reirrad-opt study: interrupted; {have} of {len(spec.jobs)} plans have a result in {out / 'results'} "
              f"(kept); run the same command again to finish the others", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    counts = ", ".join(f"{k} {v}" for k, v in result.verdicts.items())
    print(f"study written to {out}: {result.n_jobs} plans ({result.n_reused} kept, {result.n_run} run, "
          f"{result.n_failed} failed) in {result.wall_s:.0f} s; verdicts: {counts}")
    print(f"  table: {out / 'results.csv'} and results.parquet; page: {out / 'study.html'}")
    return EXIT_VARIANTS_FAILED if _any_failed(out) else EXIT_OK


def _check_extra() -> None:
    """The study needs dask.distributed, pandas and pyarrow (the 'study' extra)."""
    import importlib.util

    missing = [m for m in ("distributed", "pandas", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"reirrad-opt study needs {', '.join(missing)}: install the 'study' extra, "
                         f"pip install 'reirrad-opt[study]' (or -e '.[study]' in a checkout)")


def _any_failed(out: Path) -> bool:
    import pandas as pd

    table = pd.read_parquet(out / "results.parquet", columns=["status"])
    return bool((table["status"] == "failed").any())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
