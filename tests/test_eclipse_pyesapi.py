"""The PyESAPI variant ('reirrad-opt tps-script pyesapi'): run against a fake pyesapi / VMS.TPS
namespace built from the documented ESAPI signatures (docs/tps-exchange.md). Every
OptimizationSetup call is recorded; calls with keywords, a wrong argument count or wrong types are
refused as pythonnet would not find the overload. Not a live Eclipse."""
from __future__ import annotations

import enum
import json
import runpy
import sys
import types
from pathlib import Path

import pytest

from reirrad_opt.cli import main

GOALS = Path(__file__).parent / "data" / "tps_goals_eclipse.json"
STRUCTURES = {"BRAIN STEM": 25.0, "Cord": 30.0, "GTV_recur": 12.0, "Parotid Lt": 20.0, "Temporal Lobe R": 0.0}


class DoseValue:
    class DoseUnit(enum.Enum):
        Unknown = 0
        Gy = 1
        cGy = 2
        Percent = 3

    def __init__(self, *args, **kwargs):
        if kwargs or len(args) != 2 or not isinstance(args[0], float) or not isinstance(args[1], DoseValue.DoseUnit):
            raise TypeError(f"DoseValue(double value, DoseUnit unit): got {args} {kwargs}")
        self.Dose, self.Unit = args


class Operator(enum.Enum):
    Upper = 0
    Lower = 1
    Exact = 2
    None_ = 99


class Structure:
    def __init__(self, sid, volume):
        self.Id, self.Volume, self.IsEmpty = sid, volume, volume <= 0


class OptimizationSetup:
    SIGNATURES = {"AddPointObjective": (Structure, Operator, DoseValue, float, float),
                  "AddMeanDoseObjective": (Structure, DoseValue, float),
                  "AddNormalTissueObjective": (float, float, float, float, float)}

    def __init__(self):
        self.calls, self.Objectives = [], []

    def __getattr__(self, name):
        if name not in self.SIGNATURES:
            raise AttributeError(f"OptimizationSetup has no {name}")

        def call(*args, **kwargs):
            types_ = self.SIGNATURES[name]
            if kwargs or len(args) != len(types_) or not all(isinstance(a, t) for a, t in zip(args, types_)):
                raise TypeError(f"{name}{tuple(t.__name__ for t in types_)}: no overload for {args} {kwargs}")
            self.calls.append((name, *args))
            return object()
        return call

    def RemoveObjective(self, objective):
        self.Objectives.remove(objective)


class _Type:
    def __init__(self, name):
        self.Name = name


class Plan:
    def __init__(self, kind="ExternalPlanSetup", unit=DoseValue.DoseUnit.cGy):
        self.Id, self._kind = "ReIrr1", kind
        self.StructureSet = types.SimpleNamespace(Structures=[Structure(k, v) for k, v in STRUCTURES.items()])
        self.OptimizationSetup = OptimizationSetup()
        self.TotalDose = types.SimpleNamespace(Unit=unit)

    def GetType(self):
        return _Type(self._kind)


@pytest.fixture
def fake_esapi(monkeypatch):
    """Fake pyesapi and VMS.TPS.Common.Model.Types modules; yields the plan the script will open."""
    plan = Plan()
    patient = types.SimpleNamespace(Id="P1", modified=[], Courses=[types.SimpleNamespace(Id="C1", PlanSetups=[plan])])
    patient.BeginModifications = lambda: patient.modified.append(True)
    app = types.SimpleNamespace(saved=[], closed=[])
    app.OpenPatientById = lambda pid: patient if pid == "P1" else None
    app.SaveModifications = lambda: app.saved.append(True)
    app.ClosePatient = lambda: app.closed.append(True)
    app.Dispose = lambda: None
    pyesapi = types.ModuleType("pyesapi")
    pyesapi.CustomScriptExecutable = types.SimpleNamespace(CreateApplication=lambda name: app)
    tps_types = types.ModuleType("VMS.TPS.Common.Model.Types")
    tps_types.DoseValue, tps_types.OptimizationObjectiveOperator = DoseValue, Operator
    model = types.ModuleType("VMS.TPS.Common.Model")
    model.Types = tps_types
    for name, mod in (("pyesapi", pyesapi), ("VMS", types.ModuleType("VMS")), ("VMS.TPS", types.ModuleType("VMS.TPS")),
                      ("VMS.TPS.Common", types.ModuleType("VMS.TPS.Common")), ("VMS.TPS.Common.Model", model),
                      ("VMS.TPS.Common.Model.Types", tps_types)):
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(plan=plan, patient=patient, app=app)


def _script(tmp_path, status, goals=None, *options) -> Path:
    result = tmp_path / "exchange" / "result"
    result.mkdir(parents=True)
    (result / "status.json").write_text(json.dumps(status))
    if goals is not None:
        (result / "tps_goals.json").write_text(json.dumps(goals))
    out = tmp_path / "reirrad_pyesapi.py"
    assert main(["tps-script", "pyesapi", "--out", str(out), "--exchange-dir", str(tmp_path / "exchange"),
                 *options]) == 0
    return out


def _run(script: Path, *argv: str) -> int:
    old = sys.argv
    sys.argv = [str(script), *argv]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = old
    return 0


def test_pyesapi_script_adds_the_goals_with_esapi_signatures(fake_esapi, tmp_path, capsys):
    goals = json.loads(GOALS.read_text())
    script = _script(tmp_path, {"state": "ok", "exit_code": 0, "message": ""}, goals)
    assert _run(script, "P1", "C1", "ReIrr1") == 0
    calls = fake_esapi.plan.OptimizationSetup.calls
    by_name = {c[1].Id: c for c in calls if c[0] != "AddNormalTissueObjective"}
    assert set(by_name) == {"BRAIN STEM", "Cord", "GTV_recur", "Parotid Lt"} and len(calls) == 5
    bs = by_name["BRAIN STEM"]
    assert bs[2] is Operator.Upper and bs[3].Dose == 1234.5 and bs[3].Unit is DoseValue.DoseUnit.cGy
    assert bs[4] == pytest.approx(0.12) and bs[5] == 500.0                   # 0.03 cc of 25 cc
    assert by_name["GTV_recur"][2] is Operator.Lower and by_name["GTV_recur"][4] == 98.0
    assert by_name["Parotid Lt"][0] == "AddMeanDoseObjective" and by_name["Parotid Lt"][3] == 40.0
    assert fake_esapi.patient.modified and fake_esapi.app.saved and fake_esapi.app.closed
    out = capsys.readouterr().out
    assert "5 objectives added" in out and "PTV_V107: ROI 'PTV' is not in the structure set" in out
    assert "OpticChiasm_D0.03cc: absent: declared outside the field" in out


def test_pyesapi_script_refuses_a_failed_run_and_an_unknown_plan(fake_esapi, tmp_path, capsys):
    script = _script(tmp_path, {"state": "failed", "exit_code": 2, "message": "request.json: key 'modality'"})
    assert _run(script, "P1", "C1", "ReIrr1") == 1
    assert "did not succeed (state 'failed', exit code 2): request.json: key 'modality'" in capsys.readouterr().out
    assert fake_esapi.plan.OptimizationSetup.calls == []
    (tmp_path / "exchange" / "result" / "status.json").write_text(json.dumps({"state": "ok"}))
    (tmp_path / "exchange" / "result" / "tps_goals.json").write_text(GOALS.read_text())
    assert _run(script, "P1", "C1", "Other") == 1
    assert "no plan 'Other' in course 'C1'" in capsys.readouterr().out and fake_esapi.app.closed


def test_pyesapi_out_must_be_a_python_file(tmp_path, capsys):
    assert main(["tps-script", "pyesapi", "--out", str(tmp_path / "x.cs")]) == 2
    assert "the PyESAPI variant is a Python script" in capsys.readouterr().err
