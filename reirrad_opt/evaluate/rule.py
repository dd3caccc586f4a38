"""The verdict rule: one protocol line's verdict, and the plan's overall verdict from its lines.

Row verdicts (one per protocol line; values and limits in the line's unit: Gy or Gy(RBE) for dose
metrics, % or cc for volume metrics):

- ``desirable``: the desirable limit is met;
- ``acceptable``: the desirable limit is missed (or the line has none) and the acceptable limit is met;
- ``not met``: the desirable limit is missed and the protocol sets **no acceptable limit** for the
  line (e.g. the NPC consensus's PTV D98% >= 95 % of Rx); the note states the shortfall in the
  line's unit;
- ``fail``: the acceptable limit is missed;
- ``not evaluated``: the structure is missing or empty in the case and was not declared absent;
- ``absent``: the structure was declared absent by the user (not contoured because it lies
  outside the field); the note says how it was declared.

The margin is signed, in the line's unit, positive inside the limit: to the desirable limit when
that is met or when there is no acceptable limit, otherwise to the acceptable limit.

Overall verdict, decided by the **priority-1 lines alone** ('absent' lines do not count):

- ``fail``: a priority-1 line is 'fail' or 'not met' (a missed level with no acceptable fallback is
  a missed limit). A known breach wins over 'incomplete';
- ``incomplete``: otherwise, a priority-1 line is 'not evaluated' (its organ is not contoured), or
  no priority-1 line was evaluated at all. The plan is not a pass: contour the organ, or declare
  it absent if it lies outside the field;
- ``desirable``: every evaluated priority-1 line is 'desirable';
- ``acceptable``: otherwise (every priority-1 line within its acceptable limit).

Lower-priority lines never raise or lower the overall verdict; the verdict detail names every
lower-priority goal that is missed ('acceptable', 'not met' or 'fail') or not evaluated, and every
structure declared absent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

ROW_VERDICTS = ("desirable", "acceptable", "not met", "fail", "not evaluated", "absent")
OVERALL_VERDICTS = ("desirable", "acceptable", "fail", "incomplete")
LIMIT_TOLERANCE = 1e-9   # relative: a value equal to its limit up to round-off is inside


class RowLike(Protocol):
    """What the overall rule reads from an evaluation row (see ``EvaluationRow``)."""

    structure: str
    goal_id: str
    metric: str
    priority: int
    sense: str
    value: float | None
    unit: str
    desirable: float | None
    acceptable: float | None
    verdict: str
    note: str
    case_structure: str | None


def _inside(value: float, limit: float, sense: str) -> bool:
    tol = LIMIT_TOLERANCE * max(1.0, abs(limit))
    return value <= limit + tol if sense == "max" else value >= limit - tol


def signed_margin(value: float, limit: float | None, sense: str) -> float | None:
    """``limit - value`` for a maximum, ``value - limit`` for a minimum (same unit); None without a limit."""
    if limit is None:
        return None
    return limit - value if sense == "max" else value - limit


def line_verdict(value: float, sense: str, desirable: float | None, acceptable: float | None,
                 unit: str = "") -> tuple[str, float | None, str]:
    """``(verdict, margin, note)`` of ``value`` against its limits, all in ``unit`` (see the module
    docstring). ``sense`` is 'max' (the value must stay below) or 'min' (it must reach)."""
    if sense not in ("max", "min"):
        raise ValueError(f"sense must be 'max' or 'min', got {sense!r}")
    if desirable is None and acceptable is None:
        raise ValueError("a line needs at least one limit (desirable or acceptable)")
    u = f" {unit}" if unit else ""
    if desirable is not None and _inside(value, desirable, sense):
        return "desirable", signed_margin(value, desirable, sense), ""
    word = "above" if sense == "max" else "below"
    if acceptable is None:
        margin = signed_margin(value, desirable, sense)
        return "not met", margin, (f"{word} the desirable limit by {-margin:.2f}{u}; the protocol sets no "
                                   f"acceptable limit for this line")
    margin = signed_margin(value, acceptable, sense)
    if _inside(value, acceptable, sense):
        note = "" if desirable is None else (f"{word} the desirable limit by "
                                             f"{-signed_margin(value, desirable, sense):.2f}{u}, within the "
                                             f"acceptable limit")
        return "acceptable", margin, note
    return "fail", margin, f"{word} the acceptable limit by {-margin:.2f}{u}"


def _limit_text(row: RowLike, which: str) -> str:
    value = getattr(row, which)
    if value is None:
        return f"no {which} limit"
    op = "<=" if row.sense == "max" else ">="
    return f"{which} {op} {value:.2f} {row.unit}"


def describe_row(row: RowLike) -> str:
    """``'PTV D98% (44.10 Gy, desirable >= 49.40 Gy, no acceptable limit)'``: a row for a sentence."""
    if row.value is None:
        return f"{row.structure} {row.metric}"
    return (f"{row.structure} {row.metric} ({row.value:.2f} {row.unit}, {_limit_text(row, 'desirable')}, "
            f"{_limit_text(row, 'acceptable')})")


def missing_text(rows: Iterable[RowLike]) -> str:
    """``'OpticChiasm, OpticNrv_L not contoured'`` (and ``'SpinalCord empty'`` for a structure present
    in the case without any voxel) for rows 'not evaluated'."""
    rows = list(rows)
    missing = list(dict.fromkeys(r.structure for r in rows if r.case_structure is None))
    empty = list(dict.fromkeys(r.case_structure for r in rows if r.case_structure is not None))
    parts = ([f"{', '.join(missing)} not contoured"] if missing else []) + (
        [f"{', '.join(empty)} empty in the case"] if empty else [])
    return "; ".join(parts)


@dataclass(frozen=True)
class OverallVerdict:
    """The plan's verdict from its rows.

    Attributes:
        verdict: 'desirable' | 'acceptable' | 'fail' | 'incomplete' (priority 1 alone).
        detail: one paragraph naming what decided it and every lower-priority goal missed.
        failed_priority1: goal ids of priority-1 rows 'fail'.
        not_met_priority1: goal ids of priority-1 rows 'not met'.
        missing_priority1: goal ids of priority-1 rows 'not evaluated'.
        not_contoured: structure names (protocol names) of those rows, each once.
        missed_lower_priority: goal ids of lower-priority rows 'acceptable', 'not met' or 'fail'.
        failed_lower_priority: goal ids of lower-priority rows 'fail'.
        not_evaluated: goal ids of every row 'not evaluated'.
        absent: goal ids of every row 'absent'.
    """

    verdict: str
    detail: str
    failed_priority1: list[str] = field(default_factory=list)
    not_met_priority1: list[str] = field(default_factory=list)
    missing_priority1: list[str] = field(default_factory=list)
    not_contoured: list[str] = field(default_factory=list)
    missed_lower_priority: list[str] = field(default_factory=list)
    failed_lower_priority: list[str] = field(default_factory=list)
    not_evaluated: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)


def overall_verdict(rows: Iterable[RowLike]) -> OverallVerdict:
    """The overall verdict and its detail from evaluated rows (see the module docstring)."""
    rows = list(rows)
    for r in rows:
        if r.verdict not in ROW_VERDICTS:
            raise ValueError(f"row {r.goal_id}: verdict {r.verdict!r} is not one of {ROW_VERDICTS}")
    p1 = [r for r in rows if r.priority == 1]
    low = [r for r in rows if r.priority > 1]
    failed1 = [r for r in p1 if r.verdict == "fail"]
    not_met1 = [r for r in p1 if r.verdict == "not met"]
    missing1 = [r for r in p1 if r.verdict == "not evaluated"]
    evaluated1 = [r for r in p1 if r.verdict not in ("not evaluated", "absent")]
    if failed1 or not_met1:
        verdict = "fail"
    elif missing1 or not evaluated1:
        verdict = "incomplete"
    elif all(r.verdict == "desirable" for r in evaluated1):
        verdict = "desirable"
    else:
        verdict = "acceptable"
    not_contoured = list(dict.fromkeys(r.structure for r in missing1))

    parts: list[str] = []
    if failed1:
        parts.append("priority-1 line(s) beyond the acceptable limit: " + ", ".join(describe_row(r) for r in failed1))
    if not_met1:
        parts.append("priority-1 line(s) below their desirable level with no acceptable limit: "
                     + ", ".join(describe_row(r) for r in not_met1))
    if missing1:
        parts.append(("" if verdict == "incomplete" else "incomplete: ") + missing_text(missing1)
                     + f" (priority-1 line(s) {', '.join(r.goal_id for r in missing1)} not evaluated)")
    elif verdict == "incomplete":
        parts.append("no priority-1 line was evaluated")
    if verdict == "desirable":
        parts.append("every priority-1 line meets its desirable limit")
    elif verdict == "acceptable":
        parts.append("every priority-1 line within its acceptable limit (below the desirable limit: "
                     + ", ".join(describe_row(r) for r in evaluated1 if r.verdict == "acceptable") + ")")
    missed_low = [r for r in low if r.verdict in ("acceptable", "not met", "fail")]
    if missed_low:
        parts.append("lower-priority goals not met: " + ", ".join(
            describe_row(r) + (" beyond the acceptable limit" if r.verdict == "fail" else "") for r in missed_low))
    missing_low = [r for r in low if r.verdict == "not evaluated"]
    if missing_low:
        parts.append("lower-priority lines not evaluated (structure missing or empty): "
                     + ", ".join(r.goal_id for r in missing_low))
    absent = [r for r in rows if r.verdict == "absent"]
    if absent:
        parts.append("declared absent: " + ", ".join(dict.fromkeys(r.structure for r in absent)))
    detail = f"{verdict.upper()}: " + "; ".join(parts) + "."
    return OverallVerdict(
        verdict, detail, [r.goal_id for r in failed1], [r.goal_id for r in not_met1], [r.goal_id for r in missing1],
        not_contoured, [r.goal_id for r in missed_low], [r.goal_id for r in low if r.verdict == "fail"],
        [r.goal_id for r in rows if r.verdict == "not evaluated"], [r.goal_id for r in absent])
