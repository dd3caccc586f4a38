"""``reirrad-opt plan``: the main job. Influence, lexicographic optimization, independent
evaluation, and the plan folder (plus DICOM RTDOSE/RTSTRUCT when the case came from DICOM)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli import EXIT_INCOMPLETE, EXIT_OK, EXIT_PRIORITY1_FAIL, InputError
from ._args import (MAX_BEAMS, MAX_INTERVAL_MONTHS, SPACING_MM_RANGE, GantryAngles, beam_count, gantry_angle,
                    interval_months, options_named, positive_float, spacing_mm)
from ._help import OPTIC_NERVE_RULE_HELP, OPTIC_NERVE_RULES, plain_description
from ._progress import add_progress_arguments, progress_from_args
from .phantom import PHANTOM_OPTIONS, PHANTOM_RESOLUTION_MM
from ._output import add_output_arguments, prepare
from ._influence import add_influence_argument, influence_from_args, matrad_result_writer
from ._beam_model import add_beam_model_argument, beam_model_from_args
from ._robust import (add_robust_arguments, add_robust_optimization_argument, robust_from_args,
                      robust_optimization_from_args)


def parse_recovery_spec(spec: str | None):
    """``none`` | ``constant:F`` | ``table:M1=F1,M2=F2,...`` (months=fraction) -> RecoveryModel."""
    from ..radiobiology import RecoveryModel

    if spec is None:
        return None
    spec = spec.strip()
    if spec == "none":
        return RecoveryModel.none()
    kind, _, rest = spec.partition(":")
    try:
        if kind == "constant":
            return RecoveryModel("constant", fraction=float(rest))
        if kind == "table":
            pairs = [p.split("=") for p in rest.split(",") if p]
            return RecoveryModel("table", table=tuple((float(m), float(f)) for m, f in pairs))
    except ValueError as exc:
        raise InputError(f"--recovery {spec!r}: {exc}") from None
    raise InputError(f"--recovery {spec!r}: expected 'none', 'constant:F' (0-1) or 'table:M=F,M=F,...' "
                     f"(months=fraction)")


def add_case_arguments(p: argparse.ArgumentParser) -> None:
    """--phantom / --case and the phantom's resolution (shared with 'compare')."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--phantom", choices=["npc"], help="plan on the built-in recurrent-NPC head phantom")
    src.add_argument("--case", type=Path, metavar="CASE_DIR", help="a case folder (phantom, import-dicom, ...)")
    p.add_argument("--resolution-mm", type=positive_float, default=None, metavar="MM",
                   help=f"--phantom only: voxel size in mm, 1 to 5 (default {PHANTOM_RESOLUTION_MM:g}, as for "
                        f"'reirrad-opt phantom')")
    p.add_argument("--interval-months", type=interval_months, default=None, metavar="MONTHS",
                   help=f"--phantom only: months since the prior course, 0 to {MAX_INTERVAL_MONTHS:g} (default 24); "
                        f"a case folder records its own")
    p.add_argument("--absent", nargs="+", default=None, metavar="STRUCTURE",
                   help="protocol structures that are not contoured because they lie outside the field (e.g. "
                        "OpticChiasm OpticNrv_L OpticNrv_R): their lines read 'absent' instead of leaving the plan "
                        "incomplete (exit 4); recorded in plan.json absent_structures; an error if the case "
                        "contours them")


def add_ct_calibration_argument(p: argparse.ArgumentParser) -> None:
    """--ct-calibration FILE (shared with 'compare')."""
    p.add_argument("--ct-calibration", type=Path, default=None, metavar="FILE",
                   help="the scanner's CT calibration: a CSV with a header HU,SPR[,RED] (CT number, proton "
                        "stopping-power ratio, relative electron density for photons) covering -1000 to 3000 HU; "
                        "default a stoichiometric calibration of a generic scanner (docs/dose.md)")


def add_spacing_arguments(p: argparse.ArgumentParser) -> None:
    """--bixel-mm and --spot-spacing-mm, within the range a study accepts (shared with 'compare')."""
    lo, hi = SPACING_MM_RANGE
    p.add_argument("--bixel-mm", type=spacing_mm, default=5.0, metavar="MM",
                   help=f"photon beamlet size at the isocentre in mm, {lo:g} to {hi:g} (default 5)")
    p.add_argument("--spot-spacing-mm", type=spacing_mm, default=5.0, metavar="MM",
                   help=f"particle spot spacing in mm, {lo:g} to {hi:g} (default 5)")


def add_cache_dir_argument(p: argparse.ArgumentParser) -> None:
    """--cache-dir (shared with 'compare')."""
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help="influence-matrix cache folder (created if missing)")


def check_cache_dir(args) -> None:
    """Refuse a --cache-dir that is (or lies inside) a file before any work: the cache is written only
    after the influence matrix was computed."""
    if args.cache_dir is None:
        return
    path = Path(args.cache_dir)
    for part in (path, *path.parents):
        if part.exists():
            if not part.is_dir():
                what = "is a file" if part == path else f"lies inside {part}, which is a file"
                raise InputError(f"--cache-dir {path}: {what}; expected a folder (created if missing) for the "
                                 f"influence-matrix cache")
            return


# robust-scenario keywords -> the options that set them (with their units)
ROBUST_OPTIONS = {"setup_mm": "--setup-error-mm (mm)", "range_pct": "--range-error-pct (% of the range)",
                  "range_mm": "--range-error-mm (mm of water)"}


def check_robust_options(args) -> None:
    """The robust-scenario options within their ranges whether or not the plan is evaluated robustly
    (shared with 'compare'); the error names the option."""
    from ._robust import _scenario_settings

    with options_named(ROBUST_OPTIONS):
        _scenario_settings(args)


def ct_calibration_from_args(args):
    """The CTCalibration of ``--ct-calibration`` (None: the default)."""
    from ..dose.ct_calibration import load_ct_calibration

    return None if args.ct_calibration is None else load_ct_calibration(args.ct_calibration)


def absent_from_args(args) -> dict[str, str] | None:
    """``--absent`` as ``plan(absent=...)`` takes it: structure name -> how it was declared."""
    from ..absent import DECLARED_BY_CLI

    return None if not args.absent else {name: DECLARED_BY_CLI for name in args.absent}


def exit_code(verdicts) -> int:
    """The exit code of plans with these overall verdicts: 3 if any is 'fail', else 4 if any is
    'incomplete', else 0."""
    verdicts = list(verdicts)
    if "fail" in verdicts:
        return EXIT_PRIORITY1_FAIL
    if "incomplete" in verdicts:
        return EXIT_INCOMPLETE
    return EXIT_OK


def load_case_from_args(args):
    from ..case import load_case

    if args.phantom:
        from phantoms.npc import make_npc_phantom

        kwargs = {} if args.interval_months is None else {"interval_months": args.interval_months}
        with options_named(PHANTOM_OPTIONS):
            return make_npc_phantom(PHANTOM_RESOLUTION_MM if args.resolution_mm is None else args.resolution_mm,
                                    **kwargs)
    for option, value in (("--resolution-mm", args.resolution_mm), ("--interval-months", args.interval_months)):
        if value is not None:
            raise InputError(f"{option} applies to --phantom only: --case {args.case} keeps the grid and interval it "
                             f"was written with (set them when the case is made: 'reirrad-opt phantom', or "
                             f"'import-dicom --voxel-mm / --interval-months')")
    if not args.case.is_dir():
        raise FileNotFoundError(f"--case {args.case}: not a folder")
    return load_case(args.case)


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="optimize and evaluate a re-irradiation plan",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_case_arguments(p)
    p.add_argument("--protocol", type=Path, default=None, help="protocol TOML (default: NPC consensus 2021)")
    p.add_argument("--modality", choices=["photon", "particle", "proton", "carbon"], default="photon",
                   help="photon (IMRT pencil beams, default), proton or carbon (scanned pencil beams; particle = "
                        "proton)")
    beams = p.add_mutually_exclusive_group()
    beams.add_argument("--beams", type=beam_count, default=None, metavar="N",
                       help=f"number of equispaced beams, 1 to {MAX_BEAMS} (default 9 photon beams, 3 particle "
                            f"fields)")
    beams.add_argument("--gantry-angles", type=gantry_angle, nargs="+", action=GantryAngles, default=None,
                       metavar="DEG", help=f"gantry angles of the beams in degrees, 0 to below 360 (IEC 61217), each "
                                           f"once, at most {MAX_BEAMS} (instead of --beams)")
    p.add_argument("--fractionation", default=None, help="protocol fractionation, e.g. bid-1.2 or qd-2.0")
    p.add_argument("--recovery", default=None, help="none | constant:F | table:M=F,M=F,... (overrides protocol)")
    p.add_argument("--optic-nerve-rule", choices=OPTIC_NERVE_RULES, default=None, help=OPTIC_NERVE_RULE_HELP)
    add_spacing_arguments(p)
    p.add_argument("--engine", choices=["lp", "first-order", "cvxpy"], default=None,
                   help="how the stages are solved: first-order (L-BFGS-B with an augmented Lagrangian), lp "
                        "(the exact LP optimum per stage, slower on fine grids) or cvxpy (the exact reference, "
                        "small problems); default the settings' engine, else first-order")
    p.add_argument("--settings", type=Path, default=None, metavar="FILE",
                   help="planning settings: a TOML file with a [settings] table (engine, truncation, "
                        "hold_dvh_points, target_homogeneity_weight, target_floor_pct_rx, and a table named after "
                        "the engine with its constants; see docs/optimization.md); --engine overrides its engine")
    p.add_argument("--rbe", type=float, default=None, metavar="X",
                   help="constant RBE of a particle plan, 0.5-5 (its dose is optimized and judged in Gy(RBE) = X x "
                        "physical); default the protocol's rbe_proton (1.1) for protons; required for carbon; "
                        "an error for photons")
    add_ct_calibration_argument(p)
    add_beam_model_argument(p)
    add_cache_dir_argument(p)
    add_influence_argument(p)
    p.add_argument("--no-dicom", action="store_true", help="do not write DICOM even if the case came from DICOM")
    add_robust_arguments(p, default_text="on for particle plans, off for photons")
    add_robust_optimization_argument(p)
    add_progress_arguments(p)
    add_output_arguments(p, "plan folder")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..planning import plan
    from ..planning_settings import load_settings
    from ..report.plan_folder import write_plan_folder

    check_robust_options(args)
    check_cache_dir(args)
    progress = progress_from_args(args)
    calibration = ct_calibration_from_args(args)
    case = load_case_from_args(args)
    settings = load_settings(args.settings) if args.settings else None
    beam_model = beam_model_from_args(args)
    target = prepare(args, "plan", inputs=[args.case, args.protocol, args.settings, args.cache_dir, args.influence,
                                           args.ct_calibration, args.beam_model, case.source.get("reference_dir")])
    influence = influence_from_args(args, case)
    progress(f"case {case.name}: grid {case.grid.shape} at {case.grid.spacing_mm} mm")
    result = plan(case, args.protocol, modality=args.modality, gantry_angles_deg=args.gantry_angles,
                  n_beams=args.beams, fractionation=args.fractionation, recovery=parse_recovery_spec(args.recovery),
                  optic_nerve_rule=args.optic_nerve_rule, bixel_mm=args.bixel_mm,
                  spot_spacing_mm=args.spot_spacing_mm, cache_dir=args.cache_dir, engine=args.engine,
                  rbe=args.rbe, absent=absent_from_args(args), influence=influence, settings=settings,
                  robust=robust_from_args(args, default=args.modality != "photon"),
                  robust_optimization=robust_optimization_from_args(args), ct_calibration=calibration,
                  beam_model=beam_model, progress=progress)
    extra = matrad_result_writer(result)    # resultGUI.mat for a case from matRad, else None
    if case.source.get("kind") == "dicom" and not args.no_dicom:
        def dicom_export(folder: Path) -> None:
            from tps_adapters.dicom import export_plan

            export_plan(folder, case.source["reference_dir"], folder / "dicom")
        extra = dicom_export
    write_plan_folder(result, target, extra=extra)
    print(summary_text(result, args.out))
    return exit_code([result.verdict])


def robust_summary_lines(robust) -> list[str]:
    """The robust evaluation on the terminal: the worst case of every priority-1 line and the overall
    answer, loudly when priority 1 fails in some scenario."""
    n = len(robust.scenarios) - 1
    lines = [f"robust evaluation ({n} scenarios: setup {robust.settings.setup_mm:g} mm"
             + (f", range {robust.settings.range_pct:g} % + {robust.settings.range_mm:g} mm"
                if any(not s.range_shift.is_zero for s in robust.scenarios) else "") + "):"]
    for r in robust.rows:
        if r.priority != 1 or r.worst is None:
            continue
        lines.append(f"  P1 {r.structure:<16} {r.metric:<8} nominal {r.nominal:7.2f}, worst {r.worst:7.2f} {r.unit:<7} "
                     f"({r.worst_scenario}): {r.verdict_worst}")
    if robust.priority1_holds:
        lines.append("  priority 1 holds in every scenario")
    else:
        lines.append("!! PRIORITY 1 DOES NOT HOLD IN EVERY SCENARIO: see the worst cases above (the verdict above is "
                     "the nominal plan's). !!")
    return lines


def summary_text(result, out: Path) -> str:
    """The terminal summary: one line per protocol line (value, limits and margin with their units,
    verdict), the verdict detail, structures declared absent, the diagnosis, and a loud line for a
    plan that fails priority 1 or is incomplete."""
    from ..evaluate.rule import missing_text

    ev = result.evaluation
    lines = [f"plan written to {out}  (verdict: {result.verdict.upper()})"]
    if result.dose_unit != "Gy":
        lines.append(f"  dose: RBE-weighted, {result.dose_unit} = {result.rbe:g} x physical dose (constant RBE, "
                     f"{result.rbe_source})")
        lines.extend(f"  !! {n}" for n in result.notes if n.startswith("WARNING: a CONSTANT RBE"))
    for r in ev.rows:
        head = f"  P{r.priority} {r.structure:<16} {r.metric:<8}"
        if r.verdict == "not evaluated":
            note = r.note.split(": ", 1)[-1] if r.note.startswith(("PRIORITY 1 LINE NOT EVALUATED: ",
                                                                  "not evaluated: ")) else r.note
            lines.append(f"{head} NOT EVALUATED: {note}")
            continue
        if r.verdict == "absent":
            lines.append(f"{head} absent: {r.note}")
            continue
        op = "<=" if r.sense == "max" else ">="
        lim = (f"desirable {_limit(r.desirable, op, r.unit)}, "
               + ("no acceptable limit" if r.acceptable is None else f"acceptable {_limit(r.acceptable, op, r.unit)}"))
        kind = "cum EQD2" if r.cumulative else "new"
        margin = "" if r.margin is None else f", margin {r.margin:+.2f} {r.unit}"
        lines.append(f"{head} {kind:<8} {r.value:7.2f} {r.unit:<7} ({lim})  {r.verdict}{margin}")
    lines.append(f"verdict: {ev.summary}")
    if ev.absent:
        lines.append("declared absent: " + ", ".join(f"{n} ({how})" for n, how in ev.absent.items()))
    if result.optimization.diagnosis:
        lines.append("diagnosis:")
        lines.extend(f"  {d}" for d in result.optimization.diagnosis)
    if result.robust is not None:
        lines.extend(robust_summary_lines(result.robust))
    if result.priority1_failed:
        lines.append("!! PRIORITY-1 LIMIT NOT MET: see the evaluation above; this plan must not be used as is. !!")
    missing = [r for r in ev.rows if r.priority == 1 and r.verdict == "not evaluated"]
    if missing:
        many = len({r.structure for r in missing}) > 1
        lines.append(f"!! INCOMPLETE: {missing_text(missing)}; declare {'them' if many else 'it'} with --absent if "
                     f"{'they are' if many else 'it is'} outside the field !!")
    t = result.timing_s
    robust = f", robust evaluation {t['robust_evaluation']:.1f} s" if "robust_evaluation" in t else ""
    lines.append(f"time: influence {t['influence']:.1f} s, optimize {t['optimize']:.1f} s, "
                 f"evaluate {t['evaluate']:.1f} s{robust}, total {t['total']:.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)


def _limit(value, op: str, unit: str) -> str:
    """A limit for the terminal summary: '<= 70.20 Gy', or 'none' when the line has none."""
    return "none" if value is None else f"{op} {float(value):.2f} {unit}"
