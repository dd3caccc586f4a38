"""Progress lines: plain text on stderr also when it is not a terminal, --quiet silences them,
solver details only with --verbose, no duplicated lines."""
from __future__ import annotations

import io
import json
import re

import pytest

from reirrad_opt.cli import main
from reirrad_opt.progress import Progress, detail, step, step_text

JARGON = re.compile(r"L-BFGS-B|multiplier|\brows\b|\bcolumns\b|non-zeros|outer \d|\bLP\b|iterations")


def _lines(stream: io.StringIO) -> list[str]:
    return [re.sub(r"^\[\s*[\d.]+ s\] ", "", line) for line in stream.getvalue().splitlines()]


def test_library_default_prints_only_to_a_terminal():
    stream = io.StringIO()  # not a terminal
    Progress(stream=stream)("hidden")
    assert stream.getvalue() == ""
    Progress(True, stream=stream)("shown")
    assert re.fullmatch(r"\[\s*\d+\.\d s\] shown\n", stream.getvalue())
    assert "\r" not in stream.getvalue()


def test_detail_lines_need_verbose():
    quiet, loud = io.StringIO(), io.StringIO()
    for stream, verbose in ((quiet, False), (loud, True)):
        p = Progress(True, verbose=verbose, stream=stream)
        p("stage priority 1: optimal, 1.0 s")
        detail(p, "  objective 0.5 (10 outer, 1000 L-BFGS-B iterations)")
    assert _lines(quiet) == ["stage priority 1: optimal, 1.0 s"]
    assert _lines(loud) == ["stage priority 1: optimal, 1.0 s", "  objective 0.5 (10 outer, 1000 L-BFGS-B iterations)"]


def test_step_gives_done_total_elapsed_and_time_left():
    assert step_text("influence: beam", 3, 9, 1.5) == "influence: beam 3/9, elapsed 1.5 s, about 3 s left"
    assert step_text("influence: beam", 9, 9, 4.5) == "influence: beam 9/9, elapsed 4.5 s"


def test_fast_steps_are_thinned_but_first_and_last_kept():
    stream = io.StringIO()
    p = Progress(True, stream=stream)
    for k in range(1, 21):
        step(p, "influence: beam", k, 20, 0.01 * k, detail="115 columns")
    lines = _lines(stream)
    assert lines[0].startswith("influence: beam 1/20") and lines[-1].startswith("influence: beam 20/20")
    assert len(lines) == 2
    assert not any("columns" in line for line in lines)


def test_plain_callables_still_receive_every_message():
    got: list[str] = []
    detail(got.append, "LP stage 1: 12 rows")
    step(got.append, "influence: beam", 1, 2, 1.0, detail="3 columns")
    assert got == ["LP stage 1: 12 rows", "influence: beam 1/2, elapsed 1.0 s, about 1 s left; 3 columns"]


def test_quiet_silences_the_command(tmp_path, monkeypatch, capsys):
    def no_plan(*args, **kwargs):
        raise ValueError("stop after the case")

    monkeypatch.setattr("reirrad_opt.planning.plan", no_plan)
    assert main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--out", str(tmp_path / "p"), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == "reirrad-opt plan: error: stop after the case"
    assert main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "case npc_phantom" in err  # progress also when stderr is not a terminal (captured here)
    with pytest.raises(SystemExit):
        main(["plan", "--phantom", "npc", "--out", str(tmp_path / "p"), "--quiet", "--verbose"])


def test_plan_progress_in_plain_words_without_duplicates(tmp_path, capsys):
    code = main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--beams", "5", "--out", str(tmp_path / "p")])
    verdict = json.loads((tmp_path / "p" / "plan.json").read_text())["verdict"]
    assert code == {"fail": 3, "incomplete": 4}.get(verdict, 0)   # the exit code follows the verdict
    lines = [re.sub(r"^\[\s*[\d.]+ s\] ", "", line) for line in capsys.readouterr().err.splitlines()]
    assert any(line.startswith("influence: beam 5/5") for line in lines)
    assert any(line.startswith("stage priority 1") for line in lines)
    assert any(line.startswith("evaluation:") for line in lines)
    assert [line for line in lines if JARGON.search(line)] == []
    assert len(lines) == len(set(lines)), "a progress line was printed twice"
