"""``reirrad-opt tps-run EXCHANGE_DIR``: plan the case a TPS script exported into an exchange folder.

EXCHANGE_DIR holds request.json and dicom/ (CT, RTSTRUCT, prior RTDOSE, optional RTPLAN); the run
validates the request (every error names the key), imports, plans, evaluates, and writes
EXCHANGE_DIR/result/ in one step: plan.json, report.html, dose.npz, ..., dicom/ (new-course RTDOSE,
cumulative-EQD2 RTDOSE, RTSTRUCT with rCTV/PTV, the new-course cap map RD_new_course_cap.dcm),
tps_goals.json (the goals in the TPS's own ROI names and cGy) and status.json. A run that cannot
plan still writes result/status.json (state 'failed', the message, the request key). See
docs/tps-exchange.md.

Example::

    reirrad-opt tps-run /shared/reirrad/exchange/PAT01_20261206T1425
"""
from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from ..cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from ._help import plain_description
from ._progress import add_progress_arguments, progress_from_args

RESULT_DIR = "result"
GOALS_FILE = "tps_goals.json"
DECLARED_BY_REQUEST = "request.json absent"
EXIT_INTERNAL = 1


def register(subparsers) -> None:
    p = subparsers.add_parser("tps-run", help="plan a case handed over by a TPS script (exchange folder)",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("exchange_dir", type=Path, metavar="EXCHANGE_DIR",
                   help="the exchange folder: request.json and dicom/; the result goes to EXCHANGE_DIR/result")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous result/ of tps-run in the folder (kept until the new one is complete)")
    p.add_argument("--cache-dir", type=Path, default=None, help="influence-matrix cache folder")
    p.add_argument("--engine", choices=["lp", "first-order"], default=None,
                   help="stage solver (default: the protocol's option, else first-order)")
    add_progress_arguments(p)
    p.set_defaults(func=run)


def _plan_request(request, progress, cache_dir, engine):
    """Import and plan; returns (plan, imported case, import warnings)."""
    import copy

    from tps_adapters.exchange import import_case

    from ..planning import plan
    from ..protocol import load_protocol

    case, warned = import_case(request, progress=progress)
    imported = copy.copy(case)
    imported.structures = dict(case.structures)
    if request.synthetic_recurrence is not None:
        from tps_adapters.recurrence import place_recurrence

        r = request.synthetic_recurrence
        case = place_recurrence(case, r.near, r.radius_mm, r.target)
    protocol = load_protocol(request.protocol_argument(), optic_nerve_rule=request.optic_nerve_rule,
                             fractionation=request.fractionation)
    absent = {name: DECLARED_BY_REQUEST for name in request.absent} or None
    result = plan(case, protocol, modality=request.modality, gantry_angles_deg=request.gantry_angles_deg,
                  n_beams=request.n_beams, cache_dir=cache_dir, engine=engine, rbe=request.rbe, absent=absent,
                  progress=progress)
    return result, imported, warned


def _write_result(folder: Path, result, imported, request) -> tuple[str, ...]:
    """Everything of result/ but status.json, into ``folder``; returns the files written (relative)."""
    from tps_adapters.dicom import export_plan
    from tps_adapters.exchange import write_cap_rtdose, tps_roi_names

    from ..report.plan_folder import write_plan_contents
    from ..tps.caps import cap_map
    from ..tps.goals import tps_goals
    from ..protocol import OPTION_DEFAULTS

    tiers = dict(result.optimization.tier_by_goal) if request.limit_level == "planned" else {}
    default = "desirable" if request.limit_level == "planned" else request.limit_level
    caps = cap_map(result.case, result.protocol, result.fractionation.n_fractions, tiers=tiers, default_tier=default,
                   rbe=result.rbe, unit=result.dose_unit)
    content = write_plan_contents(result, folder)
    export_plan(folder, request.dicom_dir, folder / "dicom")
    ceiling_pct = float(result.protocol.options.get("max_dose_pct_rx", OPTION_DEFAULTS["max_dose_pct_rx"]))
    ceiling_gy = ceiling_pct / 100.0 * float(result.fractionation.total_gy)
    physical = caps.filled(ceiling_gy) / result.rbe
    physical[~result.case.body] = 0.0
    limits = ", ".join(f"{c.goal_id} {c.tier} {c.limit_eqd2_gy:g} Gy EQD2" for c in caps.lines) or "none in the case"
    description = (f"Largest new-course physical dose (Gy) per voxel under the cumulative limits ({limits}); "
                   f"{result.fractionation.n_fractions} fractions; elsewhere in the body the plan ceiling "
                   f"{ceiling_pct:g} % of Rx ({ceiling_gy / result.rbe:.2f} Gy); 0 outside the body"
                   + (f"; RBE {result.rbe:g}" if result.rbe != 1.0 else ""))
    write_cap_rtdose(result.case, physical, request.dicom_dir, folder / "dicom", description=description)
    goals = tps_goals(result, caps, tps_roi_names(imported, result.case), limit_level=request.limit_level,
                      evaluation_rows=content["evaluation"])
    (folder / GOALS_FILE).write_text(json.dumps(goals, indent=2), encoding="utf-8")
    return tuple(sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                        and not p.name.startswith(".")))


def run(args) -> int:
    from ..atomic import atomic_dir
    from ..output_folder import prepare_output
    from ..tps.request import RequestError, load_request
    from ..tps.status import RunStatus, utc_now, write_status
    from .plan import exit_code, summary_text

    started = utc_now()
    exchange = args.exchange_dir
    if not exchange.is_dir():
        raise FileNotFoundError(f"EXCHANGE_DIR {exchange}: not a folder")
    out = exchange / RESULT_DIR
    target = prepare_output(out, "tps-run", overwrite=args.overwrite,
                            inputs=[exchange / "dicom", exchange / "request.json"])
    for note in target.notes:
        print(f"reirrad-opt tps-run: {note}", file=sys.stderr)
    progress = progress_from_args(args)
    tps: dict = {}

    def fail(code: int, message: str, key: str | None = None, state: str = "failed") -> int:
        with atomic_dir(target) as tmp:
            write_status(tmp, RunStatus(state, code, message, started, key=key, files=("status.json",), tps=tps))
        print(f"reirrad-opt tps-run: error: {message}", file=sys.stderr)
        print(f"status written to {out / 'status.json'}", file=sys.stderr)
        return code

    try:
        request = load_request(exchange)
        tps = dict(request.tps)
        result, imported, warned = _plan_request(request, progress, args.cache_dir, args.engine)
        for w in warned:
            print(f"warning: {w}", file=sys.stderr)
        code = exit_code([result.verdict])
        with atomic_dir(target) as tmp:
            files = _write_result(tmp, result, imported, request)
            message = f"plan {result.verdict}: {result.evaluation.to_dict().get('verdict_detail', '')}".strip()
            write_status(tmp, RunStatus("complete", code, message, started, verdict=result.verdict,
                                        files=tuple(sorted(files + ("status.json",))), tps=tps))
    except RequestError as exc:
        return fail(EXIT_BAD_INPUT, str(exc), key=exc.key)
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted (Ctrl-C); no plan was written", state="interrupted")
    except (ValueError, FileNotFoundError, KeyError, NotADirectoryError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return fail(EXIT_BAD_INPUT, str(message))
    except Exception as exc:  # a bug: the TPS script still gets a status, the terminal the traceback
        traceback.print_exc()
        return fail(EXIT_INTERNAL, f"internal error ({type(exc).__name__}: {exc}); please report it")
    print(summary_text(result, out))
    print(f"tps goals: {out / GOALS_FILE}; status: {out / 'status.json'}")
    return code
