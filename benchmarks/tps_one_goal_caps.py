"""How conservative is one TPS goal per cumulative limit? (tps_goals.json's cumulative_cap_min)

A cumulative-EQD2 limit is a different new-course cap in every voxel of an organ (the prior dose
varies); a TPS goal holds one level, so tps_goals.json gives the tightest cap over the organ. This
plans the NPC phantom and prints, per cumulative line: the caps' range over the organ (the most a
single goal withholds from a voxel), the plan's new-course D0.03cc against the tightest cap, and the
smallest voxel headroom cap - dose of the plan (>= 0: the plan meets the limit voxel by voxel).

    python3 benchmarks/tps_one_goal_caps.py [--resolution-mm 5] [--beams 7] [--bixel-mm 10]
"""
from __future__ import annotations

import argparse

import numpy as np

from phantoms.npc import make_npc_phantom
from reirrad_opt.evaluate.metrics import metric_value
from reirrad_opt.planning import plan
from reirrad_opt.tps.caps import cap_map


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--resolution-mm", type=float, default=5.0)
    p.add_argument("--beams", type=int, default=7)
    p.add_argument("--bixel-mm", type=float, default=10.0)
    args = p.parse_args()
    result = plan(make_npc_phantom(args.resolution_mm), None, n_beams=args.beams, bixel_mm=args.bixel_mm)
    caps = cap_map(result.case, result.protocol, result.fractionation.n_fractions,
                   tiers=dict(result.optimization.tier_by_goal))
    print(f"NPC phantom {args.resolution_mm:g} mm, {args.beams} beams, bixel {args.bixel_mm:g} mm: verdict "
          f"{result.verdict}")
    print(f"{'line':26s} {'tier':10s} {'cap min':>8s} {'cap max':>8s} {'spread':>7s} {'D0.03cc':>8s} "
          f"{'over min':>8s} {'min headroom':>12s}  (Gy, new course)")
    for c in caps.lines:
        mask = result.case.structures[c.structure].mask
        goal = result.protocol.goal(c.goal_id)
        d = metric_value(goal.metric, result.new_dose_gy, mask, result.case.grid, result.fractionation.total_gy).value
        headroom = float(np.min(c.cap_gy - result.new_dose_gy[mask]))
        print(f"{c.goal_id:26s} {c.tier:10s} {c.min_cap_gy:8.2f} {c.max_cap_gy:8.2f} "
              f"{c.max_cap_gy - c.min_cap_gy:7.2f} {d:8.2f} {max(0.0, d - c.min_cap_gy):8.2f} {headroom:12.2f}")


if __name__ == "__main__":
    main()
