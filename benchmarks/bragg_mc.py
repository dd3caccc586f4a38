"""Proton depth doses of the engine against Monte Carlo (MCsquare) at 70-230 MeV: the figure of
docs/dose.md and its numbers.

Compares, per energy of the independent Monte Carlo reference (tests/data/proton_idd_mcsquare_ref.csv,
written by tools/mc_idd.py): the engine's kernel IDD (the Monte Carlo table interpolated in
range, generic beam model without energy spread) and, for comparison, Bortfeld's analytical
curve with the constants the engine used before (``bortfeld_idd``); 1-D gamma pass rates
(2 %/1 mm and 3 %/2 mm, global, each curve normalised to its own maximum, reference points
from the surface to the distal 10 % depth), R80 differences and the energy deposited per primary.

    python3 benchmarks/bragg_mc.py [--plot docs/images/bragg_mc.png] [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reirrad_opt.dose.particle import MEV_PER_G_TO_GY, PROTON, bortfeld_idd, spot_kernel  # noqa: E402
from tests.test_dose_bragg import gamma_pass_rate  # noqa: E402  (the tests' own gamma: one definition)
from reirrad_opt.dose.proton_idd import r80_of, read_idd_csv  # noqa: E402

REFERENCE = ROOT / "tests" / "data" / "proton_idd_mcsquare_ref.csv"


def engine_idd(energy: float) -> tuple[np.ndarray, np.ndarray]:
    k = spot_kernel(energy, "proton")
    z = k.step_mm * np.arange(k.idd.size)
    return z, k.idd.astype(np.float64) / (100.0 * MEV_PER_G_TO_GY * PROTON.particles_per_unit_weight)


def analytical_idd(energy: float) -> tuple[np.ndarray, np.ndarray]:
    z = np.arange(0.0, 400.0, 0.05)
    return z, bortfeld_idd(z, energy, PROTON)


def compare(energy: float, z_ref, d_ref, curve) -> dict:
    z, d = curve(energy)
    bin_mm = float(np.diff(z_ref).mean())
    peak = d_ref >= 0.5 * d_ref.max()
    return {"gamma_2pct_1mm": gamma_pass_rate(z_ref, d_ref, z, d, 0.02, 1.0),
            "gamma_3pct_2mm": gamma_pass_rate(z_ref, d_ref, z, d, 0.03, 2.0),
            "r80_minus_mc_mm": r80_of(z, d) - r80_of(z_ref, d_ref),
            "energy_ratio": float(np.trapezoid(d, z) / (d_ref.sum() * bin_mm)),
            "peak_ratio": float(d.max() / d_ref.max()),
            "max_abs_diff_in_peak_region_pct": float(100 * np.max(np.abs(np.interp(z_ref[peak], z, d) - d_ref[peak])
                                                                  / d_ref.max()))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--plot", type=Path, default=None, help="write the comparison figure (PNG)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    ref = read_idd_csv(REFERENCE)
    rows = {}
    for e in ref.energies_mev:
        z_ref, d_ref = ref.curve(e)
        rows[f"{e:g}"] = {"engine": compare(e, z_ref, d_ref, engine_idd),
                          "bortfeld_before": compare(e, z_ref, d_ref, analytical_idd),
                          "mc_r80_mm": r80_of(z_ref, d_ref), "mc_energy_mev": float(d_ref.sum() * 0.05)}
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print("energy  model             gamma 2%/1mm  3%/2mm  R80-MC (mm)  E ratio  peak ratio  max |diff| >50% (%)")
        for e, r in rows.items():
            for name in ("engine", "bortfeld_before"):
                c = r[name]
                print(f"{e:>6}  {name:<16}  {100 * c['gamma_2pct_1mm']:10.1f}  {100 * c['gamma_3pct_2mm']:6.1f}  "
                      f"{c['r80_minus_mc_mm']:+11.2f}  {c['energy_ratio']:7.4f}  {c['peak_ratio']:10.3f}  "
                      f"{c['max_abs_diff_in_peak_region_pct']:8.2f}")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 1, figsize=(9, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        for i, e in enumerate(ref.energies_mev):
            z_ref, d_ref = ref.curve(e)
            z, d = engine_idd(e)
            za, da = analytical_idd(e)
            col = f"C{i}"
            axes[0].plot(z_ref, d_ref, ".", ms=2.5, color=col, label=f"{e:g} MeV Monte Carlo (MCsquare)")
            axes[0].plot(z, d, "-", lw=1.0, color=col, label=f"{e:g} MeV engine")
            axes[0].plot(za[da > 0], da[da > 0], ":", lw=0.9, color=col)
            keep = d_ref > 0.02 * d_ref.max()
            diff = 100 * (np.interp(z_ref, z, d) - d_ref) / d_ref.max()
            axes[1].plot(z_ref[keep], diff[keep], "-", lw=0.8, color=col)
        axes[0].set_ylabel("IDD per proton (MeV cm$^2$/g)")
        axes[0].set_title("Proton depth doses in water: engine (lines), MCsquare (dots), "
                          "analytical model before (dotted)")
        axes[0].legend(fontsize=7, ncol=2)
        axes[1].set_ylabel("engine - MC (% of MC peak)")
        axes[1].set_xlabel("depth in water (mm)")
        axes[1].set_ylim(-4, 4)
        axes[1].axhline(0, color="k", lw=0.5)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
