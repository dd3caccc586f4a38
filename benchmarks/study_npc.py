"""Benchmark (not a test): a 24-plan study on the NPC phantom, on a local Dask cluster against
serial loops of plan() calls.

Study: 2 rGTV-to-brainstem distances (4 and 8 mm; a phantom parameter, so two cases) x 2
modalities (photon, 9 beams; proton, 3 fields) x 2 fractionations (bid-1.2, qd-2.0) x 3 recovery
models (none, constant 30 %, a table over the interval), at 4 mm. Measured:

1. ``reirrad-opt study``'s library path on a local cluster (default 2 workers, 1 thread each):
   wall time from cluster start to the written table;
2. a serial loop of plan() calls, each computing its own dose-influence matrix (what a script
   without the study does);
3. the same loop reusing one matrix per (case, modality, beams) (plan(influence=...)).

Prints the three wall times, their ratios, the matrices' sizes and the peak memory of each
worker; checks that the three give the same metrics. Run from the repository root:

    python3 benchmarks/study_npc.py            # about 20-30 min on 2 cores
    python3 benchmarks/study_npc.py --resolution-mm 5 --limit 4   # a short check of the script
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STUDY = """
[study]
name = "npc-24"
description = "2 distances x 2 modalities x 2 fractionations x 3 recovery models"

[[case]]
name = "gap4"
phantom = "npc"
resolution_mm = {res}
rgtv_gap_to_brainstem_mm = 4.0

[[case]]
name = "gap8"
phantom = "npc"
resolution_mm = {res}
rgtv_gap_to_brainstem_mm = 8.0

[sweep]
modality = ["photon", "proton"]
fractionation = ["bid-1.2", "qd-2.0"]
recovery = ["none", "constant:0.3", "table:6=0.0,12=0.1,24=0.25,36=0.4"]
"""

METRICS = ("Brainstem_D0.03cc_cumEQD2_Gy", "rGTV_D98%_new_Gy", "PTV_D98%_new_Gy", "SpinalCord_D0.03cc_cumEQD2_Gy")


def run_cluster(spec, out: Path, workers: int) -> tuple[float, object]:
    import pandas as pd

    from reirrad_opt.progress import Progress
    from reirrad_opt.study import ClusterSettings, open_client, run_study
    from reirrad_opt.study.folder import prepare_study_folder

    t0 = time.perf_counter()
    prepare_study_folder(out, spec.inputs())
    with open_client(ClusterSettings(workers=workers)) as client:
        run_study(spec, out, client, progress=Progress(enabled=True))
    wall = time.perf_counter() - t0
    return wall, pd.read_parquet(out / "results.parquet")


def run_serial(spec, jobs, reuse: bool) -> tuple[float, dict, list[float]]:
    """plan() per job in this process; the cases built once each (as a script would)."""
    from reirrad_opt.planning import plan
    from reirrad_opt.study.tasks import build_case, case_for_job, compute_influence_for, protocol_for
    from reirrad_opt.study.variants import recovery_model

    t0 = time.perf_counter()
    cases, matrices, values, influence_s = {}, {}, {}, []
    for job in jobs:
        if job.case.name not in cases:
            cases[job.case.name] = build_case(job.case)
        case = cases[job.case.name]
        influence = None
        if reuse:
            if job.influence_key not in matrices:
                matrices[job.influence_key] = compute_influence_for(case, job.variant)
            influence = matrices[job.influence_key]
        v = job.variant
        result = plan(case_for_job(case, job), protocol_for(spec.protocol_path, v), modality=v.modality,
                      gantry_angles_deg=list(v.gantry_angles_deg), recovery=recovery_model(v.recovery),
                      bixel_mm=v.bixel_mm or 5.0, spot_spacing_mm=v.spot_spacing_mm or 5.0, influence=influence,
                      rbe=v.rbe)
        influence_s.append(result.timing_s["influence"])
        values[job.file_stem] = {f"{r.structure}_{r.metric}_{'cumEQD2' if r.cumulative else 'new'}_"
                                 f"{'pct' if r.unit == '%' else 'Gy'}": r.value for r in result.evaluation.rows}
        print(f"  serial ({'reuse' if reuse else 'recompute'}) {len(values)}/{len(jobs)}: {job.case.name} "
              f"{v.modality} {v.fractionation} {v.recovery}: {result.verdict}, {result.timing_s['total']:.1f} s "
              f"(influence {result.timing_s['influence']:.1f} s)", flush=True)
    return time.perf_counter() - t0, values, influence_s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution-mm", type=float, default=4.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--limit", type=int, default=None, help="only the first N plans (a check of the script)")
    args = p.parse_args()

    from reirrad_opt.study import load_study

    with tempfile.TemporaryDirectory(prefix="study-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "study.toml").write_text(STUDY.format(res=args.resolution_mm))
        spec = load_study(tmp / "study.toml")
        if args.limit:
            spec = dataclasses.replace(spec, jobs=spec.jobs[:args.limit])
        jobs = spec.jobs
        keys = {j.influence_key for j in jobs}
        print(f"{len(jobs)} plans at {args.resolution_mm:g} mm, {len(keys)} dose-influence matrices", flush=True)

        wall_study, table = run_cluster(spec, tmp / "out", args.workers)
        print(f"study on a local cluster of {args.workers} workers: {wall_study:.1f} s", flush=True)
        wall_reuse, reuse_values, _ = run_serial(spec, jobs, reuse=True)
        print(f"serial loop reusing the matrices: {wall_reuse:.1f} s", flush=True)
        wall_recompute, recompute_values, influence_s = run_serial(spec, jobs, reuse=False)
        print(f"serial loop recomputing every matrix: {wall_recompute:.1f} s", flush=True)

    table = table.set_index("key")
    worst = 0.0
    for values in (reuse_values, recompute_values):
        for stem, metrics in values.items():
            for col in METRICS:
                if col in metrics and metrics[col] is not None:
                    worst = max(worst, abs(float(table.loc[stem, col]) - float(metrics[col])))
    per_modality = table.groupby("modality")["influence_MB"].first().to_dict()
    rss = table["worker_peak_rss_MB"].max()
    print()
    sizes = ", ".join(f"{m} {mb:.0f} MB" for m, mb in per_modality.items())
    print(f"plans: {len(jobs)}; matrices: {len(keys)} ({sizes})")
    print(f"wall time: study {wall_study:.1f} s | serial with reuse {wall_reuse:.1f} s | serial recomputing "
          f"{wall_recompute:.1f} s (of which influence {sum(influence_s):.1f} s)")
    print(f"ratios: serial recomputing / study = {wall_recompute / wall_study:.2f}; serial with reuse / study = "
          f"{wall_reuse / wall_study:.2f}; serial recomputing / serial with reuse = {wall_recompute / wall_reuse:.2f}")
    print(f"memory: peak resident memory per worker {rss:.0f} MB (largest over the workers); this process "
          f"(serial loops) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"agreement: largest difference of {', '.join(METRICS)} between the study and the loops: {worst:.2e} Gy")
    print(f"verdicts: {table['verdict'].value_counts().to_dict()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
