"""Outputs record no absolute path of the machine: the protocol by name or relative path."""
from __future__ import annotations

import json
import shutil

from reirrad_opt.cli import main
from reirrad_opt.protocol import DEFAULT_PROTOCOL, PROTOCOL_DIR
from reirrad_opt.recorded_paths import portable_path


def test_portable_path_rules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "protocols").mkdir()
    assert portable_path(DEFAULT_PROTOCOL, shipped_dir=PROTOCOL_DIR) == DEFAULT_PROTOCOL.stem
    assert portable_path("protocols/mine.toml") == "protocols/mine.toml"           # as given
    assert portable_path(tmp_path / "protocols" / "mine.toml") == "protocols/mine.toml"  # below the cwd
    assert portable_path("/somewhere/else/mine.toml") == "mine.toml"               # elsewhere: its name
    assert portable_path(None) == ""


def _strings(node):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_plan_json_holds_no_absolute_path(tmp_path):
    """A protocol given by an absolute path outside the working folder is recorded by its name."""
    mine = tmp_path / "elsewhere" / "my_protocol.toml"
    mine.parent.mkdir()
    shutil.copy(DEFAULT_PROTOCOL, mine)
    out = tmp_path / "plan"
    code = main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--beams", "5", "--quiet",
                 "--protocol", str(mine), "--out", str(out)])
    content = json.loads((out / "plan.json").read_text())
    assert code == {"fail": 3, "incomplete": 4}.get(content["verdict"], 0)   # the exit code follows the verdict
    assert content["protocol"]["path"] == "my_protocol.toml"
    absolute = [s for s in _strings(content) if s.startswith("/") or str(tmp_path) in s]
    assert absolute == []
