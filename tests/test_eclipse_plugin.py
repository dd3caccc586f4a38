"""The Eclipse plug-in written by 'reirrad-opt tps-script eclipse': compiled as C# 5 against stub
assemblies of the ESAPI members it calls (tests/eclipse_stubs, written from the documented
signatures listed in docs/tps-exchange.md), then run by mono on a fake ScriptContext whose
OptimizationSetup records every call. No Eclipse here: this checks the signatures and the mapping
of tps_goals.json, not the behaviour of Eclipse's optimizer.

Needs Debian's mono-mcs (mcs and the mono runtime); skips without it, unless REIRRAD_REQUIRE_MCS=1
(set by .ci/run, which installs mono-mcs), where a missing compiler is a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reirrad_opt.cli import main

STUBS = Path(__file__).parent / "eclipse_stubs"
GOALS = Path(__file__).parent / "data" / "tps_goals_eclipse.json"
# ROI Ids and volumes (cc) of the fake structure set: 'Temporal Lobe R' is empty, PTV is missing
# (reirrad-opt made it; the user has not imported result/dicom's RTSTRUCT yet)
STRUCTURES = {"BRAIN STEM": 25.0, "Cord": 30.0, "GTV_recur": 12.0, "Parotid Lt": 20.0, "Temporal Lobe R": 0.0}


def _mcs(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["mcs", "-langversion:5", "-nologo", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def stubs(tmp_path_factory) -> Path:
    """A folder with the stub assemblies (VMS.TPS.Common.Model.Types/API, PresentationFramework)."""
    if shutil.which("mcs") is None or shutil.which("mono") is None:
        if os.environ.get("REIRRAD_REQUIRE_MCS") == "1":
            pytest.fail("REIRRAD_REQUIRE_MCS=1 but mcs/mono is missing (apt-get install mono-mcs)")
        pytest.skip("mcs (Debian package mono-mcs) is not installed")
    d = tmp_path_factory.mktemp("esapi_stubs")
    for args in (["-target:library", "-out:VMS.TPS.Common.Model.Types.dll",
                  str(STUBS / "VMS.TPS.Common.Model.Types.cs")],
                 ["-target:library", "-out:VMS.TPS.Common.Model.API.dll", "-r:VMS.TPS.Common.Model.Types.dll",
                  str(STUBS / "VMS.TPS.Common.Model.API.cs")],
                 ["-target:library", "-out:PresentationFramework.dll", str(STUBS / "PresentationFramework.cs")]):
        r = _mcs(*args, cwd=d)
        assert r.returncode == 0, r.stdout + r.stderr
    return d


REFS = ["-r:VMS.TPS.Common.Model.Types.dll", "-r:VMS.TPS.Common.Model.API.dll", "-r:PresentationFramework.dll",
        "-r:System.Core.dll"]


def _emit(tmp_path: Path, *options: str) -> Path:
    out = tmp_path / "ReirradOpt.cs"
    assert main(["tps-script", "eclipse", "--out", str(out), *options]) == 0
    return out


def _build(stubs: Path, plugin: Path) -> Path:
    """Compile the plug-in (warnings are errors) and the harness; returns the folder holding Harness.exe."""
    d = plugin.parent
    for dll in stubs.glob("*.dll"):
        shutil.copy(dll, d)
    r = _mcs("-target:library", "-warnaserror+", "-out:ReirradOpt.esapi.dll", *REFS, str(plugin), cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _mcs("-out:Harness.exe", *REFS, "-r:ReirradOpt.esapi.dll", str(STUBS / "Harness.cs"), cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    return d


def _run(folder: Path, *args: str) -> tuple[list[dict], str]:
    r = subprocess.run(["mono", "Harness.exe", *args], cwd=folder, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    calls, _, message = r.stdout.partition("---MESSAGE---\n")
    return [json.loads(line) for line in calls.splitlines() if line.strip()], message


def _exchange(tmp_path: Path, status: dict, goals: dict | None = None) -> Path:
    result = tmp_path / "exchange" / "result"
    result.mkdir(parents=True)
    (result / "status.json").write_text(json.dumps(status))
    if goals is not None:
        (result / "tps_goals.json").write_text(json.dumps(goals, indent=1))
    return tmp_path / "exchange"


def test_plugin_compiles_as_csharp5_against_esapi_stubs(stubs, tmp_path):
    plugin = _emit(tmp_path)
    text = plugin.read_text()
    assert "{{" not in text and "[assembly: ESAPIScript(IsWriteable = true)]" in text
    assert (_build(stubs, plugin) / "ReirradOpt.esapi.dll").is_file()


def test_plugin_adds_exactly_the_goals_of_tps_goals_json(stubs, tmp_path):
    goals = json.loads(GOALS.read_text())
    exchange = _exchange(tmp_path, {"state": "ok", "exit_code": 0, "message": "plan written"}, goals)
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange))
    calls, message = _run(_build(stubs, plugin), *(f"{k}={v}" for k, v in STRUCTURES.items()))

    by_roi = {g["roi_name"]: g for g in goals["goals"]}
    point = {c["structure"]: c for c in calls if c["call"] == "AddPointObjective"}
    mean = {c["structure"]: c for c in calls if c["call"] == "AddMeanDoseObjective"}
    nto = [c for c in calls if c["call"] == "AddNormalTissueObjective"]
    # one objective per goal whose ROI is in the structure set and not empty, plus the NTO
    assert set(point) == {"BRAIN STEM", "Cord", "GTV_recur"} and set(mean) == {"Parotid Lt"} and len(nto) == 1
    assert len(calls) == 5
    for roi, c in {**point, **mean}.items():
        assert c["unit"] == "cGy" and c["dose"] == by_roi[roi]["level_cgy"]
    # D0.03cc of a 25 cc brainstem is the dose at 0.12 % of its volume; volume_cc 0 is the maximum (0 %)
    assert point["BRAIN STEM"]["volume"] == pytest.approx(0.12) and point["BRAIN STEM"]["operator"] == "Upper"
    assert point["Cord"]["volume"] == 0 and point["Cord"]["operator"] == "Upper"
    assert point["GTV_recur"]["volume"] == 98 and point["GTV_recur"]["operator"] == "Lower"
    # priorities: caps 500, protocol priority 2 -> 150, priority 4 -> the last of (150, 80, 40)
    assert point["BRAIN STEM"]["priority"] == point["Cord"]["priority"] == 500
    assert point["GTV_recur"]["priority"] == 150 and mean["Parotid Lt"]["priority"] == 40
    assert nto[0]["fall_off"] == pytest.approx(0.1099, abs=1e-4) and nto[0]["end_pct"] == 25
    # what could not be mapped is named with the reason
    assert "PTV_V107: ROI 'PTV' is not in the structure set (made by reirrad-opt: import" in message
    assert "Temporal_R_D0.03cc: ROI 'Temporal Lobe R' is empty" in message
    assert "OpticChiasm_D0.03cc: absent: declared outside the field" in message
    assert "4 objectives added" not in message and "5 objectives added" in message


def test_plugin_matches_roi_ids_case_insensitively_only_without_an_exact_match(stubs, tmp_path):
    goals = json.loads(GOALS.read_text())
    goals["goals"] = [g for g in goals["goals"] if g["roi_name"] == "Cord"]
    exchange = _exchange(tmp_path, {"state": "ok", "exit_code": 0, "message": ""}, goals)
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange), "--no-nto")
    calls, _ = _run(_build(stubs, plugin), "CORD=10", "Cord=30")
    assert [c["structure"] for c in calls] == ["Cord"]
    calls, _ = _run(plugin.parent, "CORD=10")
    assert [c["structure"] for c in calls] == ["CORD"]


def test_plugin_reports_a_failed_run_and_adds_nothing(stubs, tmp_path):
    exchange = _exchange(tmp_path, {"state": "failed", "exit_code": 2,
                                    "message": "request.json: key 'fractionation': expected a string"})
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange))
    calls, message = _run(_build(stubs, plugin), "Cord=30")
    assert calls == []
    assert "did not succeed (state 'failed', exit code 2): request.json: key 'fractionation'" in message


def test_plugin_without_a_result_explains_the_export_and_the_run(stubs, tmp_path):
    exchange = tmp_path / "nothing-yet"
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange))
    calls, message = _run(_build(stubs, plugin), "Cord=30")
    assert calls == []
    assert "DICOM export" in message and f'reirrad-opt tps-run "{exchange}"' in message


def test_plugin_on_a_proton_plan_adds_no_photon_nto(stubs, tmp_path):
    goals = json.loads(GOALS.read_text())
    exchange = _exchange(tmp_path, {"state": "ok", "exit_code": 0, "message": ""}, goals)
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange))
    calls, message = _run(_build(stubs, plugin), *(f"{k}={v}" for k, v in STRUCTURES.items()), "ion")
    assert not [c for c in calls if c["call"] == "AddNormalTissueObjective"] and len(calls) == 4
    assert "not a photon plan; set the proton NTO by hand" in message


def test_emitter_refuses_bad_settings(tmp_path, capsys):
    assert main(["tps-script", "eclipse", "--out", str(tmp_path / "ReirradOpt.py")]) == 2
    assert "an Eclipse single-file plug-in is a .cs file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tps-script", "eclipse", "--out", str(tmp_path / "x.cs"), "--constraint-priority", "1500"])
    assert "Eclipse priorities run from 0 to 1000" in capsys.readouterr().err
    from tps_adapters.eclipse import EclipseSettings

    with pytest.raises(ValueError, match="exchange_dir"):
        EclipseSettings(exchange_dir="a\nb")


def test_plugin_maps_every_goal_of_a_real_plans_tps_goals(stubs, tmp_path):
    """tps_goals.json of a lexicographic plan of the NPC phantom (5 mm, 7 beams; about 8 s) as
    tps-run writes it: every goal on a ROI of the structure set becomes one objective at its level
    (cGy), every other goal and every unmapped line is named in the message."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan
    from reirrad_opt.tps.caps import cap_map
    from reirrad_opt.tps.goals import tps_goals

    result = plan(make_npc_phantom(5.0), None, n_beams=7, bixel_mm=10.0)
    caps = cap_map(result.case, result.protocol, result.fractionation.n_fractions,
                   tiers=dict(result.optimization.tier_by_goal))
    names = {n: n for n in result.case.structures}
    names.update({"Brainstem": "BS (tps)", "rCTV": None, "PTV": None})
    doc = json.loads(json.dumps(tps_goals(result, caps, names)))
    exchange = _exchange(tmp_path, {"state": "ok", "exit_code": 0, "message": ""}, doc)
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange), "--no-nto")
    grid = result.case.grid
    rois = {names[n]: s.volume_cc(grid) for n, s in result.case.structures.items() if names.get(n)}
    calls, message = _run(_build(stubs, plugin), *(f"{k}={v}" for k, v in rois.items()))

    in_set = [g for g in doc["goals"] if g["roi_name"] in rois and not
              (g["goal_type"] == "average_dose" and g["direction"] == "at_least")]
    assert len(in_set) >= 5 and len(calls) == len(in_set)
    for goal, call in zip(in_set, calls):
        assert call["structure"] == goal["roi_name"] and call["dose"] == goal["level_cgy"] and call["unit"] == "cGy"
        if goal["role"] == "constraint":
            assert call["priority"] == 500 and call["operator"] == "Upper"
    assert any(c["structure"] == "BS (tps)" for c in calls)
    for goal in doc["goals"]:
        if goal not in in_set:
            assert f"{goal['line_id']}: " in message
    for u in doc["unmapped"]:
        assert f"{u['line_id']}: {u['reason']}" in message


def test_plugin_gives_doses_in_gy_when_the_plan_is_in_gy(stubs, tmp_path):
    goals = json.loads(GOALS.read_text())
    exchange = _exchange(tmp_path, {"state": "ok", "exit_code": 0, "message": ""}, goals)
    plugin = _emit(tmp_path, "--exchange-dir", str(exchange), "--no-nto")
    calls, _ = _run(_build(stubs, plugin), *(f"{k}={v}" for k, v in STRUCTURES.items()), "gy")
    by_roi = {g["roi_name"]: g for g in goals["goals"]}
    assert len(calls) == 4
    for c in calls:
        assert c["unit"] == "Gy" and c["dose"] == pytest.approx(by_roi[c["structure"]]["level_cgy"] / 100)
