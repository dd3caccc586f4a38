"""``reirrad-opt compare``: IMRT versus particle comparative planning of one case.

Plans the case with photons (IMRT) and with protons (or carbon ions) under the same protocol
(same priorities, slips, fractionation and recovery) and writes, atomically, a folder with
comparison.json, comparison.png (overlaid cumulative-EQD2 DVHs), falloff.png, slices.png,
comparison.html and one plan folder per modality. Exit code 3 when either plan fails a
priority-1 limit, else 4 when either is incomplete (a priority-1 organ not contoured; declare it
with --absent if it lies outside the field); outputs still written."""
from __future__ import annotations

import argparse
from pathlib import Path

from ._args import MAX_BEAMS, GantryAngles, beam_count, fraction, gantry_angle, non_negative_float, positive_float
from ._help import OPTIC_NERVE_RULE_HELP, OPTIC_NERVE_RULES, plain_description
from ._progress import add_progress_arguments, progress_from_args
from ._output import add_output_arguments, prepare
from ._beam_model import add_beam_model_argument, beam_model_from_args
from ._robust import add_robust_arguments, robust_from_args
from .plan import (absent_from_args, add_cache_dir_argument, add_case_arguments, add_ct_calibration_argument,
                   add_spacing_arguments, check_cache_dir, check_robust_options, ct_calibration_from_args, exit_code,
                   load_case_from_args, parse_recovery_spec)


def register(subparsers) -> None:
    p = subparsers.add_parser("compare", help="IMRT versus particle plans of one case under one protocol",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_case_arguments(p)
    p.add_argument("--protocol", type=Path, default=None, help="protocol TOML (default: NPC consensus 2021)")
    photon = p.add_mutually_exclusive_group()
    photon.add_argument("--photon-beams", type=gantry_angle, nargs="+", action=GantryAngles, default=None,
                        metavar="DEG", help=f"IMRT gantry angles in degrees, 0 to below 360 (IEC 61217), each once, "
                                            f"at most {MAX_BEAMS} (default: 9 equispaced beams)")
    photon.add_argument("--photon-n-beams", type=beam_count, default=None, metavar="N",
                        help=f"N equispaced IMRT beams, 1 to {MAX_BEAMS}")
    p.add_argument("--particle-fields", type=gantry_angle, nargs="+", action=GantryAngles, default=None, metavar="DEG",
                   help=f"particle field gantry angles in degrees, 0 to below 360, each once, at most {MAX_BEAMS} "
                        f"(default: 90 270 180)")
    p.add_argument("--particle", choices=["proton", "carbon"], default="proton", help="particle (default proton)")
    p.add_argument("--rbe", type=float, default=None, metavar="X",
                   help="constant RBE of the particle plan, 0.5-5 (default the protocol's rbe_proton, 1.1, for "
                        "protons; required for carbon)")
    p.add_argument("--fractionation", default=None, help="protocol fractionation, e.g. bid-1.2 or qd-2.0")
    p.add_argument("--recovery", default=None, help="none | constant:F | table:M=F,M=F,... (overrides protocol)")
    p.add_argument("--optic-nerve-rule", choices=OPTIC_NERVE_RULES, default=None, help=OPTIC_NERVE_RULE_HELP)
    add_spacing_arguments(p)
    p.add_argument("--distal-margin-mm", type=positive_float, default=5.0,
                   help="distal region checked beyond each spot's R80 (mm water-equivalent, > 0, default 5)")
    p.add_argument("--range-error-pct", type=non_negative_float, default=3.5,
                   help="range error of the distal check and of the robust evaluation's range scenarios, 0 to 20 "
                        "%% (default 3.5 %%)")
    p.add_argument("--min-spot-weight", type=fraction, default=0.05, metavar="FRACTION",
                   help="a spot counts for the distal check from this fraction of its field's largest weight")
    add_ct_calibration_argument(p)
    add_beam_model_argument(p)
    add_cache_dir_argument(p)
    add_robust_arguments(p, default_text="on for both plans; photons take the setup scenarios only", range_pct=False)
    add_progress_arguments(p)
    add_output_arguments(p, "comparison folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..compare.folder import write_comparison_folder
    from ..compare.run import compare

    check_robust_options(args)
    check_cache_dir(args)
    if args.protocol is not None and not args.protocol.is_file():
        raise FileNotFoundError(f"--protocol {args.protocol}: file not found")
    progress = progress_from_args(args)
    calibration = ct_calibration_from_args(args)
    beam_model = beam_model_from_args(args)
    case = load_case_from_args(args)
    target = prepare(args, "compare", inputs=[args.case, args.protocol, args.cache_dir, args.ct_calibration,
                                              args.beam_model, case.source.get("reference_dir")])
    progress(f"case {case.name}: grid {case.grid.shape} at {case.grid.spacing_mm} mm")
    cmp = compare(case, args.protocol, photon_angles_deg=args.photon_beams, photon_n_beams=args.photon_n_beams,
                  particle_angles_deg=args.particle_fields, particle=args.particle, fractionation=args.fractionation,
                  recovery=parse_recovery_spec(args.recovery), optic_nerve_rule=args.optic_nerve_rule,
                  bixel_mm=args.bixel_mm, spot_spacing_mm=args.spot_spacing_mm, cache_dir=args.cache_dir,
                  distal_margin_mm=args.distal_margin_mm, range_error_pct=args.range_error_pct,
                  min_spot_weight_fraction=args.min_spot_weight, rbe=args.rbe,
                  absent=absent_from_args(args), robust=robust_from_args(args, default=True),
                  ct_calibration=calibration, beam_model=beam_model, progress=progress)
    write_comparison_folder(cmp, target)
    print(summary_text(cmp, args.out))
    return exit_code(p.verdict for p in cmp.plans.values())


def summary_text(cmp, out: Path) -> str:
    """The terminal summary: verdicts, the criteria table and the summary sentences."""
    mods = cmp.modalities
    lines = [f"comparison written to {out}"]
    lines += [f"  {m:<8} verdict {cmp.plans[m].verdict.upper()}" for m in mods]
    width = max(len(r["criterion"]) for r in cmp.summary_rows) if cmp.summary_rows else 20
    units = [r["unit"] or "ratio" for r in cmp.summary_rows]    # conformity index and R50 are ratios
    unit_width = max(map(len, units), default=4)
    lines.append(f"  {'criterion':<{width}}  " + "  ".join(f"{m:>9}" for m in mods)
                 + f"  {'unit':<{unit_width}}  better")
    for r, unit in zip(cmp.summary_rows, units):
        vals = "  ".join(f"{'-' if r['values'][m] is None else format(r['values'][m], '9.2f'):>9}" for m in mods)
        lines.append(f"  {r['criterion']:<{width}}  {vals}  {unit:<{unit_width}}  {r['winner'] or '='}")
    lines += [f"  {s}" for s in cmp.summary]
    for m in mods:
        robust = cmp.plans[m].robust
        if robust is not None:
            lines.append(f"  {m}: priority 1 " + ("holds in every scenario" if robust.priority1_holds else
                                                  "DOES NOT HOLD IN EVERY SCENARIO") +
                         f" ({len(robust.scenarios) - 1} scenarios; worst cases in comparison.html)")
    if cmp.priority1_failed:
        lines.append("!! A PRIORITY-1 LIMIT IS NOT MET by at least one plan: see comparison.html. !!")
    incomplete = [m for m in mods if cmp.plans[m].verdict == "incomplete"]
    if incomplete:
        missing = cmp.plans[incomplete[0]].evaluation.not_contoured
        lines.append(f"!! INCOMPLETE ({', '.join(incomplete)}): {', '.join(missing)} not contoured; declare them "
                     f"with --absent if they are outside the field !!")
    return "\n".join(lines)
