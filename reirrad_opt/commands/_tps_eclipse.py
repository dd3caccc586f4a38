"""The ``eclipse`` target of ``reirrad-opt tps-script``: options and emitter of the ESAPI plug-in
(tps_adapters/eclipse), and of ``pyesapi``, the same objectives from a PyESAPI stand-alone script. Example::

    reirrad-opt tps-script eclipse --out ReirradOpt.cs --exchange-dir "\\\\server\\reirrad\\case42"
"""
from __future__ import annotations

import argparse

from ._args import non_negative_float, positive_float


def _priority(text: str) -> float:
    value = non_negative_float(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: Eclipse priorities run from 0 to 1000")
    return value


def eclipse_arguments(p: argparse.ArgumentParser) -> None:
    from tps_adapters.eclipse import EclipseSettings

    d = EclipseSettings()
    p.add_argument("--exchange-dir", default=d.exchange_dir, metavar="DIR",
                   help=f"the exchange folder as the Eclipse workstation sees it; the plug-in reads its "
                        f"result\\tps_goals.json (default {d.exchange_dir})")
    p.add_argument("--constraint-priority", type=_priority, default=d.constraint_priority, metavar="P",
                   help=f"Eclipse priority (0-1000) of the priority-1 caps (default {d.constraint_priority:g})")
    p.add_argument("--objective-priorities", type=_priority, nargs="+", default=list(d.objective_priorities),
                   metavar="P", help="Eclipse priorities of protocol priorities 2, 3, 4... (the last repeats; default "
                                     + " ".join(f"{x:g}" for x in d.objective_priorities) + ")")
    p.add_argument("--no-nto", action="store_true", help="do not add a normal tissue objective")
    p.add_argument("--nto-priority", type=_priority, default=d.nto_priority, metavar="P",
                   help=f"priority of the normal tissue objective (default {d.nto_priority:g})")
    p.add_argument("--nto-fall-off", type=positive_float, default=d.nto_fall_off_per_mm, metavar="PER_MM",
                   help=f"its fall-off in 1/mm (default {d.nto_fall_off_per_mm:g} = ln 3 / 10 mm: 100 %% of Rx at "
                        "the target border to 50 %% at 10 mm, as reirrad-opt's own ring)")
    p.add_argument("--remove-existing", action="store_true", help="remove the plan's existing objectives first")


def eclipse_emit(args: argparse.Namespace) -> str:
    from tps_adapters.eclipse import EclipseSettings, render_plugin

    if args.out.suffix.lower() != ".cs":
        raise ValueError(f"--out {args.out}: an Eclipse single-file plug-in is a .cs file (e.g. ReirradOpt.cs)")
    return render_plugin(EclipseSettings(
        exchange_dir=args.exchange_dir, constraint_priority=args.constraint_priority,
        objective_priorities=tuple(args.objective_priorities), add_nto=not args.no_nto,
        nto_priority=args.nto_priority, nto_fall_off_per_mm=args.nto_fall_off, remove_existing=args.remove_existing))


def pyesapi_emit(args: argparse.Namespace) -> str:
    from tps_adapters.eclipse import EclipseSettings, render_pyesapi

    if args.out.suffix.lower() != ".py":
        raise ValueError(f"--out {args.out}: the PyESAPI variant is a Python script (e.g. reirrad_pyesapi.py)")
    return render_pyesapi(EclipseSettings(
        exchange_dir=args.exchange_dir, constraint_priority=args.constraint_priority,
        objective_priorities=tuple(args.objective_priorities), add_nto=not args.no_nto,
        nto_priority=args.nto_priority, nto_fall_off_per_mm=args.nto_fall_off, remove_existing=args.remove_existing))
