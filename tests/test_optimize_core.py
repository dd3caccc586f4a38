"""The lexicographic optimizer on an analytic 1-D problem (Gaussian beamlets along a row of voxels).

Checks: hard caps are never exceeded; a later stage keeps earlier goals within their slip; an
unreachable target goal is diagnosed naming the organ that binds; the acceptable tier is used only
when the desirable caps prevent the target goal; determinism.
"""
import numpy as np
import pytest
import scipy.sparse as sp

from reirrad_opt.geometry import Grid
from reirrad_opt.evaluate import metric_value
from reirrad_opt.optimize import LexicographicProblem, LPSettings, LPSolver, NormalTissue, Term, TermSet, optimize_plan

N = 80
GRID = Grid((1, 1, N), (1.0, 1.0, 1.0))
RX = 60.0


def beamlet_matrix(sigma_vox: float = 2.0) -> sp.csr_matrix:
    i = np.arange(N)[:, None]
    j = np.arange(0, N, 2)[None, :]
    a = np.exp(-((i - j) ** 2) / (2 * sigma_vox ** 2))
    a[a < 1e-4] = 0
    return sp.csr_matrix(a.astype(np.float32))


def mask(lo: int, hi: int) -> np.ndarray:
    m = np.zeros(GRID.shape, bool)
    m[0, 0, lo:hi] = True
    return m


def terms_for(oar_lo, oar_hi, cap_des, cap_acc=None, target=(25, 45), ptv=(22, 48)):
    oar_rows = np.arange(oar_lo, oar_hi)
    terms = [Term("OAR_Dmax", "OAR", 1, "voxel_max", oar_rows, np.full(oar_rows.size, cap_des), tier="desirable",
                  hard=True, description="OAR Dmax")]
    if cap_acc is not None:
        terms.append(Term("OAR_Dmax", "OAR", 1, "voxel_max", oar_rows, np.full(oar_rows.size, cap_acc),
                          tier="acceptable", hard=True, description="OAR Dmax"))
    t_rows = np.arange(*target)
    p_rows = np.arange(*ptv)
    ceiling_rows = np.arange(min(target[0], ptv[0]), max(target[1], ptv[1]))
    terms += [
        Term("plan_Dmax", "PTV", 1, "voxel_max", ceiling_rows, 1.15 * RX, hard=True, description="ceiling"),
        Term("rGTV_D98", "rGTV", 1, "cvar_lower", t_rows, 0.98 * RX, fraction=0.02, description="rGTV D98% >= 98%"),
        Term("PTV_D98", "PTV", 2, "cvar_lower", p_rows, 0.95 * RX, fraction=0.02, description="PTV D98% >= 95%"),
        Term("PTV_V107", "PTV", 2, "cvar_upper", p_rows, 1.07 * RX, fraction=0.05, description="PTV V107% <= 5%"),
        Term("Other_Dmean", "Other", 3, "mean_max", np.arange(0, 15), 5.0, description="Other Dmean <= 5 Gy"),
    ]
    return TermSet(terms)


def held_d96_terms(organ=(0, 6)):
    """A target D96% >= 98 % Rx at priority 1 (rows 20-70) next to a 20 Gy organ cap (``organ`` rows),
    then a priority-2 goal that pushes the target's mean dose down: (target rows, D96 term, terms)."""
    t_rows, oar = np.arange(20, 70), np.arange(*organ)
    d96 = Term("T_D96", "T", 1, "cvar_lower", t_rows, 0.98 * RX, fraction=0.04)
    terms = [Term("OAR_Dmax", "OAR", 1, "voxel_max", oar, np.full(oar.size, 20.0), hard=True),
             Term("plan_Dmax", "T", 1, "voxel_max", t_rows, 1.15 * RX, hard=True), d96,
             Term("T_Dmean", "T", 2, "mean_max", t_rows, 0.0)]
    return t_rows, d96, terms


def run(termset, **kw):
    masks = {"OAR": mask(0, 0), "rGTV": mask(25, 45)}
    for t in termset.terms:
        m = np.zeros(N, bool)
        m[t.rows] = True
        masks[t.structure] = m.reshape(GRID.shape)
    kw.setdefault("truncation", 0.0)
    kw.setdefault("engine", "lp")   # these tests are the LP engine's (test_optimize_first_order: the other)
    kw.setdefault("slips_gy", {1: 0.6, 2: 0.6, 3: 0.6})
    kw.setdefault("read_metric", lambda metric, dose, structure: metric_value(metric, dose, masks[structure], GRID,
                                                                             RX).value)
    problem = LexicographicProblem.from_termset(
        beamlet_matrix(), termset, rx_gy=RX, grid=GRID, masks=masks, slips_gy=kw.pop("slips_gy"),
        normal=kw.pop("normal", None), limit_choice=kw.pop("limit_choice", "desirable_then_acceptable"))
    return optimize_plan(problem, **kw)


def test_feasible_plan_meets_every_goal_and_never_exceeds_caps():
    ts = terms_for(60, 66, cap_des=10.0)
    out = run(ts, normal=NormalTissue(np.arange(66, 80), np.array([], int), np.array([])))
    dose = beamlet_matrix() @ out.weights
    assert dose[60:66].max() <= 10.0 + 1e-4
    assert np.sort(dose[25:45])[0] >= 0.98 * RX - 1e-3          # near-min (here: min) reached
    # V107% <= 5 % of the 26 PTV voxels: at most one voxel above 107 % Rx (the DVH goal itself; after its
    # stage the optimizer holds the DVH point, so the hottest voxel's dose is free)
    assert np.count_nonzero(dose[22:48] > 1.07 * RX + 1e-3) <= int(0.05 * 26)
    assert not out.diagnosis
    assert [s.priority for s in out.stages] == [1, 2, 3, None]
    assert all(s.status.startswith("optimal") for s in out.stages)


def test_later_stages_give_back_at_most_the_slip():
    ts = terms_for(49, 55, cap_des=8.0)
    out = run(ts, normal=NormalTissue(np.arange(0, 20), np.arange(48, 60), np.full(12, 10.0)))
    first = out.stages[0].achieved
    for key, excess in first.items():
        assert out.excess_gy[key] <= max(excess, 0.0) + 0.6 + 1e-3, key
    dose = beamlet_matrix() @ out.weights
    assert dose[49:55].max() <= 8.0 + 1e-4


def test_unreachable_target_is_diagnosed_and_caps_hold():
    # the organ touches the target: no fluence can give 59 Gy next to a 5 Gy cap
    ts = terms_for(45, 50, cap_des=5.0, ptv=(22, 45))
    out = run(ts)
    dose = beamlet_matrix() @ out.weights
    assert dose[45:50].max() <= 5.0 + 1e-4
    assert out.diagnosis, "an unreachable rGTV goal must be diagnosed"
    text = " ".join(out.diagnosis)
    assert "rGTV" in text and "OAR" in text and "cannot exceed" in text


def test_acceptable_tier_only_when_desirable_blocks_the_target():
    ts = terms_for(45, 50, cap_des=5.0, cap_acc=55.0, ptv=(22, 45))
    out = run(ts)
    assert out.tier_by_goal["OAR_Dmax"] == "acceptable"
    assert any("desirable" in s.name for s in out.stages) and any("acceptable" in s.name for s in out.stages)
    dose = beamlet_matrix() @ out.weights
    assert dose[45:50].max() <= 55.0 + 1e-4
    # far organ: desirable suffices and is kept
    out2 = run(terms_for(65, 70, cap_des=5.0, cap_acc=55.0))
    assert out2.tier_by_goal["OAR_Dmax"] == "desirable"
    assert (beamlet_matrix() @ out2.weights)[65:70].max() <= 5.0 + 1e-4


def test_deterministic():
    a = run(terms_for(60, 66, cap_des=10.0)).weights
    b = run(terms_for(60, 66, cap_des=10.0)).weights
    assert np.array_equal(a, b)


def test_unknown_limit_choice_is_rejected():
    with pytest.raises(ValueError, match="limit_choice"):
        run(terms_for(60, 66, cap_des=10.0), limit_choice="whatever")


def test_truncated_matrix_with_correction_still_honours_every_hard_cap_exactly():
    # the LP sees only entries >= 1 % of each column's maximum; caps are checked on the full matrix
    ts = terms_for(49, 55, cap_des=8.0)
    out = run(ts, truncation=0.01, normal=NormalTissue(np.arange(0, 20), np.arange(48, 60), np.full(12, 10.0)))
    dose = beamlet_matrix() @ out.weights
    assert dose[49:55].max() <= 8.0 + 1e-3
    assert dose[22:48].max() <= 1.15 * RX + 1e-3
    # the first-priority target is still met to within its slip
    assert np.sort(dose[25:45])[0] >= 0.98 * RX - 0.6


def test_caps_hold_at_points_that_start_inactive():
    # a cap far below anything the reference fluence suggests: activated only by the rounds
    ts = terms_for(55, 60, cap_des=0.5)
    out = run(ts)
    assert (beamlet_matrix() @ out.weights)[55:60].max() <= 0.5 + 1e-3


@pytest.mark.parametrize("method", ["dual", "ipm"])
@pytest.mark.parametrize("upper", [True, False])
def test_cvar_value_equals_the_solvers_lp_form_at_its_optimum(upper, method):
    """The exact (fractional-voxel) CVaR is what the Rockafellar-Uryasev LP form the solver
    builds takes at its optimum, also with volume weights."""
    from reirrad_opt.optimize.lp import LinearProgram
    from reirrad_opt.optimize.terms import cvar_value

    rng = np.random.default_rng(1)
    d = rng.uniform(0, 10, 37)
    for weights in (None, rng.integers(1, 5, 37).astype(float)):
        v = np.ones(d.size) if weights is None else weights
        lp = LinearProgram()
        z = lp.add_variables(1, -np.inf, np.inf)
        u = lp.add_variables(d.size, 0.0, np.inf)
        sign = 1.0 if upper else -1.0
        # sign * (d - z) - u <= 0 ; objective: sign * z + sum(v u) / (q V)  (upper: minimise the mean of the tail)
        lp.add_rows([(z, sp.csr_matrix(np.full((d.size, 1), -sign))), (u, -sp.identity(d.size, format="csr"))],
                    -np.inf, -sign * d)
        cost = np.zeros(lp.n_vars)
        cost[z] = sign
        cost[u] = v / (0.1 * v.sum())
        lp.set_cost(cost)
        sol = lp.solve(method)
        assert sol.status == "optimal"
        assert cvar_value(d, 0.1, upper, weights) == pytest.approx(sign * sol.objective, abs=1e-6)
    tail = np.sort(d)[::-1] if upper else np.sort(d)
    assert cvar_value(d, 0.1, upper) == pytest.approx((tail[:3].sum() + 0.7 * tail[3]) / 3.7)


def test_weighted_cvar_equals_the_cvar_of_the_replicated_samples():
    from reirrad_opt.optimize.terms import cvar_value

    rng = np.random.default_rng(2)
    d = rng.uniform(0, 10, 20)
    counts = rng.integers(1, 6, 20)
    for upper in (True, False):
        assert cvar_value(d, 0.15, upper, counts.astype(float)) == pytest.approx(
            cvar_value(np.repeat(d, counts), 0.15, upper))


def test_coverage_points_sample_the_target_as_the_evaluation_does():
    """Edge points carry the evaluation's interpolated dose; the weights add up to its sample count."""
    from scipy import ndimage

    from reirrad_opt.geometry.sampling import sample_points
    from reirrad_opt.optimize.build import coverage_stencil

    grid = Grid((12, 12, 12), (3.0, 3.0, 3.0), (0.0, 0.0, 0.0))
    kk, jj, ii = np.indices(grid.shape)
    mask = (kk - 5.5) ** 2 + (jj - 6) ** 2 + (ii - 5) ** 2 <= 3.2 ** 2
    dose = np.random.default_rng(3).uniform(40, 60, grid.shape)
    rows, interp, weights = coverage_stencil(mask, grid, 3)   # the evaluation's default: 3 per axis
    pts = sample_points(mask, grid, 3)
    assert weights.sum() == pytest.approx(pts.n)
    point_dose = interp @ dose.ravel()[rows]
    edge = weights == 1.0
    expected = ndimage.map_coordinates(dose, pts.index_kji.T, order=1, mode="nearest")
    # every edge point is one of the evaluation's samples, with the same dose
    got = np.sort(point_dose[edge])
    assert np.all(np.min(np.abs(got[:, None] - expected[None, :]), axis=1) < 1e-9)


def _brute_force_dvh_dose(d, v, fraction, upper):
    """The highest dose that at least ``fraction`` (upper) / ``1 - fraction`` (lower) of the
    weighted volume receives, by trying every candidate dose."""
    need = fraction if upper else 1.0 - fraction
    ok = [x for x in d if v[d >= x].sum() >= need * v.sum() * (1 - 1e-12)]
    return max(ok)


@pytest.mark.parametrize("upper", [True, False])
def test_dvh_dose_is_the_highest_dose_the_volume_receives(upper):
    from reirrad_opt.optimize.terms import dvh_dose, dvh_tail

    rng = np.random.default_rng(4)
    for trial in range(20):
        d = np.round(rng.uniform(0, 10, 41), 1)             # rounded: ties happen
        v = None if trial % 2 else rng.integers(1, 6, 41).astype(float)
        vv = np.ones(d.size) if v is None else v
        for q in (0.02, 0.05, 0.1, 0.5):
            value = dvh_dose(d, q, upper, v)
            assert value == _brute_force_dvh_dose(d, vv, q, upper)
            tail = dvh_tail(d, q, upper, v)
            assert vv[tail].sum() <= q * vv.sum() + 1e-9
            # every point outside the tail is on the goal's side of the DVH point
            assert np.all(d[~tail] <= value) if upper else np.all(d[~tail] >= value)


@pytest.mark.parametrize("organ", [(0, 6), (70, 76)])
def test_held_dose_volume_goal_keeps_its_dvh_point_within_the_slip(organ):
    """After its stage a target D96% is held point-wise (all but its coldest 4 % at the held
    level): a later stage that pushes the target dose down ends exactly at the held level, which
    is the goal's level when it was met with the slip to spare (organ far), and the achieved
    value minus the slip when an organ cap kept it short (organ adjacent)."""
    from reirrad_opt.optimize import LPSettings, LPSolver

    a = beamlet_matrix()
    t_rows, d96, terms = held_d96_terms(organ)
    safety = 0.05
    solver = LPSolver(a, terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={},
                      settings=LPSettings(hold_safety_gy=safety))
    solver.solve_priority(1)
    achieved = d96.dvh_dose((a @ solver.weights)[t_rows])
    held = solver.holds[d96.key].level_gy
    assert held == pytest.approx(min(0.98 * RX, achieved - 0.6) + safety)
    if organ[0] == 0:
        assert held == pytest.approx(0.98 * RX + safety)
    else:
        assert achieved < 0.98 * RX - 1.0                  # the cap next to the target keeps it short
    mean_before = (a @ solver.weights)[t_rows].mean()
    solver.solve_priority(2)
    dose = (a @ solver.weights)[t_rows]
    assert d96.dvh_dose(dose) >= held - 1e-6
    assert d96.dvh_dose(dose) == pytest.approx(held, abs=1e-3)
    assert dose.mean() < mean_before - 0.1


@pytest.mark.parametrize("sense", ["min", "max"])
def test_a_goal_met_short_of_its_slip_tightened_aim_is_held_at_its_level(sense):
    """A goal met by less than the slip (its stage could not reach the level tightened by the slip) is
    held at its level, not at what was achieved less the slip: a later priority never turns a met goal
    into a missed one. A goal left short may still give back the slip."""
    from reirrad_opt.optimize.holds import dvh_hold, slack_after_stage

    level, slip, safety = 0.98 * RX, 0.6, 0.02
    kind = "cvar_lower" if sense == "min" else "cvar_upper"
    t = Term("T_D96", "T", 1, kind, np.arange(100), level, fraction=0.04)
    sign = 1.0 if sense == "min" else -1.0
    for margin in (0.2, -0.3):   # met by 0.2 Gy; short by 0.3 Gy
        dose = level + sign * margin + sign * np.linspace(0.0, 2.0, 100)   # the DVH point at level + margin
        achieved = t.dvh_dose(dose)
        hold, keep = dvh_hold(t, dose, slip, safety)
        if margin > 0:
            assert sign * (hold - level) >= 0.0                      # never past the level
            assert hold == pytest.approx(level + sign * safety)
        else:
            assert hold == pytest.approx(achieved - sign * (slip - safety))
        assert keep.sum() >= 96                                      # all but the free tail held
    assert slack_after_stage(-0.2, slip) == 0.0                      # met: no slack past the level
    assert slack_after_stage(0.3, slip) == pytest.approx(0.9)        # short: the shortfall plus the slip


def test_held_goal_is_shifted_by_what_the_evaluation_reads_worse():
    """When the evaluation reads a target D96% lower than the optimizer's points do, the hold is
    raised by that difference (as far as the achieved value and the slip allow), so a later stage
    that pushes the target dose down stops where the evaluation still reads the level."""
    from reirrad_opt.optimize import LPSettings, LPSolver

    HOLD_SAFETY_GY = LPSettings().hold_safety_gy
    a = beamlet_matrix()
    t_rows, oar = np.arange(20, 70), np.arange(0, 6)
    level = 0.98 * RX
    d96 = Term("T_D96", "T", 1, "cvar_lower", t_rows, level, fraction=0.04, metric="D96%")
    terms = [Term("OAR_Dmax", "OAR", 1, "voxel_max", oar, np.full(oar.size, 20.0), hard=True),
             Term("plan_Dmax", "T", 1, "voxel_max", t_rows, 1.15 * RX, hard=True), d96,
             Term("T_Dmean", "T", 2, "mean_max", t_rows, 0.0)]
    offset = 0.3   # an evaluation that reads every D96% 0.3 Gy below the points
    seen = []

    def measure(t, dose):
        seen.append(t.key)
        return t.dvh_dose(dose[t.rows]) - offset

    solver = LPSolver(a, terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={}, measure=measure)
    solver.solve_priority(1)
    assert seen == [d96.key]
    achieved = d96.dvh_dose((a @ solver.weights)[t_rows])
    assert achieved == pytest.approx(level + 0.6, abs=1e-3)       # aimed at the level plus the slip
    # met as the evaluation reads it (level + 0.3), so held there: 0.3 Gy above the level on the points;
    # the rest of the slip is not given back past the level
    assert solver.holds[d96.key].level_gy == pytest.approx(level + offset + HOLD_SAFETY_GY)
    solver._hold(d96, a @ solver.weights, 0.0)                    # the same goal held without a slip
    assert solver.holds[d96.key].level_gy == pytest.approx(level + offset + HOLD_SAFETY_GY)
    solver.solve_priority(2)
    dose = (a @ solver.weights)[t_rows]
    assert d96.dvh_dose(dose) - offset >= level - 1e-6          # met as the evaluation reads it
    assert d96.dvh_dose(dose) == pytest.approx(level + offset + HOLD_SAFETY_GY, abs=1e-3)


@pytest.mark.parametrize("rounds", [0, LPSettings().drift_rounds])
def test_lp_engine_holds_again_a_met_goal_the_evaluation_reads_short_after_a_later_stage(rounds):
    """The LP engine's side of the re-hold (the first-order engine's: test_optimize_first_order.py). A
    priority-1 D96% met at its stage is held on its points; a test double of the evaluation reads it
    0.1 Gy colder than the points once the priority-2 stage (which pushes the target's mean down onto the
    hold) has run. The engine holds it further in and solves that stage again, so the evaluation reads it
    met; without re-hold rounds it reads it short."""
    _, d96, terms = held_d96_terms()
    drift_gy = {"now": 0.0}

    def measure(t, dose):
        return t.dvh_dose(dose[t.rows]) - drift_gy["now"] if t.goal_id == "T_D96" else None

    solver = LPSolver(beamlet_matrix(), terms, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={},
                      measure=measure, settings=LPSettings(drift_rounds=rounds))
    solver.solve_priority(1)
    assert d96.key in solver.met_as_evaluated
    level = solver.holds[d96.key].level_gy
    drift_gy["now"] = 0.1
    stage = solver.solve_priority(2)
    evaluated = measure(d96, solver.rows.dose(solver.weights))
    if rounds:
        assert evaluated >= 0.98 * RX - 1e-6
        assert solver.holds[d96.key].level_gy > level + 0.1          # moved in by the shortfall and more
        assert any("held again further in" in note and d96.key in note for note in stage.notes)
    else:
        assert evaluated < 0.98 * RX - 0.05
        assert solver.holds[d96.key].level_gy == level


def test_normal_tissue_stage_out_of_time_keeps_the_previous_fluence():
    """A normal-tissue stage whose budget runs out changes nothing and says so."""
    ts = terms_for(60, 66, cap_des=10.0)
    nt = dict(body_rows=np.arange(0, 20), ring_rows=np.arange(48, 60), ring_reference_gy=np.full(12, 10.0))
    full = run(ts, normal=NormalTissue(**nt))
    cut = run(terms_for(60, 66, cap_des=10.0), normal=NormalTissue(**nt, time_limit_s=0.0))
    assert full.stages[-1].status == "optimal"
    assert cut.stages[-1].status == "time limit"
    assert "time limit" in cut.stages[-1].notes[0] and "previous stage is kept" in cut.stages[-1].notes[0]
    without = run(terms_for(60, 66, cap_des=10.0))             # no normal-tissue stage at all
    assert np.allclose(cut.weights, without.weights)
    assert not np.allclose(full.weights, without.weights)


@pytest.mark.parametrize("method", ["dual", "primal", "ipm", "barrier"])
def test_lp_reports_objective_and_duals_in_the_callers_units(method):
    """HiGHS sees rescaled costs; the objective and row duals come back in the caller's units:
    minimise 0.003 x + 0.001 y subject to x + y >= 4, x - y <= 1, x <= 3  ->  x = 0, y = 4,
    objective 0.004, dual of the first row 0.001 (analytic)."""
    from reirrad_opt.optimize.lp import LinearProgram

    lp = LinearProgram()
    xy = lp.add_variables(2, 0.0, np.array([3.0, np.inf]))
    lp.add_rows([(xy, sp.csr_matrix(np.array([[1.0, 1.0]])))], 4.0, np.inf)
    lp.add_rows([(xy, sp.csr_matrix(np.array([[1.0, -1.0]])))], -np.inf, 1.0)
    lp.set_cost(np.array([0.003, 0.001]))
    assert lp.cost_scale != 1.0
    sol = lp.solve(method)
    assert sol.status == "optimal"
    tol = 1e-6 if method == "barrier" else 1e-9    # no crossover: an interior point within tolerance
    assert sol.x == pytest.approx([0.0, 4.0], abs=1e3 * tol)
    assert sol.objective == pytest.approx(0.004, abs=tol)
    assert abs(sol.row_dual[0]) == pytest.approx(0.001, abs=tol)
    with pytest.raises(ValueError, match="method"):
        lp.solve("newton")


def test_first_solve_by_interior_point_or_simplex_reaches_the_same_plan_quality():
    """Each stage's first LP by interior point + crossover (default) or by the simplex from the
    previous basis: the same stage optima (the LP optimum is unique in value, not in fluence), and
    the hard cap holds either way."""
    ipm = run(terms_for(50, 60, cap_des=20.0))
    simplex = run(terms_for(50, 60, cap_des=20.0), first_method="simplex")
    assert [s.status for s in ipm.stages] == [s.status for s in simplex.stages]
    for a, b in zip(ipm.stages, simplex.stages):
        assert a.objective == pytest.approx(b.objective, abs=1e-5)
    for out in (ipm, simplex):
        assert (beamlet_matrix() @ out.weights)[50:60].max() <= 20.0 + 1e-6
    with pytest.raises(ValueError, match="first_method"):
        run(terms_for(50, 60, cap_des=20.0), first_method="newton")


def test_a_round_whose_dual_simplex_runs_out_of_time_is_solved_by_the_interior_point(monkeypatch):
    """A lazy round's dual simplex that reaches its time cap hands the round to the interior point
    without crossover (no basis is worth it then), and every later solve goes there directly: the
    same stage optima as the plain path."""
    from reirrad_opt.optimize import LPSettings
    from reirrad_opt.optimize.lp import LinearProgram, LPSolution

    plain = run(terms_for(50, 60, cap_des=20.0))
    calls = []
    real_solve = LinearProgram.solve

    def slow_dual(self, method="dual", time_limit_s=None):
        calls.append(method)
        if method == "dual":        # as HiGHS reports a simplex stopped at its time limit
            assert time_limit_s is not None and time_limit_s <= LPSettings().dual_round_min_s + 60.0
            return LPSolution("time limit", None, None, float("nan"), 1)
        return real_solve(self, method, time_limit_s)

    monkeypatch.setattr(LinearProgram, "solve", slow_dual)
    capped = run(terms_for(50, 60, cap_des=20.0))
    assert "dual" in calls and calls.count("dual") <= 2   # once per solver (the desirable and a probe at most)
    after = calls[calls.index("dual") + 1:]
    assert after and set(after) <= {"barrier", "dual"} and "ipm" not in after
    assert [s.status for s in capped.stages] == [s.status for s in plain.stages]
    for a, b in zip(capped.stages, plain.stages):
        assert a.objective == pytest.approx(b.objective, abs=1e-5)
    assert (beamlet_matrix() @ capped.weights)[50:60].max() <= 20.0 + 1e-6


def test_a_goal_with_one_limit_for_both_tiers_is_one_term_with_both_weights():
    """rGTV D98% >= 98 % Rx is both the desirable and the acceptable limit: its two terms are one
    surrogate, solved once (one set of CVaR rows, one hold) with the shortfall costing both tier weights. The
    same goal with two limits a micro-Gy apart keeps both terms; the plan is the same."""
    from reirrad_opt.optimize import LPSettings, LPSolver

    weights = LPSettings(desirable_weight=2.0, acceptable_weight=5.0)

    def solved(acceptable_gy):
        ts = terms_for(60, 66, cap_des=10.0)
        d98 = next(t for t in ts.terms if t.goal_id == "rGTV_D98")
        twin = Term("rGTV_D98", "rGTV", 1, "cvar_lower", d98.rows.copy(), acceptable_gy, fraction=0.02,
                    tier="acceptable")
        s = LPSolver(beamlet_matrix(), ts.terms + [twin], rx_gy=RX, slips_gy={1: 0.6}, tier_by_goal={},
                     settings=weights)
        s.solve_priority(1)
        return s, d98

    merged, d98 = solved(0.98 * RX)
    apart, _ = solved(0.98 * RX - 1e-6)
    assert [t.key for t in merged.soft if t.goal_id == "rGTV_D98"] == ["rGTV_D98@desirable"]
    assert merged.tier_weight["rGTV_D98@desirable"] == 7.0               # 2 + 5, the weights passed in
    assert len([t for t in apart.soft if t.goal_id == "rGTV_D98"]) == 2
    assert merged.lp.n_rows < apart.lp.n_rows - d98.rows.size      # the twin's CVaR rows (and hold) are gone
    assert len(merged.holds) == 1 and len(apart.holds) == 2
    dose_m, dose_a = merged.rows.dose(merged.weights), apart.rows.dose(apart.weights)
    assert d98.dvh_dose(dose_m[d98.rows]) == pytest.approx(d98.dvh_dose(dose_a[d98.rows]), abs=1e-3)
    assert dose_m[60:66].max() <= 10.0 + 1e-4


def _small_lp():
    """minimise 0.003 x + 0.001 y subject to x + y >= 4, x - y <= 1, x <= 3: x = 0, y = 4 (analytic)."""
    from reirrad_opt.optimize.lp import LinearProgram

    lp = LinearProgram()
    xy = lp.add_variables(2, 0.0, np.array([3.0, np.inf]))
    lp.add_rows([(xy, sp.csr_matrix(np.array([[1.0, 1.0]])))], 4.0, np.inf)
    lp.add_rows([(xy, sp.csr_matrix(np.array([[1.0, -1.0]])))], -np.inf, 1.0)
    lp.set_cost(np.array([0.003, 0.001]))
    return lp


def _barrier_threads() -> list:
    import threading

    return [t for t in threading.enumerate() if t.name == "reirrad-barrier" and t.is_alive()]


def test_dual_in_time_wins_and_the_interior_point_started_alongside_is_stopped():
    lp = _small_lp()
    dual, barrier = lp.solve_dual_or_barrier(60.0)
    assert dual.status == "optimal" and barrier is None
    assert dual.x == pytest.approx([0.0, 4.0], abs=1e-9) and dual.objective == pytest.approx(0.004, abs=1e-9)
    assert not _barrier_threads()          # the second thread has ended, not left running
    # an interior point due to start later is not waited for once the dual simplex has finished
    import time

    t0 = time.perf_counter()
    dual, barrier = lp.solve_dual_or_barrier(60.0, barrier_after_s=600.0)
    assert dual.status == "optimal" and barrier is None and not _barrier_threads()
    assert time.perf_counter() - t0 < 300.0


def test_dual_out_of_time_hands_the_round_to_the_interior_point_solved_alongside(monkeypatch):
    """As HiGHS reports a dual simplex stopped at its limit: the result is the interior point's,
    on a copy of the same LP, in the caller's cost units."""
    from reirrad_opt.optimize.lp import LinearProgram, LPSolution

    lp = _small_lp()
    real = LinearProgram.solve

    def stopped(self, method="dual", time_limit_s=None):
        if method == "dual":
            assert time_limit_s == pytest.approx(2.5)
            return LPSolution("time limit", None, None, float("nan"), 7)
        return real(self, method, time_limit_s)

    monkeypatch.setattr(LinearProgram, "solve", stopped)
    dual, barrier = lp.solve_dual_or_barrier(2.5)
    assert dual.status == "time limit"
    assert barrier.status == "optimal" and barrier.iterations > 0 and barrier.seconds >= 0
    assert barrier.x == pytest.approx([0.0, 4.0], abs=1e-3)
    assert barrier.objective == pytest.approx(0.004, abs=1e-6)
    assert abs(barrier.row_dual[0]) == pytest.approx(0.001, abs=1e-6)
    # the whole call's own limit below the dual's: no interior point after it
    dual, barrier = lp.solve_dual_or_barrier(5.0, time_limit_s=2.5)
    assert dual.status == "time limit" and barrier is None
    assert not _barrier_threads()


def test_roughness_in_pairs_or_split_reaches_the_same_last_stage(monkeypatch):
    """The fluence's total variation enters as two rows per pair (tv >= +-R w) on the simplex path
    and as one row per pair (R w = rise - fall) once the plan is on the interior point alone: the
    same last-stage optimum either way (the same plan otherwise)."""
    from reirrad_opt.optimize import LPSolver

    n_cols = beamlet_matrix().shape[1]
    rough = sp.csr_matrix(np.eye(n_cols - 1, n_cols, 1) - np.eye(n_cols - 1, n_cols))
    nt = dict(body_rows=np.arange(0, 20), ring_rows=np.arange(48, 60), ring_reference_gy=np.full(12, 10.0),
              roughness=rough, roughness_weight=1.0)
    real_add = LPSolver._add_roughness
    added = {}

    def forced(forced_split):
        def add(self, roughness, cost, split=None):   # noqa: ARG001 (the choice is forced)
            before = self.lp.n_vars, self.lp.n_rows
            real_add(self, roughness, cost, forced_split)
            added[forced_split] = (self.lp.n_vars - before[0], self.lp.n_rows - before[1])
        return add

    plans = {}
    for split in (False, True):
        monkeypatch.setattr(LPSolver, "_add_roughness", forced(split))
        plans[split] = run(terms_for(60, 66, cap_des=10.0), normal=NormalTissue(**nt))
    assert added == {False: (n_cols - 1, 2 * (n_cols - 1)), True: (2 * (n_cols - 1), n_cols - 1)}
    a, b = plans[False].stages[-1], plans[True].stages[-1]
    assert a.status == b.status == "optimal" and a.name == b.name == "normal tissue and fluence smoothness"
    assert b.objective == pytest.approx(a.objective, rel=1e-6)
    tv = [np.abs(rough @ plans[k].weights).sum() for k in (False, True)]
    assert tv[0] > 0 and tv[1] == pytest.approx(tv[0], rel=1e-3)


@pytest.mark.parametrize("engine", ["lp", "first-order"])
def test_a_goal_met_short_of_its_aim_is_still_met_after_a_later_priority(engine):
    """The target D96% at priority 1 with a slip so large that its slip-tightened aim lies above the plan
    ceiling: the stage meets the goal, short of its aim. The priority-2 goal then pushes the target dose
    down as far as the holds let it; the D96% ends at its level, not at what was achieved less the slip."""
    from reirrad_opt.optimize import FirstOrderSolver, LPSolver

    a = beamlet_matrix()
    t_rows, d96, terms = held_d96_terms((0, 6))
    level, slip = 0.98 * RX, 12.0          # aim 70.8 Gy, above the 69 Gy ceiling
    Solver = LPSolver if engine == "lp" else FirstOrderSolver
    solver = Solver(a, terms, rx_gy=RX, slips_gy={1: slip, 2: 0.6}, tier_by_goal={})
    solver.solve_priority(1)
    dose = (a @ solver.weights)[t_rows]
    achieved = d96.dvh_dose(dose)
    assert level + 1.0 < achieved < level + slip                  # met, short of its aim
    solver.solve_priority(2)
    after = (a @ solver.weights)[t_rows]
    assert d96.dvh_dose(after) >= level - 5e-3                     # still met
    assert d96.dvh_dose(after) < achieved - 1.0                    # ... and the later goal did take the rest
    assert after.mean() < dose.mean() - 1.0
