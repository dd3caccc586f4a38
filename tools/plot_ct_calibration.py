"""Draw the default CT calibration (docs/images/ct_calibration.png) and print its reference tissues.

    python3 tools/plot_ct_calibration.py [--out docs/images/ct_calibration.png] [--table]

The curves are computed by reirrad_opt.dose.stoichiometric at import (nothing here is fitted or
tuned): the figure shows them with the ICRP 110 tissues they were built from, the ICRU 44 and
ICRP 23 tissues the tests check them against (tests/test_ct_calibration_physics.py), and, dashed,
the three-point curve the project used before (air, water, cortical bone at 1500 HU). ``--table``
prints every reference tissue: CT number, RED, SPR and how far the curve reads from it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reirrad_opt.dose.hu_tables import RED_CURVE, SPR_CURVE  # noqa: E402
from reirrad_opt.dose.stoichiometric import default_segments, generic_scanner, reference_points  # noqa: E402

PREVIOUS = {"hu": (-1000.0, 0.0, 1500.0, 3071.0), "red": (0.001, 1.0, 1.781, 2.599), "spr": (0.001, 1.0, 1.7, 2.433)}
GROUP_STYLE = {"air": ("k", "o"), "reference": ("k", "s"), "lung": ("tab:blue", "o"), "adipose": ("tab:orange", "o"),
               "soft": ("tab:green", "o"), "bone": ("tab:red", "o")}


def table() -> str:
    scanner = generic_scanner()
    lines = [f"generic scanner: k1 = {scanner.k1:.4g}, k2 = {scanner.k2:.4g} ({scanner.name})",
             f"{'tissue':<58} {'group':<9} {'HU':>7} {'RED':>7} {'SPR':>7} {'I eV':>6} {'curve SPR':>10} {'diff':>7}"]
    for p in reference_points():
        read = float(SPR_CURVE(np.array([max(p.hu, -1024.0)]))[0])
        lines.append(f"{p.name[:58]:<58} {p.group:<9} {p.hu:7.1f} {p.red:7.4f} {p.spr:7.4f} {p.i_ev:6.1f} "
                     f"{read:10.4f} {100 * (read / p.spr - 1):+6.2f}%")
    for key in ("spr", "red"):
        lines.append(f"{key.upper()} segments:")
        lines += [f"  {s.name:<32} {s.hu_from:8.1f} .. {s.hu_to:7.1f} HU: {s.values[0]:.4f} .. {s.values[1]:.4f}"
                  for s in default_segments(key)]
    return "\n".join(lines)


def plot(out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(ROOT / "tests"))
    import test_ct_calibration_physics as checks
    from reirrad_opt.dose.ct_reference_data import Material

    pts = reference_points()
    checked = []
    for name, (rho, w) in checks.TISSUES.items():
        hu = generic_scanner().hu(Material(name, rho, w, "reference", "test"))
        checked.append((name, hu, checks.bethe_spr(rho, w, 100.0),
                        rho * checks.electron_density_per_gram(w) / checks.electron_density_per_gram(checks.WATER[1])))
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    hu = np.linspace(-1024, 3071, 2000)
    for ax, (lo, hi), key, curve in ((axes[0], (-1024, 3071), "spr", SPR_CURVE), (axes[1], (-1024, 3071), "red", RED_CURVE),
                                     (axes[2], (-200, 400), "spr", SPR_CURVE)):
        sel = (hu >= lo) & (hu <= hi)
        ax.plot(hu[sel], curve(hu[sel]), "k-", lw=1.3, label="default (stoichiometric, generic scanner)")
        ax.plot(PREVIOUS["hu"], PREVIOUS[key], "k--", lw=0.9, label="previous 3-point curve")
        for group, (colour, marker) in GROUP_STYLE.items():
            g = [p for p in pts if p.group == group and lo <= p.hu <= hi]
            if g:
                ax.plot([p.hu for p in g], [getattr(p, key) for p in g], marker, color=colour, ms=4, ls="none",
                        label=f"ICRP 110 {group}" if group not in ("air", "reference") else group)
        c = [(h, s if key == "spr" else r) for _, h, s, r in checked if lo <= h <= hi]
        ax.plot([x for x, _ in c], [y for _, y in c], "D", mfc="none", mec="m", ms=7, ls="none",
                label="test tissues (ICRU 44, ICRP 23)")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("CT number (HU)")
        ax.set_ylabel("stopping-power ratio to water" if key == "spr" else "electron density relative to water")
        ax.grid(alpha=0.3)
    axes[2].set_ylim(0.85, 1.25)
    axes[2].set_title("SPR, -200 to 400 HU")
    axes[0].set_title("SPR (protons)")
    axes[1].set_title("RED (photons)")
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Default CT calibration: Schneider's stoichiometric method, ICRP 110 tissues, a generic scanner "
                 "(70 keV, fitted to NIST attenuation), Bethe SPR at 100 MeV. A clinic supplies its own "
                 "(--ct-calibration).", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "ct_calibration.png")
    ap.add_argument("--table", action="store_true", help="print the reference tissues and segments")
    args = ap.parse_args(argv)
    if args.table:
        print(table())
    plot(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
