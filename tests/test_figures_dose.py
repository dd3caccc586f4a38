"""dose.png: slices in patient mm with their positions and orientation, isodose lines at the
protocol's levels, cropped to the body."""
import numpy as np
import pytest
from matplotlib.contour import ContourSet

from phantoms.npc import make_npc_phantom
from reirrad_opt.planning import plan
from reirrad_opt.report.plan_figures import dose_figure, priority1_cumulative_levels
from reirrad_opt.report.slices import body_box_mm, orthogonal_views


@pytest.fixture(scope="module")
def npc_plan():
    return plan(make_npc_phantom(5.0), gantry_angles_deg=[0.0, 72.0, 144.0, 216.0, 288.0])


def test_views_follow_patient_lps_conventions():
    case = make_npc_phantom(5.0)
    grid = case.grid
    k, j, i = 10, 20, 7
    axial, coronal, sagittal = orthogonal_views(grid, (k, j, i))
    zc, yc, xc = grid.axis_coordinates_mm()
    assert axial.position == f"z = {zc[k]:.1f} mm" and sagittal.position == f"x = {xc[i]:.1f} mm"
    # axial: patient right (smaller x) on the image left, anterior (smaller y) at the top
    assert axial.marks == ("R", "L", "A", "P") and axial.flip_v
    assert sagittal.marks == ("A", "P", "S", "I") and not sagittal.flip_v
    vol = np.arange(np.prod(grid.shape)).reshape(grid.shape)
    assert np.array_equal(coronal.cut(vol), vol[:, j, :])
    assert coronal.cut(vol).shape == (coronal.v_mm.size, coronal.h_mm.size)


def test_body_box_is_the_body_extent_plus_margin():
    case = make_npc_phantom(5.0)
    view = orthogonal_views(case.grid, (10, 20, 16))[0]
    box = body_box_mm(view, case.body, margin_mm=5.0)
    m = view.cut(case.body)
    xs = view.h_mm[np.flatnonzero(m.any(axis=0))]
    ys = view.v_mm[np.flatnonzero(m.any(axis=1))]
    assert box == pytest.approx((xs[0] - 5, xs[-1] + 5, ys[0] - 5, ys[-1] + 5))
    assert body_box_mm(view, np.zeros_like(case.body)) is None


def test_dose_figure_has_mm_axes_positions_orientation_and_isodoses(npc_plan, tmp_path):
    ev = npc_plan.evaluation
    fig = dose_figure(npc_plan, tmp_path / "dose.png", ev.cumulative_eqd2_gy)
    assert (tmp_path / "dose.png").stat().st_size > 0
    images = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(images) == 6
    titles = [ax.get_title() for ax in images]
    assert any(t.startswith("axial, z = ") and t.endswith(" mm") for t in titles)
    assert all("(mm)" in ax.get_xlabel() and "(mm)" in ax.get_ylabel() for ax in images)
    letters = {t.get_text() for ax in images for t in ax.texts}
    assert letters == {"R", "L", "A", "P", "S", "I"}
    rx = npc_plan.fractionation.total_gy
    levels_top = set()
    levels_bottom = set()
    for n, ax in enumerate(images):
        for cs in ax.collections:
            if isinstance(cs, ContourSet) and len(cs.levels) and cs.levels[0] != 0.5:
                (levels_top if n < 3 else levels_bottom).update(np.round(cs.levels, 3))
    assert levels_top == set(np.round([0.5 * rx, 0.95 * rx, 1.07 * rx], 3))
    p1 = priority1_cumulative_levels(ev.rows)
    assert p1 and levels_bottom and levels_bottom <= set(np.round(p1, 3))
    # priority-1 cumulative limits are the evaluated priority-1 cumulative rows' limits
    expected = {round(v, 2) for r in ev.rows if r.priority == 1 and r.cumulative and r.value is not None
                for v in (r.desirable, r.acceptable) if v is not None}
    assert set(p1) == expected
    # every panel is cropped to the body on its slice (5 mm margin), axial with anterior at the top
    views = orthogonal_views(npc_plan.case.grid, _centre(npc_plan))
    axial, coronal, sagittal = images[:3]
    for ax, view in zip(images[:3], views):
        box = body_box_mm(view, npc_plan.case.body)
        assert ax.get_xlim() == pytest.approx((box[0], box[1]))
        assert ax.get_ylim() == pytest.approx((box[3], box[2]) if view.flip_v else (box[2], box[3]))
    # one scale for the three views
    fig.canvas.draw()
    scale = [ax.get_window_extent().width / np.ptp(ax.get_xlim()) for ax in (axial, coronal, sagittal)]
    assert max(scale) == pytest.approx(min(scale), rel=0.02)       # pixels per mm


def _centre(p):
    return tuple(int(round(c)) for c in np.argwhere(p.case.structures["rGTV"].mask).mean(axis=0))


def test_comparison_slices_are_in_patient_mm_with_orientation(npc_plan, tmp_path, monkeypatch):
    import matplotlib.figure
    from types import SimpleNamespace

    from reirrad_opt.compare.figures import slices_figure

    drawn = {}
    original = matplotlib.figure.Figure.savefig

    def keep(self, *args, **kwargs):
        drawn["fig"] = self
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", keep)
    cmp = SimpleNamespace(modalities=["photon", "proton"], case=npc_plan.case,
                          plans={"photon": npc_plan, "proton": npc_plan})
    slices_figure(cmp, tmp_path / "slices.png")
    images = [ax for ax in drawn["fig"].axes if ax.images]
    assert len(images) == 9
    assert [ax.get_title().split(",")[0] for ax in images[:3]] == ["axial", "coronal", "sagittal"]
    assert all(" mm: " in ax.get_title() and "(mm)" in ax.get_xlabel() for ax in images)
    assert {t.get_text() for ax in images for t in ax.texts} == {"R", "L", "A", "P", "S", "I"}
    rx = npc_plan.fractionation.total_gy
    iso = {round(float(v), 3) for ax in images[:6] for cs in ax.collections
           if isinstance(cs, ContourSet) for v in cs.levels if v != 0.5}
    assert iso == {round(0.95 * rx, 3), round(1.07 * rx, 3)}
