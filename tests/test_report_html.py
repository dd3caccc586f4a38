"""report.html: the reporting block's per-structure doses appear as a table, not as raw text."""
from reirrad_opt.report.html_report import render_report_html


def _plan():
    per = {"Brainstem": {"role": "oar", "volume_cc": 26.752, "alpha_beta_gy": 2.5,
                         "cumulative_eqd2": {"Dmax_gy": 70.1986, "D0.03cc_gy": 69.7888},
                         "new_physical": {"Dmax_gy": 25.9199, "D0.03cc_gy": 24.4759}},
           "rGTV": {"role": "target", "volume_cc": 14.14, "alpha_beta_gy": 10.0,
                    "new_physical": {"Dmax_gy": 74.52, "D98%_gy": 63.5}}}
    return {"verdict": "acceptable", "evaluation": [], "stages": [],
            "reporting": {"standard": "ESTRO-EORTC", "interval_months": 24.0, "per_structure": per}}


def test_per_structure_doses_are_a_table_row_per_structure_and_dose_kind():
    page = render_report_html(_plan(), [])
    assert "{'" not in page and "Dmax_gy" not in page          # no dictionary dumped as text
    assert "<td>Brainstem</td><td>oar</td><td>26.75</td><td>2.50</td><td>cumulative EQD2</td>" \
           "<td>70.20</td><td>69.79</td><td>-</td></tr>" in page
    assert "<td>rGTV</td><td>target</td><td>14.14</td><td>10.00</td><td>new-course physical</td>" \
           "<td>74.52</td><td>-</td><td>63.50</td></tr>" in page
    assert page.count("<td>Brainstem</td>") == 2                 # cumulative and new physical; no empty kinds
    assert "<tr><th>interval months</th><td>24.00</td></tr>" in page   # the other items: a table too
