"""The constants of the first-order engine (:mod:`.first_order`): smoothing, penalties, iteration counts, the
lazy entry of large caps and holds. Numerical choices of the engine, never clinical content; a settings file
sets them in its ``[settings.first-order]`` table (:mod:`reirrad_opt.planning_settings`)."""
from __future__ import annotations

from dataclasses import dataclass

from .solver_base import StageSettings


@dataclass(frozen=True)
class FirstOrderSettings(StageSettings):
    """Constants of the first-order engine (on top of :class:`~reirrad_opt.optimize.solver_base.StageSettings`).

    Attributes:
        hard_safety_gy: hard caps are aimed this far (Gy) inside their limit (see
            :func:`~.smooth_terms.aimed_levels`): the stages end within ``feasibility_tol_gy`` of a bound,
            not at a vertex.
        tau_gy: width over which every hinge is smoothed (Gy).
        rho_start: augmented-Lagrangian penalty of caps and holds (per Gy^2) at a stage's start, ...
        rho_growth: ... multiplied by this after an outer iteration that cut the worst excess by less
            than 4 (a feasible stage keeps it: a large penalty zeroes the multipliers of points a hair
            inside their bound, and the diagnosis reads them), ...
        rho_max: ... up to this.
        max_outer: outer iterations (multiplier updates, correction of the truncated rows) per stage.
        stall_rel, stall_gy: a feasible stage whose L-BFGS-B ran out of iterations goes on while the
            objective gains more than this fraction of itself, or than this (Gy x weight), per outer
            iteration.
        inner_iterations: L-BFGS-B iterations per outer iteration ...
        nt_first_inner_iterations: ... in the normal-tissue stage's first one: that stage starts far
            from its optimum (no earlier stage looked at normal tissue) and each outer iteration
            restarts L-BFGS-B; one long first run gets most of the way; ...
        cleanup_inner_iterations: ... after an outer iteration that changed the objective (without the
            constraints' terms) by less than ``cleanup_rel`` of itself, or than ``stall_gy``, and left every
            goal of the stage at its aim: what is left is to correct the points beyond their bound, a small
            move of the fluence after the multipliers' step, and a full inner run spends most of its
            iterations on an objective that no longer moves.
        feasibility_tol_gy: a stage is done when no cap or hold point is further than this (Gy) beyond
            its bound.
        lazy_points: a hard maximum with more points than this (the body ceiling) enters lazily: ...
        lazy_ratio: ... the points whose dose reaches this fraction of their level, and its seed
            points where the reference fluence reaches ``seed_ratio``.
        lazy_hold_points: a held goal with more points than this enters lazily too: ...
        lazy_hold_ratio: ... the points whose dose is within (1 - this) x the held level of it (a point
            far inside its hold is no constraint on the next stage; one that moves near it enters at the
            next outer iteration, and a stage in which one entered beyond it is not done).
        huber_fraction: fluence roughness: |difference| smoothed below this fraction of the mean weight.
        lbfgs_memory: the correction pairs L-BFGS-B keeps (its ``maxcor``). Its own work per iteration grows
            with it (a fifth of a proton plan's optimization at 20 on the NPC phantom at 4 mm, 6128 spots); 8
            made proton plans 10-20 % faster but moved the plans both ways, a temporal lobe from desirable to
            acceptable among them (benchmarks/RESULTS.md), so the default stays 20.
        move_held_tails: a held dose-volume goal's free tail (the coldest 5 % of a D95% minimum, the
            hottest 2 % of a D2% maximum) is chosen again from the full-matrix dose at every outer
            iteration of the later stages, as the stage's own goal's is; without it, the tail stays
            the one its stage ended with (a stricter hold than the goal).
    """

    hard_safety_gy: float = 0.02
    tau_gy: float = 0.1
    rho_start: float = 10.0
    rho_growth: float = 3.0
    rho_max: float = 1e4
    max_outer: int = 30
    stall_rel: float = 5e-3
    stall_gy: float = 1e-2
    inner_iterations: int = 100
    nt_first_inner_iterations: int = 400
    cleanup_inner_iterations: int = 30
    cleanup_rel: float = 0.02
    feasibility_tol_gy: float = 5e-3
    lazy_points: int = 20000
    lazy_ratio: float = 0.9
    lazy_hold_points: int = 2000
    lazy_hold_ratio: float = 0.9
    huber_fraction: float = 0.02
    lbfgs_memory: int = 20
    move_held_tails: bool = True

    def __post_init__(self) -> None:
        for name in ("max_outer", "inner_iterations", "nt_first_inner_iterations", "cleanup_inner_iterations",
                     "lbfgs_memory"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
        for name in ("lazy_points", "lazy_hold_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: expected a whole number >= 0, got {value!r}")
        # beyond these a value is a typo, and some overflow the products (a penalty of 1e300 per Gy^2)
        for name, low, high, low_open, what in (
                ("tau_gy", 0.0, 2.0, True, "Gy"), ("rho_start", 0.0, 1e6, True, "per Gy^2"),
                ("rho_max", 0.0, 1e8, True, "per Gy^2"), ("rho_growth", 1.0, 100.0, False, "(a factor)"),
                ("stall_rel", 0.0, 1.0, False, "(a fraction)"), ("stall_gy", 0.0, 10.0, False, "Gy"),
                ("cleanup_rel", 0.0, 1.0, False, "(a fraction)"), ("feasibility_tol_gy", 0.0, 1.0, True, "Gy"),
                ("lazy_ratio", 0.0, 1.0, True, "(a fraction)"), ("lazy_hold_ratio", 0.0, 1.0, True, "(a fraction)"),
                ("huber_fraction", 0.0, 1.0, True, "(a fraction)"), ("hard_safety_gy", 0.0, 1.0, False, "Gy")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    (low < value if low_open else low <= value) and value <= high):
                raise ValueError(f"{name}: expected a number {'>' if low_open else '>='} {low:g} and <= {high:g} "
                                 f"{what}, got {value!r}")
        if self.rho_start > self.rho_max:
            raise ValueError(f"rho_start: expected at most rho_max ({self.rho_max:g} per Gy^2), got {self.rho_start!r}")
