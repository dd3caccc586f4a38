"""Paths as outputs record them: never the machine's absolute paths.

A plan folder travels (to a colleague, into a paper's supplement, back to a TPS); an absolute path
says nothing there and tells the reader the local user and folder layout. So a shipped protocol
is recorded by its name (``load_protocol(name)`` and ``--protocol NAME`` accept it), a file below
the current folder by its relative path, and any other file by its name alone.
"""
from __future__ import annotations

import os
from pathlib import Path


def portable_path(path: str | os.PathLike | None, shipped_dir: Path | None = None) -> str:
    """``path`` as an output records it ('' for None).

    Args:
        path: the file as it was given or resolved.
        shipped_dir: a folder of files shipped with reirrad-opt: a file in it is recorded by its
            stem (its name without ``.toml``), which loads it again.
    """
    if path is None or str(path) == "":
        return ""
    p = Path(path)
    absolute = Path(os.path.abspath(p))
    if shipped_dir is not None and absolute.parent == Path(os.path.abspath(shipped_dir)):
        return absolute.stem
    if not p.is_absolute():
        return p.as_posix()
    cwd = Path(os.path.abspath(os.getcwd()))
    if cwd in absolute.parents:
        return absolute.relative_to(cwd).as_posix()
    return absolute.name


def protocol_reference(protocol) -> str:
    """How plan.json names the protocol file: see :func:`portable_path`."""
    from .protocol import PROTOCOL_DIR

    return portable_path(getattr(protocol, "path", None), shipped_dir=PROTOCOL_DIR)
