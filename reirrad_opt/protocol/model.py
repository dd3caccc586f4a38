"""The objects of a loaded protocol: metrics, limits, goals, fractionations, the prescription, slips.

Values only: reading and validating a protocol file is :mod:`reirrad_opt.protocol.loader`; the known
options and their checks are :mod:`reirrad_opt.protocol.options`.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..geometry.names import TG263_ALIASES, canonical_name
from ..radiobiology import RecoveryModel, eqd2

DOSE_UNITS = ("Gy", "%Rx")
VOLUME_UNITS = ("%", "cc")
SLIP_UNITS = ("Gy", "%")
SENSES = ("max", "min")
# Plausibility of a protocol's numbers: above these a limit or slip is a typo (a unit or a decimal point), not a
# protocol. No normal-tissue tolerance in cumulative EQD2 approaches 200 Gy (the consensus's highest, the carotids,
# is 125 Gy); no dose limit exceeds twice the prescription; a slip is a small give-back of an earlier priority.
MAX_LIMIT_GY = 200.0
MAX_LIMIT_PCT_RX = 200.0
MAX_SLIP_GY = 10.0
MAX_SLIP_PCT_RX = 20.0


class ProtocolError(ValueError):
    """An invalid protocol file; the message names the file, the key / line and what was expected."""


# ----------------------------------------------------------------------------- metrics

@dataclass(frozen=True)
class MetricSpec:
    """A parsed dose-volume metric.

    Attributes:
        name: canonical spelling ('Dmax', 'D0.03cc', 'D98%', 'Dmean', 'V20Gy', 'V107%', 'near-min').
        kind: 'Dmax' | 'Dmin' | 'Dmean' | 'D_cc' (dose to the hottest x cc) | 'D_pct' (dose to the
            hottest x % of the volume) | 'V_Gy' (volume receiving >= x Gy) | 'V_pctRx' (volume
            receiving >= x % of Rx) | 'near-min' | 'near-max' (resolved through the protocol option
            ``near_min_metric``, default D98%, and D2%).
        x: the number in the name (cc, %, Gy or % of Rx), None for Dmax / Dmin / Dmean.
    """

    name: str
    kind: str
    x: float | None = None

    @property
    def is_volume(self) -> bool:
        """True when the metric's value is a volume (V-metrics); otherwise it is a dose."""
        return self.kind in ("V_Gy", "V_pctRx")

    def threshold_gy(self, rx_gy: float | None) -> float:
        """Dose threshold (Gy) of a V-metric; V<x>% needs the prescription ``rx_gy``."""
        if self.kind == "V_Gy":
            return float(self.x)
        if self.kind == "V_pctRx":
            if rx_gy is None:
                raise ValueError(f"metric {self.name}: a threshold in % of Rx needs the prescription dose rx_gy")
            return float(self.x) / 100.0 * float(rx_gy)
        raise ValueError(f"metric {self.name} is not a V-metric and has no dose threshold")


_NUM = r"(\d+(?:\.\d*)?|\.\d+)"
_METRIC_PATTERNS = (
    (re.compile(rf"^d{_NUM}cc$"), "D_cc", "D{}cc"),
    (re.compile(rf"^d{_NUM}%$"), "D_pct", "D{}%"),
    (re.compile(rf"^v{_NUM}gy$"), "V_Gy", "V{}Gy"),
    (re.compile(rf"^v{_NUM}%(?:rx)?$"), "V_pctRx", "V{}%"),
)
_SIMPLE_METRICS = {"dmax": "Dmax", "dmin": "Dmin", "dmean": "Dmean", "near-min": "near-min",
                   "nearmin": "near-min", "near-max": "near-max", "nearmax": "near-max"}


def _fmt(x: float) -> str:
    return f"{x:g}"


def parse_metric(metric: str) -> MetricSpec:
    """Parse a metric name (case and spaces ignored) into a :class:`MetricSpec` with the canonical
    spelling; ValueError (naming the metric and the grammar) for anything else."""
    if not isinstance(metric, str):
        raise ValueError(f"metric must be a string, got {metric!r}")
    key = re.sub(r"[\s_]+", "", metric).lower()
    if key in _SIMPLE_METRICS:
        name = _SIMPLE_METRICS[key]
        return MetricSpec(name, name)
    for pattern, kind, template in _METRIC_PATTERNS:
        m = pattern.match(key)
        if m:
            x = float(m.group(1))
            if kind == "D_pct" and not 0.0 < x < 100.0:
                raise ValueError(f"metric {metric!r}: D<x>% needs 0 < x < 100, got {x:g}")
            if kind == "D_cc" and x <= 0.0:
                raise ValueError(f"metric {metric!r}: D<x>cc needs x > 0 cc")
            return MetricSpec(template.format(_fmt(x)), kind, x)
    raise ValueError(f"unknown metric {metric!r}: expected Dmax, Dmin, Dmean, D<x>cc, D<x>%, V<x>Gy, V<x>% "
                     f"(x % of Rx), near-min or near-max")


# ----------------------------------------------------------------------------- data classes

@dataclass(frozen=True)
class Limit:
    """A limit value with its unit: dose 'Gy' | '%Rx' (percent of the prescription), volume '%'
    (of the structure's volume) | 'cc'."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in DOSE_UNITS + VOLUME_UNITS:
            raise ValueError(f"limit unit must be one of {DOSE_UNITS + VOLUME_UNITS}, got {self.unit!r}")
        v = float(self.value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"limit value must be a finite number >= 0, got {self.value!r}")
        if self.unit == "%" and v > 100:
            raise ValueError(f"a volume limit in % of the structure must be <= 100, got {v:g}")
        if self.unit == "Gy" and v > MAX_LIMIT_GY:
            raise ValueError(f"a dose limit of {v:g} Gy is not plausible (expected at most {MAX_LIMIT_GY:g} Gy: no "
                             f"tolerance, cumulative EQD2 included, comes near it; check the unit and the decimal point)")
        if self.unit == "%Rx" and v > MAX_LIMIT_PCT_RX:
            raise ValueError(f"a dose limit of {v:g} %Rx is not plausible (expected at most {MAX_LIMIT_PCT_RX:g} % of "
                             f"the prescription)")
        object.__setattr__(self, "value", v)

    @property
    def is_dose(self) -> bool:
        return self.unit in DOSE_UNITS

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit}"


@dataclass(frozen=True)
class Goal:
    """One protocol line.

    Attributes:
        id: unique id, e.g. 'Brainstem_D0.03cc'.
        structure: TG-263 name; ``aliases`` other names it may have in a case.
        priority: 1, 2, 3, ... (1 is the most important).
        metric: canonical metric name (see :func:`parse_metric`).
        sense: 'max' (value must stay <= limit) or 'min' (value must reach >= limit).
        desirable, acceptable: limits, or None ('no limit').
        cumulative: True: the limit is on the cumulative EQD2 of both courses (Gy); False: on the
            new course's physical dose.
        alpha_beta_gy: alpha/beta of the structure (Gy) used for EQD2.
        provenance: guideline item, panel agreement, GRADE, interpretations.
        tolerance_gy: single-course tolerance (EQD2, Gy) the cumulative limits derive from, if any.
    """

    id: str
    structure: str
    priority: int
    metric: str
    sense: str
    desirable: Limit | None
    acceptable: Limit | None
    cumulative: bool
    alpha_beta_gy: float
    provenance: str = ""
    aliases: tuple[str, ...] = ()
    tolerance_gy: float | None = None

    @property
    def metric_spec(self) -> MetricSpec:
        return parse_metric(self.metric)

    def limit(self, which: str) -> Limit | None:
        if which not in ("desirable", "acceptable"):
            raise ValueError(f"goal {self.id}: which must be 'desirable' or 'acceptable', got {which!r}")
        return getattr(self, which)

    def limit_gy(self, which: str, rx_gy: float | None) -> float | None:
        """The ``which`` ('desirable' | 'acceptable') dose limit in Gy ('%Rx' converted with
        ``rx_gy``); None when that limit is 'no limit'. ValueError for volume limits."""
        lim = self.limit(which)
        if lim is None:
            return None
        if lim.unit == "Gy":
            return lim.value
        if lim.unit == "%Rx":
            if rx_gy is None:
                raise ValueError(f"goal {self.id}: the {which} limit {lim} needs the prescription dose rx_gy")
            return lim.value / 100.0 * float(rx_gy)
        raise ValueError(f"goal {self.id}: the {which} limit {lim} is a volume, not a dose")

    def names(self) -> tuple[str, ...]:
        """The structure name, the goal's aliases and the TG-263 alias table's entries."""
        return (self.structure, *self.aliases, *TG263_ALIASES.get(self.structure, ()))


@dataclass(frozen=True)
class Fractionation:
    """A fractionation schedule of the new course.

    Attributes:
        name: e.g. 'bid-1.2', 'qd-2.0'.
        dose_per_fraction_gy: prescribed dose per fraction (Gy).
        n_fractions: number of fractions.
        fractions_per_day: 1 (QD) or 2 (BID).
        min_interval_h: minimum time between fractions of one day (h), if stated.
        provenance: where it comes from.
    """

    name: str
    dose_per_fraction_gy: float
    n_fractions: int
    fractions_per_day: int = 1
    min_interval_h: float | None = None
    provenance: str = ""

    @property
    def total_gy(self) -> float:
        """Prescribed physical total (Gy)."""
        return round(self.dose_per_fraction_gy * self.n_fractions, 10)

    def eqd2_gy(self, alpha_beta_gy: float) -> float:
        """EQD2 (Gy) of the prescribed total at ``alpha_beta_gy``."""
        return float(eqd2(self.total_gy, self.n_fractions, alpha_beta_gy))

    @property
    def schedule(self) -> str:
        """E.g. '54 x 1.2 Gy = 64.8 Gy, twice daily (>= 6 h apart)'."""
        per_day = {1: "once daily", 2: "twice daily"}.get(self.fractions_per_day, f"{self.fractions_per_day} per day")
        text = f"{self.n_fractions} x {self.dose_per_fraction_gy:g} Gy = {self.total_gy:g} Gy, {per_day}"
        if self.min_interval_h:
            text += f" (>= {self.min_interval_h:g} h apart)"
        return text


@dataclass
class Prescription:
    """The new course's prescription.

    Attributes:
        eqd2_gy: intended total EQD2 of the target (Gy), e.g. 60.
        alpha_beta_gy: alpha/beta of the tumour (Gy), e.g. 10.
        fractionation: the chosen fractionation; its physical total is the Rx against which
            '%Rx' limits are evaluated.
        eqd2_range_gy: accepted EQD2 range of a fractionation (Gy), if stated (e.g. (60, 66)).
        provenance: where it comes from.
    """

    eqd2_gy: float
    alpha_beta_gy: float
    fractionation: Fractionation
    eqd2_range_gy: tuple[float, float] | None = None
    provenance: str = ""

    @property
    def total_gy(self) -> float:
        return self.fractionation.total_gy


@dataclass(frozen=True)
class Slip:
    """How much a later stage may give back on an earlier priority's achieved value: ``value`` in
    'Gy' (absolute) or '%' (percent of the prescription dose Rx)."""

    value: float
    unit: str

    def __post_init__(self) -> None:
        if self.unit not in SLIP_UNITS:
            raise ValueError(f"slip unit must be one of {SLIP_UNITS}, got {self.unit!r}")
        v = float(self.value)
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"slip value must be a finite number >= 0, got {self.value!r}")
        bound = MAX_SLIP_GY if self.unit == "Gy" else MAX_SLIP_PCT_RX
        if v > bound:
            raise ValueError(f"a slip of {v:g} {'Gy' if self.unit == 'Gy' else '% of Rx'} is not plausible: a later "
                             f"priority may give back a little of an earlier one, at most {bound:g} "
                             f"{'Gy' if self.unit == 'Gy' else '% of Rx'}")
        object.__setattr__(self, "value", v)

    def to_gy(self, rx_gy: float) -> float:
        """The slip in Gy ('%' is percent of ``rx_gy``)."""
        return self.value if self.unit == "Gy" else self.value / 100.0 * float(rx_gy)

    def __str__(self) -> str:
        return f"{self.value:g} {'Gy' if self.unit == 'Gy' else '% of Rx'}"


@dataclass
class Protocol:
    """A loaded, validated protocol (one variant: options applied, one fractionation chosen).

    Attributes:
        name: protocol name.
        path: the file it was read from.
        prescription: the prescription with the chosen fractionation.
        fractionations: every fractionation the file offers, by name.
        goals: the goals in force for the selected options.
        slips: priority -> :class:`Slip`.
        options: option name -> value (see ``docs/protocol.md``).
        recovery: the recovery model applied to the prior EQD2.
        provenance: where the protocol comes from.
        description: free text.
    """

    name: str
    path: Path | None
    prescription: Prescription
    fractionations: dict[str, Fractionation]
    goals: list[Goal]
    slips: dict[int, Slip]
    options: dict[str, Any]
    recovery: RecoveryModel = field(default_factory=RecoveryModel.none)
    provenance: str = ""
    description: str = ""

    @property
    def rx_gy(self) -> float:
        """Physical total (Gy) of the chosen fractionation: the dose '%Rx' limits refer to."""
        return self.prescription.fractionation.total_gy

    @property
    def fractionation(self) -> Fractionation:
        return self.prescription.fractionation

    def priorities(self) -> list[int]:
        return sorted({g.priority for g in self.goals})

    def goals_at(self, priority: int) -> list[Goal]:
        return [g for g in self.goals if g.priority == priority]

    def goal(self, goal_id: str) -> Goal:
        for g in self.goals:
            if g.id == goal_id:
                return g
        raise KeyError(f"protocol {self.name!r} has no goal {goal_id!r}; it has {[g.id for g in self.goals]}")

    def goals_for(self, structure: str) -> list[Goal]:
        """Goals whose structure is ``structure`` (TG-263 name or alias)."""
        wanted = canonical_name(structure)
        return [g for g in self.goals if g.structure in (structure, wanted)
                or any(canonical_name(a) == wanted or a == structure for a in g.aliases)]

    def with_fractionation(self, name: str) -> "Protocol":
        """A copy with the fractionation ``name`` chosen; ValueError lists the available ones."""
        if isinstance(name, Fractionation):
            frac = name
        elif name in self.fractionations:
            frac = self.fractionations[name]
        else:
            raise ValueError(f"protocol {self.name!r}: no fractionation {name!r}; available: {sorted(self.fractionations)}")
        return dataclasses.replace(self, prescription=dataclasses.replace(self.prescription, fractionation=frac),
                                   options=dict(self.options))

    def to_dict(self) -> dict:
        """JSON-ready summary recorded with every output."""
        frac = self.prescription.fractionation
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "prescription": {"eqd2_gy": self.prescription.eqd2_gy, "alpha_beta_gy": self.prescription.alpha_beta_gy,
                             "fractionation": frac.name, "schedule": frac.schedule, "rx_gy": self.rx_gy,
                             "eqd2_of_fractionation_gy": frac.eqd2_gy(self.prescription.alpha_beta_gy)},
            "goals": [{"id": g.id, "structure": g.structure, "priority": g.priority, "metric": g.metric,
                       "sense": g.sense, "desirable": str(g.desirable) if g.desirable else None,
                       "acceptable": str(g.acceptable) if g.acceptable else None, "cumulative": g.cumulative,
                       "alpha_beta_gy": g.alpha_beta_gy, "provenance": g.provenance} for g in self.goals],
            "slips": {str(p): str(s) for p, s in sorted(self.slips.items())},
            "options": dict(self.options),
            "recovery": self.recovery.describe(),
            "provenance": self.provenance,
        }
