"""reirrad-opt phantom: write a built-in phantom as a case folder.

  reirrad-opt phantom npc --out DIR [--resolution-mm 4] [--interval-months 24]

writes DIR/case.json, DIR/case.npz and DIR/case.png (axial, coronal and sagittal slices through
the rGTV with structure outlines and the prior course's dose). The folder appears only when
everything was written.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import InputError
from ._args import MAX_INTERVAL_MONTHS, interval_months, options_named, positive_float
from ._help import plain_description
from ._output import add_output_arguments, prepare

# one default for 'phantom' and 'plan/compare --phantom', so both make the same case
PHANTOM_RESOLUTION_MM = 4.0
# make_npc_phantom's keywords -> the options that set them ('phantom', and 'plan/compare --phantom' for the
# first two): its ValueError then names the option
PHANTOM_OPTIONS = {"resolution_mm": "--resolution-mm", "interval_months": "--interval-months",
                   "rgtv_radius_mm": "--rgtv-radius-mm", "rgtv_gap_to_brainstem_mm": "--rgtv-gap-mm",
                   "oar_curtail_mm": "--oar-curtail-mm", "prior_levels_gy": "--prior-level"}


def _parse_levels(items: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--prior-level {item!r}: expected STRUCTURE=GY, e.g. Brainstem=50")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--prior-level {item!r}: {value!r} is not a dose in Gy") from None
    return out


def register(subparsers) -> None:
    p = subparsers.add_parser("phantom", help="write a built-in phantom (recurrent NPC head) as a case folder",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["npc"], help="npc: recurrent nasopharyngeal carcinoma head with a prior course")
    add_output_arguments(p, "case folder")
    p.add_argument("--resolution-mm", type=positive_float, default=PHANTOM_RESOLUTION_MM,
                   help=f"isotropic voxel size in mm, 1 to 5 (default {PHANTOM_RESOLUTION_MM:g}, as for "
                        f"'plan --phantom')")
    p.add_argument("--interval-months", type=interval_months, default=24.0,
                   help=f"months since the end of the prior course, 0 to {MAX_INTERVAL_MONTHS:g} (default 24)")
    p.add_argument("--rgtv-radius-mm", type=float, default=15.0,
                   help="radius of the recurrent GTV in mm, 3 to 30 (default 15)")
    p.add_argument("--rgtv-gap-mm", type=float, default=4.0,
                   help="gap between the rGTV and the brainstem in mm, 0.5 to 30 (default 4)")
    p.add_argument("--oar-curtail-mm", type=float, default=0.0,
                   help="rCTV kept this far from brainstem, cord, chiasm and optic nerves (mm, 0 to 20, default 0)")
    p.add_argument("--prior-level", action="append", metavar="STRUCTURE=GY",
                   help="prior-course D0.03cc of a spared organ, e.g. Brainstem=50 (repeatable)")
    p.add_argument("--no-figure", action="store_true", help="do not draw case.png")
    p.set_defaults(func=run)


def run(args) -> int:
    from phantoms.npc import make_npc_phantom
    from phantoms.prior_course import d_hottest_cc

    from ..case import save_case

    target = prepare(args, "phantom", inputs=[])
    with options_named(PHANTOM_OPTIONS):
        case = make_npc_phantom(
            args.resolution_mm, interval_months=args.interval_months, rgtv_radius_mm=args.rgtv_radius_mm,
            rgtv_gap_to_brainstem_mm=args.rgtv_gap_mm, oar_curtail_mm=args.oar_curtail_mm,
            prior_levels_gy=_parse_levels(args.prior_level) or None)

    def extra(folder: Path) -> None:
        if not args.no_figure:
            from ..report.case_figure import render_case_figure

            render_case_figure(case, folder / "case.png")

    out = save_case(case, target, extra=extra)
    g = case.grid
    print(f"wrote {out}  grid {g.shape[2]} x {g.shape[1]} x {g.shape[0]} (x, y, z) at {g.spacing_mm[0]:g} mm; "
          f"prior course {case.prior.description}; interval {case.prior.interval_months:g} months")
    print(f"{'structure':<17} {'role':<9} {'volume cc':>10} {'prior D0.03cc Gy':>17}")
    for s in case.structures.values():
        print(f"{s.name:<17} {s.role:<9} {s.volume_cc(g):>10.2f} "
              f"{d_hottest_cc(case.prior_dose_gy, s.mask, g, 0.03):>17.1f}")
    return 0
