"""The ``reirrad-opt`` command.

Sub-commands live in :mod:`reirrad_opt.commands`, one module each; a module provides
``register(subparsers)`` that adds its parser and sets ``func`` to a function
``run(args) -> int`` (the exit code). Exit codes: 0 success, 2 bad input, 3 a plan whose
priority-1 line fails its acceptable limit, or misses a level that has no acceptable limit
(outputs still written), 4 an incomplete plan: a priority-1 organ is not contoured, so its line
could not be evaluated (outputs still written; contour it, or declare it with ``--absent`` if it
lies outside the field), 1 the system refused an operation (disk full, permission denied: the
message names the file; nothing partial is left), 130 interrupted (Ctrl-C), 141 standard output
closed early (e.g. ``| head``: the outputs were written, the summary was cut).
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import __version__

EXIT_OK = 0
EXIT_SYSTEM_ERROR = 1   # the operating system refused a write or read (disk full, permission)
EXIT_BAD_INPUT = 2
EXIT_PRIORITY1_FAIL = 3
EXIT_INCOMPLETE = 4     # a priority-1 line could not be evaluated (organ not contoured, not declared absent)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports when a reader such as `head` stops early


class InputError(ValueError):
    """Bad input from the user: the message names the file, key or option and what was expected."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reirrad-opt",
        description="Re-irradiation planning against cumulative EQD2 limits (lexicographic optimization).",
    )
    parser.add_argument("--version", action="version", version=f"reirrad-opt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("reirrad-opt: interrupted; nothing was written", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except (InputError, ValueError, FileNotFoundError, FileExistsError, KeyError, NotADirectoryError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"reirrad-opt {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"reirrad-opt {args.command}: {_interrupted_line(args)}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of stdout is gone; later writes (and Python's own flush at exit) must not raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"reirrad-opt {args.command}: error: {exc.strerror or exc}{where}; nothing partial was left",
              file=sys.stderr)
        return EXIT_SYSTEM_ERROR


def _interrupted_line(args: argparse.Namespace) -> str:
    """What an interrupted command kept: its output is written atomically, so all or nothing."""
    from .output_folder import written_by_this_process

    out = getattr(args, "out", None)
    if out is not None and written_by_this_process(out):
        return f"interrupted after {out} was written (complete)"
    if out is not None:
        return f"interrupted; nothing was written ({out} is as it was)"
    return "interrupted; nothing was written"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
