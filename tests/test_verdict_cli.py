"""`reirrad-opt plan` on the NPC phantom (5 mm, 5 beams) with the optic chiasm not contoured: exit 4
with the 'incomplete' words; with `--absent OpticChiasm` the chiasm's line reads 'absent' and the exit
code follows the priority-1 rows of plan.json."""
from __future__ import annotations

import json
import re

import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.case import save_case
from reirrad_opt.cli import EXIT_INCOMPLETE, EXIT_OK, EXIT_PRIORITY1_FAIL, main

ANGLES = ["0", "72", "144", "216", "288"]


@pytest.fixture(scope="module")
def chiasm_missing(tmp_path_factory):
    folder = tmp_path_factory.mktemp("case") / "npc_no_chiasm"
    case = make_npc_phantom(5.0)
    del case.structures["OpticChiasm"]
    save_case(case, folder)
    return folder


def test_an_organ_not_contoured_exits_4_then_declared_absent_exits_by_the_remaining_limits(chiasm_missing, tmp_path,
                                                                                          capsys):
    cache = tmp_path / "cache"
    common = ["plan", "--case", str(chiasm_missing), "--gantry-angles", *ANGLES, "--quiet", "--cache-dir", str(cache)]
    code = main(common + ["--out", str(tmp_path / "plan")])
    out = capsys.readouterr().out
    assert code == EXIT_INCOMPLETE == 4
    assert "(verdict: INCOMPLETE)" in out and "PRIORITY-1 LIMIT NOT MET" not in out
    assert re.search(r"verdict: INCOMPLETE: OpticChiasm not contoured", out)
    assert "!! INCOMPLETE: OpticChiasm not contoured; declare it with --absent if it is outside the field !!" in out
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert doc["verdict"] == "incomplete" and doc["absent_structures"] == {}
    assert doc["verdict_detail"].startswith("INCOMPLETE: OpticChiasm not contoured")
    chiasm = next(r for r in doc["evaluation"] if r["structure"] == "OpticChiasm")
    assert chiasm["verdict"] == "not evaluated"

    code = main(common + ["--absent", "OpticChiasm", "--out", str(tmp_path / "plan_absent")])
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "plan_absent" / "plan.json").read_text())
    rows = doc["evaluation"]
    chiasm = next(r for r in rows if r["structure"] == "OpticChiasm")
    assert chiasm["verdict"] == "absent" and chiasm["note"].startswith("declared absent (--absent)")
    assert doc["absent_structures"] == {"OpticChiasm": "--absent"}
    p1 = [r["verdict"] for r in rows if r["priority"] == 1 and r["structure"] != "OpticChiasm"]
    assert "not evaluated" not in p1 and "absent" not in p1
    expected = EXIT_PRIORITY1_FAIL if {"fail", "not met"} & set(p1) else EXIT_OK
    expected_verdict = ("fail" if expected else "desirable" if set(p1) == {"desirable"} else "acceptable")
    assert (code, doc["verdict"]) == (expected, expected_verdict)
    # this phantom at 5 mm and 5 beams: the brainstem reaches its acceptable, not its desirable, limit
    assert (code, doc["verdict"]) == (0, "acceptable")
    assert "declared absent: OpticChiasm (--absent)" in out and "INCOMPLETE" not in out
    assert re.search(r"P1 OpticChiasm +D0\.03cc +absent: declared absent \(--absent\)", out)
    # every number of a row line carries its unit
    brainstem = next(line for line in out.splitlines() if line.strip().startswith("P1 Brainstem"))
    assert re.search(r"\d Gy +\(desirable <= 70\.20 Gy, acceptable <= 81\.00 Gy\) .* margin [+-]\d+\.\d\d Gy$",
                     brainstem), brainstem


def test_absent_is_refused_for_a_contoured_organ_and_an_unknown_name(chiasm_missing, tmp_path, capsys):
    code = main(["plan", "--case", str(chiasm_missing), "--absent", "Brainstem", "--quiet", "--out",
                 str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "Brainstem is declared absent (--absent) but case" in err and "cannot be both" in err
    assert not (tmp_path / "p").exists()
    code = main(["plan", "--case", str(chiasm_missing), "--absent", "Chiasm", "--quiet", "--out", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 2 and "--absent: 'Chiasm' is not a structure of the protocol; did you mean OpticChiasm?" in err
