"""The truncated LP dose rows: the correction, the allowance or exact rows where it lags, held goals.

The matrix has the shape that makes truncation matter for photons: a narrow primary peak per bixel
and a broad low scatter tail (0.5 % of the peak over the whole phantom) that the LP's rows drop
(truncation at 1 % of each column's maximum) and get back only through the correction at the last
fluence."""
import numpy as np
import pytest
import scipy.sparse as sp

from reirrad_opt.optimize import LPSettings, LPSolver, Term
from reirrad_opt.optimize import dose_rows
from reirrad_opt.optimize.dose_rows import DoseRows, as_float64, truncate_columns

N = 80
RX = 60.0
TAIL = 0.005
DEFAULTS = LPSettings()
HOLD_SAFETY_GY = DEFAULTS.hold_safety_gy
# no cost of moving the fluence between solves: this small fixture's rounds then jump between optimal
# fluences, and the lag puts points over, which is what the tests using it need
NO_PROXIMITY = LPSettings(proximity_weight=0.0)


def scatter_matrix() -> sp.csr_matrix:
    i = np.arange(N)[:, None]
    j = np.arange(0, N, 2)[None, :]
    a = np.exp(-((i - j) ** 2) / (2 * 2.0 ** 2)) + TAIL
    a[a < 1e-4] = 0
    return sp.csr_matrix(a.astype(np.float32))


def terms(cap_gy: float, organ=(46, 52)):
    t_rows, oar = np.arange(20, 45), np.arange(*organ)
    d96 = Term("T_D96", "T", 1, "cvar_lower", t_rows, 0.98 * RX, fraction=0.04)
    return d96, [Term("OAR_Dmax", "OAR", 1, "voxel_max", oar, np.full(oar.size, cap_gy), hard=True),
                 Term("plan_Dmax", "T", 1, "voxel_max", t_rows, 1.15 * RX, hard=True), d96,
                 Term("T_Dmean", "T", 2, "mean_max", t_rows, 0.0)]


def solver(truncation: float, cap_gy: float = 30.0, slip_gy: float = 0.6,
           settings: LPSettings | None = None) -> tuple[Term, LPSolver]:
    d96, ts = terms(cap_gy)
    return d96, LPSolver(scatter_matrix(), ts, rx_gy=RX, slips_gy={1: slip_gy, 2: 0.6}, tier_by_goal={},
                         truncation=truncation, settings=settings)


def count_solves(monkeypatch) -> list:
    """Record every solve of an LPSolver: the method of each stage's first solve, 'round'
    for each lazy round (dual simplex, or the interior point if that runs out of time)."""
    calls = []
    real, real_round = LPSolver._solve_logged, LPSolver._dual_or_barrier

    def counted(self, *args, **kwargs):
        calls.append(args[0])
        return real(self, *args, **kwargs)

    def counted_round(self, *args, **kwargs):
        calls.append("round")
        return real_round(self, *args, **kwargs)

    monkeypatch.setattr(LPSolver, "_solve_logged", counted)
    monkeypatch.setattr(LPSolver, "_dual_or_barrier", counted_round)
    return calls


def test_truncation_drops_the_scatter_tail_from_the_lp_rows():
    rows = DoseRows(scatter_matrix(), 0.01)
    assert rows.matrix_opt.nnz < 0.3 * rows.matrix.nnz      # the tail was most of the entries
    assert rows.matrix_opt.data.min() > 0.01                      # nothing below 1 % of a column's peak is left


def test_lp_dose_is_exact_at_the_correction_fluence_and_short_by_the_dropped_entries_times_the_change():
    _, s = solver(0.01)
    pool = s.dose_vars
    pool.variables(np.arange(10, 60))
    w0 = np.linspace(0.5, 2.0, s.n_cols)
    pool.set_correction(w0)
    dose0 = s.rows.dose(w0)
    assert np.abs(pool.lp_dose(dose0, w0) - dose0).max() < 1e-9
    w1 = w0[::-1].copy()
    dose1 = s.rows.dose(w1)
    dropped = (s.rows.matrix - s.rows.matrix_opt)[pool.voxels]
    stale = (dose1 - pool.lp_dose(dose1, w1))[pool.voxels]
    assert stale == pytest.approx(dropped @ (w1 - w0), abs=1e-9)
    assert np.abs(stale).max() > 1e-3                        # the tail does matter here
    outside = np.setdiff1d(np.arange(N), pool.voxels)
    assert np.array_equal(pool.lp_dose(dose1, w1)[outside], dose1[outside])   # no LP row there: full dose


def test_a_cap_the_correction_lag_breaks_gets_a_point_allowance_not_a_tighter_level():
    """The organ next to the target sits on its cap; the truncated rows underestimate how much the
    fluence change of a round adds there. The rounds must end with the cap met in the full matrix,
    by tightening only the rows of the points that were over (by about the lag, a few hundredths
    of a Gy), without tightening the whole cap, and with the target's coverage of the exact LP."""
    d96, s = solver(0.01, settings=NO_PROXIMITY)
    s.solve_priority(1)
    dose = s.rows.dose(s.weights)
    oar = s.hard[0]
    assert dose[oar.rows].max() <= 30.0 + 1e-3
    assert dose[20:45].max() <= 1.15 * RX + 1e-3
    allowance = s.lag_margin[oar.key]
    assert 0 < allowance.max() <= DEFAULTS.lag_margin_max_gy   # the lag did put points over; their rows tightened
    assert np.count_nonzero(allowance) < allowance.size        # ... only theirs
    assert not s.exact_points[oar.key].any()                   # no dense row was needed
    assert s.margin.get(oar.key, 0.0) < 0.01                   # ... and the cap itself was not tightened
    d96_exact, exact = solver(0.0)
    exact.solve_priority(1)
    coverage_exact = d96_exact.dvh_dose(exact.rows.dose(exact.weights)[20:45])
    assert d96.dvh_dose(dose[20:45]) == pytest.approx(coverage_exact, abs=0.1)


def test_a_lag_beyond_the_allowance_gets_exact_rows():
    """With no allowance permitted, the points the lag puts over get exact (full-matrix) rows, and
    the cap holds in the full matrix all the same."""
    _, s = solver(0.01, settings=LPSettings(proximity_weight=0.0, lag_margin_max_gy=0.0))
    s.solve_priority(1)
    oar = s.hard[0]
    assert s.exact_points[oar.key].any()
    assert not s.lag_margin[oar.key].any()
    assert s.rows.dose(s.weights)[oar.rows].max() <= 30.0 + 1e-3


def ceiling_solver(settings: LPSettings | None = None) -> tuple[Term, LPSolver]:
    """The fixture with its plan ceiling at 102 % of Rx, so that it binds over the target."""
    _, ts = terms(30.0)
    ceiling = Term("plan_Dmax", "T", 1, "voxel_max", np.arange(20, 45), 1.02 * RX, hard=True)
    ts[1] = ceiling
    return ceiling, LPSolver(scatter_matrix(), ts, rx_gy=RX, slips_gy={1: 0.6, 2: 0.6}, tier_by_goal={},
                             truncation=0.01, settings=settings)


def test_the_last_stage_may_leave_plan_ceiling_points_a_few_hundredths_of_a_gy_over_and_says_so(monkeypatch):
    """Another solve for plan-ceiling points (the optimizer's safety net, not a protocol limit) a few
    hundredths of a Gy over costs as much as the stage's first: the stage ends, and its notes say how
    many and how far; solved to the end instead, the ceiling holds exactly and takes more solves."""
    calls = count_solves(monkeypatch)
    ceiling, s = ceiling_solver()
    s.solve_priority(1)
    n_left = len(calls)
    over = s.rows.dose(s.weights)[ceiling.rows].max() - 1.02 * RX
    assert s.ceiling_left and s.unresolved > 0
    assert DEFAULTS.violation_tol_gy < over <= DEFAULTS.ceiling_left_gy
    assert any("plan-ceiling point(s) left" in n for n in s.stages[-1].notes)
    assert s.rows.dose(s.weights)[s.hard[0].rows].max() <= 30.0 + 1e-3     # an organ cap is never left over
    calls.clear()
    _, exact = ceiling_solver(LPSettings(ceiling_left_gy=0.0))
    exact.solve_priority(1)
    assert not exact.ceiling_left and exact.unresolved == 0 and len(calls) > n_left
    assert exact.rows.dose(exact.weights)[ceiling.rows].max() <= 1.02 * RX + 1e-3


@pytest.mark.parametrize("ceiling_allowance", [DEFAULTS.ceiling_lag_margin_max, 0.0])
def test_a_plan_ceiling_point_the_lag_breaks_gets_a_wider_allowance_instead_of_a_dense_row(ceiling_allowance):
    """With no allowance for organ caps, the organ's lagging points get exact rows; the plan ceiling
    (here 102 % of Rx, so that it binds over the target) is a safety net and its points are tightened
    instead, by up to ceiling_lag_margin_max of the ceiling, and the ceiling holds in the full matrix.
    With that fraction at zero the ceiling's points get exact rows like the organ's."""
    # no allowance for organ caps; solved until the ceiling holds exactly
    ceiling, s = ceiling_solver(LPSettings(lag_margin_max_gy=0.0, ceiling_lag_margin_max=ceiling_allowance,
                                           ceiling_left_gy=0.0))
    s.solve_priority(1)
    dose = s.rows.dose(s.weights)
    assert dose[ceiling.rows].max() <= 1.02 * RX + 1e-3
    assert dose[s.hard[0].rows].max() <= 30.0 + 1e-3
    assert s.exact_points[s.hard[0].key].any()
    allowance, exact = s.lag_margin[ceiling.key], s.exact_points[ceiling.key]
    if ceiling_allowance:
        assert 0 < allowance.max() <= ceiling_allowance * 1.02 * RX and not exact.any()
    else:
        assert exact.any() and not allowance.any()


def test_held_goal_stays_within_its_slip_in_the_full_matrix_dose():
    """A later stage pushes the target dose down (by the 3 Gy slip); the held D96% must not give
    back more than the slip (plus the hold's safety) as the full matrix reads it, whatever the
    truncated rows said (their correction is from the hotter first-stage fluence: without the
    check on the full matrix the D96% ends 0.11 Gy below its hold)."""
    d96, s = solver(0.01, slip_gy=3.0)
    s.solve_priority(1)
    held = s.holds[d96.key].level_gy
    s.solve_priority(2)
    dose = s.rows.dose(s.weights)
    assert d96.dvh_dose(dose[20:45]) >= held - HOLD_SAFETY_GY - 1e-3
    assert dose[s.hard[0].rows].max() <= 30.0 + 1e-3


def test_a_stage_before_the_last_carries_small_violations_and_the_last_stage_clears_them():
    """Priority 1 may end with the lag's last few hundredths of a Gy over the cap (at most carry_gy;
    the points' rows are in the LP); priority 2, the last stage, must end with the cap met in the
    full-matrix dose, and the first stage's goal within its slip."""
    d96, s = solver(0.01, settings=NO_PROXIMITY)
    s.solve_priority(1, carry=True)
    oar = s.hard[0]
    over = s.rows.dose(s.weights)[oar.rows].max() - 30.0
    assert s.carried and 1e-3 < over <= DEFAULTS.carry_gy + 1e-9   # this fixture's lag does leave a point over
    assert any("carried into the next stage" in n for n in s.stages[-1].notes)
    held = s.holds[d96.key].level_gy
    s.solve_priority(2)
    dose = s.rows.dose(s.weights)
    assert not s.carried and s.unresolved == 0
    assert dose[oar.rows].max() <= 30.0 + 1e-3
    assert d96.dvh_dose(dose[20:45]) >= held - HOLD_SAFETY_GY - 1e-3


def test_the_cost_of_moving_the_fluence_ends_the_rounds_sooner_at_the_same_stage_optimum(monkeypatch):
    """Without it the second solve jumps to another optimal fluence, the correction lags and the organ
    needs a third solve; with it (the default) two solves, the same stage objective, the cap met in
    the full matrix with no allowance needed."""
    calls = count_solves(monkeypatch)
    d96, s = solver(0.01)
    s.solve_priority(1)
    with_cost = len(calls)
    calls.clear()
    d96_free, free = solver(0.01, settings=NO_PROXIMITY)
    free.solve_priority(1)
    assert free._proximity is None and s._proximity is not None
    assert with_cost < len(calls)
    assert s.stages[-1].objective == pytest.approx(free.stages[-1].objective, abs=1e-5)
    dose = s.rows.dose(s.weights)
    assert dose[s.hard[0].rows].max() <= 30.0 + 1e-3
    assert not s.lag_margin[s.hard[0].key].any() and free.lag_margin[free.hard[0].key].any()
    assert d96.dvh_dose(dose[20:45]) == pytest.approx(d96_free.dvh_dose(free.rows.dose(free.weights)[20:45]), abs=0.1)


def test_truncate_columns_drops_entries_below_the_fraction_of_their_column_max():
    dense = np.array([[10.0, 0.5, 0.0],
                      [0.09, 4.0, 0.0],
                      [0.1, 0.03, 2.0],
                      [0.0, 0.05, 0.019]])
    out = truncate_columns(sp.csr_matrix(dense.astype(np.float32)), 0.01)
    # column maxima 10, 4, 2: thresholds 0.1, 0.04, 0.02 (an entry at the threshold stays)
    expected = np.array([[10.0, 0.5, 0.0],
                         [0.0, 4.0, 0.0],
                         [0.1, 0.0, 2.0],
                         [0.0, 0.05, 0.0]])
    assert out.format == "csr" and out.has_canonical_format
    np.testing.assert_allclose(out.toarray(), expected, rtol=1e-6)
    assert out.nnz == np.count_nonzero(expected)
    assert truncate_columns(sp.csr_matrix(dense), 0.0).nnz == np.count_nonzero(dense)


def test_truncate_columns_matches_a_dense_reference_on_the_scatter_matrix():
    m = scatter_matrix()
    out = truncate_columns(m, 0.01).toarray()
    dense = m.toarray().astype(float)
    ref = np.where(dense >= 0.01 * dense.max(axis=0, keepdims=True), dense, 0.0)
    np.testing.assert_allclose(out, ref, rtol=1e-6)
    assert 0 < np.count_nonzero(out) < np.count_nonzero(dense)   # the tails go, the peaks stay


@pytest.mark.parametrize("block", [3, 7, 1 << 22])
def test_truncate_columns_reads_in_blocks_with_empty_rows_and_negative_entries(monkeypatch, block):
    """Blocks that split rows, rows with no entry or none kept, and a negative entry read by magnitude."""
    monkeypatch.setattr(dose_rows, "_BLOCK_ENTRIES", block)
    dense = np.array([[0.0, 0.0, 0.0],
                      [5.0, -0.2, 0.001],
                      [0.0, 0.0, 0.0],
                      [0.04, 3.0, 1.0],
                      [0.06, -0.02, 0.0],
                      [0.01, 0.01, 0.005]])
    out = truncate_columns(sp.csr_matrix(dense), 0.01)
    # column maxima by magnitude 5, 3, 1: thresholds 0.05, 0.03, 0.01
    expected = np.where(np.abs(dense) >= np.array([0.05, 0.03, 0.01]), dense, 0.0)
    assert out.has_canonical_format and out.nnz == np.count_nonzero(expected)
    np.testing.assert_array_equal(out.toarray(), expected)


def test_as_float64_shares_the_index_arrays_of_a_csr_matrix():
    m = scatter_matrix()
    m32 = sp.csr_matrix(m, dtype=np.float32)
    out = as_float64(m32)
    assert out.dtype == np.float64 and np.shares_memory(out.indices, m32.indices) \
        and np.shares_memory(out.indptr, m32.indptr)
    np.testing.assert_array_equal(out.toarray(), m32.toarray().astype(np.float64))
    assert as_float64(out) is out                                   # already float64 CSR: itself
    csc = as_float64(m32.tocsc())                                   # another format: converted
    assert csc.format == "csr" and csc.dtype == np.float64 and (csc != out).nnz == 0
