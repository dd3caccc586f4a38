"""The plan values the README quotes are the values the tool gives.

The README quotes the main job's rGTV and PTV D98% on the phantom, and the OpenKBP walk-through's
brainstem, cord and rGTV values with its exit code. These tests read the quoted numbers from the README
itself and run what the README runs (the OpenKBP block as written, in bash), so a change that moves a plan
fails here until the README says the new value. A quoted value must lie within half of its last digit
(0.05 Gy for "63.5 Gy") of the value in plan.json.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import env_with_cli_on_path, fenced_block, require

ROOT = Path(__file__).resolve().parents[1]


def readme_text() -> str:
    """The README with every run of whitespace as one space (quoted sentences wrap across lines)."""
    return " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())


def quoted(pattern: str) -> tuple[str, ...]:
    match = re.search(pattern, readme_text())
    assert match, f"README.md no longer has a sentence matching {pattern!r}; update this test with it"
    return match.groups()


def assert_quotes(text: str, value: float, what: str) -> None:
    """``text`` (a number as the README writes it) equals ``value`` to half of its last digit."""
    decimals = len(text.split(".")[1]) if "." in text else 0
    assert abs(float(text) - value) <= 0.5 * 10.0 ** -decimals + 1e-9, \
        f"README.md quotes {what} {text}, the plan gives {value:.3f}"


def row(plan_json: dict, goal_id: str) -> dict:
    rows = {r["goal_id"]: r for r in plan_json["evaluation"]}
    assert goal_id in rows, f"plan.json has no evaluation row {goal_id}"
    return rows[goal_id]


def test_main_job_values_are_those_the_readme_quotes(tmp_path):
    from reirrad_opt.cli import main as cli

    rgtv, rgtv_goal = quoted(r"rGTV D98% ([\d.]+) Gy for a goal of ([\d.]+) Gy\)")
    ptv, ptv_goal = quoted(r"PTV near-minimum \(priority 2, D98% ([\d.]+) Gy for a goal of ([\d.]+) Gy")
    rc = cli(["plan", "--phantom", "npc", "--out", str(tmp_path / "plan_npc")])
    assert rc == 0   # the README: every priority-1 line passes
    plan_json = json.loads((tmp_path / "plan_npc" / "plan.json").read_text())
    assert plan_json["verdict"] == "desirable"
    r = row(plan_json, "rGTV_D98%")
    assert_quotes(rgtv, r["value"], "the phantom's rGTV D98% (Gy)")
    assert_quotes(rgtv_goal, r["desirable"], "the rGTV D98% goal (Gy)")
    r = row(plan_json, "PTV_D98%")
    assert_quotes(ptv, r["value"], "the phantom's PTV D98% (Gy)")
    assert_quotes(ptv_goal, r["desirable"], "the PTV D98% goal (Gy)")
    assert r["verdict"] == "not met" and r["acceptable"] is None   # "has no acceptable limit and reads not met"


@pytest.mark.realdata
def test_openkbp_walk_through_runs_as_written_and_gives_the_quoted_values(realdata, tmp_path):
    require(realdata / "openkbp_hn" / "pt_201")
    brainstem, cord, rgtv, exit_code = quoted(
        r"\(brainstem ([\d.]+) Gy, cord ([\d.]+) Gy cumulative EQD2, rGTV D98% ([\d.]+) Gy\), exit (\d+)")
    block = fenced_block(ROOT / "README.md", "### Real anatomy: an OpenKBP patient", "bash")
    # the block's REIRRAD_REALDATA=../shared/realdata is relative to the project folder: the same layout here
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "realdata").symlink_to(realdata.resolve(), target_is_directory=True)
    project = tmp_path / "project"
    project.mkdir()
    env = env_with_cli_on_path(tmp_path)   # `reirrad-opt` on the PATH: the one under test
    done = subprocess.run(["bash", "-e", "-c", block], cwd=project, env=env, capture_output=True, text=True)
    assert done.returncode == int(exit_code), done.stderr[-3000:]
    plan_json = json.loads((project / "plans" / "pt_201" / "plan.json").read_text())
    assert plan_json["verdict"] == "desirable"
    assert_quotes(brainstem, row(plan_json, "Brainstem_D0.03cc")["value"], "pt_201's brainstem D0.03cc (Gy)")
    assert_quotes(cord, row(plan_json, "SpinalCord_D0.03cc")["value"], "pt_201's cord D0.03cc (Gy)")
    assert_quotes(rgtv, row(plan_json, "rGTV_D98%")["value"], "pt_201's rGTV D98% (Gy)")


def test_python_example_runs_as_written(tmp_path):
    """The README's Python block, run as written in a fresh process: it prints the verdict, then one line per
    evaluation row with its priority, value and unit."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.protocol import load_protocol

    block = fenced_block(ROOT / "README.md", "## Python", "python")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines[1:]]
    # one row per protocol goal on a structure the phantom contours (it contours all of them)
    case = make_npc_phantom(resolution_mm=3.0)
    goals = [g for g in load_protocol().goals if g.structure in case.structures]
    assert len(rows) == len(goals)
    for fields in rows:
        priority, structure, metric, value, unit, verdict = fields[0], fields[1], fields[2], fields[3], fields[4], \
            " ".join(fields[5:])
        assert priority in {"1", "2", "3"} and structure in case.structures
        assert unit == ("%" if metric.startswith("V") else "Gy"), fields
        float(value)
        assert verdict in {"desirable", "acceptable", "not met", "fail"}, fields
    # the printed verdict is the one the printed priority-1 rows give (priority 1 alone decides it)
    first = {" ".join(f[5:]) for f in rows if f[0] == "1"}
    assert lines[0] == ("fail" if "fail" in first else "desirable" if first == {"desirable"} else "acceptable")
