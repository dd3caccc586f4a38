"""Output folders never cost the user data: foreign files refused and kept, inputs protected, the
previous output kept until the new one is complete, leftovers of killed runs cleaned or restored,
unwritable locations refused before the work."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reirrad_opt import output_folder
from reirrad_opt.atomic import atomic_dir
from reirrad_opt.cli import main
from reirrad_opt.output_folder import MARKER_NAME, OutputFolderError, prepare_output

PHANTOM = ["--resolution-mm", "5", "--no-figure"]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(out, command="test", overwrite=True, content="new", fail=False):
    target = out if isinstance(out, output_folder.OutputTarget) else None
    with atomic_dir(target or out, overwrite=overwrite, command=command) as tmp:
        (tmp / "a.txt").write_text(content)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text(content)
        if fail:
            raise RuntimeError("disk full")


def _leftover(out: Path, kind: str, pid: int, command: str = "test", state: str = "writing") -> Path:
    """A hidden temporary (kind 'tmp') or moved-aside (kind 'old') folder as a killed run leaves it."""
    name = f".{out.name}.{kind}-{pid if kind == 'old' else 'x1y2'}"
    folder = out.parent / name
    folder.mkdir()
    (folder / "a.txt").write_text(kind)
    output_folder.write_marker(folder, command, state)
    marker = json.loads((folder / MARKER_NAME).read_text())
    marker["pid"] = pid
    (folder / MARKER_NAME).write_text(json.dumps(marker))
    return folder


# -- refusals ----------------------------------------------------------------------------------------


def test_foreign_files_are_refused_and_kept(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "scan.dcm").write_bytes(b"DICM")
    code = main(["phantom", "npc", "--out", str(out), "--overwrite", *PHANTOM])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds 2 file(s) not written by reirrad-opt phantom" in err and "notes.txt" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt", "scan.dcm"]
    assert (out / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no hidden folder left


def test_a_file_added_to_a_previous_output_blocks_its_replacement(tmp_path, capsys):
    out = tmp_path / "case"
    assert main(["phantom", "npc", "--out", str(out), *PHANTOM]) == 0
    (out / "my_contours.txt").write_text("keep me")
    assert main(["phantom", "npc", "--out", str(out), "--overwrite", *PHANTOM]) == 2
    assert "holds 1 file(s) not written by reirrad-opt phantom (my_contours.txt)" in capsys.readouterr().err
    assert (out / "my_contours.txt").read_text() == "keep me"


def test_previous_output_needs_overwrite_and_another_commands_output_is_refused(tmp_path, capsys):
    out = tmp_path / "case"
    assert main(["phantom", "npc", "--out", str(out), *PHANTOM]) == 0
    assert json.loads((out / MARKER_NAME).read_text())["command"] == "phantom"
    before = (out / "case.json").read_text()
    assert main(["phantom", "npc", "--out", str(out), *PHANTOM]) == 2
    assert "add --overwrite to replace it" in capsys.readouterr().err
    assert (out / "case.json").read_text() == before
    with pytest.raises(OutputFolderError, match="is the output of reirrad-opt phantom, not of reirrad-opt plan"):
        prepare_output(out, "plan", overwrite=True)
    first = json.loads((out / MARKER_NAME).read_text())
    assert main(["phantom", "npc", "--out", str(out), "--overwrite", "--interval-months", "12", *PHANTOM]) == 0
    assert json.loads((out / "case.json").read_text())["prior_course"]["interval_months"] == 12
    assert json.loads((out / MARKER_NAME).read_text())["replaced"]["created"] == first["created"]  # recorded


def test_out_dot_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "thesis.tex").write_text("years of work")
    assert main(["phantom", "npc", "--out", ".", *PHANTOM]) == 2
    assert "is the current folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]
    # a parent of the current folder would be renamed away from under the shell: refused too
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert main(["phantom", "npc", "--out", "..", *PHANTOM]) == 2
    assert "contains the current folder" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_out_equal_to_inside_or_containing_an_input_is_refused(tmp_path, capsys, where):
    dicom = tmp_path / "patient" / "dicom"
    dicom.mkdir(parents=True)
    (dicom / "CT1.dcm").write_bytes(b"DICM")
    out = {"same": dicom, "inside": dicom / "case", "contains": tmp_path / "patient"}[where]
    code = main(["import-dicom", str(dicom), "--interval-months", "24", "--out", str(out), "--overwrite"])
    assert code == 2
    err = capsys.readouterr().err
    assert {"same": "is an input", "inside": "lies inside the input", "contains": "contains the input"}[where] in err
    assert sorted(p.name for p in dicom.iterdir()) == ["CT1.dcm"]


def test_export_dicom_refuses_its_plan_folder_as_out(tmp_path, capsys):
    plan_dir, ref = tmp_path / "plan", tmp_path / "ref"
    plan_dir.mkdir(), ref.mkdir()
    assert main(["export-dicom", str(plan_dir), "--reference", str(ref), "--out", str(plan_dir / "dicom")]) == 2
    assert "lies inside the input" in capsys.readouterr().err
    assert main(["import-openkbp", str(ref), "--interval-months", "24", "--out", str(ref)]) == 2
    assert "is an input" in capsys.readouterr().err


def test_an_empty_existing_folder_may_be_used(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert main(["phantom", "npc", "--out", str(out), *PHANTOM]) == 0
    assert (out / "case.json").is_file()


def test_unwritable_out_is_refused_before_the_work(tmp_path, monkeypatch, capsys):
    # Tests run as root, for whom a chmod 0o500 folder is still writable: a path below a regular
    # file cannot be created by anyone, so that is the unwritable location used here.
    blocker = tmp_path / "a_file"
    blocker.write_text("x")

    def no_planning(*args, **kwargs):
        raise AssertionError("the plan ran although its output cannot be written")

    monkeypatch.setattr("reirrad_opt.planning.plan", no_planning)
    code = main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--out", str(blocker / "plan")])
    assert code == 2
    assert f"cannot be created, {blocker} is a file, not a folder" in capsys.readouterr().err


def test_unwritable_parent_is_refused(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(output_folder.tempfile, "mkdtemp", refuse)
    with pytest.raises(OutputFolderError, match="cannot write in .*Permission denied"):
        prepare_output(tmp_path / "out", "plan")


# -- the previous output is kept until the new one is complete ------------------------------------


def test_overwrite_keeps_the_old_folder_when_the_new_write_fails(tmp_path):
    out = tmp_path / "out"
    _write(out, content="old")
    with pytest.raises(RuntimeError, match="disk full"):
        _write(out, content="new", fail=True)
    assert (out / "a.txt").read_text() == "old" and (out / "sub" / "b.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    _write(out, content="new")
    assert (out / "a.txt").read_text() == "new"
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["state"] == "complete" and marker["files"] == ["a.txt", "sub/b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_interrupt_between_the_two_renames_puts_the_old_folder_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    _write(out, content="old")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new folder's rename: the old one is already moved aside
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        _write(out, content="new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert (out / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- leftovers of killed runs ----------------------------------------------------------------------


def test_stale_temporary_folder_of_a_dead_process_is_removed(tmp_path):
    out = tmp_path / "out"
    stale = _leftover(out, "tmp", _dead_pid())
    target = prepare_output(out, "test")
    assert not stale.exists()
    assert any("unfinished output of an interrupted run" in n for n in target.notes)


def test_temporary_folder_of_a_live_process_or_another_command_is_left_alone(tmp_path):
    out = tmp_path / "out"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = _leftover(out, "tmp", sleeper.pid)
        notes = prepare_output(out, "test").notes
        assert any(f"process {sleeper.pid} may still be writing it" in n for n in notes)
        _write(out)
        assert live.is_dir() and (live / "a.txt").read_text() == "tmp"
    finally:
        sleeper.kill()
        sleeper.wait()
    other = tmp_path / ".out.tmp-zz"
    other.mkdir()
    (other / "x").write_text("not ours")  # no marker: never touched
    live.rename(tmp_path / "elsewhere")
    assert prepare_output(out, "test", overwrite=True).notes and (other / "x").is_file()


def test_killed_swap_is_restored_from_the_old_folder(tmp_path):
    out = tmp_path / "out"
    _write(out, content="old")
    pid = _dead_pid()
    moved = out.parent / f".out.old-{pid}"
    out.rename(moved)  # SIGKILL between the renames: only the moved-aside folder is left
    target = prepare_output(out, "test", overwrite=True)
    assert (out / "a.txt").read_text() == "old" and not moved.exists()
    assert any("restored" in n for n in target.notes)


def test_old_folder_left_after_a_finished_swap_is_removed(tmp_path):
    out = tmp_path / "out"
    _write(out, content="new")
    old = _leftover(out, "old", _dead_pid(), state="complete")
    _write(out, content="newer")
    assert not old.exists() and (out / "a.txt").read_text() == "newer"


def test_a_folder_written_inside_an_output_being_written_is_part_of_it(tmp_path):
    out = tmp_path / "plan"
    with atomic_dir(out, command="plan") as tmp:
        (tmp / "plan.json").write_text("{}")
        with atomic_dir(tmp / "dicom", command="export-dicom") as sub:   # as plan writes its DICOM files
            (sub / "RD.dcm").write_bytes(b"DICM")
    assert sorted(p.name for p in (out / "dicom").iterdir()) == ["RD.dcm"]
    marker = json.loads((out / MARKER_NAME).read_text())
    assert marker["command"] == "plan" and marker["files"] == ["dicom/RD.dcm", "plan.json"]


def test_empty_probe_folder_of_a_killed_check_is_removed(tmp_path):
    out = tmp_path / "out"
    probe = tmp_path / ".out.probe-abc"
    probe.mkdir()
    prepare_output(out, "test")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cli_reports_the_clean_up(tmp_path, capsys):
    out = tmp_path / "case"
    stale = _leftover(out, "tmp", _dead_pid(), command="phantom")
    assert main(["phantom", "npc", "--out", str(out), *PHANTOM]) == 0
    assert not stale.exists()
    assert "unfinished output of an interrupted run" in capsys.readouterr().err
