"""Record reference plans' evaluation rows, or compare two records (a change to the optimizer must keep
the plans: every dose value within 0.05 Gy, every volume within 0.1 %, the same verdicts).

    python3 benchmarks/plan_rows.py record OUT.json [npc-5-first-order,npc-5-lp,npc-4-first-order,tg119-4]
    python3 benchmarks/plan_rows.py compare BEFORE.json AFTER.json

A plan key is ``npc-<mm>-<engine>`` (the NPC phantom, 5 photon beams at 0, 72, ... 288 deg),
``tg119-<mm>[-<engine>]`` (the CORT TG-119 C-shape, benchmarks/tg119_protocol.toml and tg119_settings.toml, 9 beams; needs
REIRRAD_REALDATA; the default engine is first-order) or a setup of benchmarks/setups.py (``npc-4-proton``,
``openkbp-pt_201-proton``, ...: the default engine and beams). Each record holds the verdict, every evaluation row
(value, verdict), the optimization time (s; a fair figure only on a quiet machine), the first-order engine's
evaluations and each stage's objective (compare prints those that changed). OUT.json must not exist.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_KEYS = "npc-5-first-order,npc-5-lp,npc-4-first-order,tg119-4"
DOSE_TOL_GY = 0.05
VOLUME_TOL_PCT = 0.1


def plan_for(key: str, cache_dir: str | None = None):
    from benchmarks.setups import is_setup, plan_setup
    from reirrad_opt.planning import plan

    if is_setup(key):
        return plan_setup(key)
    if key.startswith("npc-"):
        from phantoms.npc import make_npc_phantom

        _, mm, engine = key.split("-", 2)
        return plan(make_npc_phantom(float(mm)), gantry_angles_deg=[0.0, 72.0, 144.0, 216.0, 288.0], engine=engine,
                    cache_dir=cache_dir)
    if key.startswith("tg119-"):
        from benchmarks.tg119 import load_tg119, resample_case
        from reirrad_opt.planning_settings import load_settings

        _, mm, *engine = key.split("-", 2)
        case = resample_case(load_tg119(), float(mm))
        return plan(case, ROOT / "benchmarks" / "tg119_protocol.toml", engine=engine[0] if engine else None,
                    settings=load_settings(ROOT / "benchmarks" / "tg119_settings.toml"),
                    gantry_angles_deg=[40.0 * k for k in range(9)], cache_dir=cache_dir)
    raise ValueError(f"plan key {key!r}: expected npc-<mm>-<engine> or tg119-<mm>[-<engine>]")


def record(path: str, keys: str = DEFAULT_KEYS) -> None:
    from reirrad_opt.atomic import atomic_file

    if Path(path).exists():   # checked before any plan runs; never overwritten
        sys.exit(f"{path}: the file exists; name a new one")
    out = {}
    for key in keys.split(","):
        t0 = time.perf_counter()
        p = plan_for(key)
        stages = p.optimization.stages
        out[key] = {"verdict": p.verdict, "engine": p.optimization.engine, "optimize_s": p.timing_s["optimize"],
                    "evaluations": int(sum(s.evaluations for s in stages)),
                    "stage_objectives": [[s.name, float(s.objective)] for s in stages],
                    "rows": {r.goal_id: [None if r.value is None else float(r.value), r.verdict, r.unit]
                             for r in p.evaluation.rows}}
        print(f"{key}: {p.verdict}, optimize {p.timing_s['optimize']:.1f} s, total {time.perf_counter() - t0:.1f} s")
    with atomic_file(path) as fh:
        fh.write(json.dumps(out, indent=1))


def compare(before_path: str, after_path: str) -> int:
    """Print every difference beyond the tolerances; returns their number."""
    before, after = json.loads(Path(before_path).read_text()), json.loads(Path(after_path).read_text())
    bad = 0
    for key in sorted(set(before) & set(after)):
        a, b = before[key], after[key]
        if a["verdict"] != b["verdict"]:
            print(f"{key}: verdict {a['verdict']} -> {b['verdict']}")
            bad += 1
        for goal, (value, verdict, unit) in a["rows"].items():
            value2, verdict2, _ = b["rows"][goal]
            tol = {"%": VOLUME_TOL_PCT, "cc": VOLUME_TOL_PCT / 100.0 * abs(value or 0.0)}.get(unit, DOSE_TOL_GY)
            if verdict != verdict2 or (value is None) != (value2 is None) or \
                    (value is not None and abs(value - value2) > tol):
                print(f"{key} {goal}: {value} {verdict} -> {value2} {verdict2}")
                bad += 1
        worst = max((abs(v - b["rows"][g][0]) for g, (v, _, u) in a["rows"].items()
                     if v is not None and b["rows"][g][0] is not None), default=0.0)
        print(f"{key}: largest change {worst:.4g}; optimize {a['optimize_s']:.1f} s -> {b['optimize_s']:.1f} s; "
              f"evaluations {a.get('evaluations', '?')} -> {b.get('evaluations', '?')}")
        # what each stage was asked to minimise (stages in the same order, e.g. no priority-1 probe added)
        for (name, objective), (name2, objective2) in zip(a.get("stage_objectives", []), b.get("stage_objectives", [])):
            if name == name2 and objective2 != objective and not (math.isnan(objective) and math.isnan(objective2)):
                print(f"  stage {name}: objective {objective:.6g} -> {objective2:.6g}")
    print(f"{bad} difference(s) beyond {DOSE_TOL_GY} Gy / {VOLUME_TOL_PCT} %")
    return bad


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "record":
        record(*sys.argv[2:4])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(1 if compare(sys.argv[2], sys.argv[3]) else 0)
    else:
        sys.exit(__doc__)
