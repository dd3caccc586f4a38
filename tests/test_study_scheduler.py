"""A study sent to an existing Dask scheduler, as on a shared cluster: a real ``dask scheduler`` and a
real ``dask worker``, started as separate processes (the way docs/study.md shows), and
``reirrad-opt study --scheduler ADDRESS``. The worker processes import reirrad_opt themselves, so the
plans cross real process and network boundaries."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from test_study_run import CASE, study_file

pytest.importorskip("distributed")


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=log.open("w"), stderr=subprocess.STDOUT)


def _address(scheduler_file: Path, log: Path, timeout_s: float = 60.0) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if scheduler_file.is_file():
            try:
                return json.loads(scheduler_file.read_text())["address"]
            except (json.JSONDecodeError, KeyError):
                pass   # being written
        time.sleep(0.2)
    raise RuntimeError(f"the Dask scheduler did not start within {timeout_s:g} s:\n{log.read_text()[-2000:]}")


@pytest.fixture
def scheduler(tmp_path):
    """A scheduler and one worker (1 process, 1 thread) on loopback; both stopped afterwards."""
    sfile = tmp_path / "scheduler.json"
    procs = [_start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sfile)], tmp_path / "scheduler.log")]
    try:
        address = _address(sfile, tmp_path / "scheduler.log")
        procs.append(_start(["distributed.cli.dask_worker", "--scheduler-file", str(sfile), "--nworkers", "1",
                             "--nthreads", "1", "--no-dashboard", "--local-directory", str(tmp_path / "worker")],
                            tmp_path / "worker.log"))
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_a_study_on_an_existing_scheduler(scheduler, tmp_path, capsys):
    from reirrad_opt.cli import main

    path = study_file(tmp_path, CASE + '[sweep]\nbeams = [3]\nrecovery = ["none", "constant:0.3"]\n')
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out), "--scheduler", scheduler, "--quiet"]) == 0
    assert "2 plans (0 kept, 2 run, 0 failed)" in capsys.readouterr().out
    table = pd.read_parquet(out / "results.parquet")
    assert list(table["status"]) == ["done", "done"]
    record = json.loads((out / "study.json").read_text())
    assert record["cluster"]["scheduler"] == scheduler and record["cluster"]["workers"] == 1
    # the recovered fraction lowers the prior EQD2: the brainstem's cumulative value is lower with it
    by_recovery = table.set_index("recovery")
    column = "Brainstem_D0.03cc_cumEQD2_Gy"
    assert by_recovery.loc["constant:0.3", column] < by_recovery.loc["none", column]
