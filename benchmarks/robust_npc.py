"""Robust against nominal proton plan on the NPC phantom: time, peak memory and the worst-case priority-1
values of both (each plan in its own process, so that the peak resident memory is its own).

    python3 benchmarks/robust_npc.py [--resolution-mm 4] [--json]

Prints, per plan: influence and optimization time (s), total (s), peak resident memory (MB), the verdict,
and every priority-1 line's nominal and worst value over the default scenarios (setup 3 mm, range 3.5 % +
1 mm); then the ratios robust / nominal. Not a test: a fair time needs a quiet machine (load < 1.5).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one(kind: str, resolution_mm: float) -> dict:
    sys.path.insert(0, str(ROOT))
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan
    from reirrad_opt.robust import ScenarioSettings

    settings = ScenarioSettings()
    t0 = time.perf_counter()
    p = plan(make_npc_phantom(resolution_mm), modality="proton", robust=settings,
             robust_optimization=settings if kind == "robust" else None)
    wall = time.perf_counter() - t0
    p1 = {r.goal_id: {"nominal": r.nominal, "worst": r.worst, "worst_scenario": r.worst_scenario,
                      "verdict_worst": r.verdict_worst} for r in p.robust.rows if r.priority == 1}
    return {"plan": kind, "verdict": p.verdict, "priority1_holds_in_every_scenario": p.robust.priority1_holds,
            "timing_s": {k: round(v, 2) for k, v in p.timing_s.items()}, "wall_s": round(wall, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1), "priority1": p1}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resolution-mm", type=float, default=4.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", choices=["nominal", "robust"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.resolution_mm)))
        return 0
    print(f"load at start: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    results = {}
    for kind in ("nominal", "robust"):
        run = subprocess.run([sys.executable, __file__, "--one", kind, "--resolution-mm", str(args.resolution_mm)],
                             capture_output=True, text=True, check=True)
        results[kind] = json.loads(run.stdout.strip().splitlines()[-1])
    n, r = results["nominal"], results["robust"]
    results["ratio_time_robust_to_nominal"] = round(r["wall_s"] / n["wall_s"], 2)
    results["ratio_memory_robust_to_nominal"] = round(r["peak_rss_mb"] / n["peak_rss_mb"], 2)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for kind in ("nominal", "robust"):
        x = results[kind]
        print(f"{kind}: verdict {x['verdict']}, priority 1 in every scenario: {x['priority1_holds_in_every_scenario']}; "
              f"wall {x['wall_s']} s ({', '.join(f'{k} {v} s' for k, v in x['timing_s'].items())}); "
              f"peak {x['peak_rss_mb']} MB")
        for gid, v in x["priority1"].items():
            print(f"    {gid:24s} nominal {v['nominal']:7.2f}  worst {v['worst']:7.2f}  ({v['worst_scenario']}): "
                  f"{v['verdict_worst']}")
    print(f"robust / nominal: time {results['ratio_time_robust_to_nominal']}, "
          f"memory {results['ratio_memory_robust_to_nominal']}")
    print(f"load at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
