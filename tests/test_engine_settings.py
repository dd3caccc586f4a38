"""Planning settings apart from the protocol (reirrad_opt.planning_settings): validated once, defaults
in one place, read from a [settings] table, the CLI and plan()'s keywords; the protocol's old options
still read with a deprecation warning."""
import dataclasses
import warnings

import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.optimize import FirstOrderSettings, LPSettings
from reirrad_opt.planning import plan
from reirrad_opt.planning_settings import PlanningSettings, SettingsError, load_settings
from reirrad_opt.protocol import load_protocol

ANGLES = [0.0, 72.0, 144.0, 216.0, 288.0]


@pytest.mark.parametrize("kwargs, patterns", [
    (dict(engine="simplex"), ["settings engine", "first-order", "'simplex'"]),
    (dict(truncation=1.0), ["settings truncation", "below 1"]),
    (dict(truncation=-0.1), ["settings truncation", "from 0"]),
    (dict(target_floor_pct_rx=120.0), ["target_floor_pct_rx", "up to 100"]),
    (dict(target_homogeneity_weight=-1.0), ["target_homogeneity_weight", "from 0"]),
    (dict(target_homogeneity_weight=1e300), ["target_homogeneity_weight", "up to 10000"]),
    (dict(hold_dvh_points="yes"), ["hold_dvh_points", "true or false"]),
    (dict(lp_solver="GLPK"), ["lp_solver", "HIGHS"]),
    (dict(engine="lp", engine_settings=FirstOrderSettings()), ["engine 'lp' takes LPSettings, got FirstOrderSettings"]),
])
def test_bad_settings_are_refused_naming_the_key(kwargs, patterns):
    with pytest.raises(SettingsError) as info:
        PlanningSettings(**kwargs)
    for pat in patterns:
        assert pat in str(info.value), str(info.value)


def test_a_settings_table_maps_onto_the_settings_and_the_engines_constants(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[settings]\nengine = "lp"\ntruncation = 0.0\ntarget_floor_pct_rx = 95\n\n'
                    '[settings.lp]\nmax_rounds = 3\n\n[settings.first-order]\nmax_outer = 5\n')
    s = load_settings(path)
    assert (s.engine, s.truncation, s.target_floor_pct_rx, s.hold_dvh_points) == ("lp", 0.0, 95, True)
    assert s.engine_settings == LPSettings(max_rounds=3)          # the chosen engine's table only
    assert s.to_dict()["engine_settings"]["max_rounds"] == 3


@pytest.mark.parametrize("text, patterns", [
    ('[settings]\nengin = "lp"\n', ["[settings] engin", "unknown key"]),
    ('[settings]\ntruncation = 2\n', ["[settings]", "settings truncation"]),
    ('[settings]\n[settings.lp]\nmax_round = 3\n', ["lp.max_round", "unknown key", "max_rounds"]),
    ('[settings]\nengine = "lp"\n[settings.lp]\nmax_rounds = "3"\n', ["lp.max_rounds", "finite number"]),
    ('[options]\nengine = "lp"\n', ["no [settings] table"]),
    ('[settings]\n[goal]\n', ["unknown table", "goal"]),
    ('[settings\n', ["not a TOML file"]),
])
def test_a_bad_settings_file_is_refused_naming_the_file_and_key(tmp_path, text, patterns):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    for pat in patterns:
        assert pat in str(info.value), str(info.value)


def test_keywords_override_and_a_new_engine_drops_the_old_engines_constants():
    base = PlanningSettings(engine_settings=FirstOrderSettings(max_outer=5), truncation=0.02)
    assert base.with_overrides(truncation=None).truncation == 0.02        # None: not given
    lp = base.with_overrides(engine="lp")
    assert lp.engine == "lp" and lp.engine_settings is None and lp.truncation == 0.02
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.truncation = 0.5


def test_the_protocols_old_planning_options_are_read_with_a_deprecation_warning(tmp_path):
    shipped = load_protocol(None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")        # the shipped protocol no longer sets any of them
        load_protocol(None)
    assert PlanningSettings.from_protocol_options(shipped.options) == PlanningSettings()
    text = shipped.path.read_text()
    path = tmp_path / "old.toml"
    path.write_text(text.replace("[options]\n", "[options]\ntarget_homogeneity_weight = 100.0\n", 1))
    with pytest.warns(FutureWarning, match=r"old.toml: \[options\] target_homogeneity_weight .*\[settings\]"):
        old = load_protocol(path)
    assert PlanningSettings.from_protocol_options(old.options).target_homogeneity_weight == 100.0


def test_settings_refuse_a_protocol_whose_own_planning_option_they_would_ignore(tmp_path):
    """A protocol that still sets a planning option (deprecated) and settings given as well: the settings would
    override the protocol's value without a word, so the plan is refused before any work, naming both."""
    shipped = load_protocol(None)
    path = tmp_path / "old.toml"
    path.write_text(shipped.path.read_text().replace("[options]\n", "[options]\nengine = \"lp\"\n", 1))
    with pytest.warns(FutureWarning):
        old = load_protocol(path)
    with pytest.raises(SettingsError, match=r"protocol .*old.toml sets engine = 'lp' .*settings are given.*ignored"):
        plan(make_npc_phantom(5.0), old, gantry_angles_deg=ANGLES, settings=PlanningSettings())
    # the same value as the default is no conflict: nothing would be ignored
    path.write_text(shipped.path.read_text().replace("[options]\n", "[options]\nengine = \"first-order\"\n", 1))
    with pytest.warns(FutureWarning):
        same = load_protocol(path)
    from reirrad_opt.planning import check_no_protocol_settings
    check_no_protocol_settings(same)


def test_plan_takes_its_settings_apart_from_the_protocol(tmp_path):
    """settings= chooses the engine and its constants; the plan records them; the protocol is not asked."""
    case = make_npc_phantom(5.0)
    p = plan(case, gantry_angles_deg=ANGLES, settings=PlanningSettings(engine="lp", engine_settings=LPSettings(
        max_rounds=2)))
    assert p.optimization.engine == "lp" and p.settings.engine_settings.max_rounds == 2
    q = plan(make_npc_phantom(5.0), gantry_angles_deg=ANGLES, settings=PlanningSettings(engine="lp"),
             engine="first-order")                                      # a keyword overrides the settings
    assert q.optimization.engine == "first-order" and q.settings.engine_settings is None


def test_an_engines_named_setting_is_read_as_a_name(tmp_path):
    from reirrad_opt.optimize import CvxpySettings

    path = tmp_path / "s.toml"
    path.write_text('[settings]\nengine = "cvxpy"\n\n[settings.cvxpy]\nsolver = "OSQP"\n')
    assert load_settings(path).engine_settings == CvxpySettings(solver="OSQP")
    path.write_text('[settings]\nengine = "cvxpy"\n\n[settings.cvxpy]\nsolver = 3\n')
    with pytest.raises(SettingsError, match=r"cvxpy.solver: expected a name \(a string\), got 3"):
        load_settings(path)


def test_an_engines_switch_is_read_as_true_or_false(tmp_path):
    from reirrad_opt.optimize.first_order import FirstOrderSettings

    path = tmp_path / "s.toml"
    path.write_text('[settings]\n\n[settings.first-order]\nmove_held_tails = false\n')
    assert load_settings(path).engine_settings == FirstOrderSettings(move_held_tails=False)
    path.write_text('[settings]\n\n[settings.first-order]\nmove_held_tails = 0\n')
    with pytest.raises(SettingsError, match=r"first-order.move_held_tails: expected true or false, got 0"):
        load_settings(path)
    path.write_text('[settings]\n\n[settings.first-order]\nmax_outer = true\n')
    with pytest.raises(SettingsError, match=r"first-order.max_outer: expected a finite number, got True"):
        load_settings(path)


def test_a_problem_table_sets_the_sampling_and_bad_values_are_named(tmp_path):
    from reirrad_opt.planning_settings import ProblemSettings

    path = tmp_path / "s.toml"
    path.write_text('[settings]\n\n[settings.problem]\nring_mm = 20.0\nring_samples = 1000\n')
    s = load_settings(path)
    assert s.problem == ProblemSettings(ring_mm=20.0, ring_samples=1000)
    assert s.to_dict()["problem"]["ring_mm"] == 20.0
    for text, pattern in (('ring_mm = 0\n', r"problem.ring_mm: expected a number > 0"),
                          ('ring_samples = 2.5\n', r"problem.ring_samples: expected a whole number >= 1"),
                          ('ring_mm = 1e9\n', r"problem.ring_mm: expected at most 200 mm, got 1000000000.0"),
                          ('point_spacing_mm = 1e-9\n', r"problem.point_spacing_mm: expected at least 0.5 mm"),
                          ('ring_samples = 100000000000\n', r"problem.ring_samples: expected at most 10,000,000"),
                          ('ring = 3\n', r"problem.ring: unknown key")):
        path.write_text('[settings]\n[settings.problem]\n' + text)
        with pytest.raises(SettingsError, match=pattern) as info:
            load_settings(path)
        assert str(path) in str(info.value)


def test_plan_json_records_the_settings_in_full(tmp_path):
    """plan.json 'settings' holds what was used: the engine's constants (its defaults when none were
    given) and the problem's sampling, so a plan can be recomputed from its own record."""
    import json

    from reirrad_opt.report.plan_folder import write_plan_contents

    p = plan(make_npc_phantom(5.0), gantry_angles_deg=ANGLES,
             settings=PlanningSettings(target_homogeneity_weight=3.0))
    content = json.loads(json.dumps(write_plan_contents(p, tmp_path), default=str))
    recorded = content["settings"]
    assert recorded["engine"] == "first-order" and recorded["target_homogeneity_weight"] == 3.0
    assert recorded["engine_settings"] == dataclasses.asdict(FirstOrderSettings())
    assert recorded["problem"]["ring_mm"] == PlanningSettings().problem.ring_mm
    assert json.loads((tmp_path / "plan.json").read_text())["settings"] == recorded


@pytest.mark.parametrize("line, pattern", [
    ("max_outer = 2.5", r"first-order.max_outer: expected a whole number >= 0 \(a count\), got 2.5"),
    ("lbfgs_memory = -1", r"first-order.lbfgs_memory: expected a whole number >= 0 \(a count\), got -1"),
    ("lbfgs_memory = 0", r"s.toml: \[settings\] first-order.lbfgs_memory: expected a whole number >= 1, got 0"),
    ("inner_iterations = 0", r"first-order.inner_iterations: expected a whole number >= 1, got 0"),
    # a penalty of 1e300 per Gy^2 overflowed the products and planned a FAIL; a smoothing of 0 Gy divides by 0
    ("rho_start = 1e300", r"s.toml: \[settings\] first-order.rho_start: expected a number > 0 and <= 1e\+06 per Gy\^2"),
    ("tau_gy = 0.0", r"first-order.tau_gy: expected a number > 0 and <= 2 Gy, got 0.0"),
    ("rho_start = 2e4", r"first-order.rho_start: expected at most rho_max \(10000 per Gy\^2\)"),
])
def test_an_engines_counts_and_constants_are_checked(tmp_path, line, pattern):
    from reirrad_opt.optimize.first_order import FirstOrderSettings

    path = tmp_path / "s.toml"
    path.write_text('[settings]\n\n[settings.first-order]\nlbfgs_memory = 5\nlazy_points = 0\n')
    assert load_settings(path).engine_settings == FirstOrderSettings(lbfgs_memory=5, lazy_points=0)
    path.write_text(f'[settings]\n\n[settings.first-order]\n{line}\n')
    with pytest.raises(SettingsError, match=pattern):
        load_settings(path)
    with pytest.raises(ValueError, match=r"max_outer: expected a whole number >= 1"):
        FirstOrderSettings(max_outer=0)
