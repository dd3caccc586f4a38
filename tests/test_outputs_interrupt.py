"""Ctrl-C: one line saying what was kept, exit 130, no traceback, no half-written folder."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from reirrad_opt.atomic import atomic_dir
from reirrad_opt.cli import EXIT_INTERRUPTED, main


def test_interrupt_during_the_work_gives_130_and_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr("reirrad_opt.commands.phantom.run", interrupted)
    out = tmp_path / "case"
    assert main(["phantom", "npc", "--out", str(out)]) == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"reirrad-opt phantom: interrupted; nothing was written ({out} is as it was)"]
    assert not out.exists()


def test_interrupt_mid_write_leaves_no_temporary_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "case"

    def half_written(args):
        with atomic_dir(args.out, command="phantom") as tmp:
            (tmp / "case.json").write_text("{")
            raise KeyboardInterrupt

    monkeypatch.setattr("reirrad_opt.commands.phantom.run", half_written)
    assert main(["phantom", "npc", "--out", str(out)]) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_interrupt_after_the_write_says_the_output_is_complete(tmp_path, monkeypatch, capsys):
    out = tmp_path / "case"

    def written_then_interrupted(args):
        with atomic_dir(args.out, command="phantom") as tmp:
            (tmp / "case.json").write_text("{}")
        raise KeyboardInterrupt  # e.g. while the summary is printed

    monkeypatch.setattr("reirrad_opt.commands.phantom.run", written_then_interrupted)
    assert main(["phantom", "npc", "--out", str(out)]) == 130
    assert capsys.readouterr().err.strip() == f"reirrad-opt phantom: interrupted after {out} was written (complete)"


def test_sigint_to_a_running_command(tmp_path):
    """A real SIGINT to a CLI process busy in its work: exit 130, one line, no traceback."""
    script = textwrap.dedent("""
        import sys, time
        import reirrad_opt.commands.phantom as phantom
        from reirrad_opt.cli import main

        def busy(args):
            print("busy", flush=True)
            time.sleep(60)

        phantom.run = busy
        sys.exit(main(["phantom", "npc", "--out", sys.argv[1]]))
    """)
    out = tmp_path / "case"
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        assert proc.stdout.readline().strip() == "busy"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines() == [f"reirrad-opt phantom: interrupted; nothing was written ({out} is as it was)"]
