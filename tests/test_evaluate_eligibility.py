"""Advisory eligibility pre-check against the guideline's Table 1 thresholds and agreements."""
from __future__ import annotations

import pytest

from reirrad_opt.evaluate import PatientFactors, eligibility_precheck


def by_topic(findings):
    return {f.topic: f for f in findings}


@pytest.mark.parametrize("months, level", [(4, "not recommended"), (6, "not recommended"), (9, "caution"),
                                           (12, "caution"), (18, "info")])
def test_latency(months, level):
    f = by_topic(eligibility_precheck(PatientFactors(latency_months=months)))["latency"]
    assert f.level == level
    if level == "not recommended":
        assert "96 %" in f.agreement
    if level == "caution":
        assert "63 %" in f.agreement


def test_toxicity_thresholds_per_organ():
    grades = {"brainstem": 1, "spinal_cord": 0, "temporal_lobe": 2, "optic_nerve": 3, "bone": 3, "xerostomia": 4,
              "hearing": 4}
    f = by_topic(eligibility_precheck(PatientFactors(toxicity_grades=grades)))
    assert f["toxicity:brainstem"].level == "not recommended" and "100 %" in f["toxicity:brainstem"].agreement
    assert f["toxicity:spinal_cord"].level == "info"
    assert f["toxicity:temporal_lobe"].level == "info"        # grade 2 < 3
    assert f["toxicity:optic_nerve"].level == "not recommended" and "96 %" in f["toxicity:optic_nerve"].agreement
    assert f["toxicity:bone"].level == "not recommended" and "75 %" in f["toxicity:bone"].agreement
    assert f["toxicity:xerostomia"].level == "info" and "not a reason for exclusion" in f["toxicity:xerostomia"].message
    assert f["toxicity:hearing"].level == "info"


def test_surgery_margins_and_systemic_therapy():
    f = by_topic(eligibility_precheck(PatientFactors(resectable=True, clear_margin_achievable=True)))
    assert "surgical resection is the preferred option" in f["surgery"].message and "100 %" in f["surgery"].agreement
    f = by_topic(eligibility_precheck(PatientFactors(operated=True, resection_margin="positive")))
    assert "re-RT should be considered" in f["post-operative"].message
    f = by_topic(eligibility_precheck(PatientFactors(operated=True, resection_margin="close", margin_mm=1.0)))
    assert f["post-operative"].level == "info" and "67 %" in f["post-operative"].agreement
    f = by_topic(eligibility_precheck(PatientFactors(operated=True, resection_margin="close", margin_mm=3.0)))
    assert f["post-operative"].level == "caution"
    for rt, rn, add in ((3, 0, True), (1, 1, True), (4, 2, True), (2, 0, False)):
        s = by_topic(eligibility_precheck(PatientFactors(rT=rt, rN=rn)))["systemic therapy"]
        assert ("add systemic therapy" in s.message) is add
        assert ("96 %" if add else "63 %") in s.agreement


def test_tumour_bulk_is_never_an_exclusion():
    for cc, level in ((20, "info"), (35, "caution"), (90, "caution")):
        f = by_topic(eligibility_precheck(PatientFactors(rgtv_cc=cc)))["tumour bulk"]
        assert f.level == level and "not an exclusion" in f.message and "79 %" in f.agreement
    assert "10 %" in by_topic(eligibility_precheck(PatientFactors(rgtv_cc=90)))["tumour bulk"].message


def test_unknowns_are_reported_and_nothing_blocks():
    findings = eligibility_precheck(PatientFactors())
    assert {f.topic for f in findings} == {"latency", "toxicity"}
    assert all(f.level == "info" for f in findings)


def test_bad_factors():
    with pytest.raises(ValueError, match="unknown organ"):
        PatientFactors(toxicity_grades={"liver": 2})
    with pytest.raises(ValueError, match="grade"):
        PatientFactors(toxicity_grades={"brainstem": 7})
    with pytest.raises(ValueError, match="rT"):
        PatientFactors(rT=5)
    with pytest.raises(ValueError, match="resection_margin"):
        PatientFactors(resection_margin="wide")
