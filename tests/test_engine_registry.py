"""Engines registered by name behind one interface (reirrad_opt.optimize.engines), each with its own
frozen settings passed in, never read from module globals."""
import dataclasses

import numpy as np
import pytest

from reirrad_opt.optimize import (FirstOrderSettings, FirstOrderSolver, LPSettings, LPSolver, SolverBase,
                                  engine_names, get_engine, register_engine)
from reirrad_opt.optimize import engines
from test_optimize_core import RX, beamlet_matrix, run, terms_for


def test_the_shipped_engines_are_registered_with_their_settings():
    assert {"first-order", "lp"} <= set(engine_names())
    assert get_engine("first-order") is FirstOrderSolver and FirstOrderSolver.Settings is FirstOrderSettings
    assert get_engine("lp") is LPSolver and LPSolver.Settings is LPSettings


def test_an_unknown_engine_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match=r"engine must be one of .*first-order.*got 'simplex'"):
        get_engine("simplex")
    with pytest.raises(ValueError, match="engine must be one of"):
        run(terms_for(60, 66, cap_des=10.0), engine="simplex")


def test_settings_are_frozen_and_each_engine_has_its_own():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LPSettings().max_rounds = 3
    # the two engines aim their caps differently inside the limit (a vertex vs a tolerance)
    assert LPSettings().hard_safety_gy < FirstOrderSettings().hard_safety_gy
    with pytest.raises(TypeError, match="engine 'lp' takes LPSettings, got FirstOrderSettings"):
        run(terms_for(60, 66, cap_des=10.0), engine="lp", settings=FirstOrderSettings())


def test_registry_refuses_what_does_not_implement_the_interface():
    class NoSolve(SolverBase):      # solve_priority and solve_normal_tissue missing
        pass

    with pytest.raises(TypeError, match="does not implement SolverBase"):
        register_engine("none", NoSolve)
    with pytest.raises(TypeError, match="does not implement SolverBase"):
        register_engine("none", object)

    @dataclasses.dataclass   # settings that are not a StageSettings (nor frozen)
    class Loose:
        max_outer: int = 3

    class Unfrozen(FirstOrderSolver):
        Settings = Loose

    with pytest.raises(TypeError, match="frozen dataclass derived from StageSettings"):
        register_engine("unfrozen", Unfrozen)
    with pytest.raises(ValueError, match="already registered"):
        register_engine("lp", FirstOrderSolver)


def test_a_new_engine_is_one_class_and_one_registration(monkeypatch):
    """An engine registered under a new name is the one optimize_plan runs, with the settings given."""
    monkeypatch.setattr(engines, "_ENGINES", dict(engines._ENGINES))   # leave the registry as it was
    used = []

    class Recording(FirstOrderSolver):
        name = "recording"

        def solve_priority(self, p, label=None, carry=False):
            used.append((p, self.settings.max_outer))
            return super().solve_priority(p, label, carry)

    register_engine("recording", Recording)
    out = run(terms_for(60, 66, cap_des=10.0), engine="recording", settings=FirstOrderSettings(max_outer=12))
    assert out.engine == "recording"
    assert used and {m for _, m in used} == {12}
    dose = beamlet_matrix() @ out.weights
    assert dose[60:66].max() <= 10.0 + 1e-6              # the cap holds: the plan is the engine's plan
    assert np.median(dose[25:45]) > 0.9 * RX
