"""Examples in docs/ that are meant to be copied: each is read as the tool reads it."""
from __future__ import annotations

import re
from pathlib import Path

from reirrad_opt.planning_settings import load_settings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def block_after(doc: str, heading: str, language: str) -> str:
    text = (DOCS / doc).read_text(encoding="utf-8")
    after = text.split(heading, 1)
    assert len(after) == 2, f"docs/{doc} has no heading {heading!r}"
    match = re.search(rf"```{language}\n(.*?)```", after[1], re.S)
    assert match, f"docs/{doc} has no {language} block after {heading!r}"
    return match.group(1)


def test_the_settings_file_example_of_optimization_md_is_a_settings_file(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text(block_after("optimization.md", "## Planning settings", "toml"), encoding="utf-8")
    s = load_settings(path)
    # every line of the example is read (engine and move_held_tails repeat their defaults; the others differ)
    assert s.engine == "first-order"
    assert (s.target_homogeneity_weight, s.target_floor_pct_rx) == (100.0, 95.0)
    assert s.engine_settings.max_outer == 40 and s.engine_settings.move_held_tails is True
    assert s.problem.ring_mm == 20.0
