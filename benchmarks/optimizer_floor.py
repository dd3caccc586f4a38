"""The optimizer's time in units of its floor: one full dose product pair (A @ w and A.T @ y on the plan's
whole influence matrix, as the optimizer sees it), timed in the same process right after the plan.

    python3 benchmarks/optimizer_floor.py [--setups npc-2.5-photon,npc-2.5-proton,npc-4-photon,npc-4-proton,tg119-3-photon]
                                          [--json OUT.json]

The setups are those of benchmarks/setups.py (``npc-<mm>-<modality>``, ``tg119-<mm>-photon``,
``openkbp-<patient>-<modality>``; the import is not timed; the last two are skipped without REIRRAD_REALDATA).
Each setup runs in its own process. Printed per setup: voxels, non-zeros, the optimization time (s), the product pair (ms, median of 7)
on one thread and on the threads the optimizer uses (``REIRRAD_THREADS``, default the cores), their ratios
(the goal is at most 150; the fair one is against the pair on as many threads as the optimizer), the L-BFGS-B function evaluations and the verdict. Not a test: a fair
figure needs a quiet machine (load < 1.5; the load is printed).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks.setups import needs_realdata  # noqa: E402
DEFAULT_SETUPS = "npc-2.5-photon,npc-2.5-proton,npc-4-photon,npc-4-proton,tg119-3-photon,openkbp-pt_201-photon," \
                 "openkbp-pt_201-proton"
GOAL_RATIO = 150.0


def product_pair_s(matrix, weights: np.ndarray, threads: int = 1, repeats: int = 7) -> float:
    """Median wall time (s) of A @ w followed by A.T @ y on the full matrix (y: a dose-shaped vector).

    ``threads`` > 1: both products split over row blocks in that many threads, as the optimizer splits
    its own (:class:`~reirrad_opt.optimize.split_product.RowSplit`); A.T @ y as the sum of the blocks'
    transposed products."""
    from concurrent.futures import ThreadPoolExecutor

    from reirrad_opt.optimize.split_product import RowSplit

    rng = np.random.default_rng(0)
    y = rng.random(matrix.shape[0])
    split = RowSplit(matrix, threads)
    pool = ThreadPoolExecutor(max_workers=threads - 1) if threads > 1 else None

    blocks_t = [(a, b, part.T) for a, b, part in split.parts]   # (transposed views: made once, not timed)

    def transposed() -> np.ndarray:
        if pool is None or len(blocks_t) < 2:
            return matrix.T @ y
        futures = [pool.submit(part_t.__matmul__, y[a:b]) for a, b, part_t in blocks_t[1:]]
        a, b, first_t = blocks_t[0]
        out = first_t @ y[a:b]
        for f in futures:
            out += f.result()
        return out

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        split(weights, pool)
        transposed()
        times.append(time.perf_counter() - t0)
    if pool is not None:
        pool.shutdown()
    return float(np.median(times))


def run_one(setup: str) -> dict:
    from benchmarks.setups import plan_setup
    from reirrad_opt.optimize.dose_rows import DoseRows

    p = plan_setup(setup)
    rows = DoseRows(p.influence.matrix * p.rbe, 0.0)
    matrix, threads = rows.matrix, rows.threads
    weights = np.asarray(p.weights, dtype=float)
    pair, pair_threads = product_pair_s(matrix, weights), product_pair_s(matrix, weights, threads)
    optimize = p.timing_s["optimize"]
    return {"setup": setup, "voxels": int(matrix.shape[0]), "nnz": int(matrix.nnz), "optimize_s": round(optimize, 2),
            "threads": threads, "product_pair_ms": round(1e3 * pair, 2), "ratio": round(optimize / pair, 1),
            "product_pair_threads_ms": round(1e3 * pair_threads, 2), "ratio_threads": round(optimize / pair_threads, 1),
            "evaluations": int(sum(s.evaluations for s in p.optimization.stages)),
            "verdict": p.verdict, "load": round(os.getloadavg()[0], 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setups", default=DEFAULT_SETUPS)
    ap.add_argument("--json", help="also write the figures to this new file (an existing one is refused)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.json and Path(args.json).exists():   # checked before any plan runs; never overwritten
        ap.error(f"--json {args.json}: the file exists; name a new one")
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    results = []
    for setup in args.setups.split(","):
        if needs_realdata(setup) and not os.environ.get("REIRRAD_REALDATA"):
            print(f"{setup}: skipped (REIRRAD_REALDATA not set)")
            continue
        run = subprocess.run([sys.executable, __file__, "--one", setup], capture_output=True, text=True)
        if run.returncode:
            print(f"{setup}: failed\n{run.stderr[-2000:]}")
            continue
        r = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(r)
        print(f"{setup}: {r['voxels']} voxels, {r['nnz'] / 1e6:.1f} M non-zeros; optimization {r['optimize_s']} s, "
              f"product pair {r['product_pair_ms']} ms (one thread) / {r['product_pair_threads_ms']} ms "
              f"({r['threads']} threads, as the optimizer), ratio {r['ratio']} / {r['ratio_threads']} "
              f"(goal <= {GOAL_RATIO:g}); "
              f"{r['evaluations']} evaluations; {r['verdict']}; load {r['load']}", flush=True)
    if args.json:
        from reirrad_opt.atomic import atomic_file

        with atomic_file(args.json) as fh:
            fh.write(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
