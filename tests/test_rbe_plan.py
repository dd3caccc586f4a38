"""A proton plan is optimized and judged on the RBE-weighted dose, Gy(RBE) = 1.1 x physical.

One proton plan of the NPC phantom at 5 mm (the phantom's coarsest grid) is rechecked independently
of the planner's dose and evaluation code: the dose is recomputed from the PHYSICAL influence matrix
and the weights, multiplied by 1.1, sampled on the evaluation's sub-voxel points (3 per axis,
trilinear, by scipy here), turned into cumulative EQD2 with the prior course (the linear-quadratic
formula written out below) and compared with every priority-1 limit of the protocol.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from phantoms.npc import make_npc_phantom
from reirrad_opt.commands.plan import summary_text
from reirrad_opt.compare.distal import Organ, plan_distal_end_check
from reirrad_opt.compare.narrative import flat_metrics
from reirrad_opt.compare.plan_metrics import plan_metrics, priority1_budget
from reirrad_opt.planning import plan

FINE = 3                 # sub-voxel samples per axis (the protocol's evaluation_fine_factor)
DVH_TOLERANCE_GY = 0.1   # our step DVH against the evaluation's interpolated one (samples of voxel / 27)


@pytest.fixture(scope="module")
def proton():
    case = make_npc_phantom(5.0)
    return plan(case, None, modality="proton")


def _eqd2(dose_gy: np.ndarray, n_fractions: int, alpha_beta_gy: float) -> np.ndarray:
    """EQD2 (Gy) of a dose given in ``n_fractions`` equal fractions (linear-quadratic model)."""
    return dose_gy * (dose_gy / n_fractions + alpha_beta_gy) / (2.0 + alpha_beta_gy)


def _fine_values(volume: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``volume`` at FINE^3 sub-voxel centres of every voxel of ``mask`` (trilinear)."""
    offsets = (np.arange(FINE) + 0.5) / FINE - 0.5
    centres = np.argwhere(mask).astype(float)
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    pts = (centres[:, None, :] + sub[None, :, :]).reshape(-1, 3)
    return ndimage.map_coordinates(np.asarray(volume, dtype=float), pts.T, order=1, mode="nearest")


def _dose_at_volume(values: np.ndarray, sample_cc: float, volume_cc: float) -> float:
    """The lowest dose among the hottest ``volume_cc`` (samples of ``sample_cc`` each)."""
    hottest = np.sort(values)[::-1]
    return float(hottest[int(np.ceil(volume_cc / sample_cc - 1e-9)) - 1])


def test_dose_is_1_1_times_the_physical_dose_of_the_cached_matrix(proton):
    physical = (proton.influence.matrix @ proton.weights).reshape(proton.case.grid.shape)
    assert proton.influence.modality == "proton" and proton.rbe == 1.1 and proton.dose_unit == "Gy(RBE)"
    np.testing.assert_allclose(proton.new_dose_gy, 1.1 * physical, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(proton.physical_dose_gy, physical, rtol=1e-5, atol=1e-5)


def test_independent_recheck_meets_every_priority1_limit_in_gy_rbe(proton):
    case, protocol, frac = proton.case, proton.protocol, proton.fractionation
    rx = float(frac.total_gy)
    dose_rbe = 1.1 * (proton.influence.matrix @ proton.weights).reshape(case.grid.shape)
    sample_cc = case.grid.voxel_volume_cc / FINE ** 3
    checked = []
    for goal in protocol.goals:
        if goal.priority != 1:
            continue
        mask = case.structures[goal.structure].mask
        new = _fine_values(dose_rbe, mask)
        if goal.cumulative:
            f = protocol.recovery.fraction_for(goal.structure, case.prior.interval_months)
            prior = _fine_values(case.prior_dose_gy, mask)
            values = (1 - f) * _eqd2(prior, case.prior.n_fractions, goal.alpha_beta_gy) \
                + _eqd2(new, frac.n_fractions, goal.alpha_beta_gy)
        else:
            values = new
        total_cc = values.size * sample_cc
        if goal.metric == "D0.03cc":
            value = _dose_at_volume(values, sample_cc, 0.03)
        else:
            assert goal.metric.startswith("D") and goal.metric.endswith("%"), goal.metric
            value = _dose_at_volume(values, sample_cc, float(goal.metric[1:-1]) / 100.0 * total_cc)
        limit = goal.limit_gy("acceptable", rx) or goal.limit_gy("desirable", rx)
        if goal.sense == "max":
            assert value <= limit + DVH_TOLERANCE_GY, f"{goal.id}: {value:.2f} Gy(RBE) above {limit:.2f}"
        else:
            assert value >= limit - DVH_TOLERANCE_GY, f"{goal.id}: {value:.2f} Gy(RBE) below {limit:.2f}"
        row = proton.evaluation.row(goal.id)
        assert row.unit == "Gy(RBE)" and row.value == pytest.approx(value, abs=DVH_TOLERANCE_GY), goal.id
        checked.append(goal.id)
    assert {"Brainstem_D0.03cc", "SpinalCord_D0.03cc", "OpticChiasm_D0.03cc", "rGTV_D98%"} <= set(checked)


def test_plan_json_and_rows_state_gy_rbe_and_the_rbe(proton):
    content = json.loads(json.dumps(proton.to_dict(), default=float))
    assert content["modality"] == "proton"
    assert content["dose"] == {"quantity": "RBE-weighted", "unit": "Gy(RBE)", "rbe": 1.1, "rbe_model": "constant"}
    units = {r["goal_id"]: r["unit"] for r in content["evaluation"]}
    assert units["Brainstem_D0.03cc"] == "Gy(RBE)" and units["rGTV_D98%"] == "Gy(RBE)"
    assert units["PTV_V107%"] == "%"
    assert all(u in ("Gy(RBE)", "%", "cc") for u in units.values())
    assert any("Gy(RBE) = 1.1 x physical dose" in n for n in content["notes"])
    text = summary_text(proton, "out")
    assert "RBE-weighted, Gy(RBE) = 1.1 x physical dose" in text and "Gy(RBE)" in text.splitlines()[2]


def test_comparison_metrics_keep_the_gy_rbe_rows(proton):
    budget = priority1_budget(proton)
    assert {b["goal_id"] for b in budget} >= {"Brainstem_D0.03cc", "SpinalCord_D0.03cc"}
    flat = flat_metrics(proton, plan_metrics(proton, falloff_directions=20))
    assert flat["Brainstem_D0.03cc"] == pytest.approx(proton.evaluation.row("Brainstem_D0.03cc").value)
    organs = [Organ(n, proton.case.structures[n].mask, 1) for n in ("Brainstem", "SpinalCord")]
    rep = plan_distal_end_check(proton, organs)
    assert rep.rbe == 1.1 and rep.dose_unit == "Gy(RBE)"
    for h in rep.hits:   # one field's Gy(RBE) never exceeds the whole plan's Gy(RBE) in the same voxels
        assert h.max_field_dose_gy <= h.max_plan_dose_gy * (1 + 1e-4) + 1e-6
