"""The robust-evaluation options shared by ``plan`` and ``compare``."""
from __future__ import annotations

import argparse

from ._args import non_negative_float


def add_robust_arguments(p: argparse.ArgumentParser, *, default_text: str, range_pct: bool = True) -> None:
    """The options; ``range_pct=False`` where the command has its own ``--range-error-pct`` (compare's
    distal-end check: one range error for both)."""
    g = p.add_argument_group("robust evaluation (setup and range scenarios; docs/robustness.md)")
    g.add_argument("--robust-evaluation", dest="robust_evaluation", action="store_true", default=None,
                   help=f"evaluate every line in every scenario too (default: {default_text})")
    g.add_argument("--no-robust-evaluation", dest="robust_evaluation", action="store_false",
                   help="nominal evaluation only")
    g.add_argument("--setup-error-mm", type=non_negative_float, default=3.0, metavar="MM",
                   help="rigid setup shift along +-x, +-y, +-z in mm (default 3; 0: no setup scenarios)")
    if range_pct:
        g.add_argument("--range-error-pct", type=non_negative_float, default=3.5, metavar="PCT",
                       help="particle range error in %% of the range (default 3.5) ...")
    g.add_argument("--range-error-mm", type=non_negative_float, default=1.0, metavar="MM",
                   help="... plus this absolute range error in mm of water (default 1)")
    g.add_argument("--combined-scenarios", action="store_true",
                   help="every range error at every setup position (15 particle scenarios instead of 9)")


def add_robust_optimization_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--robust", action="store_true",
                   help="robust optimization: hold every priority-1 organ cap in each scenario of the robust-evaluation "
                        "options too (minimax); target coverage and lower priorities on the nominal scenario; the plan "
                        "is then evaluated in the same scenarios (docs/robustness.md)")


def _scenario_settings(args):
    """The scenarios the options describe (sizes and the combined set)."""
    from ..robust import ScenarioSettings

    return ScenarioSettings(setup_mm=args.setup_error_mm, range_pct=args.range_error_pct, range_mm=args.range_error_mm,
                            combined=args.combined_scenarios)


def robust_optimization_from_args(args):
    """The ScenarioSettings of ``--robust``, or None."""
    return _scenario_settings(args) if getattr(args, "robust", False) else None


def robust_from_args(args, default: bool):
    """The ScenarioSettings the options ask for, or None (no robust evaluation); ``default``: whether the
    command evaluates robustly when neither option is given."""
    wanted = args.robust_evaluation if args.robust_evaluation is not None else default
    return _scenario_settings(args) if wanted else None
