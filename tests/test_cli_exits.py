"""Exit codes of failures outside the user's input: a closed stdout pipe and an operating-system
error during the work give one line (or none) and a documented code, never a traceback."""
from __future__ import annotations

import errno
import subprocess
import sys

from reirrad_opt import cli


def test_os_error_during_work_is_one_line_and_exit_1(monkeypatch, capsys):
    def full_disk(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/plan/dose.npz")

    monkeypatch.setattr(cli, "build_parser", _parser_running(full_disk))
    assert cli.main(["budget"]) == cli.EXIT_SYSTEM_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device (/data/plan/dose.npz)" in err
    assert "Traceback" not in err


def test_closed_stdout_pipe_exits_141_without_traceback():
    code = ("import sys\nfrom reirrad_opt import cli\n"
            "sys.exit(cli.main(['budget', '--structure', 'Brainstem', '--prior-eqd2-gy', '50', '--fractions', '30']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()   # the reader stops before the command prints anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err


def _parser_running(func):
    def build():
        import argparse

        parser = argparse.ArgumentParser(prog="reirrad-opt")
        sub = parser.add_subparsers(dest="command")
        sub.add_parser("budget").set_defaults(func=func)
        return parser
    return build
