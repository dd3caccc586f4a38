"""``result/status.json``: how a tps-run ended, for a TPS script to show (never a stack trace).

``state`` is 'complete' (the plan and every result file were written; ``exit_code`` 0, 3 or 4 as the
plan's verdict decides), 'failed' (nothing but status.json; ``exit_code`` 2 for a bad request or
input, with ``key`` naming the request key when there is one, 1 for an internal error) or
'interrupted' (130).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__

STATUS_FILE = "status.json"
STATES = ("complete", "failed", "interrupted")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunStatus:
    """One run's outcome (see the module docstring); ``files`` are relative to result/."""

    state: str
    exit_code: int
    message: str
    started_utc: str
    finished_utc: str = field(default_factory=utc_now)
    key: str | None = None
    verdict: str | None = None
    files: tuple[str, ...] = ()
    tps: dict = field(default_factory=dict)
    reirrad_opt_version: str = __version__

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"status state must be one of {STATES}, got {self.state!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["files"] = list(self.files)
        return d


def write_status(folder: str | Path, status: RunStatus) -> Path:
    """Write ``folder/status.json``."""
    path = Path(folder) / STATUS_FILE
    path.write_text(json.dumps(status.to_dict(), indent=2), encoding="utf-8")
    return path
