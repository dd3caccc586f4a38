"""End to end: plan() and `reirrad-opt plan` on a coarse NPC phantom.

The verdicts are read from the independent evaluation of the final dose; these tests check that the
optimizer's promises hold there: no priority-1 cap exceeded, earlier priorities kept within their
slips, an impossible first priority diagnosed with exit code 3, deterministic results, and a plan
folder whose plan.json validates against its documented schema.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.case import save_case
from reirrad_opt.cli import main
from reirrad_opt.planning import plan
from reirrad_opt.report.plan_folder import write_plan_folder

RES_MM = 5.0
ANGLES = [0.0, 72.0, 144.0, 216.0, 288.0]


@pytest.fixture(scope="module")
def npc_plan():
    return plan(make_npc_phantom(RES_MM), gantry_angles_deg=ANGLES)


def test_no_priority1_cap_is_exceeded_in_the_independent_evaluation(npc_plan):
    tiers = npc_plan.optimization.tier_by_goal
    organ_rows = [r for r in npc_plan.evaluation.rows if r.priority == 1 and r.cumulative]
    assert len(organ_rows) == 5  # brainstem, cord, chiasm, both optic nerves
    for r in organ_rows:
        limit = r.desirable if tiers.get(r.goal_id, "desirable") == "desirable" else r.acceptable
        assert r.value <= limit + 1e-6, (r.structure, r.value, limit)
        assert r.verdict in ("desirable", "acceptable")


def test_no_voxel_of_the_body_exceeds_the_plan_ceiling(npc_plan):
    ceiling = npc_plan.protocol.options["max_dose_pct_rx"] / 100 * npc_plan.fractionation.total_gy
    assert npc_plan.new_dose_gy[npc_plan.case.body].max() <= ceiling + 1e-3
    assert npc_plan.new_dose_gy.max() <= ceiling + 1e-3


def test_later_stages_keep_earlier_priorities_within_their_slip():
    p = plan(make_npc_phantom(RES_MM), gantry_angles_deg=ANGLES, truncation=0.0)
    slip = {s.priority: s.slip_gy for s in p.optimization.stages if s.priority is not None}
    final = p.optimization.excess_gy
    seen = set()
    for stage in p.optimization.stages:          # the last solve of each priority is the one kept
        for key, excess in stage.achieved.items():
            seen.add(key)
    last = {}
    for stage in p.optimization.stages:
        for key, excess in stage.achieved.items():
            last[key] = (stage.priority, excess)
    for key, (priority, excess) in last.items():
        assert final[key] <= max(excess, -slip[priority]) + slip[priority] + 1e-3, key
    assert seen


def test_plan_folder_and_schema(npc_plan, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    out = write_plan_folder(npc_plan, tmp_path / "plan")
    doc = json.loads((out / "plan.json").read_text())
    schema = json.loads((Path(__file__).parents[1] / "reirrad_opt/report/plan_schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["verdict"] == npc_plan.verdict
    assert sum(b["n_bixels"] for b in doc["beams"]) == npc_plan.weights.size   # every weighted bixel in a beam
    with np.load(out / "dose.npz") as d:
        assert set(d.files) == {"new_course_gy", "new_course_eqd2_gy", "cumulative_eqd2_gy"}
        assert np.allclose(d["new_course_gy"], npc_plan.new_dose_gy, atol=1e-4)
        # cumulative EQD2 >= prior alone where the new course adds dose
        assert (d["cumulative_eqd2_gy"] >= d["new_course_eqd2_gy"] - 1e-3).all()
    for name in ("fluence.npz", "case.json", "case.npz", "dvh.png", "dose.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    html = (out / "report.html").read_text()
    assert "Overall verdict" in html and "data:image/png;base64" in html
    # a broken schema document is rejected: the validation can fail
    bad = dict(doc, verdict="maybe")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_deterministic(npc_plan):
    again = plan(make_npc_phantom(RES_MM), gantry_angles_deg=ANGLES)
    assert np.array_equal(again.weights, npc_plan.weights)


def test_impossible_first_priority_is_diagnosed_with_exit_code_3(tmp_path):
    # the brainstem already had 59 Gy (EQD2 ~56 Gy at a/b 2.5) and the rGTV touches it closely:
    # 63.5 Gy to the rGTV edge is incompatible with the brainstem's cumulative limits
    case = make_npc_phantom(RES_MM, rgtv_gap_to_brainstem_mm=2.0, prior_levels_gy={"Brainstem": 59.0})
    save_case(case, tmp_path / "case")
    code = main(["plan", "--case", str(tmp_path / "case"), "--gantry-angles", *map(str, ANGLES),
                 "--quiet", "--out", str(tmp_path / "plan")])
    assert code == 3
    doc = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert doc["verdict"] == "fail"
    assert any("Brainstem" in line for line in doc["diagnosis"]), doc["diagnosis"]
    rgtv = next(r for r in doc["evaluation"] if r["structure"] == "rGTV")
    assert rgtv["verdict"] == "fail"
    brainstem = next(r for r in doc["evaluation"] if r["structure"] == "Brainstem")
    assert brainstem["value"] <= brainstem["acceptable"] + 1e-6   # caps still honoured
    assert "PRIORITY-1 LIMIT NOT MET" in (tmp_path / "plan" / "report.html").read_text()


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    code = main(["plan", "--case", str(tmp_path / "missing"), "--out", str(tmp_path / "plan")])
    assert code == 2
    assert not (tmp_path / "plan").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".plan")]


def test_a_plan_on_a_precomputed_influence_matrix_is_the_plan_on_the_computed_one(npc_plan):
    """plan(influence=...): the dose calculation is skipped and the same matrix gives the same plan;
    a matrix on another grid or of another modality is refused, naming what differs."""
    from reirrad_opt.dose import compute_influence, photon_beams

    case = make_npc_phantom(RES_MM)
    ptv = case.structures["PTV"].mask
    beams = photon_beams(case.grid, ptv, gantry_angles_deg=ANGLES, bixel_mm=5.0)
    influence = compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=ptv)
    again = plan(case, gantry_angles_deg=ANGLES, influence=influence)
    assert np.array_equal(again.weights, npc_plan.weights)
    assert again.verdict == npc_plan.verdict
    coarse = make_npc_phantom(4.0)
    with pytest.raises(ValueError, match="not the case's grid"):
        plan(coarse, gantry_angles_deg=ANGLES, influence=influence)
    with pytest.raises(ValueError, match="modality 'photon', but the plan is 'proton'"):
        plan(case, modality="proton", influence=influence)

