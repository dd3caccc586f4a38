"""The first-order engine's pieces (:mod:`.first_order`): the smoothed hinge, a goal's smooth surrogate
(mean or CVaR with its threshold as a variable), point and scalar bounds held by an augmented
Lagrangian, and what a stage's objective is made of. Pure numerics on the working dose rows; the engine
passes its settings in (the hinge's width, the caps' safety).
"""
from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .holds import point_map, same_points
from .split_product import RowSplit, TransposedProduct
from .stage import NormalTissue
from .terms import Term, dvh_dose, dvh_tail


def aimed_levels(levels_gy: np.ndarray, safety_gy: float) -> np.ndarray:
    """Hard cap levels aimed ``safety_gy`` inside, or half-way to zero for a cap smaller than twice that
    (a cap between the exhausted threshold, 0.01 Gy, and 0.02 Gy must not become a negative dose bound)."""
    levels_gy = np.asarray(levels_gy, dtype=float)
    return levels_gy - np.minimum(safety_gy, 0.5 * levels_gy)


def smooth_hinge(z: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(value, derivative) of a smooth upper bound of max(0, z): zero below -tau/2, quadratic up to
    tau/2, then exactly max(0, z). Never below the hinge, so a penalised excess is never under-read.

    With y = z + tau/2 and c = y clipped to [0, tau]: value c^2 / (2 tau) + max(0, y - tau), slope c / tau
    (a few passes over the points: this runs on every point of a goal at every evaluation)."""
    y = np.asarray(z, dtype=float) + tau / 2.0
    c = np.minimum(np.maximum(y, 0.0), tau)
    slope = c / tau
    value = 0.5 * c * slope
    value += np.maximum(y - tau, 0.0)
    return value, slope


def rebase(mapping: sp.csr_matrix, voxels: np.ndarray, position: np.ndarray) -> sp.csr_matrix:
    """``mapping`` (points x ``voxels``) as a map from the working rows (``position``: voxel -> row)."""
    m = sp.csr_matrix(mapping)
    return sp.csr_matrix((m.data, position[voxels][m.indices], m.indptr), shape=(m.shape[0], int(position.max()) + 1))


@dataclass
class PointBounds:
    """``sign * (dose at point - bound_gy) <= 0`` at chosen points of a term (a hard cap, a plan
    ceiling, a held goal), held through an augmented Lagrangian with one multiplier per point."""

    term: Term
    points: np.ndarray
    bound_gy: np.ndarray
    sign: float
    hard: bool
    lam: np.ndarray | None = None
    G: sp.csr_matrix | None = None

    def __post_init__(self) -> None:
        self.point_map, self.voxels = point_map(self.term, self.points)
        if self.lam is None:
            self.lam = np.zeros(self.points.size)

    def bind(self, position: np.ndarray) -> None:
        self.G = rebase(self.point_map, self.voxels, position)

    def chosen(self) -> np.ndarray:
        """Mask over the term's points: True at the points held here."""
        mask = np.zeros(self.term.n_points, dtype=bool)
        mask[self.points] = True
        return mask

    def at_points(self, points: np.ndarray, levels_gy: np.ndarray) -> PointBounds:
        """The same bound at other ``points`` (indices into the term's points; ``levels_gy``: the bound at
        every point of the term): a point held here keeps its multiplier, a new one starts at zero."""
        at = np.full(self.term.n_points, -1, dtype=np.int64)
        at[self.points] = np.arange(self.points.size)
        lam = np.where(at[points] >= 0, self.lam[np.maximum(at[points], 0)], 0.0)
        return PointBounds(self.term, points, levels_gy[points], self.sign, self.hard, lam)


def implies(a: PointBounds, b: PointBounds) -> bool:
    """True if holding ``a`` holds ``b``: the same points (:func:`~.holds.same_points`), ``b``'s a subset of
    ``a``'s, each bound of ``a`` at least as tight (the two tiers of PTV V107%: the desirable hold keeps all
    but the hottest 5 % at the level, the acceptable one all but the hottest 10 % at the same level)."""
    if a.sign != b.sign or not same_points(a.term, b.term):
        return False
    at = np.full(a.term.n_points, -1, dtype=np.int64)
    at[a.points] = np.arange(a.points.size)
    where = at[b.points]
    return bool((where >= 0).all() and (a.sign * (a.bound_gy[where] - b.bound_gy) <= 0.0).all())


def in_force(bounds: list[PointBounds]) -> list[PointBounds]:
    """``bounds`` without the held goals that another hold implies (:func:`implies`); hard bounds all stay."""
    holds = [b for b in bounds if not b.hard]
    implied: set[int] = set()
    for b in holds:
        if any(a is not b and id(a) not in implied and implies(a, b) for a in holds):
            implied.add(id(b))
    return [b for b in bounds if id(b) not in implied]


@dataclass
class LazyPool:
    """The points of a large point bound that enter a stage only once the full-matrix dose comes within
    ``near_gy`` of their bound (the body ceiling, a held goal of many points): arrays over the term's points.

    Attributes:
        candidate: which of the term's points may enter (a dose-volume hold: all but the DVH's free tail).
        bound_gy: each point's bound (the aimed cap level, or the held level).
        near_gy: a point enters when ``sign * (dose - bound_gy) >= -near_gy``.
        sign: +1 for an upper bound, -1 for a lower one.
    """

    candidate: np.ndarray
    bound_gy: np.ndarray
    near_gy: np.ndarray
    sign: float

    def near(self, values: np.ndarray) -> np.ndarray:
        """Indices of the candidates within reach of their bound at the point doses ``values`` (Gy)."""
        return np.flatnonzero(self.candidate & (self.sign * (values - self.bound_gy) >= -self.near_gy))


@dataclass
class Surrogate:
    """A goal's smooth surrogate on the working rows: the mean, or the CVaR (the mean of the hottest
    or coldest fraction q) with its threshold as variable ``eta`` (index ``slot`` in the variables).
    A soft maximum (``voxel_max``) is the upper CVaR of its points' excess over their levels at
    q = one point: its largest excess, as the LP engine minimises it.

    ``moving``: a stage's own dose-volume goal, read exactly. At the start of every outer iteration
    (:meth:`select`) the points outside the DVH's free tail are chosen from the full-matrix dose (the
    warmest 95 % for a D95% minimum), and the surrogate is their smallest dose (largest, for a
    maximum), the CVaR of that set at one point: the DVH point itself. The CVaR of the tail reads
    lower than the DVH point for a minimum, and aiming it at the level overdoses the rest (TG-119 at
    3 mm: PTV D95% 51.5 Gy and Dmax 57.4 Gy for a 50 Gy goal). Which points form the tail is not
    convex; the first outer iteration of a stage (``seeding``) penalises the mean shortfall of every
    point instead, so the points that are dear to raise (next to a capped organ) end in the tail,
    where a set taken from the stage's starting dose keeps whatever points were cold there."""

    term: Term
    tau_gy: float         # the hinge's smoothing width (Gy): the engine's settings.tau_gy
    slot: int = -1
    G: sp.csr_matrix | None = None
    moving: bool = False
    seeding: bool = False

    def __post_init__(self) -> None:
        t = self.term
        self.cvar = t.kind in ("cvar_upper", "cvar_lower", "voxel_max")
        self.upper = t.kind in ("cvar_upper", "voxel_max")
        if self.moving and t.kind not in ("cvar_upper", "cvar_lower"):
            raise ValueError(f"term {t.key}: only a dose-volume (CVaR) term is read on a moving set of points")
        n = t.n_points if self.cvar else t.rows.size
        v = np.asarray(t.point_weights, dtype=float) if t.point_weights is not None and t.kind != "voxel_max" \
            else np.ones(n)
        self.v = v / v.sum()
        self.q = 1.0 / n if t.kind == "voxel_max" else t.fraction
        self.offset = np.broadcast_to(np.asarray(t.level_gy, dtype=float), (n,)) if t.kind == "voxel_max" \
            else np.zeros(n)
        if self.cvar:
            self.point_map, self.voxels = point_map(t, np.arange(n))
        else:
            self.point_map, self.voxels = sp.identity(n, format="csr"), t.rows

    def select(self, dose: np.ndarray, seed: bool = False) -> None:
        """(moving only) Choose the points outside the free tail of the DVH at the full-grid ``dose``
        (Gy); ``seed``: every point, whose mean shortfall the stage then penalises (see the class)."""
        t = self.term
        values = t.point_values(dose[t.rows])
        self.seeding = bool(seed)
        if seed:
            points = np.arange(values.size)
        else:
            points = np.flatnonzero(~dvh_tail(values, t.fraction, self.upper, t.point_weights))
        if points.size == 0:   # a tail of the whole structure (fraction ~ 1): its extreme point
            points = np.array([int(np.argmax(values) if self.upper else np.argmin(values))])
        self.point_map, self.voxels = point_map(t, points)
        self.v = np.full(points.size, 1.0 / points.size)
        self.q = 1.0 / points.size
        self.offset = np.zeros(points.size)

    def bind(self, position: np.ndarray, threads: int = 1) -> None:
        """Read the points from the working rows (``position``: voxel -> row); ``threads``: the products
        may be split over that many threads (:class:`~.split_product.RowSplit`)."""
        self.G = rebase(self.point_map, self.voxels, position)
        # the slopes pulled back are zero outside a CVaR's tail: from the non-zero rows (TransposedProduct)
        self._G, self._GT = RowSplit(self.G, threads), TransposedProduct(self.G, threads)

    def point_dose(self, d: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """Dose (Gy) at the points read (less the levels of a soft maximum) from the working rows' ``d``."""
        return self._G(d, pool) - self.offset

    def pull(self, grad_points: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """A gradient over the points read as a gradient over the working rows."""
        return self._GT(grad_points, pool)

    def start(self, d: np.ndarray) -> float:
        """A threshold to start from: the DVH point at the dose ``d``."""
        if not self.cvar:
            return 0.0
        return dvh_dose(self.point_dose(d), self.q, self.upper, self.v)

    def value(self, d: np.ndarray, eta: float, pool: Executor | None = None) -> tuple[float, np.ndarray, float]:
        """(surrogate in Gy, its gradient in d, its derivative in eta); ``pool``: threads for the products.
        Upper CVaR: eta + sum v h(p - eta) / q (its minimum over eta is the CVaR, convex); lower:
        eta - sum v h(eta - p) / q (maximum over eta, concave)."""
        p = self.point_dose(d, pool)
        if not self.cvar:
            return float(self.v @ p), self.pull(self.v, pool), 0.0
        q = self.q
        if self.upper:
            h, s = smooth_hinge(p - eta, self.tau_gy)
            surrogate = eta + self.v @ h / q
        else:
            h, s = smooth_hinge(eta - p, self.tau_gy)
            surrogate = eta - self.v @ h / q
        return float(surrogate), self.pull(self.v * s / q, pool), float(1.0 - self.v @ s / q)


@dataclass
class ScalarBound:
    """``sign * (surrogate - bound_gy) <= 0`` for a mean or a CVaR: a hard organ limit on a mean or a
    dose-volume metric, or an earlier goal's hold, through an augmented Lagrangian (multiplier ``mu``)."""

    surrogate: Surrogate
    bound_gy: float
    sign: float
    hard: bool
    mu: float = 0.0


class BoundStack:
    """Every point bound of a stage as one signed map (rows ``sign * G``, bounds ``sign * bound``): one
    product per gradient instead of one per organ (NPC phantom at 2.5 mm: the per-organ products and
    their full-length sums were 40 % of the stage time)."""

    def __init__(self, bounds: list[PointBounds], n_rows: int, threads: int = 1) -> None:
        self.bounds = bounds
        self.cuts = np.cumsum([0] + [b.points.size for b in bounds])
        if bounds:
            self.S = sp.vstack([b.sign * b.G for b in bounds], format="csr")
            self.rhs = np.concatenate([b.sign * b.bound_gy for b in bounds])
            self.lam = np.concatenate([b.lam for b in bounds])
        else:
            self.S, self.rhs, self.lam = sp.csr_matrix((0, n_rows)), np.zeros(0), np.zeros(0)
        # products on ``threads``; the multipliers pulled back are zero at every point well inside its bound
        self._S, self._ST = RowSplit(self.S, threads), TransposedProduct(self.S, threads)

    def excess(self, d: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """Gy beyond its bound at every point (<= 0: held), from the working rows' dose ``d``."""
        return self._S(d, pool) - self.rhs

    def pull(self, m: np.ndarray, pool: Executor | None = None) -> np.ndarray:
        """A gradient over the stacked points as a gradient over the working rows (``ST @ m``)."""
        return self._ST(m, pool)

    def update(self, excess: np.ndarray, rho: float) -> None:
        """Multiplier step ``lam <- max(0, lam + rho * excess)``, written back to each bound."""
        self.lam = np.maximum(0.0, self.lam + rho * excess)
        for b, lo, hi in zip(self.bounds, self.cuts[:-1], self.cuts[1:]):
            b.lam = self.lam[lo:hi]


@dataclass
class StageObjective:
    """One stage's smooth problem: its objective's parts (constraints are the solver's bounds)."""

    linear: np.ndarray                                   # Gy per unit weight
    goals: list = field(default_factory=list)            # (surrogate, aim_gy, sign, weight): weight * h(sign*(s - aim))
    alara: list = field(default_factory=list)            # (surrogate, weight): weight * s
    extra: object = None                                 # callable(d, w, position) -> (value, grad_d, grad_w)
    extra_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def normal_tissue_objective(normal: NormalTissue, linear: np.ndarray, weights: np.ndarray, rx_gy: float, *,
                            tau_gy: float, huber_fraction: float) -> StageObjective:
    """The normal-tissue stage's objective: ``linear`` (Gy per unit weight: the sampled body voxels' mean
    dose and the integral-dose tie-breaker), the mean dose above the ring's fall-off (hinge smoothed over
    ``tau_gy``), fluence roughness (total variation, Huber-smoothed below ``huber_fraction`` of the mean
    of the current ``weights``, scaled so that its weight is relative to ``rx_gy``) and the target's dose
    outside the window [``target_floor_gy``, ``target_reference_gy``] (quadratic, ``normal.hot_weight``)."""
    ring = np.asarray(normal.ring_rows, dtype=np.int64)
    reference = np.asarray(normal.ring_reference_gy, dtype=float)
    roughness = normal.roughness if normal.roughness is not None and normal.roughness.shape[0] else None
    w_scale = float(np.mean(weights[weights > 0])) if weights.any() else 1.0
    tv_weight = 0.0 if roughness is None else rx_gy * normal.roughness_weight / (roughness.shape[0] * w_scale)
    delta = huber_fraction * w_scale
    hot = np.asarray(normal.target_rows if normal.target_rows is not None and normal.hot_weight > 0 else [],
                     dtype=np.int64)

    def extra(d: np.ndarray, w: np.ndarray, position: np.ndarray):
        value, grad_d, grad_w = 0.0, np.zeros(d.size), np.zeros(w.size)
        if hot.size:
            at = position[hot]
            # signed distance outside the window [floor, reference]: below it negative
            excess = np.maximum(d[at] - normal.target_reference_gy, 0.0) \
                - np.maximum(normal.target_floor_gy - d[at], 0.0)
            value += normal.hot_weight * float(excess @ excess) / hot.size
            grad_d += np.bincount(at, weights=2.0 * normal.hot_weight * excess / hot.size, minlength=d.size)
        if ring.size:
            at = position[ring]
            h, slope = smooth_hinge(d[at] - reference, tau_gy)
            value += float(h.mean())
            grad_d += np.bincount(at, weights=slope / ring.size, minlength=d.size)
        if roughness is not None:
            z = roughness @ w
            a = np.abs(z)
            value += tv_weight * float(np.where(a < delta, z * z / (2 * delta), a - delta / 2).sum())
            grad_w = tv_weight * (roughness.T @ np.where(a < delta, z / delta, np.sign(z)))
        return value, grad_d, grad_w

    return StageObjective(linear=linear, extra=extra, extra_rows=np.concatenate([ring, hot]))
