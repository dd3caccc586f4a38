"""Linear-quadratic radiobiology for re-irradiation: BED, EQD2, recovery, cumulative budgets.

All functions are pure and vectorised over numpy arrays (voxels); doses in Gy, alpha/beta in Gy.

Formulas (linear-quadratic model, complete repair between fractions, no time factor):

* BED  = D (1 + d / (a/b)),                         d = D / n the dose per fraction
* EQD2 = D (d + a/b) / (2 + a/b) = BED / (1 + 2 / (a/b))
* inverse: the physical dose D in n fractions with a given EQD2 E solves
  D^2 / n + (a/b) D - E (2 + a/b) = 0, so
  D = (n / 2) (-(a/b) + sqrt((a/b)^2 + 4 E (2 + a/b) / n)).

Each course is converted voxel by voxel with *its own* fractionation before any summation
(:func:`prior_eqd2`, :func:`cumulative_eqd2`); the dose per fraction of a voxel is that voxel's
dose divided by the course's number of fractions. The effective EQD2 of a case's prior course(s),
one or several, is summed in one place, :mod:`reirrad_opt.prior_eqd2`, on these functions.

A cumulative EQD2 limit ``L`` on a voxel whose prior EQD2 (after recovery) is ``E`` is exactly a
cap on the new course's physical dose in that voxel, because the new EQD2 grows monotonically with
the new physical dose (:func:`new_course_dose_cap`). This is what makes priority-1 limits linear
constraints on fluence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "bed", "eqd2", "physical_dose_for_eqd2", "physical_dose_for_eqd2_at_dose_per_fraction", "CapResult", "new_course_dose_cap", "RecoveryModel",
    "prior_eqd2", "effective_prior_eqd2", "cumulative_eqd2", "alpha_beta_map",
]


# --------------------------------------------------------------------------- validation helpers

def _dose(x: Any, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what}: every value must be finite (Gy), got non-finite values")
    if np.any(a < 0):
        raise ValueError(f"{what}: doses must be >= 0 Gy, got minimum {float(a.min())!r}")
    return a


def _fractions(n: Any, what: str = "n_fractions") -> np.ndarray:
    a = np.asarray(n, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 1) or np.any(a != np.round(a)):
        raise ValueError(f"{what}: must be a whole number of fractions >= 1, got {n!r}")
    return a


def _alpha_beta(ab: Any, what: str = "alpha_beta_gy") -> np.ndarray:
    a = np.asarray(ab, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{what}: alpha/beta must be a finite number > 0 Gy, got {ab!r}")
    return a


def _fraction01(f: Any, what: str) -> np.ndarray:
    a = np.asarray(f, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"{what}: a recovered fraction must lie in [0, 1], got {f!r}")
    return a


def _out(a: np.ndarray) -> np.ndarray | float:
    return float(a) if a.ndim == 0 else a


# --------------------------------------------------------------------------- LQ conversions

def bed(dose_gy, n_fractions, alpha_beta_gy) -> np.ndarray | float:
    """Biologically effective dose (Gy) of a physical dose ``dose_gy`` (Gy) given in
    ``n_fractions`` equal fractions: BED = D (1 + (D/n) / (a/b))."""
    d = _dose(dose_gy, "bed: dose_gy")
    n = _fractions(n_fractions, "bed: n_fractions")
    ab = _alpha_beta(alpha_beta_gy, "bed: alpha_beta_gy")
    return _out(d * (1.0 + (d / n) / ab))


def eqd2(dose_gy, n_fractions, alpha_beta_gy) -> np.ndarray | float:
    """Equivalent dose in 2 Gy fractions (Gy): EQD2 = D (d + a/b) / (2 + a/b), d = D / n.

    Vectorised: ``dose_gy`` may be a voxel array; ``n_fractions`` and ``alpha_beta_gy`` may be
    scalars or arrays that broadcast against it (e.g. a per-voxel alpha/beta map)."""
    d = _dose(dose_gy, "eqd2: dose_gy")
    n = _fractions(n_fractions, "eqd2: n_fractions")
    ab = _alpha_beta(alpha_beta_gy, "eqd2: alpha_beta_gy")
    return _out(d * (d / n + ab) / (2.0 + ab))


def physical_dose_for_eqd2(eqd2_gy, n_fractions, alpha_beta_gy) -> np.ndarray | float:
    """The physical dose (Gy) that, given in ``n_fractions`` equal fractions, has EQD2 ``eqd2_gy``.

    Exact inverse of :func:`eqd2`: D = (n/2) (-(a/b) + sqrt((a/b)^2 + 4 E (2 + a/b) / n)).
    Written in the algebraically equivalent form 2 E (2 + a/b) / ((a/b) + sqrt(...)) which has no
    cancellation for small E."""
    e = _dose(eqd2_gy, "physical_dose_for_eqd2: eqd2_gy")
    n = _fractions(n_fractions, "physical_dose_for_eqd2: n_fractions")
    ab = _alpha_beta(alpha_beta_gy, "physical_dose_for_eqd2: alpha_beta_gy")
    root = np.sqrt(ab * ab + 4.0 * e * (2.0 + ab) / n)
    return _out(2.0 * e * (2.0 + ab) / (ab + root))


def physical_dose_for_eqd2_at_dose_per_fraction(eqd2_gy, dose_per_fraction_gy, alpha_beta_gy) -> np.ndarray | float:
    """The physical dose (Gy) with EQD2 ``eqd2_gy`` when it is given in fractions of a fixed size
    ``dose_per_fraction_gy`` (Gy): D = E (2 + a/b) / (d + a/b). In 2 Gy fractions D = E."""
    e = _dose(eqd2_gy, "physical_dose_for_eqd2_at_dose_per_fraction: eqd2_gy")
    d = np.asarray(dose_per_fraction_gy, dtype=float)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError(f"physical_dose_for_eqd2_at_dose_per_fraction: dose_per_fraction_gy must be > 0 Gy, "
                         f"got {dose_per_fraction_gy!r}")
    ab = _alpha_beta(alpha_beta_gy, "physical_dose_for_eqd2_at_dose_per_fraction: alpha_beta_gy")
    return _out(e * (2.0 + ab) / (d + ab))


@dataclass
class CapResult:
    """The physical-dose cap of the new course in each voxel.

    Attributes:
        cap_gy: largest new-course physical dose (Gy, >= 0) that keeps the cumulative EQD2 at or
            below the limit; 0 where the prior dose alone reaches the limit.
        exhausted: True where the prior EQD2 alone already reaches (or exceeds) the limit, i.e.
            the voxel can take no new dose at all.
    """

    cap_gy: np.ndarray | float
    exhausted: np.ndarray | bool


def new_course_dose_cap(limit_eqd2_gy, prior_eqd2_gy, n_fractions, alpha_beta_gy) -> CapResult:
    """Exact physical-dose cap (Gy) of the new course for a cumulative EQD2 limit.

    With limit ``L`` (cumulative EQD2, Gy), prior EQD2 ``E`` (after any recovery, Gy), ``n`` new
    fractions and alpha/beta ``a/b`` (Gy), the remaining budget is ``L - E`` and the cap is
    d_max = (n/2) (-(a/b) + sqrt((a/b)^2 + 4 (L - E)(2 + a/b) / n)),
    the voxel's own dose per fraction being d_max / n. Where ``L <= E`` the cap is 0 and the voxel
    is flagged in ``exhausted`` (never a negative cap)."""
    limit = np.asarray(limit_eqd2_gy, dtype=float)
    if not np.all(np.isfinite(limit)) or np.any(limit < 0):
        raise ValueError(f"new_course_dose_cap: limit_eqd2_gy must be finite and >= 0 Gy, got {limit_eqd2_gy!r}")
    prior = _dose(prior_eqd2_gy, "new_course_dose_cap: prior_eqd2_gy")
    remaining = limit - prior
    exhausted = remaining <= 0.0
    cap = np.asarray(physical_dose_for_eqd2(np.where(exhausted, 0.0, remaining), n_fractions, alpha_beta_gy))
    cap = np.where(exhausted, 0.0, cap)
    if cap.ndim == 0:
        return CapResult(float(cap), bool(exhausted))
    return CapResult(cap, np.asarray(exhausted, dtype=bool))


# --------------------------------------------------------------------------- recovery

RECOVERY_KINDS = ("none", "constant", "table")


@dataclass
class RecoveryModel:
    """Fraction of the prior course's EQD2 considered recovered (discounted) at re-irradiation.

    ``kind``:

    * ``'none'`` (default): nothing recovered; the prior EQD2 counts in full. The guideline's
      130 % / 150 % cumulative limits already contain an implicit recovery (~30 %).
    * ``'constant'``: ``fraction`` (0-1) recovered whatever the interval.
    * ``'table'``: ``table`` of ``(months, fraction)`` pairs, months strictly increasing; the
      fraction at the interval is linearly interpolated and held at the first / last value
      outside the table's range.

    ``per_structure`` maps a structure name to a :class:`RecoveryModel` used for that structure
    instead of this one (e.g. a time-dependent spinal-cord model).
    """

    kind: str = "none"
    fraction: float = 0.0
    table: tuple[tuple[float, float], ...] = ()
    per_structure: dict[str, "RecoveryModel"] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in RECOVERY_KINDS:
            raise ValueError(f"recovery model: kind must be one of {RECOVERY_KINDS}, got {self.kind!r}")
        if self.kind == "constant":
            _fraction01(self.fraction, "recovery model 'constant': fraction")
            self.fraction = float(self.fraction)
        elif self.fraction not in (0, 0.0):
            raise ValueError(f"recovery model {self.kind!r}: 'fraction' is only used by kind 'constant', got {self.fraction!r}")
        if self.kind == "table":
            try:
                table = tuple((float(m), float(f)) for m, f in self.table)
            except (TypeError, ValueError):
                raise ValueError(f"recovery model 'table': table must be (months, fraction) pairs, got {self.table!r}") from None
            if not table:
                raise ValueError("recovery model 'table': table must hold at least one (months, fraction) pair")
            months = np.array([m for m, _ in table])
            if not np.all(np.isfinite(months)) or np.any(months < 0) or np.any(np.diff(months) <= 0):
                raise ValueError(f"recovery model 'table': months must be >= 0 and strictly increasing, got {list(months)}")
            _fraction01([f for _, f in table], "recovery model 'table': fractions")
            self.table = table
        elif self.table:
            raise ValueError(f"recovery model {self.kind!r}: 'table' is only used by kind 'table'")
        for name, model in self.per_structure.items():
            if not isinstance(model, RecoveryModel):
                raise ValueError(f"recovery model: per_structure[{name!r}] must be a RecoveryModel, got {type(model).__name__}")
            if model.per_structure:
                raise ValueError(f"recovery model: per_structure[{name!r}] may not have its own per_structure overrides")

    @classmethod
    def none(cls) -> "RecoveryModel":
        """No recovery (the default)."""
        return cls("none")

    def _own_fraction(self, interval_months: float | None) -> float:
        if self.kind == "none":
            return 0.0
        if self.kind == "constant":
            return self.fraction
        if interval_months is None or not np.isfinite(interval_months) or interval_months < 0:
            raise ValueError(f"recovery model 'table' needs the interval since the prior course (months >= 0), "
                             f"got {interval_months!r}")
        months = [m for m, _ in self.table]
        fractions = [f for _, f in self.table]
        return float(np.interp(float(interval_months), months, fractions))

    def fraction_for(self, structure: str, interval_months: float | None) -> float:
        """Recovered fraction (0-1) of the prior EQD2 for ``structure`` after ``interval_months``
        months between the end of the prior course and the new one."""
        model = self.per_structure.get(structure)
        if model is not None:
            return model._own_fraction(interval_months)
        return self._own_fraction(interval_months)

    def _describe_own(self) -> str:
        if self.kind == "none":
            return "none (prior EQD2 counted in full)"
        if self.kind == "constant":
            return f"constant: {100 * self.fraction:g} % of the prior EQD2 recovered"
        pairs = ", ".join(f"{m:g} mo -> {100 * f:g} %" for m, f in self.table)
        return f"time-dependent table ({pairs}; linear between entries, end values held outside)"

    def describe(self, interval_months: float | None = None) -> str:
        """Human-readable statement of the assumption (recorded in every output). With
        ``interval_months``, the fraction applied at that interval is stated too."""
        text = self._describe_own()
        if interval_months is not None and self.kind == "table":
            text += f"; at {interval_months:g} months: {100 * self._own_fraction(interval_months):.4g} %"
        for name, model in self.per_structure.items():
            part = model._describe_own()
            if interval_months is not None and model.kind == "table":
                part += f"; at {interval_months:g} months: {100 * model._own_fraction(interval_months):.4g} %"
            text += f"; {name}: {part}"
        return "recovery: " + text

    def to_dict(self) -> dict:
        """JSON-ready form (the same keys as the protocol file's [recovery] table)."""
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "constant":
            d["fraction"] = self.fraction
        if self.kind == "table":
            d["table"] = [list(p) for p in self.table]
        if self.per_structure:
            d["per_structure"] = {k: v.to_dict() for k, v in self.per_structure.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "recovery") -> "RecoveryModel":
        """Build from the protocol file's [recovery] table; ValueError names ``where`` and the key."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected a table with key 'kind', got {type(d).__name__}")
        allowed = {"kind", "fraction", "table", "per_structure"}
        unknown = set(d) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; expected {sorted(allowed)}")
        per = {}
        for name, sub in (d.get("per_structure") or {}).items():
            if "per_structure" in (sub or {}):
                raise ValueError(f"{where}.per_structure.{name}: nested per_structure is not allowed")
            per[name] = cls.from_dict(sub, f"{where}.per_structure.{name}")
        try:
            return cls(kind=d.get("kind", "none"), fraction=d.get("fraction", 0.0),
                       table=tuple(tuple(p) for p in d.get("table", ())), per_structure=per)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None


# --------------------------------------------------------------------------- summation

def prior_eqd2(prior_dose_gy, prior_n_fractions, alpha_beta_gy) -> np.ndarray:
    """Voxel-wise EQD2 (Gy) of the prior course, converted with the prior course's own number of
    fractions (each voxel's dose per fraction = its dose / n) BEFORE any summation."""
    return np.asarray(eqd2(prior_dose_gy, prior_n_fractions, alpha_beta_gy), dtype=float)


def effective_prior_eqd2(prior_eqd2_gy, recovered_fraction) -> np.ndarray:
    """Prior EQD2 after recovery: (1 - f) * prior EQD2 (Gy); ``f`` in [0, 1], scalar or voxel map."""
    e = _dose(prior_eqd2_gy, "effective_prior_eqd2: prior_eqd2_gy")
    f = _fraction01(recovered_fraction, "effective_prior_eqd2: recovered_fraction")
    return np.asarray((1.0 - f) * e, dtype=float)


def cumulative_eqd2(prior_dose_gy, prior_n_fractions, new_dose_gy, new_n_fractions, alpha_beta_gy,
                    recovered_fraction=0.0) -> np.ndarray:
    """Voxel-wise cumulative EQD2 (Gy): (1 - f) EQD2(prior; n_prior) + EQD2(new; n_new).

    Each course is converted with its own fractionation in every voxel and only then summed; any
    dose-volume metric of the result is the metric of this sum, never a sum of two metrics."""
    prior = effective_prior_eqd2(prior_eqd2(prior_dose_gy, prior_n_fractions, alpha_beta_gy), recovered_fraction)
    new = np.asarray(eqd2(new_dose_gy, new_n_fractions, alpha_beta_gy), dtype=float)
    return prior + new


def alpha_beta_map(shape, structures_ab, default_gy: float) -> np.ndarray:
    """Per-voxel alpha/beta map (Gy).

    ``structures_ab`` is a list of ``(mask, alpha_beta_gy)``; voxels in no mask get ``default_gy``;
    where masks overlap the smallest alpha/beta is used. This map is meant for displaying and
    reporting summed EQD2; protocol limits are evaluated per structure with each structure's own
    alpha/beta, so where structures overlap every limit applies (the tightest wins), whatever the
    dose per fraction."""
    shape = tuple(int(s) for s in shape)
    _alpha_beta(default_gy, "alpha_beta_map: default_gy")
    out = np.full(shape, np.inf)
    for i, (mask, ab) in enumerate(structures_ab):
        _alpha_beta(ab, f"alpha_beta_map: structure {i} alpha/beta")
        m = np.asarray(mask, dtype=bool)
        if m.shape != shape:
            raise ValueError(f"alpha_beta_map: mask {i} has shape {m.shape}, expected {shape}")
        out[m] = np.minimum(out[m], float(ab))
    out[np.isinf(out)] = float(default_gy)
    return out
