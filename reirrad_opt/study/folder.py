"""The output folder of ``reirrad-opt study``: the rules of :mod:`reirrad_opt.output_folder`,
with one difference: a study fills its folder variant by variant and resumes into it.

- A new or empty folder is used; an existing folder is used only when its marker says it is an
  output of ``reirrad-opt study`` (then the study resumes: variants with a result are not run
  again, without ``--overwrite``) and it holds nothing but what a study writes.
- A folder of another command, a folder without our marker, or a study folder holding other
  files is refused before any work, naming what was found.
- A study folder that another running study is writing (its marker's process is alive) is
  refused.
- The folder may not be, lie inside or contain an input (the study file, the protocol, a case
  folder), nor the current folder (as for every command).

While a study runs, its marker says state 'writing' with the process id; at the end 'complete'
with the list of files.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from ..output_folder import (MARKER_NAME, OutputFolderError, check_inputs, check_writable, process_alive,
                             read_marker, write_marker)

COMMAND = "study"
# what a study writes (top-level names; folders hold only the study's own files)
OWN_FILES = ("results.parquet", "results.csv", "study.html", "study.json")
OWN_FOLDERS = ("results", "figures", "plans")
_TEMPORARY = re.compile(r"^\..+\.tmp-")  # an atomic write cut short by a kill (atomic_file's name)


def prepare_study_folder(out: str | os.PathLike, inputs: list) -> Path:
    """Check ``out`` before the work; returns it absolute. OutputFolderError says why it cannot
    be used."""
    path = Path(os.path.abspath(Path(out).expanduser())).resolve()
    check_inputs(path, tuple(Path(os.path.abspath(p)).resolve() for p in inputs if p is not None))
    if os.path.lexists(path):
        if not path.is_dir():
            raise OutputFolderError(f"--out {path}: exists and is not a folder")
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            _check_previous_study(path, entries)
    check_writable(path)
    return path


def _check_previous_study(path: Path, entries: list[str]) -> None:
    marker = read_marker(path)
    if marker is None:
        raise OutputFolderError(f"--out {path}: holds {len(entries)} file(s) not written by reirrad-opt study "
                                f"({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}); choose a new "
                                f"or empty folder")
    if marker.get("command") != COMMAND:
        raise OutputFolderError(f"--out {path}: is the output of reirrad-opt {marker.get('command')}, not of "
                                f"reirrad-opt study; choose another folder")
    if marker.get("state") == "writing" and marker.get("pid") != os.getpid() and process_alive(marker):
        raise OutputFolderError(f"--out {path}: a study is writing it now (pid {marker.get('pid')} on "
                                f"{marker.get('host')}); wait for it, or give another folder")
    foreign = [name for name in entries if name != MARKER_NAME and name not in OWN_FILES + OWN_FOLDERS
               and not _TEMPORARY.match(name)]
    for sub in OWN_FOLDERS:
        folder = path / sub
        if folder.exists() and not folder.is_dir():
            foreign.append(sub)
    results = path / "results"
    if results.is_dir():
        foreign += [f"results/{p.name}" for p in results.iterdir() if not p.name.endswith(".json")
                    and not _TEMPORARY.match(p.name)]
    figures = path / "figures"
    if figures.is_dir():
        foreign += [f"figures/{p.name}" for p in figures.iterdir()
                    if p.suffix != ".png" and not _TEMPORARY.match(p.name)]
    if foreign:
        raise OutputFolderError(f"--out {path}: holds {len(foreign)} file(s) a study does not write "
                                f"({', '.join(sorted(foreign)[:5])}); move them out, or give another folder")


def start(out: Path) -> None:
    """Mark ``out`` as being written by this process."""
    out.mkdir(parents=True, exist_ok=True)
    for folder in (out, out / "results", out / "figures"):
        if folder.is_dir():
            for p in folder.iterdir():
                if _TEMPORARY.match(p.name) and p.is_file():
                    p.unlink()
    write_marker(out, COMMAND, "writing")


def finish(out: Path) -> None:
    """Mark ``out`` complete (the marker lists the files)."""
    write_marker(out, COMMAND, "complete")
