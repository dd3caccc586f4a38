"""Benchmark: the whole lexicographic solve on the CORT TG-119 C-shape (9 photon beams).

Usage: REIRRAD_REALDATA=../shared/realdata python benchmarks/optimize_tg119.py [--grid-mm 3] [--json]
       [--engine first-order|lp] [--modality photon|proton]

``--modality proton``: 3 proton fields (0, 120, 240 deg, 5 mm spots, the setup of
benchmarks/influence_tg119.py), doses in Gy(RBE) (constant RBE 1.1); the pyRadPlan figures are photon figures.

Prints wall time (influence, optimization per stage, evaluation) and the TG-119 metrics, next to
pyRadPlan's figures measured on this kind of 2-core machine (IPOPT weighted sum, 500 iterations,
not converged: 169 s; Core max 25.7 Gy, PTV V95 99.95 %, D95 49.15 Gy, Dmax 51.4 Gy), and the ratio.
The goals (benchmarks/tg119_protocol.toml): Core Dmax <= 25 Gy hard (priority 1), PTV D95 >= 50 Gy
(priority 2), PTV D10 <= 55 Gy and Core D10 <= 25 Gy (priority 3); Rx 50 Gy in 25 fractions.
Measured at 3 mm on a 2-core machine: 18.0 s with the first-order engine (the default; optimization 10.0 s,
2026-12-07), 408 s with --engine lp (before the first-order engine's reading of dose-volume goals at their DVH
point).
The metrics are read on voxel centres, as pyRadPlan reports them; ``evaluated`` adds the PTV D95% and
Core Dmax as our evaluation reads them (sub-voxel points at the edges), which is what the goals are
held to. Each plan here has its own dose engine and its own reading of the goals; for the optimizers
alone on one dose engine see benchmarks/optimize_tg119_peer.py.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from tg119 import load_tg119, resample_case  # noqa: E402

from reirrad_opt.evaluate import metric_value  # noqa: E402
from reirrad_opt.planning import plan  # noqa: E402
from reirrad_opt.planning_settings import load_settings  # noqa: E402
from reirrad_opt.progress import Progress  # noqa: E402

PEER = {"name": "pyRadPlan 0.5.0 (IPOPT weighted sum, 500 iterations)", "seconds": 169.0,
        "core_dmax_gy": 25.7, "ptv_v95_pct": 99.95, "ptv_d95_gy": 49.15, "ptv_dmax_gy": 51.4}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid-mm", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--engine", choices=["lp", "first-order"], default="first-order",
                    help="how the stages are solved (default first-order; lp: exact LP optimum per stage)")
    ap.add_argument("--modality", choices=["photon", "proton"], default="photon",
                    help="9 photon beams (default) or 3 proton fields at 0, 120, 240 deg")
    args = ap.parse_args(argv)
    angles = [40.0 * k for k in range(9)] if args.modality == "photon" else [0.0, 120.0, 240.0]
    case = load_tg119()
    if abs(case.grid.spacing_mm[2] - args.grid_mm) > 1e-6 or abs(case.grid.spacing_mm[0] - args.grid_mm) > 1e-6:
        case = resample_case(case, args.grid_mm)
    t0 = time.perf_counter()
    result = plan(case, HERE / "tg119_protocol.toml", gantry_angles_deg=angles, modality=args.modality,
                  settings=load_settings(HERE / "tg119_settings.toml"), engine=args.engine,
                  progress=Progress(None if not args.json else False))
    seconds = time.perf_counter() - t0
    grid, dose = case.grid, result.new_dose_gy
    ptv, core = case.structures["PTV"].mask, case.structures["Core"].mask
    m = lambda metric, mask: metric_value(metric, dose, mask, grid, rx_gy=50.0, fine=False).value
    metrics = {"ptv_d95_gy": m("D95%", ptv), "ptv_d10_gy": m("D10%", ptv), "ptv_v95_pct": m("V47.5Gy", ptv),
               "ptv_dmax_gy": m("Dmax", ptv), "core_d10_gy": m("D10%", core), "core_dmax_gy": m("Dmax", core)}
    evaluated = {r.goal_id: round(float(r.value), 3) for r in result.evaluation.rows}
    out = {"seconds": round(seconds, 2), "influence_s": round(result.timing_s["influence"], 2),
           "optimize_s": round(result.timing_s["optimize"], 2),
           "stages": [{"name": s.name, "seconds": round(s.seconds, 2), "status": s.status}
                      for s in result.optimization.stages],
           "grid_mm": args.grid_mm, "engine": args.engine, "modality": args.modality, "n_columns": int(result.influence.matrix.shape[1]),
           "nnz": int(result.influence.matrix.nnz), "verdict": result.verdict,
           **{k: round(float(v), 3) for k, v in metrics.items()},
           "evaluated": evaluated, "peer": PEER, "ratio_to_peer_time": round(seconds / PEER["seconds"], 3)}
    if args.json:
        print(json.dumps(out))
        return 0
    beams = "9 photon beams" if args.modality == "photon" else "3 proton fields"
    print(f"TG-119 C-shape, {beams}, {args.grid_mm:g} mm grid: {out['n_columns']} bixels/spots, "
          f"{out['nnz'] / 1e6:.1f} M non-zeros")
    print(f"  influence {out['influence_s']:.1f} s, optimization {out['optimize_s']:.1f} s, total {seconds:.1f} s "
          f"(pyRadPlan {PEER['seconds']:.0f} s; ratio {out['ratio_to_peer_time']:.3f})")
    for s in out["stages"]:
        print(f"    stage {s['name']}: {s['status']} {s['seconds']:.1f} s")
    print(f"  PTV D95 {metrics['ptv_d95_gy']:.2f} Gy (peer {PEER['ptv_d95_gy']}), V95 {metrics['ptv_v95_pct']:.2f} % "
          f"(peer {PEER['ptv_v95_pct']}), D10 {metrics['ptv_d10_gy']:.2f} Gy, Dmax {metrics['ptv_dmax_gy']:.2f} Gy "
          f"(peer {PEER['ptv_dmax_gy']})")
    print(f"  Core D10 {metrics['core_d10_gy']:.2f} Gy, Dmax {metrics['core_dmax_gy']:.2f} Gy "
          f"(limit 25; peer {PEER['core_dmax_gy']})")
    print(f"  in the evaluation (sub-voxel points at the edges): PTV D95 {evaluated['PTV_D95']:.2f} Gy, "
          f"Core Dmax {evaluated['Core_Dmax']:.2f} Gy; verdict {result.verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
