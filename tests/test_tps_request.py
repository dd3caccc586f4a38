"""request.json validation: every refusal names the key and what was expected; the shipped JSON
schema accepts what the validator accepts and refuses the same bad requests; tps-run writes a
named error into result/status.json for a bad request (no DICOM needed to get there)."""
from __future__ import annotations

import copy
import json
from importlib import resources

import jsonschema
import pytest

from reirrad_opt.cli import main as cli_main
from reirrad_opt.tps.request import RequestError, parse_request

GOOD = {"schema_version": 1, "protocol": "npc_reirradiation_2021", "fractionation": "bid-1.2", "modality": "photon",
        "beams": {"count": 9}, "prior_course": {"n_fractions": 33, "modality": "photon", "interval_months": 30},
        "roi_map": {"GTV_recur": "rGTV", "BrainStem": "Brainstem"}, "absent": ["OpticChiasm"]}


def _schema(name: str) -> dict:
    return json.loads(resources.files("reirrad_opt.tps").joinpath(name).read_text())


def _with(path: str, value):
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()

BAD = [  # (path, value, key named in the error, words of the message)
    ("fractionation", _DELETE, "fractionation", "missing"),
    ("prior_course.interval_months", _DELETE, "prior_course.interval_months", "missing"),
    ("prior_course.interval_months", "30 months", "prior_course.interval_months", "unit is months"),
    ("prior_course.interval_days", 900, "prior_course.interval_days", "unknown key"),
    ("prior_course.n_fractions", 0, "prior_course.n_fractions", ">= 1"),
    ("prior_course.n_fractions", 101, "prior_course.n_fractions", "<= 100"),
    ("prior_course.interval_months", 1e9, "prior_course.interval_months", "<= 600"),
    ("synthetic_recurrence", {"near": "Brainstem", "radius_mm": 1e6}, "synthetic_recurrence.radius_mm", "<= 40"),
    ("modality", "electron", "modality", "photon, proton, carbon"),
    ("beams", {"count": 5, "gantry_angles_deg": [0]}, "beams", "exactly one"),
    ("beams", {"gantry_angles_deg": [0, 400]}, "beams.gantry_angles_deg[1]", "<= 360"),
    ("roi_map", {}, "roi_map", "non-empty"),
    ("roi_map", {"A": "rGTV", "B": "rGTV"}, "roi_map['B']", "already given"),
    ("rbe", 1.1, "rbe", "photon course has no RBE"),
    ("voxel_mm", "3mm", "voxel_mm", "unit is mm"),
    ("schema_version", 2, "schema_version", "expected 1"),
    ("dose_unit", "cGy", "dose_unit", "unknown key"),
]


def test_a_good_request():
    r = parse_request(GOOD, "/x")
    assert (r.fractionation, r.modality, r.n_beams, r.gantry_angles_deg) == ("bid-1.2", "photon", 9, None)
    assert (r.prior.n_fractions, r.prior.interval_months) == (33, 30.0)
    assert r.structure_map() == {"rGTV": "GTV_recur", "Brainstem": "BrainStem"}
    assert r.limit_level == "planned" and r.absent == ("OpticChiasm",) and r.protocol_argument() is None
    jsonschema.validate(GOOD, _schema("request_schema.json"))


@pytest.mark.parametrize("path,value,key,words", BAD, ids=[b[0] + ":" + str(b[1])[:12] for b in BAD])
def test_bad_requests_name_the_key(path, value, key, words):
    doc = _with(path, value)
    with pytest.raises(RequestError) as info:
        parse_request(doc, "/x")
    assert info.value.key == key
    assert words in str(info.value) and str(info.value).startswith(f"request.json {key}:")


@pytest.mark.parametrize("path,value", [(b[0], b[1]) for b in BAD if b[2] != "roi_map['B']" and b[0] != "rbe"])
def test_the_schema_refuses_the_same(path, value):
    """The shipped schema agrees with the validator on these (the duplicate TG-263 name and the
    photon RBE are cross-key rules only the validator checks)."""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_with(path, value), _schema("request_schema.json"))


def test_tps_run_writes_the_named_error_into_status(tmp_path, capsys):
    (tmp_path / "dicom").mkdir()
    (tmp_path / "request.json").write_text(json.dumps(_with("prior_course.interval_months", "30 months")))
    assert cli_main(["tps-run", str(tmp_path)]) == 2
    status = json.loads((tmp_path / "result" / "status.json").read_text())
    assert status["state"] == "failed" and status["exit_code"] == 2
    assert status["key"] == "prior_course.interval_months" and "unit is months" in status["message"]
    assert sorted(p.name for p in (tmp_path / "result").iterdir()) == [".reirrad-opt-output.json", "status.json"]
    assert "prior_course.interval_months" in capsys.readouterr().err
    # a second run replaces the failed result only with --overwrite
    (tmp_path / "request.json").write_text("{not json")
    assert cli_main(["tps-run", str(tmp_path)]) == 2
    assert json.loads((tmp_path / "result" / "status.json").read_text())["key"] == "prior_course.interval_months"
    assert cli_main(["tps-run", str(tmp_path), "--overwrite"]) == 2
    status = json.loads((tmp_path / "result" / "status.json").read_text())
    assert status["key"] == "(file)" and "not valid JSON: line 1" in status["message"]


def test_tps_run_without_dicom_folder(tmp_path):
    (tmp_path / "request.json").write_text(json.dumps(GOOD))
    assert cli_main(["tps-run", str(tmp_path)]) == 2
    status = json.loads((tmp_path / "result" / "status.json").read_text())
    assert "dicom is missing" in status["message"] and status["key"] == "(folder)"
