"""Atomic output: write into a temporary sibling, then rename, so a failure never leaves a
partial file or folder behind."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from . import output_folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(out_dir: str | os.PathLike, overwrite: bool = True, command: str = "library") -> Iterator[Path]:
    """Yield a temporary folder next to ``out_dir``; on success it replaces ``out_dir``.

    ``out_dir`` may be an :class:`~reirrad_opt.output_folder.OutputTarget` (checked by the
    command before its work; its command and overwrite flag then apply) or a path, written as
    ``command`` (the library's callers). Either way the rules of :mod:`reirrad_opt.output_folder`
    hold: an existing folder is replaced only when it is a previous output of the same command
    holding nothing else (and ``overwrite``), an empty one may be used, anything else raises
    OutputFolderError before the work. The temporary folder carries a marker with our pid, so a
    later run can tell a killed write from a running one.

    On any exception the temporary folder is removed and ``out_dir`` is left as it was; the
    previous output is moved aside only once the new one is complete, and put back if the swap
    is interrupted.
    """
    target = output_folder.target_of(out_dir, command, overwrite)
    out = target.path
    output_folder.check_inputs(out, target.inputs)
    out.parent.mkdir(parents=True, exist_ok=True)
    # a folder written inside an output this process is writing (a plan's dicom/) is part of that
    # output, listed in its marker: it gets no marker of its own
    nested = output_folder.inside_own_temporary(out)
    if not nested:
        output_folder.recover(out, target.command)
    output_folder.check_existing(out, target.command, target.overwrite)
    tmp = Path(tempfile.mkdtemp(prefix=output_folder.temporary_name(out, "tmp"), dir=out.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the result is an ordinary folder
        if not nested:
            output_folder.write_marker(tmp, target.command, "writing")
        yield tmp
        if not nested:
            previous = output_folder.read_marker(out) if out.is_dir() else None
            output_folder.write_marker(tmp, target.command, "complete", replaces=previous)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _swap(tmp, out)


def _swap(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, moving a previous ``out`` aside first and removing it after.

    Between the two renames the previous output exists only as ``.NAME.old-PID``; an exception
    there (Ctrl-C) puts it back, and a kill is repaired by the next run (output_folder.recover).
    """
    old = None
    try:
        if os.path.lexists(out):
            old = out.parent / f"{output_folder.temporary_name(out, 'old')}{os.getpid()}"
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        if os.path.lexists(tmp):
            if old is not None and not os.path.lexists(out):
                os.replace(old, out)
            shutil.rmtree(tmp, ignore_errors=True)
        elif old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w") -> Iterator:
    """Open a temporary file next to ``path`` for writing; rename it to ``path`` on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_umask())
    try:
        with open(tmp_name, mode) as fh:
            yield fh
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_name)
        raise
