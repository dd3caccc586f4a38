"""Figures agree with the tables: every DVH is drawn from the samples the evaluation read its values
on, and evaluation_samples.npz reproduces every row.

NPC phantom at 5 mm with 5 beams (a plan in a few seconds)."""
from types import SimpleNamespace

import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.compare.figures import comparison_figure
from reirrad_opt.evaluate import DVH, dvh
from reirrad_opt.evaluate.curves import curve_for, evaluation_curves
from reirrad_opt.planning import plan
from reirrad_opt.report.plan_figures import draw_dvh_figure, dvh_styles, plan_curves
from reirrad_opt.report.plan_folder import write_plan_folder

RES_MM = 5.0
ANGLES = [0.0, 72.0, 144.0, 216.0, 288.0]
READ_TOL = 0.005      # a value read off a curve equals the table's within 0.5 %


@pytest.fixture(scope="module")
def npc_plan():
    return plan(make_npc_phantom(RES_MM), gantry_angles_deg=ANGLES)


@pytest.fixture(scope="module")
def folder(npc_plan, tmp_path_factory):
    return write_plan_folder(npc_plan, tmp_path_factory.mktemp("p") / "plan")


def _dose_metric_rows(p):
    return [r for r in p.evaluation.rows if r.value is not None and r.unit != "%" and r.unit != "cc"
            and r.metric in ("Dmax", "D0.03cc", "D98%", "near-min")]


def _read_dose(line, volume_pct: float) -> float:
    """Dose read off a plotted DVH line (x dose, y volume %) at ``volume_pct``."""
    x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
    assert np.all(np.diff(y) >= -1e-12), "a DVH line's volume must not decrease along its vertices"
    return float(np.interp(volume_pct, y, x))


def _metric_volume_pct(row, total_cc: float) -> float:
    if row.metric == "Dmax":
        return 0.0
    if row.metric == "D0.03cc":
        return 100.0 * 0.03 / total_cc
    return 98.0


def _lines_by_gid(fig):
    return {ln.get_gid(): ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()}


def test_values_read_off_the_dvh_figure_equal_the_table(npc_plan):
    curves = plan_curves(npc_plan)
    fig = draw_dvh_figure(curves, npc_plan.evaluation.rows, float(npc_plan.fractionation.total_gy),
                          fine_factor=npc_plan.evaluation.fine_factor)
    lines = _lines_by_gid(fig)
    rows = _dose_metric_rows(npc_plan)
    assert {r.metric for r in rows} >= {"D0.03cc", "D98%"} and len(rows) >= 10
    for r in rows:
        c = curve_for(curves, r.goal_id)
        line = lines[c.name]
        read = _read_dose(line, _metric_volume_pct(r, c.total_cc))
        assert read == pytest.approx(r.value, rel=READ_TOL), (r.goal_id, read, r.value)
        # Dmax is where the curve leaves 0 %, and it is the samples' maximum
        assert _read_dose(line, 0.0) == pytest.approx(float(c.dose_gy.max()), rel=1e-12)


def test_the_case_grid_dvh_misses_the_table_which_the_evaluation_curve_does_not(npc_plan):
    """The figure used to draw the voxel-centre DVH: on the brainstem its D0.03cc is off the table
    by more than the tolerance (the reason for drawing the evaluation's samples)."""
    row = npc_plan.evaluation.row("Brainstem_D0.03cc")
    ev = npc_plan.evaluation
    coarse = dvh(np.asarray(ev.cumulative_eqd2_gy), npc_plan.case.structures["Brainstem"].mask, npc_plan.case.grid)
    assert abs(coarse.d_at_volume_cc(0.03) - row.value) > READ_TOL * row.value
    c = curve_for(plan_curves(npc_plan), row.goal_id)
    assert c.dvh().d_at_volume_cc(0.03) == pytest.approx(row.value, rel=1e-12)


def test_every_evaluated_row_has_its_curve_and_the_curve_gives_its_value(npc_plan):
    curves = plan_curves(npc_plan)
    for r in npc_plan.evaluation.rows:
        c = curve_for(curves, r.goal_id)
        assert c.cumulative == r.cumulative
        assert c.fine_factor == r.fine_factor == npc_plan.evaluation.fine_factor == 3
        h = c.dvh()
        if r.metric == "V107%":
            value = h.v_at_dose_gy(1.07 * npc_plan.fractionation.total_gy, "%")
        elif r.metric == "D0.03cc":
            value = h.d_at_volume_cc(0.03)
        else:
            value = h.d_at_volume_pct(98.0)
        assert value == pytest.approx(r.value, rel=1e-12, abs=1e-12), r.goal_id


def test_curves_refuse_samples_that_are_not_the_evaluations(npc_plan):
    ev = npc_plan.evaluation
    other = SimpleNamespace(rows=ev.rows, fine_factor=2)
    with pytest.raises(ValueError, match="fine factor 2.*used 3"):
        evaluation_curves(npc_plan.case, other, npc_plan.new_dose_gy, npc_plan.fractionation.n_fractions)


def _reference_d_at_volume(dose, vol, v):
    """D(v cc) written out: levels sorted from the hottest, each at the middle of its volume,
    linear between levels (the convention stated in reirrad_opt/evaluate/dvh.py)."""
    levels, inverse = np.unique(dose, return_inverse=True)
    level_vol = np.bincount(inverse, weights=vol)
    levels, level_vol = levels[::-1], level_vol[::-1]
    mid = np.cumsum(level_vol) - 0.5 * level_vol
    return float(np.interp(v, mid, levels))


def test_evaluation_samples_file_reproduces_every_row(npc_plan, folder):
    rx = npc_plan.fractionation.total_gy
    with np.load(folder / "evaluation_samples.npz") as f:
        evaluated = [r for r in npc_plan.evaluation.rows if r.value is not None]
        assert {k.split("/")[0] for k in f.files} == {r.goal_id for r in evaluated}
        for r in evaluated:
            d, v = f[f"{r.goal_id}/dose_gy"], f[f"{r.goal_id}/volume_cc"]
            assert v.sum() == pytest.approx(r.volume_cc, rel=1e-9)
            if r.metric == "V107%":
                value = 100.0 * v[d >= 1.07 * rx].sum() / v.sum()
            elif r.metric == "D0.03cc":
                value = _reference_d_at_volume(d, v, 0.03)
            else:
                value = _reference_d_at_volume(d, v, 0.98 * v.sum())
            assert value == pytest.approx(r.value, rel=1e-6), r.goal_id


def test_left_and_right_organs_are_told_apart_and_paired():
    styles = dvh_styles(["Brainstem", "OpticNrv_L", "OpticNrv_R", "Parotid_R", "Parotid_L"])
    assert styles["OpticNrv_L"][0] != styles["OpticNrv_R"][0]
    assert (styles["OpticNrv_L"][1], styles["OpticNrv_R"][1]) == ("-", "--")
    assert len({styles[n][0] for n in styles}) == 5


def test_comparison_figure_is_drawn_from_each_plans_evaluation(npc_plan, tmp_path, monkeypatch):
    """comparison.png: each plan's curves are its evaluation's; read-off values equal its rows."""
    import matplotlib.figure

    drawn = {}
    original = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        drawn["fig"] = self
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    cmp = SimpleNamespace(modalities=["photon", "photon-again"], case=npc_plan.case,
                          plans={"photon": npc_plan, "photon-again": npc_plan})
    comparison_figure(cmp, tmp_path / "comparison.png")
    assert (tmp_path / "comparison.png").stat().st_size > 0
    lines = [ln for ax in drawn["fig"].axes for ln in ax.get_lines() if ln.get_gid()]
    curves = plan_curves(npc_plan)
    assert len(lines) == 2 * len(curves)
    by_gid = {}
    for ln in lines:
        by_gid.setdefault(ln.get_gid(), []).append(ln)
    for r in _dose_metric_rows(npc_plan):
        c = curve_for(curves, r.goal_id)
        for ln in by_gid[c.name]:
            assert _read_dose(ln, _metric_volume_pct(r, c.total_cc)) == pytest.approx(r.value, rel=READ_TOL)


def test_a_tabulated_dvh_of_the_drawn_polyline_gives_the_rows(npc_plan):
    """The drawn polyline as a curve in its own right (DVH.from_cumulative) gives D98 % of the
    targets within the tolerance: what a user digitising the figure would get."""
    curves = plan_curves(npc_plan)
    for gid in ("rGTV_D98%", "PTV_D98%"):
        r = npc_plan.evaluation.row(gid)
        c = curve_for(curves, gid)
        dose, vol = c.polyline()      # dose descending, volume ascending
        tab = DVH.from_cumulative(np.r_[0.0, dose[::-1]], np.r_[c.total_cc, vol[::-1]])
        assert tab.d_at_volume_pct(98.0) == pytest.approx(r.value, rel=READ_TOL)
