"""Output folders that never cost the user data.

Every folder the tool writes holds a marker file, :data:`MARKER_NAME`, naming the command that
wrote it, the version, the time, the writing process and the files it wrote. The rules:

- an existing folder is replaced only when it is a previous output of the *same* command, holds
  no file that command did not write, and the caller asked for it (``--overwrite``); an empty
  existing folder may be used; anything else is refused before any work;
- an output folder may not be, lie inside, or contain an input (the DICOM folder, the case
  folder, the protocol file, ...), nor be the current folder or one of its parents;
- the location must be writable, checked before the work starts;
- leftovers of a killed run (hidden ``.NAME.tmp-*`` and ``.NAME.old-*`` folders next to the
  output) are cleaned up, or restored, on the next run of the same command with the same output,
  but only when they carry our marker and the process that made them is gone.

:func:`prepare_output` runs the checks and returns an :class:`OutputTarget`; that value is
path-like, so it can be handed to ``save_case`` / ``write_plan_folder`` / ... in place of the
path, and :func:`reirrad_opt.atomic.atomic_dir` then writes with the same rules.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

MARKER_NAME = ".reirrad-opt-output.json"
TOOL = "reirrad-opt"
_SHOWN = 5  # file names quoted in a refusal


class OutputFolderError(ValueError):
    """An output folder that cannot be used; the message names it, what was found and what to do."""


@dataclass(frozen=True)
class OutputTarget:
    """A checked output folder.

    Attributes:
        path: the output folder, absolute.
        command: the command that writes it (``plan``, ``import-dicom``, ...), recorded in the marker.
        overwrite: a previous output of the same command may be replaced.
        inputs: input files and folders the output must keep away from (absolute).
        notes: what the checks did (a stale temporary folder removed, a previous output restored).
    """

    path: Path
    command: str
    overwrite: bool = False
    inputs: tuple[Path, ...] = ()
    notes: tuple[str, ...] = field(default=(), compare=False)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def _absolute(path: str | os.PathLike) -> Path:
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder`` as a dict, None without one; OutputFolderError when it is unreadable."""
    path = folder / MARKER_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputFolderError(f"{path}: unreadable output marker ({exc}); move or delete {folder} yourself") from None
    if not isinstance(data, dict) or data.get("tool") != TOOL:
        raise OutputFolderError(f"{path}: not a {TOOL} output marker; move or delete {folder} yourself")
    return data


def write_marker(folder: Path, command: str, state: str, replaces: dict | None = None) -> None:
    """Write the marker of ``folder``: ``state`` is 'writing' (a temporary folder) or 'complete'.

    A complete marker lists every file written (relative paths), so a later replacement can tell
    the user's own additions from ours. ``replaces``: the marker of the previous output this one
    replaces (``--overwrite``); its creation time and version are recorded as ``replaced``.
    """
    from . import __version__

    content = {
        "tool": TOOL,
        "command": command,
        "version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "state": state,
    }
    if replaces is not None:
        content["replaced"] = {"created": replaces.get("created"), "version": replaces.get("version")}
    if state == "complete":
        content["files"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                                  if not p.is_dir() and p.name != MARKER_NAME)
    (folder / MARKER_NAME).write_text(json.dumps(content, indent=2) + "\n")


def process_alive(marker: dict) -> bool:
    """Whether the process recorded in ``marker`` may still run (unknown host or pid: assume yes)."""
    if marker.get("host") != socket.gethostname():
        return True
    pid = marker.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def temporary_name(out: Path, kind: str) -> str:
    """The hidden sibling prefix of ``out``: ``.NAME.tmp-`` or ``.NAME.old-``."""
    return f".{out.name}.{kind}-"


def _leftovers(out: Path, kind: str) -> list[Path]:
    if not out.parent.is_dir():
        return []
    prefix = temporary_name(out, kind)
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink())


def recover(out: Path, command: str) -> list[str]:
    """Clean up or restore what a killed run of ``command`` left next to ``out``; returns notes.

    - ``.NAME.tmp-*`` with our marker for this command, whose process is gone: removed (an
      unfinished write). An empty one (killed before its marker was written) is removed too.
    - ``.NAME.old-*`` (the previous output, moved aside during the final swap) with our marker for
      this command, whose writer is gone: restored as ``NAME`` when ``NAME`` is missing (the
      swap was cut between its two renames), else removed (the swap finished).
    - ``.NAME.probe-*``: an empty folder left by a run killed during its writability test: removed.
    Anything else is left alone and reported.
    """
    notes: list[str] = []
    for probe in _leftovers(out, "probe"):
        with contextlib.suppress(OSError):  # only an empty one goes
            probe.rmdir()
    for tmp in _leftovers(out, "tmp"):
        try:
            marker = read_marker(tmp)
        except OutputFolderError:
            notes.append(f"left alone {tmp} (unreadable marker)")
            continue
        if marker is None:
            if not any(tmp.iterdir()):
                tmp.rmdir()
                notes.append(f"removed the empty temporary folder {tmp}")
            else:
                notes.append(f"left alone {tmp}: no {MARKER_NAME}; delete it yourself if it is not needed")
            continue
        if marker.get("command") != command:
            continue
        if process_alive(marker):
            where = "" if marker.get("host") == socket.gethostname() else f" on host {marker.get('host')}"
            notes.append(f"left alone {tmp}: process {marker.get('pid')}{where} may still be writing it")
            continue
        shutil.rmtree(tmp)
        notes.append(f"removed {tmp}, the unfinished output of an interrupted run (pid {marker.get('pid')})")
    for old in _leftovers(out, "old"):
        pid_text = old.name[len(temporary_name(out, "old")):]
        try:
            marker = read_marker(old)
        except OutputFolderError:
            notes.append(f"left alone {old} (unreadable marker)")
            continue
        if marker is None or marker.get("command") != command or not pid_text.isdigit():
            notes.append(f"left alone {old}: not a previous output of reirrad-opt {command}")
            continue
        if process_alive({"host": marker.get("host"), "pid": int(pid_text)}):
            continue
        if not os.path.lexists(out):
            os.replace(old, out)
            notes.append(f"restored {out} from {old.name}: an interrupted run had moved it aside")
        else:
            shutil.rmtree(old)
            notes.append(f"removed {old}, a previous output already replaced by an interrupted run")
    return notes


def _names(paths, limit: int = _SHOWN) -> str:
    names = sorted(paths)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def check_inputs(out: Path, inputs: tuple[Path, ...]) -> None:
    """Refuse an output that is, lies inside, or contains an input, or holds the current folder."""
    for inp in inputs:
        if out == inp:
            raise OutputFolderError(f"--out {out}: is an input of this command; choose a new folder")
        if _within(out, inp):
            raise OutputFolderError(f"--out {out}: lies inside the input {inp}; choose a folder outside it")
        if _within(inp, out):
            raise OutputFolderError(f"--out {out}: contains the input {inp}; choose a folder that does not")
    cwd = _absolute(os.getcwd())
    if _within(cwd, out):
        what = "is the current folder" if cwd == out else "contains the current folder"
        raise OutputFolderError(f"--out {out}: {what}, which would be replaced; give a sub-folder, "
                                f"e.g. --out ./{'output' if cwd == out else out.name + '-new'}")


def check_existing(out: Path, command: str, overwrite: bool) -> None:
    """Refuse an existing ``out`` unless it is empty, or our own previous output and ``overwrite``."""
    if not os.path.lexists(out):
        return
    if not out.is_dir():
        raise OutputFolderError(f"--out {out}: exists and is not a folder")
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    marker = read_marker(out)
    if marker is None:
        hint = ""
        if {"case.json", "plan.json", "comparison.json"} & set(entries):
            hint = " (perhaps written by an older reirrad-opt, before output markers: move or delete it yourself)"
        raise OutputFolderError(f"--out {out}: holds {len(entries)} file(s) not written by reirrad-opt {command} "
                                f"({_names(entries)}){hint}; choose a new or empty folder")
    if marker.get("command") != command:
        raise OutputFolderError(f"--out {out}: is the output of reirrad-opt {marker.get('command')}, "
                                f"not of reirrad-opt {command}; choose another folder")
    if marker.get("state") != "complete":
        raise OutputFolderError(f"--out {out}: its marker says state {marker.get('state')!r}, not 'complete'; "
                                f"move or delete it yourself")
    recorded = set(marker.get("files", []))
    present = {p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir() and p.name != MARKER_NAME}
    foreign = present - recorded
    if foreign:
        raise OutputFolderError(f"--out {out}: holds {len(foreign)} file(s) not written by reirrad-opt {command} "
                                f"({_names(foreign)}); move them out before replacing this output")
    if not overwrite:
        raise OutputFolderError(f"--out {out}: holds a previous output of reirrad-opt {command} "
                                f"(written {marker.get('created', '?')}); add --overwrite to replace it "
                                f"(it is kept until the new output is complete)")


def check_writable(out: Path) -> None:
    """Refuse an output whose location cannot be written: tried by making a folder there.

    The test creates and removes a hidden folder in the nearest existing ancestor of ``out``'s
    parent, so it also fails for root (a path under a regular file, a read-only file system)
    where permission bits alone would not stop the write.
    """
    parent = out.parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise OutputFolderError(f"--out {out}: cannot be created, {parent} is a file, not a folder")
    try:
        probe = tempfile.mkdtemp(prefix=temporary_name(out, "probe"), dir=parent)
    except OSError as exc:
        raise OutputFolderError(f"--out {out}: cannot write in {parent} ({exc.strerror or exc})") from None
    with contextlib.suppress(FileNotFoundError):  # a concurrent run's recover() may have removed it
        os.rmdir(probe)


def prepare_output(out: str | os.PathLike, command: str, *, overwrite: bool = False,
                   inputs: tuple[str | os.PathLike | None, ...] | list = ()) -> OutputTarget:
    """Check an output folder before the work starts; returns the target to write to.

    Args:
        out: the output folder as given (``--out``).
        command: the command that writes it, e.g. ``plan``.
        overwrite: a previous output of ``command`` may be replaced.
        inputs: the command's input files and folders (None entries are skipped).

    Raises OutputFolderError naming the folder, what was found and what to do.
    """
    path = _absolute(out)
    resolved_inputs = tuple(_absolute(p) for p in inputs if p is not None)
    check_inputs(path, resolved_inputs)
    notes = tuple(recover(path, command)) if path.parent.is_dir() else ()
    check_existing(path, command, overwrite)
    check_writable(path)
    return OutputTarget(path, command, overwrite, resolved_inputs, notes)


def target_of(out: str | os.PathLike | OutputTarget, command: str, overwrite: bool) -> OutputTarget:
    """``out`` itself when it is a target, else an unchecked target for a library call."""
    if isinstance(out, OutputTarget):
        return out
    return OutputTarget(_absolute(out), command, overwrite)


def inside_own_temporary(out: Path) -> bool:
    """Whether ``out`` lies in a temporary output folder that this process is writing."""
    for folder in Path(out).parents:
        try:
            marker = read_marker(folder)
        except (OutputFolderError, OSError):
            return False
        if marker is not None:
            return marker.get("state") == "writing" and marker.get("pid") == os.getpid() \
                and marker.get("host") == socket.gethostname()
    return False


def written_by_this_process(out: str | os.PathLike) -> bool:
    """Whether ``out`` holds a complete output written by the running process (after an interrupt)."""
    try:
        marker = read_marker(_absolute(out))
    except (OutputFolderError, OSError):
        return False
    return bool(marker) and marker.get("pid") == os.getpid() and marker.get("state") == "complete" \
        and marker.get("host") == socket.gethostname()
