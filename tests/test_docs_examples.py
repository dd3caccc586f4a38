"""Examples in docs/ that are meant to be copied: each is read as the tool reads it."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from conftest import env_with_cli_on_path, fenced_block
from reirrad_opt.planning_settings import load_settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_settings_file_example_of_optimization_md_is_a_settings_file(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(fenced_block(DOCS / "optimization.md", "## Planning settings", "toml"), encoding="utf-8")
    s = load_settings(path)
    # every line of the example is read (engine and move_held_tails repeat their defaults; the others differ)
    assert s.engine == "first-order"
    assert (s.target_homogeneity_weight, s.target_floor_pct_rx) == (100.0, 95.0)
    assert s.engine_settings.max_outer == 40 and s.engine_settings.move_held_tails is True
    assert s.problem.ring_mm == 20.0


def run_block(block: str, home: Path) -> dict:
    """Run a Python block as written, with ``home`` as the user's home folder; its variables."""
    import os

    namespace: dict = {}
    old_home = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        exec(compile(block, "<docs block>", "exec"), namespace)
    finally:
        if old_home is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = old_home
    return namespace


def test_protocol_md_loading_example_runs_and_gives_its_quoted_values(tmp_path):
    ns = run_block(fenced_block(DOCS / "protocol.md", "# Protocols", "python"), tmp_path)
    p = ns["p"]
    assert p.rx_gy == 60.0                                       # "60.0: physical total of the chosen fractionation"
    assert p.priorities() == [1, 2, 3]
    assert abs(ns["g"].limit_gy("desirable", p.rx_gy) - 70.2) < 1e-9   # "# 70.2"


def test_evaluation_md_example_runs_as_written(tmp_path):
    ns = run_block(fenced_block(DOCS / "evaluation.md", "# Evaluation", "python"), tmp_path)
    ev = ns["ev"]   # the last evaluation of the block: the chiasm declared absent
    assert {r.structure for r in ev.rows} >= {"Brainstem", "rGTV"}
    assert next(r for r in ev.rows if r.structure == "OpticChiasm").verdict == "absent"
    value = ns["metric_value"]("D0.03cc", ns["new_dose_gy"], ns["case"].structures["Brainstem"].mask, ns["case"].grid)
    # the fields the block's comment lists, in its order
    assert [f.name for f in dataclasses.fields(value)][:5] == ["value", "unit", "value_coarse", "fine_factor", "note"]


def test_dose_md_example_runs_as_written_with_the_sizes_the_page_quotes(tmp_path):
    """The "Using it" block on the 2.5 mm phantom: the page quotes its photon matrix (columns and non-zeros);
    the cache named with '~' lands in the home folder."""
    import re

    text = " ".join((DOCS / "dose.md").read_text(encoding="utf-8").split())
    columns, nnz_m = re.search(r"9 photon beams with 5 mm bixels \((\d+) columns\): [\d.]+ s and ([\d.]+) M "
                               r"non-zeros", text).groups()
    ns = run_block(fenced_block(DOCS / "dose.md", "## Using it", "python"), tmp_path)
    inf = ns["inf"]
    assert inf.n_columns == int(columns)
    assert abs(inf.matrix.nnz / 1e6 - float(nnz_m)) <= 0.05
    assert len(ns["fields"]) == 3 and all(f.spot_u_mm.size > 0 for f in ns["fields"])
    assert ns["dose"].shape == ns["case"].grid.shape
    assert len(list((tmp_path / ".cache" / "reirrad").glob("influence-*.npz"))) == 1


def test_tps_exchange_md_eclipse_command_keeps_the_unc_path(tmp_path):
    """The Eclipse block run in bash as written: the exchange folder reaches the plug-in with both leading
    backslashes of its network path."""
    import subprocess

    block = fenced_block(DOCS / "tps-exchange.md", "## Eclipse: the ESAPI plug-in", "")
    assert block.startswith("reirrad-opt tps-script eclipse")
    done = subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, env=env_with_cli_on_path(tmp_path),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '@"\\\\server\\reirrad\\case42"' in (tmp_path / "ReirradOpt.cs").read_text(encoding="utf-8")
