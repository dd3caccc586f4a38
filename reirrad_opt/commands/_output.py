"""The ``--out`` / ``--overwrite`` options of every command that writes a folder, and the checks
run on them before the work (see :mod:`reirrad_opt.output_folder`)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..output_folder import OutputTarget, prepare_output


def add_output_arguments(p: argparse.ArgumentParser, what: str, metavar: str = "DIR") -> None:
    """Add ``--out`` (required) and ``--overwrite``; ``what`` names the folder in the help."""
    p.add_argument("--out", type=Path, required=True, metavar=metavar,
                   help=f"{what} to write: a new or empty folder, or with --overwrite a previous output of "
                        f"this command (kept until the new one is complete); never an input folder")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous output of this command in --out (refused if it holds other files)")


def prepare(args: argparse.Namespace, command: str, inputs: list[str | os.PathLike | None]) -> OutputTarget:
    """Check ``args.out`` before the work; print what a clean-up of a killed run did (stderr)."""
    target = prepare_output(args.out, command, overwrite=args.overwrite, inputs=inputs)
    for note in target.notes:
        print(f"reirrad-opt {command}: {note}", file=sys.stderr)
    return target
