"""The first-order engine (L-BFGS-B with an augmented Lagrangian) on the analytic 1-D problems of
test_optimize_core, and end to end on a coarse NPC phantom.

Checks the same promises as the LP engine: hard caps never exceeded in the full-matrix dose, later
stages keep earlier goals within their slip, an unreachable first-priority goal diagnosed, the
acceptable tier only where the desirable one blocks the target, determinism; and the smooth
surrogates against their exact values.
"""
import dataclasses

import numpy as np
import pytest

from test_optimize_core import RX, beamlet_matrix, held_d96_terms, run, terms_for

from reirrad_opt.optimize import NormalTissue, Term
from reirrad_opt.optimize.first_order import FirstOrderSettings, FirstOrderSolver
from reirrad_opt.optimize.smooth_terms import Surrogate, smooth_hinge
from reirrad_opt.optimize.terms import cvar_value, dvh_dose, dvh_tail

FO = dict(engine="first-order")
TAU_GY = FirstOrderSettings().tau_gy   # what the engine smooths its surrogates with


def test_smooth_hinge_bounds_the_hinge_from_above_and_equals_it_past_half_its_width():
    z = np.linspace(-1.0, 1.0, 2001)
    value, slope = smooth_hinge(z, TAU_GY)
    assert np.all(value >= np.maximum(z, 0.0) - 1e-15)
    far = np.abs(z) >= TAU_GY / 2
    assert np.allclose(value[far], np.maximum(z[far], 0.0))
    assert value.max() - np.maximum(z, 0.0).max() == pytest.approx(0.0)
    # the slope is the derivative (central differences) and is continuous
    numeric = np.gradient(value, z)
    assert np.allclose(slope[1:-1], numeric[1:-1], atol=0.02)
    assert np.max(np.abs(np.diff(slope))) < 0.02


@pytest.mark.parametrize("upper", [True, False])
def test_smoothed_cvar_at_its_best_threshold_is_within_the_smoothing_of_the_exact_cvar(upper):
    """Upper CVaR = min over eta of eta + mean(h(d - eta)) / q (lower: max of eta - ...). With the
    smoothed hinge the optimum over eta is within TAU_GY of the exact CVaR, on the conservative side."""
    rng = np.random.default_rng(3)
    d = rng.normal(50.0, 3.0, 400)
    q = 0.05
    t = Term("g", "T", 2, "cvar_upper" if upper else "cvar_lower", np.arange(d.size), 50.0, fraction=q)
    s = Surrogate(t, TAU_GY)
    s.bind(np.arange(d.size))
    etas = np.linspace(d.min() - 1, d.max() + 1, 4001)
    values = np.array([s.value(d, e)[0] for e in etas])
    best = values.min() if upper else values.max()
    exact = cvar_value(d, q, upper=upper)
    assert abs(best - exact) <= TAU_GY
    assert (best >= exact - 1e-9) if upper else (best <= exact + 1e-9)
    # the analytic gradients against finite differences
    eta = exact
    v, grad_d, grad_eta = s.value(d, eta)
    k = int(np.argmax(grad_d))
    step = 1e-5
    bumped = d.copy()
    bumped[k] += step
    assert (s.value(bumped, eta)[0] - v) / step == pytest.approx(grad_d[k], rel=1e-3, abs=1e-6)
    assert (s.value(d, eta + step)[0] - v) / step == pytest.approx(grad_eta, rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("upper", [True, False])
def test_a_stages_own_dose_volume_goal_is_read_at_its_dvh_point_not_at_the_tail_mean(upper):
    """A moving surrogate (a stage's own D95%-type goal): outside its seed iteration it is the
    smallest (largest) dose of the points outside the DVH's free tail, i.e. the DVH point itself,
    to within the hinge smoothing, where the CVaR of the whole tail reads far lower (higher)."""
    rng = np.random.default_rng(5)
    d = rng.normal(50.0, 3.0, 500)
    q = 0.05
    t = Term("g", "T", 2, "cvar_upper" if upper else "cvar_lower", np.arange(d.size), 50.0, fraction=q)
    s = Surrogate(t, TAU_GY, moving=True)
    s.select(d)
    assert not s.seeding
    s.bind(np.arange(d.size))
    etas = np.linspace(d.min() - 1, d.max() + 1, 8001)
    values = np.array([s.value(d, e)[0] for e in etas])
    best = values.min() if upper else values.max()
    tail = dvh_tail(d, q, upper)
    edge = d[~tail].max() if upper else d[~tail].min()       # the last point outside the free tail
    assert abs(best - edge) <= TAU_GY
    # ... which is the DVH point up to the gap to the next point (the tail's first)
    nxt = d[tail].min() if upper else d[tail].max()
    exact = dvh_dose(d, q, upper=upper)
    assert min(edge, nxt) - 1e-9 <= exact <= max(edge, nxt) + 1e-9
    assert abs(cvar_value(d, q, upper=upper) - exact) > 0.5          # the tail mean is another number
    # the seed iteration reads every point
    s.select(d, seed=True)
    assert s.seeding and s.point_map.shape[0] == d.size
    with pytest.raises(ValueError, match="dose-volume"):
        Surrogate(Term("m", "T", 2, "mean_max", np.arange(4), 1.0), TAU_GY, moving=True)


def test_feasible_plan_meets_every_goal_and_never_exceeds_caps():
    ts = terms_for(60, 66, cap_des=10.0)
    out = run(ts, normal=NormalTissue(np.arange(66, 80), np.array([], int), np.array([])), **FO)
    dose = beamlet_matrix() @ out.weights
    assert dose[60:66].max() <= 10.0
    assert dose[22:48].max() <= 1.15 * RX
    assert np.sort(dose[25:45])[0] >= 0.98 * RX - 1e-3
    assert np.count_nonzero(dose[22:48] > 1.07 * RX + 1e-3) <= int(0.05 * 26)
    assert not out.diagnosis
    assert [s.priority for s in out.stages] == [1, 2, 3, None]
    assert all(s.status == "optimal" for s in out.stages)
    assert all("first-order engine" in s.notes[0] for s in out.stages)


def test_later_stages_give_back_at_most_the_slip():
    ts = terms_for(49, 55, cap_des=8.0)
    out = run(ts, normal=NormalTissue(np.arange(0, 20), np.arange(48, 60), np.full(12, 10.0)), **FO)
    for stage in out.stages[:-1]:
        for key, excess in stage.achieved.items():
            assert out.excess_gy[key] <= max(excess, 0.0) + 0.6 + 1e-3, key
    assert (beamlet_matrix() @ out.weights)[49:55].max() <= 8.0


def test_truncated_rows_with_correction_still_honour_every_hard_cap():
    ts = terms_for(49, 55, cap_des=8.0)
    out = run(ts, truncation=0.01, normal=NormalTissue(np.arange(0, 20), np.arange(48, 60), np.full(12, 10.0)),
              **FO)
    dose = beamlet_matrix() @ out.weights
    assert dose[49:55].max() <= 8.0
    assert dose[22:48].max() <= 1.15 * RX + 5e-3
    assert np.sort(dose[25:45])[0] >= 0.98 * RX - 0.6


def test_unreachable_target_is_diagnosed_and_caps_hold():
    ts = terms_for(45, 50, cap_des=5.0, ptv=(22, 45))
    out = run(ts, **FO)
    dose = beamlet_matrix() @ out.weights
    assert dose[45:50].max() <= 5.0
    assert out.diagnosis
    text = " ".join(out.diagnosis)
    assert "rGTV" in text and "OAR" in text and "cannot exceed" in text
    # the best achievable near-minimum next to the cap: within 0.5 Gy of the LP engine's exact optimum
    lp = beamlet_matrix() @ run(terms_for(45, 50, cap_des=5.0, ptv=(22, 45))).weights
    assert np.sort(dose[25:45])[0] >= np.sort(lp[25:45])[0] - 0.5


def test_acceptable_tier_only_when_desirable_blocks_the_target():
    out = run(terms_for(45, 50, cap_des=5.0, cap_acc=55.0, ptv=(22, 45)), **FO)
    assert out.tier_by_goal["OAR_Dmax"] == "acceptable"
    assert (beamlet_matrix() @ out.weights)[45:50].max() <= 55.0
    out2 = run(terms_for(65, 70, cap_des=5.0, cap_acc=55.0), **FO)
    assert out2.tier_by_goal["OAR_Dmax"] == "desirable"
    assert (beamlet_matrix() @ out2.weights)[65:70].max() <= 5.0


def test_deterministic():
    a = run(terms_for(60, 66, cap_des=10.0), **FO).weights
    b = run(terms_for(60, 66, cap_des=10.0), **FO).weights
    assert np.array_equal(a, b)


def test_unknown_engine_is_rejected():
    with pytest.raises(ValueError, match="engine"):
        run(terms_for(60, 66, cap_des=10.0), engine="simplex")


def test_held_dose_volume_goal_keeps_its_dvh_point_within_the_slip():
    """As with the LP engine: after its stage a target D96% is held point-wise; a later stage that
    pushes the target dose down ends at the held level, not below."""
    a = beamlet_matrix()
    t_rows, d96, terms = held_d96_terms((0, 6))
    solver = FirstOrderSolver(a, terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={})
    solver.solve_priority(1)
    achieved = d96.dvh_dose((a @ solver.weights)[t_rows])
    assert achieved >= 0.98 * RX + 0.6 - 1e-3              # aimed at the level plus the slip
    mean_before = (a @ solver.weights)[t_rows].mean()
    solver.solve_priority(2)
    dose = (a @ solver.weights)[t_rows]
    assert d96.dvh_dose(dose) >= 0.98 * RX - 5e-3          # given back at most the slip (to the level)
    assert d96.dvh_dose(dose) <= 0.98 * RX + 0.1           # ... and the mean goal did take it
    assert dose.mean() < mean_before - 0.1


def test_npc_phantom_plan_by_the_first_order_engine_keeps_every_priority1_cap():
    """End to end on the coarse NPC phantom: the independent evaluation finds no priority-1 organ
    over its limit and no body voxel over the plan ceiling."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan

    p = plan(make_npc_phantom(5.0), gantry_angles_deg=[0.0, 72.0, 144.0, 216.0, 288.0], engine="first-order")
    tiers = p.optimization.tier_by_goal
    organs = [r for r in p.evaluation.rows if r.priority == 1 and r.cumulative]
    assert len(organs) == 5
    for r in organs:
        limit = r.desirable if tiers.get(r.goal_id, "desirable") == "desirable" else r.acceptable
        assert r.value <= limit, (r.structure, r.value, limit)
    ceiling = p.protocol.options["max_dose_pct_rx"] / 100 * p.fractionation.total_gy
    assert p.new_dose_gy[p.case.body].max() <= ceiling + 5e-3
    assert all("first-order engine" in s.notes[0] for s in p.optimization.stages)


def test_last_stage_hot_penalty_lowers_the_target_maximum_within_the_holds():
    """NormalTissue.hot_weight (first-order engine): the target dose above Rx is penalised in the last
    stage. The target's maximum falls while every earlier goal keeps its held level and the cap holds."""
    ts = terms_for(60, 66, cap_des=10.0)
    nt = dict(body_rows=np.arange(66, 80), ring_rows=np.array([], int), ring_reference_gy=np.array([]))
    plain = run(ts, normal=NormalTissue(**nt), **FO)
    hot = run(terms_for(60, 66, cap_des=10.0), normal=NormalTissue(**nt, target_rows=np.arange(22, 48),
                                                                   target_reference_gy=RX, hot_weight=1.0), **FO)
    a, b = beamlet_matrix() @ plain.weights, beamlet_matrix() @ hot.weights
    assert b[22:48].max() < a[22:48].max() - 0.3
    assert np.mean(np.maximum(b[22:48] - RX, 0) ** 2) < np.mean(np.maximum(a[22:48] - RX, 0) ** 2)
    assert b[60:66].max() <= 10.0
    for stage in hot.stages[:-1]:
        for key, excess in stage.achieved.items():
            assert hot.excess_gy[key] <= max(excess, 0.0) + 0.6 + 1e-3, key


def test_target_window_also_raises_the_cold_target_points_within_the_holds():
    """NormalTissue.target_floor_gy: target dose below the floor (the 95 % isodose) is penalised as
    well as dose above Rx. Against the same penalty above Rx only, the cold target points rise, the
    cap still holds and every earlier goal keeps its slip."""
    nt = dict(body_rows=np.arange(66, 80), ring_rows=np.array([], int), ring_reference_gy=np.array([]),
              target_rows=np.arange(18, 52), target_reference_gy=RX, hot_weight=100.0)
    above = run(terms_for(60, 66, cap_des=10.0), normal=NormalTissue(**nt), **FO)
    window = run(terms_for(60, 66, cap_des=10.0), normal=NormalTissue(**nt, target_floor_gy=0.95 * RX), **FO)
    a, b = beamlet_matrix() @ above.weights, beamlet_matrix() @ window.weights
    short = lambda d: np.mean(np.maximum(0.95 * RX - d[18:52], 0) ** 2)   # noqa: E731
    assert short(a) > 1.0                              # the case has cold target points to raise
    assert short(b) < 0.5 * short(a)
    assert b[60:66].max() <= 10.0
    for stage in window.stages[:-1]:
        for key, excess in stage.achieved.items():
            assert window.excess_gy[key] <= max(excess, 0.0) + 0.6 + 1e-3, key


def test_lp_engine_end_to_end_keeps_every_priority1_cap_and_plan_json_names_it(tmp_path):
    """The LP engine (no longer the default) through plan() and the plan folder."""
    import json

    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan
    from reirrad_opt.report.plan_folder import write_plan_folder

    p = plan(make_npc_phantom(5.0), gantry_angles_deg=[0.0, 72.0, 144.0, 216.0, 288.0], engine="lp")
    tiers = p.optimization.tier_by_goal
    for r in [r for r in p.evaluation.rows if r.priority == 1 and r.cumulative]:
        limit = r.desirable if tiers.get(r.goal_id, "desirable") == "desirable" else r.acceptable
        assert r.value <= limit, (r.structure, r.value, limit)
    write_plan_folder(p, tmp_path / "plan")
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert doc["engine"] == "lp"
    assert not any("first-order engine" in n for s in doc["stages"] for n in s["notes"])
    assert "Engine: lp" in (tmp_path / "plan" / "report.html").read_text()


def test_small_caps_are_aimed_inside_but_never_below_zero():
    from reirrad_opt.optimize.smooth_terms import aimed_levels

    levels = np.array([25.0, 1.0, 0.05, 0.03, 0.015, 0.011])
    aimed = aimed_levels(levels, 0.02)
    assert np.allclose(aimed[:3], levels[:3] - 0.02)
    assert np.all(aimed > 0) and np.all(aimed < levels)
    assert np.allclose(aimed[3:], levels[3:] / 2)


def test_a_small_cap_next_to_the_target_holds_and_the_target_is_still_covered_away_from_it():
    """A 0.015 Gy cap (just above the exhausted threshold) next to the target: the cap holds in the full
    dose and the far side of the target keeps its coverage."""
    ts = terms_for(50, 56, cap_des=0.015)
    out = run(ts, **FO)
    dose = beamlet_matrix() @ out.weights
    assert dose[50:56].max() <= 0.015
    assert np.median(dose[25:40]) > 0.5 * RX


def test_a_hard_organ_mean_limit_holds():
    """A priority-1 organ limit on a mean (not a per-point cap) is a hard constraint of this engine too."""
    def with_mean_limit():
        ts = terms_for(60, 66, cap_des=40.0)
        ts.terms.append(Term("OAR_Dmean", "OAR", 1, "mean_max", np.arange(48, 60), 11.0, hard=True))
        return ts

    free = beamlet_matrix() @ run(terms_for(60, 66, cap_des=40.0), **FO).weights
    assert free[48:60].mean() > 12.0                       # without the limit the mean is higher
    out = run(with_mean_limit(), **FO)
    assert (beamlet_matrix() @ out.weights)[48:60].mean() <= 11.0
    assert out.excess_gy["OAR_Dmean@desirable"] <= 0.0
    lp = beamlet_matrix() @ run(with_mean_limit()).weights   # the LP engine agrees
    assert lp[48:60].mean() <= 11.0 + 1e-3


def test_with_no_slip_the_holds_still_admit_each_stages_own_result():
    """Slip 0 and an unmet mean goal: the hold of each goal is at what its stage reached, not 0.02 Gy
    inside it, so every later stage (the last included) can still be solved."""
    ts = terms_for(60, 66, cap_des=10.0)
    # the mean goal made unreachable: the stage leaves it short
    ts.terms[:] = [dataclasses.replace(t, level_gy=0.0) if t.goal_id == "Other_Dmean" else t for t in ts.terms]
    out = run(ts, slips_gy={1: 0.0, 2: 0.0, 3: 0.0},
              normal=NormalTissue(np.arange(66, 80), np.array([], int), np.array([])), **FO)
    assert all(s.status == "optimal" for s in out.stages), [(s.name, s.status, s.notes) for s in out.stages]
    for stage in out.stages[:-1]:
        for key, excess in stage.achieved.items():
            assert out.excess_gy[key] <= max(excess, 0.0) + 5e-3, key


def test_lazy_cap_points_that_enter_below_their_level_do_not_count_as_unsolved():
    """A large cap's points enter the stage lazily once the dose reaches lazy_ratio of their level. A
    point that enters below its level leaves the fluence feasible (a stage may end); one that enters
    beyond it is counted as not solved for, with its excess."""
    from test_optimize_core import beamlet_matrix as matrix

    settings = FirstOrderSettings(lazy_points=10, hard_safety_gy=0.03)   # the 26-point body ceiling enters lazily
    ts = terms_for(60, 66, cap_des=10.0)
    solver = FirstOrderSolver(matrix(), ts.terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6, 3: 0.6},
                              tier_by_goal={}, settings=settings)
    (key, pool), = solver.pools.items()
    term = solver.bounds[key].term
    level = 1.15 * RX
    outside = np.setdiff1d(np.arange(term.n_points), solver.bounds[key].points)
    assert outside.size >= 2
    dose = np.zeros(matrix().shape[0])
    below, above = term.rows[outside[0]], term.rows[outside[1]]
    dose[below], dose[above] = 0.95 * level, level + 0.5
    entered, beyond, worst = solver._activate(dose)
    assert (entered, beyond) == (2, 1)
    assert worst == pytest.approx(0.5 + 0.03)                  # beyond its level, aimed 0.03 Gy inside it
    assert {outside[0], outside[1]} <= set(solver.bounds[key].points.tolist())


def test_last_stage_reaches_close_to_its_own_optimum():
    """The normal-tissue stage starts far from its optimum (no earlier stage looked at normal tissue).
    On the coarse NPC phantom its mean body dose ends within 5 % of what the same stage reaches with a
    ten times longer first L-BFGS-B run (measured: 4.76 against 4.60 Gy; with 100 iterations in every
    outer iteration, as before, 5.39 Gy)."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan

    def body_mean(first_inner: int) -> float:
        settings = FirstOrderSettings(nt_first_inner_iterations=first_inner)
        p = plan(make_npc_phantom(5.0), gantry_angles_deg=[0.0, 72.0, 144.0, 216.0, 288.0], engine_settings=settings)
        return float(p.new_dose_gy[p.case.body].mean())

    default = FirstOrderSettings().nt_first_inner_iterations
    assert body_mean(default) <= 1.05 * body_mean(10 * default)


@pytest.mark.parametrize("rounds", [0, FirstOrderSettings().drift_rounds])
def test_a_met_goal_that_the_evaluation_reads_short_after_a_later_stage_is_held_again(rounds):
    """A priority-1 D96% goal met at its stage is held on its points. The evaluation reads it at other
    points (supersampled, every voxel): here a test double that reads it 0.1 Gy colder than the points once
    a later stage has reshaped the dose. The later stage pushes the target's mean down onto the hold; the
    engine then holds the goal further in and solves the stage again, so the evaluation reads it met. With
    no re-hold rounds the evaluation reads it short: the check can fail."""
    from test_optimize_core import beamlet_matrix as matrix

    _, d96, terms = held_d96_terms()
    drift_gy = {"now": 0.0}

    def measure(t, dose):
        return t.dvh_dose(dose[t.rows]) - drift_gy["now"] if t.goal_id == "T_D96" else None

    solver = FirstOrderSolver(matrix(), terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={}, measure=measure,
                              settings=FirstOrderSettings(drift_rounds=rounds))
    solver.solve_priority(1)
    assert solver.achieved[d96.key] == 0.0                       # met at its stage
    drift_gy["now"] = 0.1
    stage = solver.solve_priority(2)
    evaluated = measure(d96, solver.rows.dose(solver.weights))
    if rounds:
        assert evaluated >= 0.98 * RX
        assert any("held again further in" in note and d96.key in note for note in stage.notes)
    else:
        assert evaluated < 0.98 * RX - 0.05


def test_a_goal_the_evaluation_read_short_at_its_own_stage_is_not_pushed_further_by_later_stages():
    """The re-hold is for a goal met at its stage that a later stage lets drift. A goal the evaluation read
    short already at its own stage (here a double reading it 5 Gy colder than its points) keeps its hold:
    pushing it on after every stage made the later stages infeasible (pyRadPlan's TG-119 matrix, goals read
    on voxel centres: 55 outer iterations, a held D2% failed)."""
    from test_optimize_core import beamlet_matrix as matrix

    _, d96, terms = held_d96_terms()

    def measure(t, dose):
        return t.dvh_dose(dose[t.rows]) - 5.0 if t.goal_id == "T_D96" else None

    solver = FirstOrderSolver(matrix(), terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={}, measure=measure)
    solver.solve_priority(1)
    assert d96.key not in solver.met_as_evaluated
    level = float(solver.bounds["hold " + d96.key].bound_gy[0])    # one held level for every point
    stage = solver.solve_priority(2)
    assert not any("held again" in note for note in stage.notes)
    assert np.all(solver.bounds["hold " + d96.key].bound_gy == level)
