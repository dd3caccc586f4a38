"""Benchmark: the optimizers alone, on one dose engine. pyRadPlan's TG-119 plan against ours, both on
pyRadPlan's own dose-influence matrix and read by one evaluator.

benchmarks/optimize_tg119.py compares whole plans, each on its own dose engine and with its own
reading of the goals. This script takes the dose engine out of the comparison:

1. pyRadPlan (in the interpreter named by ``--pyradplan-python``, e.g. a separate virtual
   environment) builds its TG-119 setup: 9 photon beams at 0, 40, ..., 320 deg, 5 mm bixels,
   3 mm dose grid, its SVD pencil-beam dose-influence matrix. It then runs its own fluence
   optimization (IPOPT, the weighted sum of the phantom file's objectives: PTV squared deviation
   from 50 Gy, weight 1000; Core squared overdose above 25 Gy, 300; BODY above 30 Gy, 100). The
   matrix, the structures on the dose grid and its fluence are handed over in a temporary folder.
2. Our evaluator reads pyRadPlan's plan: its Core maximum and PTV D95% as our evaluation measures
   them (sub-voxel points with interpolated dose at the structures' edges).
3. reirrad-opt plans on the same matrix three times: with benchmarks/tg119_protocol.toml (Core
   Dmax <= 25 Gy hard, PTV D95% >= 50 Gy; benchmarks/tg119_settings.toml); *matched*: every target
   and Core value of pyRadPlan's plan, as our evaluation reads it, made a goal held in priority
   order without slip (Core Dmax hard; PTV D95%; PTV V95%, i.e. V47.5Gy; PTV D2%), and normal tissue
   last, without the homogeneity term (the held D2% and V95% take its place); and *matched vc*: the
   same with pyRadPlan's values on voxel centres, read on voxel centres as pyRadPlan reads its plan
   (protocol option evaluation_fine_factor = 1). A lexicographic plan that holds the peer's target
   and Core values should then spend less dose on normal tissue than a weighted sum.

Printed: optimization seconds of each (pyRadPlan's IPOPT; our stages and evaluation), the TG-119
metrics on voxel centres (as pyRadPlan reports them) and in our evaluation, and the ratios.
``--json`` prints one JSON object instead. Not part of the test run (about 7 minutes, most of
it pyRadPlan). ``--peer-folder DIR`` keeps pyRadPlan's hand-over (matrix, structures, fluence) in
DIR and reads it from there when the script runs again (a new or empty DIR is filled; one with another
content is refused).

Usage: REIRRAD_REALDATA=../shared/realdata python benchmarks/optimize_tg119_peer.py
       --pyradplan-python /path/to/venv/bin/python [--peer-folder DIR] [--json]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

ANGLES_DEG = [40.0 * k for k in range(9)]
GRID_MM = 3.0
NAMES = {"OuterTarget": ("PTV", "target"), "Core": ("Core", "oar"), "BODY": ("External", "external")}


def pyradplan_worker(out_dir: str) -> None:
    """(run by the pyRadPlan interpreter) Dose-influence matrix and IPOPT plan, saved to ``out_dir``."""
    import pyRadPlan
    from pyRadPlan import PhotonPlan, calc_dose_influence, fluence_optimization, generate_stf, load_tg119

    ct, cst = load_tg119()
    pln = PhotonPlan()
    pln.prop_stf = {"gantry_angles": ANGLES_DEG, "couch_angles": [0.0] * len(ANGLES_DEG), "bixel_width": 5.0}
    pln.prop_dose_calc = {"dose_grid": {"resolution": {"x": GRID_MM, "y": GRID_MM, "z": GRID_MM}}}
    t0 = time.perf_counter()
    stf = generate_stf(ct, cst, pln)
    dij = calc_dose_influence(ct, cst, stf, pln)
    t1 = time.perf_counter()
    info: dict = {}
    w = fluence_optimization(ct, cst, stf, dij, pln, opt_info=info)
    t2 = time.perf_counter()
    matrix = sp.csr_matrix(dij.physical_dose.flat[0], dtype=np.float32)
    grid = dij.dose_grid
    cst_dose = cst.resample_on_new_ct(ct.resample_to_grid(grid))
    beam, u, v = [], [], []
    for b, beam_stf in enumerate(stf.beams):
        for ray in beam_stf.rays:
            beam.append(b)
            u.append(float(ray.ray_pos_bev[0]))
            v.append(float(ray.ray_pos_bev[2]))
    out = Path(out_dir)
    sp.save_npz(out / "dij.npz", matrix)
    np.savez(out / "plan.npz", weights=np.asarray(w, dtype=float), beam=np.asarray(beam, np.int32),
             u_mm=np.asarray(u), v_mm=np.asarray(v),
             **{f"idx_{voi.name}": np.asarray(voi.indices_numpy) for voi in cst_dose.vois})
    meta = {"influence_s": t1 - t0, "optimize_s": t2 - t1, "iterations": info.get("num_iter"),
            "dims_xyz": [int(n) for n in grid.dimensions], "origin_xyz_mm": [float(x) for x in grid.origin],
            "version": pyRadPlan.__version__}
    (out / "meta.json").write_text(json.dumps(meta))


# (metric key, label, +1 where higher is better / -1 where lower is better): the values "matched" holds
AS_GOOD = (("ptv_d95_gy", "PTV D95", 1), ("ptv_v95_pct", "PTV V95", 1), ("ptv_d2_gy", "PTV D2", -1),
           ("core_dmax_gy", "Core Dmax", -1), ("core_d10_gy", "Core D10", -1))


def _peer_case(folder: Path):
    """The TG-119 structures on pyRadPlan's dose grid as a Case, and its matrix as an InfluenceMatrix.

    pyRadPlan's voxel indices run x fastest (SimpleITK order), i.e. C order of (z, y, x). The CT is
    not needed to plan on a given matrix: water inside the body, air outside."""
    from reirrad_opt.case import Case, PriorCourse
    from reirrad_opt.dose.influence import Columns, InfluenceMatrix
    from reirrad_opt.geometry import Grid, Structure

    meta = json.loads((folder / "meta.json").read_text())
    nx, ny, nz = meta["dims_xyz"]
    x0, y0, z0 = meta["origin_xyz_mm"]
    grid = Grid((nz, ny, nx), (GRID_MM, GRID_MM, GRID_MM), (z0, y0, x0))
    saved = np.load(folder / "plan.npz")
    structures = {}
    for peer_name, (name, role) in NAMES.items():
        mask = np.zeros(nx * ny * nz, bool)
        mask[saved[f"idx_{peer_name}"]] = True
        structures[name] = Structure(name, mask.reshape(grid.shape), role)
    ct = np.where(structures["External"].mask, 0.0, -1000.0)
    case = Case("tg119_on_pyradplan_grid", grid, ct, structures, np.zeros(grid.shape), PriorCourse(1, 0.0))
    matrix = sp.load_npz(folder / "dij.npz").tocsr().astype(np.float32)
    columns = Columns(beam=saved["beam"], u_mm=saved["u_mm"], v_mm=saved["v_mm"])
    influence = InfluenceMatrix(matrix, grid, [], "photon", columns, 0.0, {"source": f"pyRadPlan {meta['version']}"})
    return case, influence, saved["weights"], meta


def _metrics(case, dose_gy: np.ndarray) -> dict:
    """TG-119 metrics on voxel centres (``_vc``, as pyRadPlan reports them) and in our evaluation."""
    from reirrad_opt.evaluate import metric_value

    ptv, core, grid = case.structures["PTV"].mask, case.structures["Core"].mask, case.grid
    out = {}
    for fine, tag in ((False, "_vc"), (True, "")):
        m = lambda metric, mask: float(metric_value(metric, dose_gy, mask, grid, rx_gy=50.0, fine=fine).value)  # noqa: E731
        out.update({f"ptv_d95_gy{tag}": m("D95%", ptv), f"ptv_v95_pct{tag}": m("V47.5Gy", ptv),
                    f"ptv_d2_gy{tag}": m("D2%", ptv), f"ptv_dmax_gy{tag}": m("Dmax", ptv),
                    f"core_d10_gy{tag}": m("D10%", core), f"core_dmax_gy{tag}": m("Dmax", core)})
    body = case.structures["External"].mask
    out["body_mean_gy"] = float(dose_gy[body].mean())
    out["body_v25_cc"] = float((dose_gy[body] >= 25.0).sum() * grid.voxel_volume_cc)
    return {k: round(v, 3) for k, v in out.items()}


def _matched(protocol, peer: dict, tag: str, **options):
    """The TG-119 protocol with pyRadPlan's values as its goals (``peer``: its metrics; ``tag``: '' for
    our evaluation's reading, '_vc' for voxel centres), each held in priority order without slip:
    Core Dmax hard (1), PTV D95% (2), PTV V47.5Gy (3, with Core D10% <= 25 Gy), PTV D2% (4); the
    levels are pyRadPlan's values as read here (to 0.001 Gy or %), so "met" means "as good or better"."""
    from reirrad_opt.protocol import Limit

    def at(goal, value: float, unit: str = "Gy", **changes):
        return dataclasses.replace(goal, desirable=Limit(value, unit), acceptable=Limit(value, unit), **changes)

    protocol.options = {**protocol.options, **options}
    goals = {g.id: g for g in protocol.goals}
    protocol.goals = [at(goals["Core_Dmax"], peer["core_dmax_gy" + tag]), at(goals["PTV_D95"], peer["ptv_d95_gy" + tag]),
                      goals["Core_D10"],
                      at(goals["PTV_D95"], min(peer["ptv_v95_pct" + tag], 100.0), "%", id="PTV_V95", priority=3,
                         metric="V47.5Gy", provenance="pyRadPlan's PTV V95%"),
                      at(goals["PTV_D10"], peer["ptv_d2_gy" + tag], id="PTV_D2", priority=4, metric="D2%",
                         provenance="pyRadPlan's PTV D2%")]
    zero = next(iter(protocol.slips.values()))
    protocol.slips = {p: dataclasses.replace(zero, value=0.0) for p in (1, 2, 3, 4)}
    return protocol


def _peer_folder(path: str | None):
    """(folder to hand over in, whether pyRadPlan must run): a kept ``--peer-folder`` or a temporary one."""
    if path is None:
        return tempfile.TemporaryDirectory(prefix="tg119_peer_"), True
    folder = Path(path)
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    if names >= {"meta.json", "dij.npz", "plan.npz"}:
        return contextlib.nullcontext(str(folder)), False
    if names or (folder.exists() and not folder.is_dir()):
        raise SystemExit(f"--peer-folder {folder}: holds other files ({', '.join(sorted(names)[:5])}); expected an "
                         f"empty folder or one with pyRadPlan's hand-over (meta.json, dij.npz, plan.npz)")
    folder.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(str(folder)), True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pyradplan-python", help="a Python interpreter with pyRadPlan (and cyipopt) installed")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--peer-folder", help="keep pyRadPlan's hand-over here and reuse it on the next run")
    ap.add_argument("--pyradplan-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.pyradplan_worker:
        pyradplan_worker(args.pyradplan_worker)
        return 0

    from influence_tg119 import _pyradplan_python

    from reirrad_opt.planning import plan
    from reirrad_opt.progress import Progress
    from reirrad_opt.planning_settings import load_settings
    from reirrad_opt.protocol import load_protocol

    python = _pyradplan_python(args.pyradplan_python)
    if python is None:
        print("pyRadPlan cannot be imported (name its interpreter with --pyradplan-python)", file=sys.stderr)
        return 2
    say = Progress(not args.json)
    folder, run_peer = _peer_folder(args.peer_folder)
    with folder as tmp:
        if run_peer:
            say("pyRadPlan: dose-influence matrix and IPOPT plan (several minutes)")
            run = subprocess.run([python, __file__, "--pyradplan-worker", tmp], capture_output=True, text=True,
                                 check=False)
            if run.returncode != 0:
                print(f"pyRadPlan worker failed:\n{run.stderr[-4000:]}", file=sys.stderr)
                return 1
        else:
            say(f"pyRadPlan's hand-over read from {tmp} (its timings are those of that run)")
        case, influence, peer_weights, meta = _peer_case(Path(tmp))
    peer = _metrics(case, influence.dose(peer_weights))
    result = {"peer": {"name": f"pyRadPlan {meta['version']} (IPOPT weighted sum)", "optimize_s": round(meta["optimize_s"], 2),
                       "iterations": meta["iterations"], "influence_s": round(meta["influence_s"], 2), **peer},
              "n_columns": int(influence.n_columns), "nnz": int(influence.matrix.nnz)}
    protocol_path = HERE / "tg119_protocol.toml"
    settings = load_settings(HERE / "tg119_settings.toml")
    normal_last = settings.with_overrides(target_homogeneity_weight=0.0)   # the held D2% and V95% instead
    variants = {"protocol": (load_protocol(protocol_path), settings),
                "matched": (_matched(load_protocol(protocol_path), peer, ""), normal_last),
                # read on voxel centres, as pyRadPlan reads its plan
                "matched_vc": (_matched(load_protocol(protocol_path), peer, "_vc", evaluation_fine_factor=1), normal_last)}
    for name, (protocol, plan_settings) in variants.items():
        say(f"reirrad-opt on pyRadPlan's matrix, {name} goals")
        t0 = time.perf_counter()
        p = plan(case, protocol, influence=influence, settings=plan_settings)
        seconds = time.perf_counter() - t0
        result[name] = {"seconds": round(seconds, 2), "optimize_s": round(p.timing_s["optimize"], 2),
                        "verdict": p.verdict, "ratio_to_peer_time": round(seconds / meta["optimize_s"], 3),
                        "goals": {r.goal_id: [round(float(r.value), 2), r.verdict] for r in p.evaluation.rows},
                        **_metrics(case, p.new_dose_gy)}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"TG-119 on pyRadPlan's dose-influence matrix ({result['n_columns']} bixels, {result['nnz'] / 1e6:.0f} M "
          f"non-zeros, 3 mm): pyRadPlan IPOPT {meta['optimize_s']:.0f} s ({meta['iterations']} iterations)")
    keys = [("ptv_d95_gy", "PTV D95 (Gy)"), ("ptv_v95_pct", "PTV V95 (%)"), ("ptv_d2_gy", "PTV D2 (Gy)"),
            ("ptv_dmax_gy", "PTV Dmax (Gy)"), ("core_d10_gy", "Core D10 (Gy)"), ("core_dmax_gy", "Core Dmax (Gy)")]
    print(f"  {'':16s} {'pyRadPlan':>19s} {'ours, protocol':>19s} {'ours, matched':>19s} {'ours, matched vc':>19s}"
          f"   (voxel centres / our evaluation)")
    for key, label in keys:
        cells = [f"{r[key + '_vc']:8.2f} / {r[key]:8.2f}"
                 for r in (peer, result["protocol"], result["matched"], result["matched_vc"])]
        print(f"  {label:16s} " + " ".join(f"{c:>19s}" for c in cells))
    for key, label in (("body_mean_gy", "body mean (Gy)"), ("body_v25_cc", "body V25Gy (cc)")):
        print(f"  {label:16s} " + " ".join(f"{r[key]:19.3f}" for r in (peer, result["protocol"], result["matched"],
                                                                        result["matched_vc"])))
    for name, tag in (("matched", ""), ("matched_vc", "_vc")):
        r = result[name]
        worse = [label for key, label, sense in AS_GOOD
                 if sense * (r[key + tag] - peer[key + tag]) < 0]
        print(f"  ours, {name}: body mean {r['body_mean_gy'] / peer['body_mean_gy']:.4f} x pyRadPlan's, V25Gy "
              f"{r['body_v25_cc'] / peer['body_v25_cc']:.3f} x; target and Core as good or better"
              + (f" except {', '.join(worse)}" if worse else "") + f" ({'voxel centres' if tag else 'our evaluation'})")
    for name in ("protocol", "matched", "matched_vc"):
        r = result[name]
        print(f"  ours, {name}: {r['seconds']:.1f} s (optimization {r['optimize_s']:.1f} s; ratio to pyRadPlan's "
              f"IPOPT {r['ratio_to_peer_time']:.3f}), verdict {r['verdict']}; goals {r['goals']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
