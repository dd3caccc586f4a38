"""``reirrad-opt budget``: the remaining cumulative-EQD2 budget of one organ and the matching
physical-dose cap of the new course.

Example (the guideline's worked example, brainstem tolerance 54 Gy EQD2)::

    reirrad-opt budget --structure Brainstem --prior-eqd2-gy 50 --fractions 30 --dose-per-fraction-gy 2

gives 20.2 Gy (desirable) and 31 Gy (acceptable) EQD2 remaining, i.e. 20.2 / 31 Gy physical in
2 Gy fractions. Without ``--dose-per-fraction-gy`` the cap is the exact one of a voxel that
receives its dose in ``--fractions`` equal fractions (its dose per fraction is cap / n), the cap
the optimizer uses.
"""
from __future__ import annotations

import argparse
import json
import math

from .. import radiobiology as rb
from ..plausibility import DEFAULT_BOUNDS
from ..protocol import Goal, Protocol, load_protocol
from ..protocol.model import MAX_LIMIT_GY
from ._args import MAX_INTERVAL_MONTHS
from ._help import OPTIC_NERVE_RULE_HELP, OPTIC_NERVE_RULES

# Plausibility of the inputs (a larger value is a typo, a unit or a decimal point, not a patient):
# no cumulative-EQD2 tolerance approaches 200 Gy (protocol MAX_LIMIT_GY), so no prior EQD2 above it is a
# re-irradiation question; at most 100 fractions, as for an imported prior course; stereotactic single
# fractions reach about 24 Gy; published alpha/beta values lie below about 20 Gy (tumours ~10, late-
# responding tissue 1-5).
MAX_PRIOR_EQD2_GY = MAX_LIMIT_GY
MAX_FRACTIONS = DEFAULT_BOUNDS.fractions_range[1]
MAX_DOSE_PER_FRACTION_GY = 30.0
MAX_ALPHA_BETA_GY = 100.0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "budget", help="remaining cumulative EQD2 of an organ and the physical-dose cap of the new course",
        description="Remaining desirable / acceptable cumulative EQD2 of a structure after a prior course, and the "
                    "corresponding physical-dose caps in the new fractionation (exact LQ inverse).")
    p.add_argument("--structure", required=True, help="structure (TG-263 name or alias), e.g. Brainstem")
    p.add_argument("--prior-eqd2-gy", type=float, required=True,
                   help=f"EQD2 (Gy) already received in the prior course, 0 to {MAX_PRIOR_EQD2_GY:g}")
    p.add_argument("--fractions", type=int, required=True,
                   help=f"number of fractions of the new course, 1 to {MAX_FRACTIONS}")
    p.add_argument("--dose-per-fraction-gy", type=float, default=None,
                   help=f"assume the organ receives fractions of this size (Gy, > 0 and at most "
                        f"{MAX_DOSE_PER_FRACTION_GY:g}); default: the exact cap with the organ's dose per fraction = "
                        f"cap / fractions")
    p.add_argument("--protocol", default=None, help="protocol TOML (default: the shipped NPC consensus protocol)")
    p.add_argument("--goal", default=None, help="goal id, when the structure has several cumulative goals")
    p.add_argument("--optic-nerve-rule", choices=OPTIC_NERVE_RULES, default=None, help=OPTIC_NERVE_RULE_HELP)
    p.add_argument("--alpha-beta-gy", type=float, default=None,
                   help=f"override the goal's alpha/beta (Gy, > 0 and at most {MAX_ALPHA_BETA_GY:g})")
    p.add_argument("--interval-months", type=float, default=None,
                   help=f"months since the prior course, 0 to {MAX_INTERVAL_MONTHS:g} (needed by a time-dependent "
                        f"recovery model)")
    p.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    p.set_defaults(func=run)


def _pick_goal(protocol: Protocol, structure: str, goal_id: str | None) -> Goal:
    if goal_id is not None:
        goal = protocol.goal(goal_id)
        if not goal.cumulative:
            raise ValueError(f"goal {goal_id!r} is not a cumulative-EQD2 limit")
        return goal
    goals = [g for g in protocol.goals_for(structure)
             if g.cumulative and g.sense == "max" and not g.metric_spec.is_volume]
    if not goals:
        cumulative = sorted({g.structure for g in protocol.goals if g.cumulative})
        raise ValueError(f"--structure {structure!r}: protocol {protocol.name!r} has no cumulative-EQD2 dose limit "
                         f"for it; structures with one: {cumulative}")
    if len(goals) > 1:
        raise ValueError(f"--structure {structure!r} has several cumulative goals {[g.id for g in goals]}; "
                         f"choose one with --goal")
    return goals[0]


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 10)


def compute_budget(protocol: Protocol, structure: str, prior_eqd2_gy: float, n_fractions: int,
                   dose_per_fraction_gy: float | None = None, goal_id: str | None = None,
                   alpha_beta_gy: float | None = None, interval_months: float | None = None) -> dict:
    """The budget as a JSON-ready dict (see the module docstring); ValueError on bad input."""
    if not (math.isfinite(prior_eqd2_gy) and 0 <= prior_eqd2_gy <= MAX_PRIOR_EQD2_GY):
        raise ValueError(f"--prior-eqd2-gy must be from 0 to {MAX_PRIOR_EQD2_GY:g} Gy (no cumulative-EQD2 tolerance "
                         f"approaches {MAX_PRIOR_EQD2_GY:g} Gy), got {prior_eqd2_gy:g}")
    if not 1 <= n_fractions <= MAX_FRACTIONS:
        raise ValueError(f"--fractions must be from 1 to {MAX_FRACTIONS}, got {n_fractions}")
    if dose_per_fraction_gy is not None and not (math.isfinite(dose_per_fraction_gy)
                                                 and 0 < dose_per_fraction_gy <= MAX_DOSE_PER_FRACTION_GY):
        raise ValueError(f"--dose-per-fraction-gy must be > 0 and at most {MAX_DOSE_PER_FRACTION_GY:g} Gy "
                         f"(stereotactic single fractions reach about 24 Gy), got {dose_per_fraction_gy:g}")
    if interval_months is not None and not (math.isfinite(interval_months)
                                            and 0 <= interval_months <= MAX_INTERVAL_MONTHS):
        raise ValueError(f"--interval-months must be from 0 to {MAX_INTERVAL_MONTHS:g} months "
                         f"({MAX_INTERVAL_MONTHS / 12:g} years), got {interval_months:g}")
    goal = _pick_goal(protocol, structure, goal_id)
    ab = goal.alpha_beta_gy if alpha_beta_gy is None else float(alpha_beta_gy)
    if not (math.isfinite(ab) and 0 < ab <= MAX_ALPHA_BETA_GY):
        raise ValueError(f"--alpha-beta-gy must be > 0 and at most {MAX_ALPHA_BETA_GY:g} Gy, got {ab:g}")
    model = protocol.recovery.per_structure.get(goal.structure, protocol.recovery)
    if interval_months is None and model.kind == "table":
        table = model.describe().removeprefix("recovery: ")
        raise ValueError(f"--interval-months is needed: protocol {protocol.name!r} recovers the prior EQD2 of "
                         f"{goal.structure} by a time-dependent table ({table}); give the months since the prior "
                         f"course")
    f_rec = protocol.recovery.fraction_for(goal.structure, interval_months)
    effective = float(rb.effective_prior_eqd2(prior_eqd2_gy, f_rec))
    out: dict = {
        "structure": goal.structure, "goal_id": goal.id, "metric": goal.metric, "protocol": protocol.name,
        "prior_eqd2_gy": _r(prior_eqd2_gy), "recovered_fraction": f_rec, "effective_prior_eqd2_gy": _r(effective),
        "recovery": protocol.recovery.describe(interval_months),
        "alpha_beta_gy": ab, "n_fractions": int(n_fractions), "dose_per_fraction_gy": dose_per_fraction_gy,
        "cap_method": ("exact: the organ's dose per fraction is cap / n_fractions" if dose_per_fraction_gy is None
                       else f"fixed fraction size: the organ receives {dose_per_fraction_gy:g} Gy per fraction"),
    }
    for tier in ("desirable", "acceptable"):
        limit = goal.limit_gy(tier, None)
        remaining = cap = exact = None
        exhausted = None
        if limit is not None:
            remaining = limit - effective
            res = rb.new_course_dose_cap(limit, effective, n_fractions, ab)
            exact, exhausted = float(res.cap_gy), bool(res.exhausted)
            if dose_per_fraction_gy is None:
                cap = exact
            else:
                cap = 0.0 if exhausted else float(
                    rb.physical_dose_for_eqd2_at_dose_per_fraction(remaining, dose_per_fraction_gy, ab))
        out[f"limit_{tier}_eqd2_gy"] = _r(limit)
        out[f"remaining_{tier}_eqd2_gy"] = _r(remaining)
        out[f"cap_{tier}_gy"] = _r(cap)
        out[f"cap_exact_{tier}_gy"] = _r(exact)
        out[f"exhausted_{tier}"] = exhausted
    return out


def format_text(b: dict) -> str:
    def gy(x):
        return "no limit" if x is None else f"{x:.2f} Gy"

    lines = [
        f"{b['structure']} {b['metric']} (goal {b['goal_id']}, protocol {b['protocol']}): cumulative EQD2 budget",
        f"  prior EQD2 {b['prior_eqd2_gy']:g} Gy; after recovery {b['effective_prior_eqd2_gy']:g} Gy ({b['recovery']})",
        f"  new course: {b['n_fractions']} fractions, a/b {b['alpha_beta_gy']:g} Gy; cap: {b['cap_method']}",
        f"  {'':<11}{'limit EQD2':>14}{'remaining EQD2':>17}{'physical cap':>15}",
    ]
    for tier in ("desirable", "acceptable"):
        lines.append(f"  {tier:<11}{gy(b[f'limit_{tier}_eqd2_gy']):>14}{gy(b[f'remaining_{tier}_eqd2_gy']):>17}"
                     f"{gy(b[f'cap_{tier}_gy']):>15}")
        if b[f"exhausted_{tier}"]:
            lines.append(f"  {'':<11}the prior dose alone reaches the {tier} limit: no new dose allowed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol, optic_nerve_rule=args.optic_nerve_rule)
    b = compute_budget(protocol, args.structure, args.prior_eqd2_gy, args.fractions, args.dose_per_fraction_gy,
                       args.goal, args.alpha_beta_gy, args.interval_months)
    print(json.dumps(b, indent=2) if args.json else format_text(b))
    return 0
