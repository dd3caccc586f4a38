"""Progress messages for long computations: plain ``[  1.2 s] message`` lines on stderr.

Lines are plain text (no carriage returns or cursor tricks), so they read the same on a terminal,
in a log file and in CI. Two levels: the default lines say what is being done, how far along it
is and how long it should still take; ``detail`` lines (solver iterations, matrix sizes,
multipliers, LP rows) appear only when ``verbose`` is set. Code that receives a plain callable
instead of a :class:`Progress` still works: :func:`detail` and :func:`step` fall back to calling it
with the full text.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class Progress:
    """Prints ``[  1.2 s] message`` lines (elapsed seconds since creation) to stderr.

    Args:
        enabled: True/False to force; None (the library's default) prints only when stderr is a
            terminal. The command line passes ``not --quiet``, so scripts and CI logs get the
            lines too.
        verbose: also print :meth:`detail` lines (solver internals).
        stream: where to print (default: sys.stderr at the time of each line).
    """

    def __init__(self, enabled: bool | None = None, verbose: bool = False, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.enabled = self.stream.isatty() if enabled is None else bool(enabled)
        self.verbose = bool(verbose) and self.enabled
        self.t0 = time.perf_counter()
        self.step_interval_s = 2.0 if not self.verbose else 0.0
        self._last_step: dict[str, float] = {}

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    def _print(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {message}", file=self.stream, flush=True)

    def __call__(self, message: str) -> None:
        """A line of the default output: what is being done, in the user's terms."""
        if self.enabled:
            self._print(message)

    def detail(self, message: str) -> None:
        """A line for ``--verbose`` only (solver iterations, sizes, internal quantities)."""
        if self.verbose:
            self._print(message)

    def step(self, label: str, done: int, total: int, elapsed_s: float, detail: str = "") -> None:
        """``label done/total, elapsed E s, about R s left``, from the mean time per item so far;
        ``detail`` is appended with ``--verbose``.

        Without ``verbose`` a label prints its first and last step and otherwise at most one line
        every ``step_interval_s`` seconds, so a log of a fast loop stays short.
        """
        if not self.enabled:
            return
        now = time.perf_counter()
        last = self._last_step.get(label)
        if last is not None and done < total and now - last < self.step_interval_s:
            return
        self._last_step[label] = now
        self._print(step_text(label, done, total, elapsed_s) + (f"; {detail}" if detail and self.verbose else ""))


def step_text(label: str, done: int, total: int, elapsed_s: float) -> str:
    """The text of a :meth:`Progress.step` line."""
    text = f"{label} {done}/{total}, elapsed {elapsed_s:.1f} s"
    if 0 < done < total:
        text += f", about {elapsed_s / done * (total - done):.0f} s left"
    return text


def detail(progress: Callable[[str], None], message: str) -> None:
    """Send ``message`` as a verbose-only line; a plain callable receives it as it is."""
    if isinstance(progress, Progress):
        progress.detail(message)
    else:
        progress(message)


def step(progress: Callable[[str], None], label: str, done: int, total: int, elapsed_s: float,
         detail: str = "") -> None:
    """A done/total line with the time left; a plain callable receives the full text."""
    if isinstance(progress, Progress):
        progress.step(label, done, total, elapsed_s, detail)
    else:
        progress(step_text(label, done, total, elapsed_s) + (f"; {detail}" if detail else ""))


SILENT = Progress(False)
