"""A linear program that grows between solves, solved by HiGHS with a warm start.

The lexicographic stages are a sequence of closely related LPs: each lazy round adds the organ
points that were violated, each stage changes the objective and fixes the previous one's result.
Rebuilding every LP from scratch (what a modelling layer such as cvxpy does) discards the simplex
basis, so every round cost a full cold solve (seconds for a few thousand dense rows). Keeping one
HiGHS model and only *adding* rows, or changing costs and bounds, lets HiGHS continue from the
last optimal basis: the dual simplex repairs added rows, the primal simplex a changed objective,
typically in a few hundred iterations.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import highspy
import numpy as np
import scipy.sparse as sp

INF = highspy.kHighsInf


@dataclass
class LPSolution:
    """Result of one solve.

    Attributes:
        status: 'optimal', 'infeasible', 'unbounded', or another HiGHS model status (lower case).
        x: variable values (None unless optimal).
        row_dual: row duals (None unless optimal).
        objective: objective value (nan unless optimal).
        iterations: simplex, interior-point and crossover iterations of this solve.
        seconds: wall time of this solve (s).
    """

    status: str
    x: np.ndarray | None
    row_dual: np.ndarray | None
    objective: float
    iterations: int
    seconds: float = float("nan")


_STATUS = {
    highspy.HighsModelStatus.kOptimal: "optimal",
    highspy.HighsModelStatus.kInfeasible: "infeasible",
    highspy.HighsModelStatus.kUnbounded: "unbounded",
    highspy.HighsModelStatus.kUnboundedOrInfeasible: "infeasible_or_unbounded",
    highspy.HighsModelStatus.kTimeLimit: "time limit",
}


_STRATEGY = {"dual": 1, "primal": 4}
METHODS = ("dual", "primal", "ipm", "barrier")
# HiGHS's interior point by name: 'ipm' lets HiGHS choose, and with the optional highspy-extras package
# installed it chooses HiPO (factorization based), which took 19.6 s on the first NPC LP at 2.5 mm
# where IPX (basis-preconditioned conjugate gradients) takes 6.7 s; a plan must not change speed, or
# vertex, with what else happens to be installed
IPM_SOLVER = "ipx"
COST_NORM = 1000.0   # HiGHS sees the costs scaled so that the largest is this (see LinearProgram.set_cost)


def _finite(values, n: int, default: float) -> np.ndarray:
    """Bounds as a float array of length n with +/-inf mapped to HiGHS's infinity."""
    a = np.broadcast_to(np.asarray(default if values is None else values, dtype=float), (n,)).copy()
    a[a == np.inf] = INF
    a[a == -np.inf] = -INF
    return a


class LinearProgram:
    """Minimise c.x subject to row_lower <= A x <= row_upper, col_lower <= x <= col_upper.

    Variables and rows are only ever added (indices are stable); costs and bounds can be changed.
    Each :meth:`solve` starts from the previous optimal basis.
    """

    def __init__(self, time_limit_s: float | None = None) -> None:
        self.highs = highspy.Highs()
        self.highs.setOptionValue("output_flag", False)
        # off for the simplex (it would discard the basis of every warm start); on only for a cold
        # interior point with crossover (see solve)
        self.highs.setOptionValue("presolve", "off")
        self._time_limit = float(time_limit_s) if time_limit_s is not None else INF
        self.highs.setOptionValue("time_limit", self._time_limit)
        self.n_vars = 0
        self.n_rows = 0
        self.cost = np.zeros(0)
        self.cost_scale = 1.0
        self._swaps: list[tuple[np.ndarray, np.ndarray]] = []

    # ---- building
    def add_variables(self, n: int, lower=0.0, upper=np.inf) -> np.ndarray:
        """Add ``n`` variables with the given bounds (scalars or arrays); return their indices."""
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        self.highs.addVars(int(n), _finite(lower, n, 0.0), _finite(upper, n, np.inf))
        idx = np.arange(self.n_vars, self.n_vars + n)
        self.n_vars += n
        self.cost = np.concatenate([self.cost, np.zeros(n)])
        return idx

    def add_rows(self, blocks: list[tuple[np.ndarray, sp.spmatrix]], lower=-np.inf, upper=np.inf) -> np.ndarray:
        """Add rows ``lower <= sum_b M_b x[var_b] <= upper``.

        ``blocks``: (variable indices, matrix with one column per listed variable); every matrix
        has the same number of rows k. Returns the k new row indices."""
        k = blocks[0][1].shape[0]
        rows, cols, vals = [], [], []
        for var_idx, matrix in blocks:
            if matrix.shape != (k, len(var_idx)):
                raise ValueError(f"row block of shape {matrix.shape} does not match {k} rows x {len(var_idx)} variables")
            coo = sp.coo_matrix(matrix)
            rows.append(coo.row)
            cols.append(np.asarray(var_idx, dtype=np.int64)[coo.col])
            vals.append(coo.data.astype(float))
        m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(k, self.n_vars))
        m.sum_duplicates()
        m.eliminate_zeros()
        if k == 0:
            return np.zeros(0, dtype=np.int64)
        self.highs.addRows(int(k), _finite(lower, k, -np.inf), _finite(upper, k, np.inf), int(m.nnz),
                           m.indptr[:-1].astype(np.int32), m.indices.astype(np.int32), m.data)
        idx = np.arange(self.n_rows, self.n_rows + k)
        self.n_rows += k
        return idx

    def swap_into_basis(self, variables: np.ndarray, rows: np.ndarray) -> None:
        """Before the next solve, make ``variables`` basic and ``rows`` non-basic (at their bound).

        For a row just added with a variable that only it defines (``d_v = A_v w``), this keeps the
        last optimal basis primal feasible: the variable takes the row's value instead of the dual
        simplex spending iterations to repair the row."""
        self._swaps.append((np.asarray(variables, dtype=np.int64), np.asarray(rows, dtype=np.int64)))

    def _apply_swaps(self) -> None:
        swaps, self._swaps = self._swaps, []
        if not swaps:
            return
        basis = self.highs.getBasis()
        if not basis.valid:
            return
        cols, rows = list(basis.col_status), list(basis.row_status)
        if len(cols) != self.n_vars or len(rows) != self.n_rows:
            return
        basic, upper = highspy.HighsBasisStatus.kBasic, highspy.HighsBasisStatus.kUpper
        for variables, row_idx in swaps:
            for v in variables:
                cols[v] = basic
            for r in row_idx:
                rows[r] = upper
        basis.col_status, basis.row_status = cols, rows
        self.highs.setBasis(basis)

    # ---- modifying
    def set_cost(self, cost: np.ndarray) -> None:
        """Replace the whole cost vector (length n_vars).

        HiGHS receives the costs scaled so that the largest is COST_NORM (reported objective and
        duals are scaled back). Its tolerances are absolute (dual feasibility 1e-7): with the
        stage costs of order 1/Rx and the integral-dose tie-breaker about 1e-8 of the largest cost,
        the tie-breaker drowns in the tolerance, the interior point ends 'imprecise' and crossover
        leaves thousands of simplex iterations of clean-up. On the TG-119 priority-2 LP at 3 mm
        (19,670 rows, 4.4 M non-zeros) unscaled-to-10 costs took 145 s (14 k clean-up iterations),
        costs scaled to a largest of 1000 took 68 s (32 clean-up iterations)."""
        cost = np.asarray(cost, dtype=float)
        if cost.shape != (self.n_vars,):
            raise ValueError(f"cost vector of length {cost.size}, model has {self.n_vars} variables")
        top = float(np.max(np.abs(cost))) if cost.size else 0.0
        scale = COST_NORM / top if top > 0 else 1.0
        if scale != self.cost_scale:
            changed = np.flatnonzero((cost != 0) | (self.cost != 0))
        else:
            changed = np.flatnonzero(cost != self.cost)
        self.cost_scale = scale
        if changed.size:
            self.highs.changeColsCost(int(changed.size), changed.astype(np.int32), scale * cost[changed])
        self.cost = cost.copy()

    def set_variable_bounds(self, idx, lower, upper) -> None:
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int32))
        self.highs.changeColsBounds(int(idx.size), idx, _finite(lower, idx.size, -np.inf),
                                    _finite(upper, idx.size, np.inf))

    def set_row_bounds(self, idx, lower, upper) -> None:
        idx = np.atleast_1d(np.asarray(idx, dtype=np.int32))
        if idx.size:
            self.highs.changeRowsBounds(int(idx.size), idx, _finite(lower, idx.size, -np.inf),
                                        _finite(upper, idx.size, np.inf))

    # ---- solving
    def solve(self, method: str = "dual", time_limit_s: float | None = None) -> LPSolution:
        """Solve; fall back to a cold interior-point solve if the simplex ends without a definite
        status.

        ``method``: 'dual' simplex from the last basis after rows or bounds were added or changed
        (the basis stays dual feasible), 'primal' simplex from the last basis after only the costs
        changed (the basis stays primal feasible), or 'ipm': a cold interior-point solve with
        crossover to an optimal basis (for a new objective far from the last optimum; the next
        simplex solves continue from that basis), or 'barrier': the same without crossover (an
        interior optimal point within the solver's tolerances and no basis, so the next solve must
        be cold too; the crossover of a degenerate dose LP can take far longer than the interior
        point: TG-119 at 3 mm, 8 s of interior point then 160 s of crossover). 'ipm' runs HiGHS's
        presolve first (about 40 % of the rows go; the crossover's basis comes back on the whole LP):
        NPC phantom at 2.5 mm, 12.7 s -> 6.4 s; 'barrier' does not (HiGHS leaves a postsolved
        interior point without a status). Using the wrong
        simplex forces a phase 1 that can take a hundred times longer.
        ``time_limit_s``: stop this solve after that many seconds with status 'time limit' (no
        solution is returned then, and there is no fallback)."""
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if method in ("ipm", "barrier"):
            self._swaps = []
            self.highs.clearSolver()   # cold: no basis or solution of an earlier (possibly interrupted) run
            self.highs.setOptionValue("solver", IPM_SOLVER)
            self.highs.setOptionValue("run_crossover", "on" if method == "ipm" else "off")
            self.highs.setOptionValue("presolve", "on" if method == "ipm" else "off")
        else:
            self.highs.setOptionValue("simplex_strategy", _STRATEGY[method])
            self._apply_swaps()
        try:
            if time_limit_s is not None:   # HiGHS compares its limit with the run time summed over all runs
                self.highs.setOptionValue("time_limit", self.highs.getRunTime() + max(float(time_limit_s), 0.0))
                try:
                    return self._run()
                finally:
                    self.highs.setOptionValue("time_limit", self._time_limit)
            sol = self._run()
            if sol.status not in ("optimal", "infeasible", "unbounded") and method not in ("ipm", "barrier"):
                self.highs.setOptionValue("solver", IPM_SOLVER)
                self.highs.clearSolver()
                sol = self._run()
            return sol
        finally:
            self.highs.setOptionValue("solver", "choose")
            self.highs.setOptionValue("presolve", "off")

    def solve_dual_or_barrier(self, dual_limit_s: float, time_limit_s: float | None = None,
                              barrier_after_s: float = 0.0) -> tuple[LPSolution, LPSolution | None]:
        """The dual simplex from the last basis for at most ``dual_limit_s``; if it runs out of that
        time, a cold interior point without crossover (method 'barrier') on the same LP gives the
        result. Returns (dual simplex result, interior-point result or None).

        The result is that of the two solves one after the other, but the interior point does not
        wait for the dual simplex to give up: it starts ``barrier_after_s`` into the dual simplex, in
        a second thread on a copy of the LP (HiGHS solves on one core; the copy takes a fraction of a
        second in that thread), and is stopped as soon as the dual simplex finishes in time (a dual
        simplex that finishes before ``barrier_after_s`` shares the machine with nothing). A dense LP
        whose dual simplex crawls (TG-119 at 3 mm: 35 s without finishing, then 26 s of interior
        point) then costs about the longer of the two, not their sum. ``time_limit_s`` bounds the
        whole call (status 'time limit')."""
        t0 = time.perf_counter()
        self._apply_swaps()
        lp = self.highs.getLp()     # a copy: the dual simplex may change the model's own arrays as it runs
        shadow = highspy.Highs()
        for key, value in (("output_flag", False), ("presolve", "off"), ("solver", IPM_SOLVER),
                           ("run_crossover", "off")):
            shadow.setOptionValue(key, value)
        stop = threading.Event()

        def interrupt(event) -> None:
            if stop.is_set():
                event.interrupt()

        shadow.cbIpmInterrupt += interrupt
        outcome: dict[str, LPSolution] = {}

        def barrier() -> None:
            if stop.wait(max(float(barrier_after_s), 0.0)):
                return           # the dual simplex finished first
            t = time.perf_counter()
            if time_limit_s is not None:     # what is left of the whole call's time
                shadow.setOptionValue("time_limit", max(float(time_limit_s) - (t - t0), 0.0))
            shadow.passModel(lp)
            if not stop.is_set():
                outcome["barrier"] = _result(shadow, self.cost_scale, t)

        thread = threading.Thread(target=barrier, name="reirrad-barrier", daemon=True)
        thread.start()
        limit = dual_limit_s if time_limit_s is None else min(dual_limit_s, time_limit_s)
        gave_up = False   # the dual simplex ran out of its own time (not of the whole call's)
        try:
            dual = self.solve("dual", limit)
            dual.seconds = time.perf_counter() - t0
            gave_up = dual.status == "time limit" and (time_limit_s is None or dual_limit_s < time_limit_s)
        finally:
            if not gave_up:
                stop.set()
            thread.join()
        if not gave_up:
            return dual, None
        return dual, outcome.get("barrier", LPSolution("not solved", None, None, float("nan"), 0))

    def _run(self) -> LPSolution:
        return _result(self.highs, self.cost_scale, time.perf_counter())


def _result(highs: highspy.Highs, cost_scale: float, started: float) -> LPSolution:
    """Run ``highs`` and read its status, solution and duals (objective and duals in the LP's own
    cost units: HiGHS sees the costs multiplied by ``cost_scale``); ``seconds`` counts from
    ``started`` (a ``time.perf_counter()`` reading)."""
    highs.run()
    info = highs.getInfo()
    status = _STATUS.get(highs.getModelStatus(), str(highs.getModelStatus()).split(".")[-1].lower())
    iterations = int(info.simplex_iteration_count) + max(int(info.ipm_iteration_count), 0) \
        + max(int(info.crossover_iteration_count), 0)
    elapsed = time.perf_counter() - started
    if status != "optimal":
        return LPSolution(status, None, None, float("nan"), iterations, elapsed)
    solution = highs.getSolution()
    return LPSolution(status, np.asarray(solution.col_value, dtype=float),
                      np.asarray(solution.row_dual, dtype=float) / cost_scale,
                      float(info.objective_function_value) / cost_scale, iterations, elapsed)
