"""Shared fixtures.

Real-data tests use the ``realdata`` fixture (and the ``realdata`` marker). They skip when
REIRRAD_REALDATA is unset, and FAIL when it is set but the folder or a needed file is missing, so
CI (which sets it) can never pass by skipping them.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest


def _realdata_root() -> Path | None:
    value = os.environ.get("REIRRAD_REALDATA")
    if not value:
        return None
    root = Path(value)
    if not root.is_dir():
        raise FileNotFoundError(f"REIRRAD_REALDATA={value!r} is set but is not a folder")
    return root


@pytest.fixture(scope="session")
def realdata() -> Path:
    """Root of the real DICOM-RT data; skip if REIRRAD_REALDATA is unset, error if it is wrong."""
    root = _realdata_root()
    if root is None:
        pytest.skip("REIRRAD_REALDATA is not set (real-data tests run in CI)")
    return root


def require(path: Path) -> Path:
    """Return ``path``; fail (never skip) if it does not exist."""
    if not path.exists():
        pytest.fail(f"real-data file missing: {path}")
    return path


def fenced_block(path: Path, heading: str, language: str) -> str:
    """The first ```<language> block after ``heading`` in the Markdown file ``path``, as written."""
    import re

    after = path.read_text(encoding="utf-8").split(heading, 1)
    assert len(after) == 2, f"{path.name} has no heading {heading!r}"
    match = re.search(rf"```{language}\n(.*?)```", after[1], re.S)
    assert match, f"{path.name} has no {language} block after {heading!r}"
    return match.group(1)


def env_with_cli_on_path(folder: Path) -> dict[str, str]:
    """An environment in which ``reirrad-opt`` is this interpreter's command (the code under test, via a
    shim written in ``folder``/bin) and the project is importable: for blocks that docs run in a shell."""
    import sys

    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "reirrad-opt"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c '
                    f'"import sys; from reirrad_opt.cli import main; sys.exit(main())" "$@"\n')
    shim.chmod(0o755)
    root = Path(__file__).resolve().parents[1]
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
