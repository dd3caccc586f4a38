"""Progress messages for long computations: printed to stderr when it is a terminal (or when
forced), silent otherwise so scripts and CI logs stay clean."""
from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``[  1.2 s] message`` lines to stderr.

    Args:
        enabled: True/False to force; None (default) prints only when stderr is a terminal.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"[{time.perf_counter() - self.t0:6.1f} s] {message}", file=sys.stderr, flush=True)


SILENT = Progress(False)
