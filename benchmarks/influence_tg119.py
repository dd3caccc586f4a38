"""Dose-influence benchmark on the CORT TG-119 phantom (not part of the test run).

Setups (each in a fresh child process, so its peak memory is its own):

* ``photon_9b_5mm``: 9 equispaced photon beams (0, 40, ..., 320 deg), 5 mm bixels, 5 mm grid;
* ``photon_9b_3mm``: the same on a 3 mm grid;
* ``particle_3f_5mm``: 3 proton fields (0, 120, 240 deg), 5 mm spots, 5 mm grid.

The CT and structures are resampled from the phantom's 3 x 3 x 2.5 mm grid to the dose grid
before timing. ``seconds`` is the wall time of ``compute_influence`` (no cache), ``cpu_seconds``
its CPU time (the steadier figure on a shared machine); ``setup_seconds`` is the time of building
the beams/fields; ``peak_mb`` the child's peak resident memory (whole process).

Reference: pyRadPlan 0.5.0 on this kind of 2-core machine, same setups (dose-influence time,
non-zeros, peak memory): photons 5 mm 18.7 s, 37.6 M, 1.5 GB; photons 3 mm 55.7 s, 173 M,
4.7 GB; protons 5 mm 10.5 s (6.3 s without LET), 18.8 M, 1.3 GB. If pyRadPlan can be imported
(by this interpreter, or by the one named with ``--pyradplan-python``, e.g. a separate virtual
environment), it is measured on the same setups in the same run (its bundled copy of TG119.mat,
its default engines: SVD pencil beam for photons, Hong pencil beam with LET for protons) and
the ratios are computed against that measurement instead of the table.

Usage: ``python benchmarks/influence_tg119.py [--json] [--setup NAME ...] [--mat PATH]
[--pyradplan-python PATH]``
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PYRADPLAN_TABLE = {
    "photon_9b_5mm": {"seconds": 18.7, "nnz": 37.6e6, "peak_mb": 1.5 * 1024},
    "photon_9b_3mm": {"seconds": 55.7, "nnz": 173e6, "peak_mb": 4.7 * 1024},
    "particle_3f_5mm": {"seconds": 10.5, "nnz": 18.8e6, "peak_mb": 1.3 * 1024},
}
SETUPS = {
    "photon_9b_5mm": dict(modality="photon", spacing=5.0, angles=[40.0 * k for k in range(9)]),
    "photon_9b_3mm": dict(modality="photon", spacing=3.0, angles=[40.0 * k for k in range(9)]),
    "particle_3f_5mm": dict(modality="proton", spacing=5.0, angles=[0.0, 120.0, 240.0]),
}


def run_setup(name: str, mat: str | None) -> dict:
    """Measure one setup in this process."""
    from benchmarks.tg119 import load_tg119, resample_case  # noqa: PLC0415 (only in the worker)
    from reirrad_opt.dose import compute_influence, particle_fields, photon_beams

    cfg = SETUPS[name]
    case = resample_case(load_tg119(mat), cfg["spacing"])
    ptv = case.structures["PTV"].mask
    t0 = time.perf_counter()
    if cfg["modality"] == "photon":
        beams = photon_beams(case.grid, ptv, gantry_angles_deg=cfg["angles"], bixel_mm=5.0)
    else:
        beams = particle_fields(case.grid, ptv, case.ct_hu, gantry_angles_deg=cfg["angles"], spot_spacing_mm=5.0)
    t1 = time.perf_counter()
    c1 = time.process_time()
    inf = compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=ptv, progress=lambda m: None)
    c2 = time.process_time()
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"seconds": round(t2 - t1, 2), "cpu_seconds": round(c2 - c1, 2), "setup_seconds": round(t1 - t0, 2),
            "peak_mb": round(peak_mb, 1), "shape": list(inf.matrix.shape), "nnz": int(inf.matrix.nnz),
            "columns": int(inf.n_columns), "grid_mm": cfg["spacing"]}


def run_pyradplan(name: str) -> dict:
    """Measure one setup with pyRadPlan in this process (imports only pyRadPlan)."""
    import pyRadPlan
    from pyRadPlan import IonPlan, PhotonPlan, calc_dose_influence, generate_stf, load_tg119

    cfg = SETUPS[name]
    ct, cst = load_tg119()
    angles = [float(a) for a in cfg["angles"]]
    res = {"x": cfg["spacing"], "y": cfg["spacing"], "z": cfg["spacing"]}
    if cfg["modality"] == "photon":
        pln = PhotonPlan()
    else:
        pln = IonPlan(radiation_mode="protons", machine="Generic")
    pln.prop_stf = {"gantry_angles": angles, "couch_angles": [0.0] * len(angles), "bixel_width": 5.0}
    pln.prop_dose_calc = {"dose_grid": {"resolution": res}}
    t0 = time.perf_counter()
    stf = generate_stf(ct, cst, pln)
    t1 = time.perf_counter()
    c1 = time.process_time()
    dij = calc_dose_influence(ct, cst, stf, pln)
    c2 = time.process_time()
    t2 = time.perf_counter()
    m = dij.physical_dose.flat[0]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"seconds": round(t2 - t1, 2), "cpu_seconds": round(c2 - c1, 2), "setup_seconds": round(t1 - t0, 2),
            "peak_mb": round(peak_mb, 1), "shape": list(m.shape), "nnz": int(m.nnz),
            "version": getattr(pyRadPlan, "__version__", "?")}


def _child(name: str, mat: str | None, python: str | None = None, pyradplan: bool = False) -> dict:
    if pyradplan:
        cmd = [python or sys.executable, __file__, "--pyradplan-worker", name]
    else:
        cmd = [sys.executable, __file__, "--worker", name] + (["--mat", mat] if mat else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"setup {name} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _pyradplan_python(arg: str | None) -> str | None:
    """The interpreter that can import pyRadPlan, or None."""
    for python in ([arg] if arg else []) + [sys.executable]:
        ok = subprocess.run([python, "-c", "import pyRadPlan"], capture_output=True, check=False).returncode == 0
        if ok:
            return python
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object keyed by setup name")
    ap.add_argument("--setup", action="append", choices=sorted(SETUPS), help="run only these setups")
    ap.add_argument("--mat", help="path to TG119.mat (default: $REIRRAD_REALDATA/cort_tg119_matrad/TG119.mat)")
    ap.add_argument("--pyradplan-python", help="a Python interpreter with pyRadPlan installed (optional)")
    ap.add_argument("--no-pyradplan", action="store_true", help="compare with the table only")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--pyradplan-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_setup(args.worker, args.mat)))
        return 0
    if args.pyradplan_worker:
        print(json.dumps(run_pyradplan(args.pyradplan_worker)))
        return 0
    prp_python = None if args.no_pyradplan else _pyradplan_python(args.pyradplan_python)
    results = {}
    for name in args.setup or list(SETUPS):
        r = _child(name, args.mat)
        ref = dict(PYRADPLAN_TABLE[name], source="table")
        if prp_python is not None:
            try:
                ref = dict(_child(name, None, prp_python, pyradplan=True), source="measured")
            except RuntimeError as exc:
                print(f"pyRadPlan measurement failed, using the table: {exc}", file=sys.stderr)
        r["pyradplan"] = ref
        r["time_ratio_vs_pyradplan"] = round(r["seconds"] / ref["seconds"], 3)
        if "cpu_seconds" in ref:
            r["cpu_ratio_vs_pyradplan"] = round(r["cpu_seconds"] / ref["cpu_seconds"], 3)
        r["memory_ratio_vs_pyradplan"] = round(r["peak_mb"] / ref["peak_mb"], 3)
        results[name] = r
        if not args.json:
            cpu = f", cpu x{r['cpu_ratio_vs_pyradplan']:.3f}" if "cpu_ratio_vs_pyradplan" in r else ""
            print(f"{name:16s} {r['seconds']:7.2f} s (cpu {r['cpu_seconds']:.2f} s, beams {r['setup_seconds']:.2f} s)  "
                  f"peak {r['peak_mb']:6.0f} MB  shape {tuple(r['shape'])}  nnz {r['nnz'] / 1e6:6.1f} M  "
                  f"| pyRadPlan ({ref['source']}): {ref['seconds']:.1f} s, {ref['peak_mb']:.0f} MB, "
                  f"nnz {ref['nnz'] / 1e6:.1f} M -> time x{r['time_ratio_vs_pyradplan']:.3f}{cpu}, "
                  f"memory x{r['memory_ratio_vs_pyradplan']:.3f}", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
