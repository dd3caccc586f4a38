"""``reirrad-opt tps-script TARGET --out FILE``: write a script for a treatment-planning system that
hands the open case to ``reirrad-opt tps-run`` and brings the goals back (see docs/tps-exchange.md).

Targets: ``raystation`` (a self-contained CPython 3 RayStation script; its settings are constants at
its top, to be edited there or set here); ``eclipse`` (an ESAPI single-file plug-in, ReirradOpt.cs,
that adds the goals of tps_goals.json to the open plan's optimization objectives).

Example::

    reirrad-opt tps-script raystation --out reirrad_raystation.py --raystation-version 2024B \\
        --prior-beam-set "Prior:BS1" --prior-fractions 33 --interval-months 30 \\
        --roi-map GTV_recur=rGTV BrainStem=Brainstem

"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ._args import MAX_BEAMS, beam_count, interval_months, positive_float, positive_int
from ._help import plain_description
from ._tps_eclipse import eclipse_arguments, eclipse_emit, pyesapi_emit


@dataclass(frozen=True)
class Target:
    """One TPS a script can be written for."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    emit: Callable[[argparse.Namespace], str]


def _pairs(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        roi, sep, canonical = item.rpartition("=")
        if not sep or not roi or not canonical:
            raise ValueError(f"{option} {item!r}: expected TPS_ROI=TG263_NAME, e.g. GTV_recur=rGTV")
        out[roi] = canonical
    return out


def _raystation_arguments(p: argparse.ArgumentParser) -> None:
    from tps_adapters.raystation import CALLS, DEFAULT_VERSION

    p.add_argument("--raystation-version", default=DEFAULT_VERSION, choices=list(CALLS),
                   help=f"RayStation version whose scripting calls the script uses (default {DEFAULT_VERSION})")
    p.add_argument("--executable", nargs="+", default=["reirrad-opt"], metavar="WORD",
                   help="the reirrad-opt command as the RayStation machine runs it (default: reirrad-opt)")
    p.add_argument("--exchange-root", default=r"C:\reirrad-opt\exchange", metavar="DIR",
                   help="folder in which each run makes its exchange folder")
    p.add_argument("--timeout-s", type=positive_int, default=3600, metavar="S", help="seconds before a run is stopped")
    p.add_argument("--protocol", default="npc_reirradiation_2021", help="protocol name or .toml path")
    p.add_argument("--fractionation", default="bid-1.2", help="the protocol's fractionation, e.g. bid-1.2")
    p.add_argument("--modality", choices=["photon", "proton", "carbon"], default="photon",
                   help="modality of the new course (default photon)")
    p.add_argument("--beams", type=beam_count, default=9, metavar="N",
                   help=f"number of equispaced beams, 1 to {MAX_BEAMS} (default 9)")
    p.add_argument("--prior-beam-set", default=None, metavar="PLAN:BEAMSET",
                   help="the beam set whose dose is the prior course (on the current examination)")
    p.add_argument("--prior-fractions", type=positive_int, default=None, help="fractions of the prior course")
    p.add_argument("--prior-modality", choices=["photon", "proton", "carbon"], default="photon",
                   help="modality of the prior course (default photon)")
    p.add_argument("--interval-months", type=interval_months, default=None, help="months since the prior course")
    p.add_argument("--roi-map", nargs="+", default=[], metavar="TPS_ROI=TG263",
                   help="ROI names of the TPS and the TG-263 names they stand for, e.g. GTV_recur=rGTV")
    p.add_argument("--absent", nargs="+", default=[], metavar="STRUCTURE",
                   help="protocol organs outside the field (TG-263 names)")
    p.add_argument("--voxel-mm", type=positive_float, default=None, metavar="MM", help="case grid voxel size (mm)")


def _raystation_emit(args: argparse.Namespace) -> str:
    from tps_adapters.raystation import ScriptSettings, emit

    return emit(ScriptSettings(
        raystation_version=args.raystation_version, reirrad_command=tuple(args.executable),
        exchange_root=args.exchange_root, timeout_s=args.timeout_s, protocol=args.protocol,
        fractionation=args.fractionation, modality=args.modality, beam_count=args.beams,
        prior_beam_set=args.prior_beam_set, prior_n_fractions=args.prior_fractions,
        prior_modality=args.prior_modality, interval_months=args.interval_months,
        roi_map=_pairs(args.roi_map, "--roi-map"), absent=tuple(args.absent), voxel_mm=args.voxel_mm))


# A target is one entry: a help line, a function adding its options to its sub-parser, and a
# function args -> script text. Another TPS plugs in with one more entry.
TARGETS: dict[str, Target] = {
    "raystation": Target("a CPython 3 RayStation script (clinical goals and optimization functions)",
                         _raystation_arguments, _raystation_emit),
    "eclipse": Target("an ESAPI 15.6-18 single-file C# plug-in (optimization objectives from tps_goals.json)",
                      eclipse_arguments, eclipse_emit),
    "pyesapi": Target("the Eclipse plug-in's objectives from a PyESAPI (pythonnet) stand-alone Python script",
                      eclipse_arguments, pyesapi_emit),
}


def register(subparsers) -> None:
    p = subparsers.add_parser("tps-script", help="write a TPS script that runs reirrad-opt and brings the goals back",
                              description=plain_description(__doc__),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    targets = p.add_subparsers(dest="target", metavar="TARGET", required=True,
                                help=f"the TPS: {', '.join(TARGETS)}")
    for name, target in TARGETS.items():
        t = targets.add_parser(name, help=target.help, description=target.help)
        t.add_argument("--out", type=Path, required=True, metavar="FILE", help="the script file to write")
        t.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
        target.add_arguments(t)
        t.set_defaults(func=run, emit_script=target.emit)


def run(args) -> int:
    from ..atomic import atomic_file

    text = args.emit_script(args)
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {args.out}: exists; give a new file name or --overwrite")
    if args.out.is_dir():
        raise IsADirectoryError(f"--out {args.out}: is a folder; give a file name")
    with atomic_file(args.out) as f:
        f.write(text)
    print(f"{args.target} script written to {args.out}")
    return 0
