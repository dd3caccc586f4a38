"""tps_goals.json on a lexicographic plan of the NPC phantom (5 mm, 7 beams, 10 mm bixels; about 8 s).

Each protocol line is a goal or listed as unmapped; cumulative goals carry the tightest new-course
cap over the organ, recomputed here from the phantom's prior dose with the LQ model written out (not
with the code's inversion); target goals carry the protocol's level and the evaluation's value x 100;
ROI names are the TPS's where it gave them."""
from __future__ import annotations

import json
from importlib import resources

import jsonschema
import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.planning import plan
from reirrad_opt.tps.caps import cap_map
from reirrad_opt.tps.goals import tps_goals


def _cap_by_hand(limit_gy, prior_gy, n_prior, n_new, ab):
    """The new-course dose D in n_new fractions with EQD2(D) = limit - EQD2(prior): the positive root
    of D^2 / n + ab D = (limit - EQD2(prior)) (2 + ab)."""
    left = limit_gy - prior_gy * (prior_gy / n_prior + ab) / (2.0 + ab)
    left = np.maximum(left, 0.0)
    return (-ab + np.sqrt(ab * ab + 4.0 * left * (2.0 + ab) / n_new)) * n_new / 2.0


@pytest.fixture(scope="module")
def planned():
    result = plan(make_npc_phantom(5.0), None, n_beams=7, bixel_mm=10.0)
    tiers = dict(result.optimization.tier_by_goal)
    caps = cap_map(result.case, result.protocol, result.fractionation.n_fractions, tiers=tiers)
    names = {n: n for n in result.case.structures if n not in ("rCTV", "PTV")}
    names.update({"Brainstem": "BS (tps)", "rCTV": None, "PTV": None})
    doc = tps_goals(result, caps, names)
    return result, tiers, doc


def test_every_line_is_a_goal_or_unmapped_and_the_schema_holds(planned):
    result, _, doc = planned
    rows = result.evaluation.to_dict()["rows"]
    mapped, unmapped = {g["line_id"] for g in doc["goals"]}, {u["line_id"] for u in doc["unmapped"]}
    assert mapped | unmapped == {r["goal_id"] for r in rows} and not mapped & unmapped
    assert len(doc["goals"]) + len(doc["unmapped"]) == len(rows)
    schema = json.loads(resources.files("reirrad_opt.tps").joinpath("tps_goals_schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(doc)), schema)
    assert doc["dose_unit"] == "cGy" and doc["dose_kind"] == "physical" and doc["rbe"] is None
    assert doc["fractionation"]["prescription_cgy"] == pytest.approx(6480.0)


def test_cumulative_goals_are_the_tightest_cap(planned):
    result, tiers, doc = planned
    case = result.case
    cumulative = [g for g in doc["goals"] if g["level_basis"] == "cumulative_cap_min"]
    assert {g["canonical_name"] for g in cumulative} >= {"Brainstem", "SpinalCord", "OpticChiasm", "Lobe_Temporal_L"}
    for g in cumulative:
        goal = result.protocol.goal(g["line_id"])
        tier = tiers.get(goal.id, "desirable")
        limit = goal.limit_gy(tier, None)
        mask = case.structures[g["canonical_name"]].mask
        caps = _cap_by_hand(limit, case.prior_dose_gy[mask].astype(float), case.prior.n_fractions, 54,
                            goal.alpha_beta_gy)
        assert g["cumulative_limit_gy"] == limit
        assert g["level_cgy"] == pytest.approx(100 * caps.min(), abs=0.01)
        assert g["cap_max_cgy"] == pytest.approx(100 * caps.max(), abs=0.01)
        assert g["goal_type"] == "dose_at_absolute_volume" and g["volume_cc"] == 0.03 and g["direction"] == "at_most"
        assert g["role"] == ("constraint" if goal.priority == 1 else "objective")
    assert next(g for g in cumulative if g["canonical_name"] == "Brainstem")["roi_name"] == "BS (tps)"


def test_target_goals_carry_the_protocol_level_and_the_evaluation(planned):
    result, _, doc = planned
    rows = {r["goal_id"]: r for r in result.evaluation.to_dict()["rows"]}
    goals = {g["line_id"]: g for g in doc["goals"]}
    rgtv = goals["rGTV_D98%"]
    assert (rgtv["goal_type"], rgtv["volume_pct"], rgtv["direction"], rgtv["role"]) == \
        ("dose_at_volume", 98.0, "at_least", "objective")
    assert rgtv["level_cgy"] == pytest.approx(0.98 * 6480.0, abs=0.01)
    assert rgtv["achieved_cgy"] == pytest.approx(100 * rows["rGTV_D98%"]["value"], abs=0.006)
    hot = goals["PTV_V107%"]
    assert (hot["goal_type"], hot["volume_pct"], hot["roi_generated"], hot["roi_name"]) == \
        ("volume_at_dose", 5.0, True, "PTV")
    assert hot["level_cgy"] == pytest.approx(1.07 * 6480.0, abs=0.01)
    assert hot["achieved_pct"] == pytest.approx(rows["PTV_V107%"]["value"], abs=1e-3)


def test_a_proton_plan_states_cgy_rbe(planned):
    """Limits hold on the RBE-weighted dose: a proton plan's caps are the photon plan's caps (same prior,
    same fractions), stated as cGy(RBE) with the RBE (about 17 s)."""
    photon, _, photon_doc = planned
    result = plan(make_npc_phantom(5.0), None, modality="proton", spot_spacing_mm=10.0)
    tiers = dict(result.optimization.tier_by_goal)
    caps = cap_map(result.case, result.protocol, result.fractionation.n_fractions, tiers=tiers, rbe=result.rbe,
                   unit=result.dose_unit)
    doc = tps_goals(result, caps, {n: n for n in result.case.structures})
    assert (doc["dose_kind"], doc["rbe"], doc["modality"]) == ("rbe_weighted", 1.1, "proton")
    photon_goals = {g["line_id"]: g for g in photon_doc["goals"]}
    compared = 0
    for g in doc["goals"]:
        if g["level_basis"] == "cumulative_cap_min" and tiers.get(g["line_id"], "desirable") == \
                dict(photon.optimization.tier_by_goal).get(g["line_id"], "desirable"):
            assert g["level_cgy"] == photon_goals[g["line_id"]]["level_cgy"]
            compared += 1
    assert compared >= 5
    rows = {r["goal_id"]: r for r in result.evaluation.to_dict()["rows"]}
    assert rows["rGTV_D98%"]["unit"] == "Gy(RBE)"
    rgtv = next(g for g in doc["goals"] if g["line_id"] == "rGTV_D98%")
    assert rgtv["achieved_cgy"] == pytest.approx(100 * rows["rGTV_D98%"]["value"], abs=0.006)
