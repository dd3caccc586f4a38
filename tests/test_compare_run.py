"""`reirrad-opt compare` / `reirrad_opt.compare` end to end on a small synthetic head (one run of
both plans, shared by the tests), the summary's dependence on the numbers, and bad input."""
import contextlib
import io
import json
import re

import numpy as np
import pytest

from reirrad_opt.case import Case, PriorCourse, save_case
from reirrad_opt.cli import main
from reirrad_opt.compare.narrative import comparison_summary
from reirrad_opt.compare.summary import Criterion
from reirrad_opt.geometry import Grid, Structure

PROTOCOL = """
[protocol]
name = "small_head_test"

[prescription]
eqd2_gy = 60.0
eqd2_range_gy = [60.0, 66.0]
alpha_beta_gy = 10.0
default_fractionation = "bid-1.2"

[fractionations."bid-1.2"]
dose_per_fraction_gy = 1.2
n_fractions = 54
fractions_per_day = 2
min_interval_h = 6.0

[slips]
1 = "1 %"

[[goal]]
structure = "Brainstem"
priority = 1
metric = "D0.03cc"
sense = "max"
desirable = "70.2 Gy"
acceptable = "81 Gy"
cumulative = true
alpha_beta_gy = 2.5

[[goal]]
structure = "rGTV"
priority = 1
metric = "D98%"
sense = "min"
desirable = "98 %Rx"
cumulative = false
alpha_beta_gy = 10.0

[[goal]]
structure = "PTV"
priority = 2
metric = "D98%"
sense = "min"
desirable = "95 %Rx"
cumulative = false
alpha_beta_gy = 10.0

[[goal]]
structure = "Lobe_Temporal_L"
priority = 2
metric = "D0.03cc"
sense = "max"
desirable = "91 Gy"
acceptable = "105 Gy"
cumulative = true
alpha_beta_gy = 2.5
"""
PRIOR_FX, NEW_FX, AB_NEURAL = 30, 54, 2.5


def small_head(h: float = 4.0) -> Case:
    """A water cylinder (radius 48 mm) with a 10 mm rGTV in front of a brainstem (4 mm gap to
    its surface), a temporal lobe beside it, a brain region and a prior dose of up to 50 Gy."""
    n = (15, 27, 27)
    grid = Grid(n, (h, h, h), tuple(-(s // 2) * h for s in n))
    z, y, x = np.meshgrid(*grid.axis_coordinates_mm(), indexing="ij")
    body = (x ** 2 + y ** 2 <= 48 ** 2) & (np.abs(z) <= 26)
    rgtv = x ** 2 + (y + 10) ** 2 + z ** 2 <= 10 ** 2
    brainstem = (x ** 2 + (y - 14) ** 2 <= 7 ** 2) & (np.abs(z) <= 20)
    lobe = (x - 24) ** 2 + (y + 4) ** 2 + z ** 2 <= 9 ** 2
    brain = body & (y > 0) & ~brainstem
    ct = np.where(body, 0.0, -1000.0).astype(np.float32)
    r = np.sqrt(x ** 2 + (y + 5) ** 2 + z ** 2)
    prior = np.where(body, 50.0 * np.exp(-np.maximum(0.0, r - 15.0) / 25.0), 0.0).astype(np.float32)
    st = {"External": Structure("External", body, "external"), "rGTV": Structure("rGTV", rgtv, "target"),
          "Brainstem": Structure("Brainstem", brainstem, "oar"),
          "Lobe_Temporal_L": Structure("Lobe_Temporal_L", lobe, "oar"), "Brain": Structure("Brain", brain, "oar")}
    return Case("small_head", grid, ct, st, prior, PriorCourse(PRIOR_FX, 24.0, "photon", 50.0, "synthetic"), {})


def eqd2(dose, n, ab):
    """EQD2 written out: D (d + a/b) / (2 + a/b), d = D / n."""
    return dose * (dose / n + ab) / (2.0 + ab)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    case = small_head()
    save_case(case, root / "case")
    (root / "protocol.toml").write_text(PROTOCOL)
    out = root / "out"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["compare", "--case", str(root / "case"), "--protocol", str(root / "protocol.toml"),
                     "--photon-beams", "0", "72", "144", "216", "288", "--particle-fields", "90", "270",
                     "--quiet", "--out", str(out)])
    (root / "stdout.txt").write_text(printed.getvalue())
    content = json.loads((out / "comparison.json").read_text())
    return code, out, content, case


def test_outputs_written(run):
    code, out, c, _ = run
    assert code == (3 if "fail" in c["verdicts"].values() else 0)
    for name in ("comparison.json", "comparison.png", "falloff.png", "slices.png", "comparison.html",
                 "photon/plan.json", "photon/dose.npz", "proton/plan.json", "proton/dose.npz"):
        assert (out / name).is_file(), name
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]     # no temporary folder left
    assert c["modalities"] == ["photon", "proton"]
    assert c["plans"]["photon"]["modality"] == "photon" and c["plans"]["proton"]["modality"] == "proton"
    assert [b["gantry_deg"] for b in c["plans"]["proton"]["beams"]] == [90.0, 270.0]
    with np.load(out / "proton" / "fluence.npz") as f:   # the fields' spot counts add up to the spots weighted
        assert sum(b["n_spots"] for b in c["plans"]["proton"]["beams"]) == f["weights"].size
    assert all(1 <= b["n_layers"] <= b["n_spots"] and b["ion"] == "proton" for b in c["plans"]["proton"]["beams"])
    # the same protocol and fractionation for both
    for m in ("photon", "proton"):
        assert c["plans"][m]["protocol"]["name"] == "small_head_test"
        assert c["plans"][m]["prescription"]["n_fractions"] == NEW_FX


def test_printed_table_gives_each_criterion_its_unit(run):
    """The terminal table has a unit column: each criterion's row ends with the unit comparison.json gives
    it (Gy(RBE) for doses beside a proton plan, % , cc, mm; 'ratio' for the dimensionless ones)."""
    _, out, c, _ = run
    printed = (out.parent / "stdout.txt").read_text().splitlines()
    header = next(line for line in printed if line.strip().startswith("criterion"))
    assert header.split()[-2:] == ["unit", "better"]
    expected = {"Brainstem_D0.03cc": "Gy(RBE)", "PTV D98%": "Gy(RBE)", "PTV V107%": "%", "CI": "ratio",
                "R50": "ratio", "integral dose": "Gy(RBE) L", "brain new_course_eqd2 V20Gy_cc": "cc",
                "fall-off 90-50": "mm"}
    for r in c["criteria"]:
        if r["key"] not in expected:
            continue
        line = next(line for line in printed if line.strip().startswith(r["criterion"] + " "))
        assert re.search(rf"\d  {re.escape(expected[r['key']])} +(photon|proton|=)$", line), line
    assert {r["key"] for r in c["criteria"]} >= set(expected)


def test_html_dose_table_reads_in_the_compared_unit(run):
    """Beside a proton plan the HTML's dose-metric labels read Gy(RBE), as its criteria table does."""
    _, out, _, _ = run
    html = (out / "comparison.html").read_text()
    assert "integral dose, new course (Gy(RBE) L)" in html
    assert "D98% (Gy(RBE))" in html and "D98% (Gy)" not in html
    assert "<th>desirable (Gy(RBE))</th>" in html and "<th>proton: cumulative (Gy(RBE))</th>" in html
    assert "<th>photon: left to acceptable (Gy(RBE))</th>" in html


def test_both_plans_are_evaluated_robustly_side_by_side(run):
    """By default both plans are evaluated in the scenarios: photons the 6 setup shifts, the particle plan the
    range errors too; comparison.html shows nominal and worst values for both."""
    _, out, c, _ = run
    photon, proton = c["plans"]["photon"]["robust"], c["plans"]["proton"]["robust"]
    assert len(photon["scenarios"]) == 7 and len(proton["scenarios"]) == 9
    assert not any(s["range_error"]["relative"] for s in photon["scenarios"])
    for robust, plan in ((photon, c["plans"]["photon"]), (proton, c["plans"]["proton"])):
        nominal = {r["goal_id"]: r["value"] for r in plan["evaluation"]}
        assert {r["goal_id"]: r["nominal"] for r in robust["rows"]} == nominal
    html = (out / "comparison.html").read_text()
    assert "Robust evaluation: nominal and worst case" in html and "proton worst scenario" in html


def test_both_plans_respect_every_priority1_cap(run):
    _, out, c, case = run
    brainstem = case.structures["Brainstem"].mask
    for m in ("photon", "proton"):
        new = np.load(out / m / "dose.npz")["new_course_gy"].astype(float)
        cum = eqd2(case.prior_dose_gy[brainstem].astype(float), PRIOR_FX, AB_NEURAL) + eqd2(new[brainstem], NEW_FX,
                                                                                           AB_NEURAL)
        assert cum.max() <= 81.0 + 0.05, m          # the guideline's acceptable cumulative limit (150 % of 54 Gy)
        row = next(s for s in c["structures"] if s["goal_id"] == "Brainstem_D0.03cc")
        assert row[m]["verdict"] in ("desirable", "acceptable")
        assert row[m]["value"] <= 81.0
        budget = c["priority1_budget"][m][0]
        assert budget["structure"] == "Brainstem"
        assert budget["remaining_acceptable_gy"] == pytest.approx(81.0 - row[m]["value"], abs=2e-3)
        assert budget["remaining_desirable_gy"] == pytest.approx(70.2 - row[m]["value"], abs=2e-3)
        assert budget["remaining_acceptable_gy"] >= 0.0


def test_dose_metrics_are_the_stated_quantities(run):
    _, out, c, case = run
    body = case.body
    voxel_cc = case.grid.voxel_volume_cc
    ptv = np.load(out / "photon" / "case.npz")["mask_PTV"].astype(bool)      # as derived for the plans
    normal_brain = case.structures["Brain"].mask & ~ptv
    for m in ("photon", "proton"):
        d = c["dose_metrics"][m]
        new = np.load(out / m / "dose.npz")["new_course_gy"].astype(float)
        assert d["integral_dose_gy_litre"] == pytest.approx(new[body].sum() * voxel_cc / 1000, rel=1e-3)
        assert 0.0 < d["conformity_index_paddick"] <= 1.0
        assert d["r50"] > 1.0        # the 50 % isodose encloses more than the PTV of a covering plan
        fo = d["falloff_mm"]
        assert fo["90-50"]["min_mm"] <= fo["90-50"]["median_mm"] <= fo["90-50"]["max_mm"]
        assert fo["80-20"]["median_mm"] > fo["90-50"]["median_mm"] * 0.5
        b = d["normal_brain"]
        assert b["alpha_beta_gy"] == AB_NEURAL
        new_e = eqd2(new[normal_brain], NEW_FX, AB_NEURAL)
        cum_e = new_e + eqd2(case.prior_dose_gy[normal_brain].astype(float), PRIOR_FX, AB_NEURAL)
        for t in (20, 40):
            assert b["new_course_eqd2"][f"V{t}Gy_cc"] == pytest.approx((new_e >= t).sum() * voxel_cc, abs=1e-3)
            assert b["cumulative_eqd2"][f"V{t}Gy_cc"] == pytest.approx((cum_e >= t).sum() * voxel_cc, abs=1e-3)
        assert b["cumulative_eqd2"]["V20Gy_cc"] > b["new_course_eqd2"]["V20Gy_cc"]   # the prior adds up to 50 Gy
        for t in ("rGTV", "PTV"):
            assert c["targets"][m][t]["D98%"] <= c["targets"][m][t]["D50%"] <= c["targets"][m][t]["D2%"]


def test_criteria_winners_follow_the_values(run):
    _, _, c, _ = run
    text = " ".join(c["summary"])
    for r in c["criteria"]:
        v = r["values"]
        if v["photon"] is None or v["proton"] is None or abs(v["photon"] - v["proton"]) <= r["tolerance"]:
            assert r["winner"] is None, r
            continue
        lower = "photon" if v["photon"] < v["proton"] else "proton"
        higher = "proton" if lower == "photon" else "photon"
        assert r["winner"] == (lower if r["better"] == "lower" else higher), r
        assert r["criterion"] in text
    for m in ("photon", "proton"):
        assert f"{m} plan: {c['verdicts'][m]}" in text.lower()


def test_distal_end_block_and_html(run):
    _, out, c, _ = run
    rep = c["distal_end"]["proton"]
    assert rep["range_error_pct"] == 3.5 and rep["distal_margin_mm"] == 5.0
    assert set(rep["organs"]) == {"Brainstem", "Lobe_Temporal_L"}
    assert [f["gantry_deg"] for f in rep["fields"]] == [90.0, 270.0]
    assert set(rep["flagged_nominal"]) <= set(rep["flagged_any_scenario"]) <= set(rep["organs"])
    page = (out / "comparison.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    for m in ("photon", "proton"):
        assert c["verdicts"][m].upper() in page
    for s in c["summary"]:
        assert s.split(":")[0][:30] in page


def test_summary_swaps_with_the_numbers():
    crit = [Criterion("Brainstem_D0.03cc", "Brainstem cumulative EQD2 D0.03cc", "lower", 0.5, "Gy"),
            Criterion("CI", "conformity index", "higher", 0.02, "")]
    a = {"photon": {"Brainstem_D0.03cc": 72.0, "CI": 0.70}, "proton": {"Brainstem_D0.03cc": 66.0, "CI": 0.80}}
    distal = {"proton": {"nominal": ["Brainstem"], "range_error": [], "range_error_pct": 3.5}}
    rows, text = comparison_summary({"photon": "fail", "proton": "acceptable"}, a, crit, distal)
    joined = " ".join(text)
    assert [r["winner"] for r in rows] == ["proton", "proton"]
    assert "Only the proton plan meets every priority-1 limit" in joined
    assert "Proton is better on 2 criteria" in joined
    assert "Distal-end warning (proton): Brainstem lies" in joined
    swapped = {"photon": a["proton"], "proton": a["photon"]}
    rows2, text2 = comparison_summary({"photon": "acceptable", "proton": "fail"}, swapped, crit,
                                      {"proton": {"nominal": [], "range_error": [], "range_error_pct": 3.5}})
    joined2 = " ".join(text2)
    assert [r["winner"] for r in rows2] == ["photon", "photon"]
    assert "Only the photon plan meets every priority-1 limit" in joined2
    assert "Photon is better on 2 criteria" in joined2
    assert "No priority-1 or priority-2 organ lies in the distal fall-off region" in joined2


def test_bad_input(tmp_path, capsys):
    assert main(["compare", "--phantom", "npc", "--protocol", str(tmp_path / "missing.toml"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing.toml" in capsys.readouterr().err
    assert main(["compare", "--case", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit):
        main(["compare", "--phantom", "npc", "--photon-beams", "0", "--photon-n-beams", "5", "--out", "x"])
    from reirrad_opt.compare import compare

    with pytest.raises(ValueError, match="particle"):
        compare(small_head(), particle="neutron")
    assert not (tmp_path / "o").exists()


def test_compare_is_the_package_function_and_checks_its_arguments():
    """``from reirrad_opt.compare import compare`` is the comparison function (the package is a
    plain package: no callable-module tricks)."""
    import reirrad_opt.compare as package
    from reirrad_opt.compare.run import compare as run_compare

    assert package.compare is run_compare and not callable(package)
    with pytest.raises(ValueError, match="particle"):
        package.compare(None, particle="neutron")
