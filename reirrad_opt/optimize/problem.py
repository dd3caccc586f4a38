"""The lexicographic problem as one frozen value: what :func:`build_problem` derives from a case, its
protocol and the planning settings, and all that :func:`~.lexicographic.optimize_plan` reads.

Like a cvxpy ``Problem``, it is built once and never changed: the loop and the engines read it; the
limit tier, holds and slips they choose live in the solver and its stages, not here.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..case import Case
from ..geometry import Grid
from .build import build_terms
from .normal_tissue import normal_tissue_setup
from .robust_caps import robust_cap_rows
from .stage import NormalTissue
from .terms import CEILING_IDS, Term, TermSet

LIMIT_CHOICES = ("desirable_then_acceptable", "desirable", "acceptable")


class ReadOnlyMap(Mapping):
    """A mapping that cannot be changed after it is made (a copy of the dict it is given). Unlike
    ``types.MappingProxyType`` it can be deep-copied and pickled."""

    def __init__(self, items=()):
        self._items = dict(items)

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self) -> Iterator:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"ReadOnlyMap({self._items!r})"


@dataclass(frozen=True)
class LexicographicProblem:
    """One case's lexicographic optimization problem (frozen; no solve changes it).

    Attributes:
        matrix: dose per unit weight the optimizer sees (Gy, or Gy(RBE) for particles), one row per
            voxel of ``grid`` (C order), one column per bixel/spot; with robust caps, the scenarios' rows of
            the cap voxels follow (rows ``grid.n_voxels`` onwards, see :mod:`.robust_caps`).
        terms: every goal's surrogate (:class:`~.terms.Term`, frozen), in the builder's order: the
            protocol's goals, then the plan ceilings at priority 1; :meth:`at_priority` gives one priority's.
        skipped: goals not optimized, and why.
        exhausted: organs whose prior dose alone reaches a limit (where no new dose fits).
        caps: the hard goals' ids (priority-1 organ caps and the plan ceilings), sorted.
        relaxable: the caps with an acceptable tier (the loop may relax these, see ``limit_choice``).
        slips_gy: priority -> slip (Gy) by which a later stage may give up that priority's optimum.
        normal: the last, normal-tissue stage (None: no such stage).
        plan_ceiling: True when the plan-maximum ceilings (``CEILING_IDS``) are among the terms.
        rx_gy: prescribed dose of the new course (Gy).
        grid: the dose grid.
        masks: structure name -> boolean mask on ``grid`` (the structures the loop reads the goals in).
        limit_choice: 'desirable_then_acceptable', 'desirable' or 'acceptable' (the protocol option).
        dose_unit: the unit of the matrix's dose, 'Gy' (photons) or 'Gy(RBE)' (particles), as the diagnosis
            words it.
    """

    matrix: sp.csr_matrix
    terms: tuple[Term, ...]
    rx_gy: float
    grid: Grid
    masks: Mapping[str, np.ndarray]
    slips_gy: Mapping[int, float]
    skipped: tuple[str, ...] = ()
    exhausted: tuple[str, ...] = ()
    normal: NormalTissue | None = None
    limit_choice: str = "desirable_then_acceptable"
    dose_unit: str = "Gy"
    caps: tuple[str, ...] = field(init=False)
    relaxable: frozenset[str] = field(init=False)
    plan_ceiling: bool = field(init=False)

    def __post_init__(self):
        if self.dose_unit not in ("Gy", "Gy(RBE)"):
            raise ValueError(f"dose_unit must be 'Gy' or 'Gy(RBE)', got {self.dose_unit!r}")
        if self.limit_choice not in LIMIT_CHOICES:
            raise ValueError(f"limit_choice must be one of {LIMIT_CHOICES}, got {self.limit_choice!r}")
        terms = tuple(self.terms)
        if not all(isinstance(t, Term) for t in terms):
            raise TypeError("LexicographicProblem.terms: expected Term objects")
        put = object.__setattr__   # the frozen value's own fields, set once here
        put(self, "terms", terms)
        put(self, "skipped", tuple(self.skipped))
        put(self, "exhausted", tuple(self.exhausted))
        put(self, "rx_gy", float(self.rx_gy))
        put(self, "masks", ReadOnlyMap(self.masks))
        put(self, "slips_gy", ReadOnlyMap(self.slips_gy))
        put(self, "caps", tuple(sorted({t.goal_id for t in terms if t.hard})))
        put(self, "relaxable", frozenset(t.goal_id for t in terms if t.hard and t.tier == "acceptable"))
        put(self, "plan_ceiling", any(t.goal_id in CEILING_IDS for t in terms))

    @classmethod
    def from_termset(cls, matrix: sp.csr_matrix, termset: TermSet, **fields) -> "LexicographicProblem":
        """A problem from terms built elsewhere (``fields``: rx_gy, grid, masks, slips_gy, normal, limit_choice,
        dose_unit)."""
        return cls(matrix, tuple(termset.terms), skipped=tuple(termset.skipped), exhausted=tuple(termset.exhausted),
                   **fields)

    def at_priority(self, priority: int) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.priority == priority)

    @property
    def priorities(self) -> tuple[int, ...]:
        return tuple(sorted({t.priority for t in self.terms}))


def build_problem(case: Case, protocol, influence, settings, *, rbe: float = 1.0,
                  scenario_matrices: Sequence[sp.csr_matrix] = (),
                  scenario_names: Sequence[str] | None = None) -> LexicographicProblem:
    """The lexicographic problem of ``case`` under ``protocol`` (its fractionation and recovery model).

    Args:
        case: the case with its targets (a PTV: ``plan()`` derives it first).
        protocol: a loaded :class:`reirrad_opt.protocol.Protocol`.
        influence: the physical :class:`~reirrad_opt.dose.InfluenceMatrix` on ``case.grid`` (Gy per unit weight).
        settings: the resolved :class:`~reirrad_opt.planning_settings.PlanningSettings` (its engine sets the
            dose-volume goals' points; its homogeneity window the normal-tissue stage).
        rbe: constant RBE; the problem's matrix is ``rbe`` x the influence matrix (Gy(RBE)).
        scenario_matrices: physical influence matrices of uncertainty scenarios (same columns): every
            priority-1 organ cap is then held in each of them too (:mod:`.robust_caps`); ``scenario_names``
            names them for the diagnosis.
    """
    matrix = _times(influence.matrix, rbe)
    frac = protocol.prescription.fractionation
    rx_gy = float(frac.total_gy)
    # dose-volume goals on every voxel for the first-order engine (a gradient costs little more; held on
    # 5 mm cell points, TG-119's PTV D95% read 0.45 Gy below its hold once the last stage pushed the dose
    # down to it), on cell points for the LP (each point is a dense row)
    termset = build_terms(case, protocol, frac.n_fractions, rx_gy, protocol.recovery,
                          every_voxel=settings.engine == "first-order", sampling=settings.problem)
    masks = {name: s.mask for name, s in case.structures.items()}
    slips = {p: slip.to_gy(rx_gy) if hasattr(slip, "to_gy") else _slip_gy(slip, rx_gy)
             for p, slip in protocol.slips.items()}
    normal = normal_tissue_setup(case, case.structures["PTV"].mask, rx_gy, influence,
                                 homogeneity_weight=settings.target_homogeneity_weight,
                                 floor_pct_rx=settings.target_floor_pct_rx, sampling=settings.problem)
    if scenario_matrices:
        matrix, terms, _ = robust_cap_rows(matrix, termset.terms, [_times(m, rbe) for m in scenario_matrices],
                                           scenario_names)
        termset = dataclasses.replace(termset, terms=list(terms))
    return LexicographicProblem.from_termset(
        matrix, termset, rx_gy=rx_gy, grid=case.grid, masks=masks, slips_gy=slips, normal=normal,
        limit_choice=protocol.options.get("limit_choice", "desirable_then_acceptable"),
        dose_unit="Gy" if influence.modality == "photon" else "Gy(RBE)")


def _times(matrix: sp.csr_matrix, factor: float) -> sp.csr_matrix:
    """``factor`` x ``matrix`` in the matrix's own precision (the same object for 1)."""
    if factor == 1.0:
        return matrix
    m = sp.csr_matrix(matrix)
    return sp.csr_matrix((m.data * np.asarray(factor, dtype=m.data.dtype), m.indices, m.indptr), shape=m.shape)


def _slip_gy(slip, rx_gy: float) -> float:
    value, unit = float(slip.value), str(slip.unit)
    if unit == "Gy":
        return value
    if unit in ("%", "%Rx"):
        return value / 100.0 * rx_gy
    raise ValueError(f"slip unit must be 'Gy' or '%', got {unit!r}")
