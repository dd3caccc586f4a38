"""The ``--quiet`` / ``--verbose`` options of the commands that report progress."""
from __future__ import annotations

import argparse

from ..progress import Progress


def add_progress_arguments(p: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` and ``--verbose`` (mutually exclusive)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true",
                   help="no progress lines (by default they go to stderr, also when it is not a terminal)")
    g.add_argument("--verbose", action="store_true",
                   help="also print the solver's details (iterations, matrix sizes, constraint rounds)")


def progress_from_args(args: argparse.Namespace) -> Progress:
    """Progress lines on stderr unless ``--quiet``; solver details with ``--verbose``."""
    return Progress(enabled=not args.quiet, verbose=args.verbose)
