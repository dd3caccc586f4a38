"""Examples in docs/ that are meant to be copied: each is read as the tool reads it."""
from __future__ import annotations

from pathlib import Path

from conftest import fenced_block
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
