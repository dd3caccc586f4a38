"""Robust evaluation (reirrad_opt.robust): scenario doses against independent facts.

- Range: on a water column, a range error moves R80 of a proton pencil beam to (R80 + a) / (1 - rho)
  (overshoot by rho and a mm) or (R80 - a) / (1 + rho) (undershoot): the definition of the error
  applied to the water-equivalent depth, checked on the dose engine's own depth-dose curves.
- Setup: a scenario's dose (isocentre moved by -s in the patient) equals the dose of the planned
  beams on the patient moved by +s (the CT rolled by one voxel), computed by the direct dose engine
  and rolled back: the same physics reached by another route.
- On the NPC phantom, a nominal proton plan's brainstem line gets worse in some scenario, and every
  line's nominal value is the plan's own evaluation.
"""
from __future__ import annotations

import numpy as np
import pytest

from phantoms.water import water_box
from reirrad_opt.dose import ParticleField, compute_influence
from reirrad_opt.dose.direct import direct_dose
from reirrad_opt.dose.particle import r80_mm
from reirrad_opt.dose.range_shift import RangeShift
from reirrad_opt.robust import Scenario, ScenarioSettings, robust_evaluation, scenario_dose, scenario_set


def _idd(case, field, shift=None):
    inf = compute_influence(case.grid, case.ct_hu, case.body, [field], rel_cutoff=1e-4, range_shift=shift)
    dose = inf.dose(np.ones(inf.n_columns))
    return case.grid.axis_coordinates_mm()[1], dose.sum(axis=(0, 2))


@pytest.mark.parametrize("rho, a_mm", [(0.035, 1.0), (-0.035, -1.0), (0.05, 0.0)])
def test_a_range_error_moves_r80_as_defined(rho, a_mm):
    column = water_box(40.0, 260.0, 40.0, spacing_mm=(4.0, 0.5, 4.0))
    field = ParticleField(0.0, 0.0, (0.0, 0.0, 0.0), "proton", 5.0, [0.0], [0.0], [150.0])
    y, nominal = _idd(column, field)
    _, shifted = _idd(column, field, RangeShift(rho, a_mm))
    r80, r80_s = r80_mm(y, nominal), r80_mm(y, shifted)
    assert r80_s == pytest.approx((r80 + a_mm) / (1.0 - rho), abs=0.25)
    assert abs(r80_s - r80) > 4.0                      # about 5-8 mm at 150 MeV: a real move


def test_an_organ_beyond_the_distal_edge_gets_the_analytically_shifted_dose():
    """Overshoot (3.5 % + 1 mm): the scenario's depth dose at every planned depth d is the nominal depth dose at
    d (1 - rho) - a, so an 'organ' 3-7 mm beyond R80, nearly dose-free nominally, lies in the shifted peak
    (water: planned depth = y)."""
    rho, a_mm = 0.035, 1.0
    column = water_box(40.0, 260.0, 40.0, spacing_mm=(4.0, 0.5, 4.0))
    field = ParticleField(0.0, 0.0, (0.0, 0.0, 0.0), "proton", 5.0, [0.0], [0.0], [150.0])
    y, nominal = _idd(column, field)
    _, shifted = _idd(column, field, RangeShift(rho, a_mm))
    expected = np.interp(y * (1.0 - rho) - a_mm, y, nominal, left=nominal[0])
    inside = (y > 2.0) & (y < 240.0)
    assert np.max(np.abs(shifted - expected)[inside]) <= 0.02 * nominal.max()
    r80 = r80_mm(y, nominal)
    organ = (y >= r80 + 3.0) & (y <= r80 + 7.0)
    assert nominal[organ].mean() < 0.05 * nominal.max()             # beyond the nominal range
    assert shifted[organ].mean() > 0.5 * nominal.max()              # in the shifted peak
    assert shifted[organ].mean() == pytest.approx(expected[organ].mean(), rel=0.02)


def test_a_range_error_is_refused_for_photons_and_out_of_range_values():
    from reirrad_opt.dose import photon_beams

    case = water_box(60.0, 60.0, 60.0, spacing_mm=(5.0, 5.0, 5.0))
    beams = photon_beams(case.grid, case.body, gantry_angles_deg=[0.0], bixel_mm=10.0)
    with pytest.raises(ValueError, match="particle fields, not to photon beams"):
        compute_influence(case.grid, case.ct_hu, case.body, beams, range_shift=RangeShift(0.03, 1.0))
    with pytest.raises(ValueError, match="relative"):
        RangeShift(3.5, 0.0)                          # 3.5 meant as per cent: refused, not clipped


def test_the_scenario_sets():
    proton = scenario_set(ScenarioSettings(), "proton")
    assert [s.name for s in proton][:1] == ["nominal"] and len(proton) == 9
    assert sum(1 for s in proton if not s.range_shift.is_zero) == 2
    assert len(scenario_set(ScenarioSettings(), "photon")) == 7       # no range errors for photons
    assert len(scenario_set(ScenarioSettings(combined=True), "proton")) == 15   # 2 x 7 + nominal
    corners = scenario_set(ScenarioSettings(corners=True, range_pct=0.0, range_mm=0.0), "proton")
    assert len(corners) == 15 and all(np.linalg.norm(s.shift_xyz_mm) == pytest.approx(3.0) for s in corners[1:])
    with pytest.raises(ValueError, match="setup_mm"):
        ScenarioSettings(setup_mm=-1.0)


@pytest.fixture(scope="module")
def proton_plan():
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan

    return plan(make_npc_phantom(5.0), modality="proton")


def test_a_setup_scenario_equals_the_planned_beams_on_the_moved_patient(proton_plan):
    """Shift +5 mm along x (one voxel): the scenario's matrix dose against the direct dose of the planned
    fields on the CT rolled by one voxel, rolled back."""
    p = proton_plan
    case = p.case
    assert case.grid.spacing_mm[2] == 5.0
    scenario = Scenario("setup +x 5 mm", (5.0, 0.0, 0.0))
    dose, _ = scenario_dose(p, scenario)
    ct = np.roll(case.ct_hu, 1, axis=2)
    body = np.roll(case.body | case.structures["PTV"].mask, 1, axis=2)
    assert not case.body[:, :, -1].any()             # nothing wraps around
    start = 0
    moved = np.zeros(case.grid.shape)
    for field in p.beams:
        w = p.weights[start:start + field.n_columns]
        start += field.n_columns
        moved += direct_dose(case.grid, ct, body, field, w)
    expected = np.roll(moved, -1, axis=2) * p.rbe
    hot = expected > 0.1 * expected.max()
    assert dose.sum() == pytest.approx(expected.sum(), rel=0.01)
    assert np.percentile(np.abs(dose[hot] - expected[hot]), 99) <= 0.03 * expected.max()
    error = np.abs(dose[hot] - expected[hot]).mean()
    assert np.abs(p.new_dose_gy[hot] - expected[hot]).mean() > 5.0 * error   # the shift matters; the scenario has it


def test_robust_evaluation_of_a_nominal_proton_plan(proton_plan):
    p = proton_plan
    robust = robust_evaluation(p, ScenarioSettings())
    assert robust.evaluations["nominal"] is p.evaluation
    rows = {r.goal_id: r for r in robust.rows}
    for r in p.evaluation.rows:
        assert rows[r.goal_id].nominal == r.value
        if r.value is not None:
            worse = rows[r.goal_id].worst >= r.value if r.sense == "max" else rows[r.goal_id].worst <= r.value
            assert worse
    stem = rows["Brainstem_D0.03cc"]
    assert stem.worst > stem.nominal + 1.0 and stem.worst_scenario != "nominal"
    scenario_values = [ev.rows[[r.goal_id for r in ev.rows].index("Brainstem_D0.03cc")].value
                       for ev in robust.evaluations.values()]
    assert stem.worst == pytest.approx(max(scenario_values))
    assert robust.priority1_holds == all(r.verdict_worst in ("desirable", "acceptable", "absent")
                                         for r in robust.rows if r.priority == 1)
    assert robust.to_dict()["scenario_verdicts"]["nominal"] == p.verdict


def test_the_plan_command_evaluates_particle_plans_robustly_by_default(tmp_path, capsys):
    """plan --modality proton: plan.json 'robust', report.html's section and the terminal's worst cases;
    photons and --no-robust-evaluation: none."""
    import json

    from reirrad_opt.cli import main

    assert main(["phantom", "npc", "--resolution-mm", "5", "--out", str(tmp_path / "case")]) == 0
    code = main(["plan", "--case", str(tmp_path / "case"), "--modality", "proton", "--beams", "2",
                 "--setup-error-mm", "2", "--out", str(tmp_path / "p")])
    out = capsys.readouterr().out
    content = json.loads((tmp_path / "p" / "plan.json").read_text())
    robust = content["robust"]
    assert robust["settings"]["setup_mm"] == 2.0 and len(robust["scenarios"]) == 9
    assert robust["scenario_verdicts"]["nominal"] == content["verdict"]
    assert code == {"desirable": 0, "acceptable": 0, "fail": 3, "incomplete": 4}[content["verdict"]]
    assert "robust evaluation (8 scenarios: setup 2 mm, range 3.5 % + 1 mm)" in out
    holds = robust["priority1_holds"]
    assert ("priority 1 holds in every scenario" in out) == holds
    assert ("PRIORITY 1 DOES NOT HOLD IN EVERY SCENARIO" in out) == (not holds)
    html = (tmp_path / "p" / "report.html").read_text()
    assert "<h2>Robust evaluation</h2>" in html and "worst scenario" in html
    assert (tmp_path / "p" / "dvh_bands.png").is_file() and "alt='dvh_bands.png'" in html
    main(["plan", "--case", str(tmp_path / "case"), "--modality", "proton", "--beams", "2", "--no-robust-evaluation",
          "--out", str(tmp_path / "q")])
    assert "robust evaluation" not in capsys.readouterr().out
    assert json.loads((tmp_path / "q" / "plan.json").read_text())["robust"] is None
    assert not (tmp_path / "q" / "dvh_bands.png").exists()


def test_robust_optimization_holds_every_priority1_cap_in_every_scenario(proton_plan):
    """The robust plan's priority-1 organ lines stay within their acceptable limits in every scenario when the
    scenario doses are recomputed afresh (new matrices, the evaluation's own sampling); the nominal plan's
    brainstem does not."""
    from reirrad_opt.planning import plan

    settings = ScenarioSettings()
    nominal = robust_evaluation(proton_plan, settings)
    caps = {g.id for g in proton_plan.protocol.goals if g.priority == 1 and g.sense == "max"}
    nominal_rows = {r.goal_id: r for r in nominal.rows}
    assert nominal_rows["Brainstem_D0.03cc"].verdict_worst == "fail"            # the nominal plan is not robust
    robust_plan = plan(proton_plan.case, proton_plan.protocol, modality="proton", robust_optimization=settings)
    assert robust_plan.robust is not None and robust_plan.to_dict()["robust_optimization"]["setup_mm"] == 3.0
    fresh = robust_evaluation(robust_plan, settings)              # matrices recomputed, not the optimizer's
    for r in fresh.rows:
        if r.goal_id in caps and r.worst is not None:
            assert r.verdict_worst in ("desirable", "acceptable"), (r.goal_id, r.worst, r.worst_scenario)
    stem = {r.goal_id: r for r in fresh.rows}["Brainstem_D0.03cc"]
    assert stem.worst < nominal_rows["Brainstem_D0.03cc"].worst - 5.0
    names = {s.name for s in scenario_set(settings, "proton")}
    for line in robust_plan.optimization.diagnosis:      # a binding robust cap names its scenarios
        assert " Gy " not in line.replace("Gy(RBE)", "")    # a proton plan's findings are in Gy(RBE)
        if "binding in " in line:
            assert set(line.split("binding in ", 1)[1].split(", ")) <= names


def test_the_dvh_band_spans_the_scenarios_dvhs():
    """_volume_pct_above is a cumulative DVH: checked on samples with known volumes."""
    from reirrad_opt.report.robust_figure import _volume_pct_above

    dose = np.array([10.0, 20.0, 30.0, 40.0])
    volume = np.array([1.0, 1.0, 1.0, 1.0])
    assert np.allclose(_volume_pct_above(dose, volume, np.array([0.0, 10.0, 15.0, 40.0, 41.0])),
                       [100.0, 100.0, 75.0, 25.0, 0.0])


def test_a_robust_cap_reads_each_scenarios_rows():
    """robust_cap_rows: the cap's points repeated per scenario, each copy's dose that scenario's matrix's dose
    (with the same sub-voxel interpolation), the levels repeated, other terms untouched."""
    import scipy.sparse as sp

    from reirrad_opt.optimize.robust_caps import robust_cap_rows
    from reirrad_opt.optimize.terms import Term

    rng = np.random.default_rng(3)
    nominal, shifted = (sp.csr_matrix(rng.random((12, 5))) for _ in range(2))
    interp = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75]]))
    cap = Term("Brainstem_D0.03cc", "Brainstem", 1, "voxel_max", np.array([2, 3, 7]), np.array([9.0, 8.0]),
               hard=True, interp=interp)
    soft = Term("PTV_D98%", "PTV", 2, "cvar_lower", np.array([0, 1]), 50.0, fraction=0.02)
    matrix, terms, voxels = robust_cap_rows(nominal, [cap, soft], [shifted], ["setup +x 3 mm"])
    assert matrix.shape == (12 + 3, 5) and list(voxels) == [2, 3, 7]
    robust, kept = terms
    assert kept is soft and robust.n_points == 4 and list(robust.level_gy) == [9.0, 8.0, 9.0, 8.0]
    w = rng.random(5)
    points = robust.point_values((matrix @ w)[robust.rows])
    assert np.allclose(points[:2], interp @ (nominal @ w)[[2, 3, 7]])
    assert np.allclose(points[2:], interp @ (shifted @ w)[[2, 3, 7]])
    assert robust.scenario_of(np.array([0, 3])) == ["nominal", "setup +x 3 mm"]
