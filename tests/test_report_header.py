"""report.html: header (case, time, versions, grid, modality and RBE), the research-use line,
quantities in words, limits with their direction, figure captions, the reporting block as a
table, rounded times, declared-absent structures, input overrides and verdict colours."""
import re

from reirrad_opt.report.html_report import DISCLAIMER, VERDICT_COLOUR, render_report_html


def _row(structure, metric, verdict, *, cumulative, sense="max", unit="Gy", value=50.0, desirable=60.0,
         acceptable=None, priority=1):
    return {"structure": structure, "goal_id": f"{structure}_{metric}", "metric": metric, "priority": priority,
            "cumulative": cumulative, "sense": sense, "value": value, "unit": unit, "desirable": desirable,
            "acceptable": acceptable, "margin": 1.0, "verdict": verdict, "note": ""}


def _plan(**extra):
    plan = {
        "case": {"name": "npc_case_17", "grid": {"shape": [44, 44, 33], "spacing_mm": [5.0, 4.0, 3.0],
                                                  "origin_mm": [0, 0, 0], "axis_order": "zyx"}},
        "created_utc": "2026-12-06T13:55:54+00:00",
        "protocol": {"name": "npc_reirradiation_2021", "options": {"evaluation_fine_factor": 3}},
        "prescription": {"eqd2_gy": 60.0, "alpha_beta_gy": 10.0, "fractionation": "bid-1.2",
                         "dose_per_fraction_gy": 1.2, "n_fractions": 54, "total_gy": 64.8},
        "modality": "proton",
        "dose": {"quantity": "RBE-weighted", "unit": "Gy(RBE)", "rbe": 1.1, "rbe_model": "constant"},
        "beams": [{}, {}, {}], "engine": "first-order",
        "stages": [{"priority": 1, "name": "priority 1", "status": "optimal", "objective": 0.5,
                    "slip": {"value_gy": 0.648}, "seconds": 12.3456, "notes": []}],
        "evaluation": [
            _row("Brainstem", "D0.03cc", "acceptable", cumulative=True, desirable=67.5, acceptable=72.0),
            _row("PTV", "D98%", "not met", cumulative=False, sense="min", unit="Gy(RBE)", value=58.0, desirable=61.56),
            _row("Cochlea_L", "Dmean", "absent", cumulative=False, value=None, priority=3),
            _row("OpticChiasm", "D0.03cc", "not evaluated", cumulative=True, value=None, priority=2),
        ],
        "verdict": "acceptable", "verdict_detail": "every priority-1 line is within its acceptable limit",
        "reporting": {"standard": "ESTRO-EORTC", "interval_months": 24.0,
                      "prior_course": {"n_fractions": 33, "modality": "photon"}, "per_structure": {}},
        "timing_s": {"influence": 1.234, "optimize": 20.06, "evaluate": 0.049, "total": 21.3391},
        "notes": [], "versions": {"reirrad_opt": "0.1.0", "python": "3.11.7", "numpy": "2.4.6"},
    }
    plan.update(extra)
    return plan


def _cells_of(page, structure):
    row = re.search(rf"<tr[^>]*><td>\d</td><td>{structure}</td>.*?</tr>", page).group(0)
    return row, re.findall(r"<td>(.*?)</td>", row)


def test_header_names_case_time_versions_grid_modality_and_rbe():
    page = render_report_html(_plan(), [])
    assert "<title>Re-irradiation plan npc_case_17: acceptable</title>" in page
    assert "<th>case</th><td>npc_case_17</td>" in page
    assert "<th>written (UTC)</th><td>2026-12-06T13:55:54+00:00</td>" in page
    assert "reirrad_opt 0.1.0, python 3.11.7, numpy 2.4.6" in page
    assert "<th>dose grid</th><td>44 x 44 x 33 voxels (z, y, x), spacing 5 x 4 x 3 mm</td>" in page
    assert "<th>modality</th><td>proton</td>" in page
    assert "<th>dose</th><td>RBE-weighted dose in Gy(RBE), constant RBE 1.1</td>" in page
    # a particle plan's prescription and slips read in Gy(RBE); alpha/beta stays in Gy
    assert "64.80 Gy(RBE) in 54 x 1.20 (bid-1.2); 60.00 Gy(RBE) EQD2 (a/b 10.0 Gy)" in page
    assert "<th>slip (Gy(RBE))</th>" in page
    photon = render_report_html(_plan(modality="photon", dose={"quantity": "physical", "unit": "Gy",
                                                               "rbe_model": "none"}), [])
    assert "60.00 Gy EQD2 (a/b 10.0 Gy)" in photon and "<th>slip (Gy)</th>" in photon
    assert DISCLAIMER == ("For research and plan-quality studies; not for clinical use without independent "
                          "verification")
    assert DISCLAIMER in page


def test_quantity_in_words_and_limits_with_their_direction():
    page = render_report_html(_plan(), [])
    _, brainstem = _cells_of(page, "Brainstem")
    assert brainstem[3] == "cumulative EQD2"
    assert brainstem[6:8] == ["&lt;= 67.50 Gy", "&lt;= 72.00 Gy"]
    _, ptv = _cells_of(page, "PTV")
    assert ptv[3] == "new-course dose, Gy(RBE)"
    assert ptv[6:8] == ["&gt;= 61.56 Gy(RBE)", "-"]
    photon = _plan(dose={"quantity": "physical", "unit": "Gy", "rbe": 1.0, "rbe_model": "none"}, modality="photon")
    photon["evaluation"][1]["unit"] = "Gy"
    _, ptv = _cells_of(render_report_html(photon, []), "PTV")
    assert ptv[3] == "new-course physical dose"


def test_without_a_dose_key_the_unit_is_read_from_the_rows():
    plan = _plan()
    del plan["dose"]
    page = render_report_html(plan, [])
    assert "<th>dose</th><td>RBE-weighted dose in Gy(RBE)</td>" in page
    assert _cells_of(page, "PTV")[1][3] == "new-course dose, Gy(RBE)"
    del plan["case"], plan["created_utc"]
    page = render_report_html(plan, [])
    assert "<th>written (UTC)</th><td>not recorded</td>" in page


def test_verdict_colours_for_every_verdict_word():
    page = render_report_html(_plan(), [])
    for structure, verdict in (("PTV", "not met"), ("Cochlea_L", "absent"), ("OpticChiasm", "not evaluated")):
        row, _ = _cells_of(page, structure)
        assert f'style="background:{VERDICT_COLOUR[verdict]}"' in row
    red = {k: int(VERDICT_COLOUR[k][1:3], 16) - int(VERDICT_COLOUR[k][5:7], 16) for k in VERDICT_COLOUR}
    assert red["not met"] > 40 and red["fail"] > 40       # red-ish: more red than blue, like fail
    grey = VERDICT_COLOUR["absent"][1:]
    assert grey[0:2] == grey[2:4] == grey[4:6]             # absent: grey
    assert VERDICT_COLOUR["not evaluated"][1:3] == VERDICT_COLOUR["not evaluated"][3:5]


def test_reporting_block_is_a_table_and_times_are_rounded():
    page = render_report_html(_plan(), [])
    assert "{'" not in page and "interval_months" not in page
    assert "<tr><th>prior course</th><td><table class='inner'><tr><th>n_fractions</th><td>33</td></tr>" in page
    assert "Time: influence 1.2 s, optimize 20.1 s, evaluate 0.0 s, total 21.3 s." in page
    assert "<td>12.3</td>" in page and "12.3456" not in page


def test_absent_structures_and_input_overrides_are_shown_only_when_present():
    page = render_report_html(_plan(), [])
    assert "declared absent" not in page and "explicit override" not in page
    page = render_report_html(_plan(absent_structures={"Cochlea_L": "--absent Cochlea_L"},
                                    input_overrides=[{"flag": "--accept-thick-slices",
                                                      "reason": "CT slice thickness 5.0 mm > 3.0 mm"}]), [])
    assert "<li><b>Cochlea_L</b>: --absent Cochlea_L</li>" in page
    assert "<code>--accept-thick-slices</code>: CT slice thickness 5.0 mm &gt; 3.0 mm" in page


def test_figures_have_captions_saying_what_is_shown(tmp_path):
    png = tmp_path / "dvh.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    dose = tmp_path / "dose.png"
    dose.write_bytes(b"\x89PNG\r\n\x1a\n")
    page = render_report_html(_plan(), [png, dose])
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert len(captions) == 2
    assert "3x3x3 sub-voxel samples per voxel" in captions[0] and "cumulative EQD2" in captions[0]
    assert "patient LPS mm" in captions[1] and "Gy(RBE)" in captions[1] and "95" in captions[1]


def test_comparison_page_limits_carry_their_direction_and_the_reports_colours():
    from reirrad_opt.compare.html_page import _structures_table

    c = {"structures": [
        {"goal_id": "Brainstem_D0.03cc", "priority": 1, "structure": "Brainstem", "metric": "D0.03cc",
         "cumulative": True, "unit": "Gy", "desirable": 70.2, "acceptable": 81.0,
         "photon": {"value": 80.96, "verdict": "acceptable"}, "proton": {"value": 80.98, "verdict": "acceptable"}},
        {"goal_id": "PTV_D98%", "priority": 2, "structure": "PTV", "metric": "D98%", "cumulative": False,
         "unit": "Gy", "desirable": 61.56, "acceptable": None,
         "photon": {"value": 36.6, "verdict": "not met"}, "proton": {"value": 35.2, "verdict": "not met"}}],
        "plans": {"photon": {"evaluation": [{"goal_id": "Brainstem_D0.03cc", "sense": "max"},
                                            {"goal_id": "PTV_D98%", "sense": "min"}]}}}
    table = _structures_table(c, ["photon", "proton"])
    assert "<td>&lt;= 70.20</td><td>&lt;= 81.00</td>" in table
    assert "<td>new-course dose</td><td>Gy</td><td>&gt;= 61.56</td><td>-</td>" in table
    assert f"<td style='background:{VERDICT_COLOUR['not met']}'>not met</td>" in table
