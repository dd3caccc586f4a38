"""How many threads the tool's own parallel work may use: the machine's cores, or ``REIRRAD_THREADS``.

The dose engine computes beams in parallel threads and the first-order engine splits its large
sparse products over threads. A study runs one plan per Dask worker; its local cluster's worker processes
get ``REIRRAD_THREADS`` set to their thread count, so that plans side by side do not ask for more cores
than there are (workers that are threads of one process read that process's environment).
"""
from __future__ import annotations

import os


def n_threads() -> int:
    """Threads available: ``REIRRAD_THREADS`` (a whole number >= 1) if set, else the cores this process
    may run on. A value that is not a whole number >= 1 is refused by name."""
    env = os.environ.get("REIRRAD_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"REIRRAD_THREADS={env!r}: expected a whole number of threads (>= 1)") from None
        if n < 1:
            raise ValueError(f"REIRRAD_THREADS={env!r}: expected a whole number of threads (>= 1)")
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
