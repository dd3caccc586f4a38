"""A case folder edited after its import is checked as an import is: a prior course of 2.5 fractions, a laser
modality, a prior dose of 70,000 Gy, a grid that case.json and case.npz disagree on are refused naming the file,
key and what was expected; a plan of an empty target is refused before any work. Each of these used to plan
(2.5 fractions read as 2: a brainstem cumulative EQD2 of 406 Gy) or fail deep inside."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from phantoms.npc import make_npc_phantom
from reirrad_opt.case import CaseFormatError, load_case, save_case
from reirrad_opt.planning import plan


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_case(make_npc_phantom(5.0), tmp_path_factory.mktemp("case") / "npc")


def edited(folder, tmp_path, json_edit=None, npz_edit=None):
    out = tmp_path / "edited"
    shutil.copytree(folder, out)
    if json_edit:
        meta = json.loads((out / "case.json").read_text())
        json_edit(meta)
        (out / "case.json").write_text(json.dumps(meta))
    if npz_edit:
        with np.load(out / "case.npz") as data:
            arrays = {k: data[k] for k in data.files}
        npz_edit(arrays)
        np.savez_compressed(out / "case.npz", **arrays)
    return out


def course(key, value):
    return lambda meta: meta["prior_course"].__setitem__(key, value)


@pytest.mark.parametrize("json_edit, words", [
    (course("n_fractions", 2.5), ["case.json", "n_fractions", "whole number from 1 to 100", "2.5"]),
    (course("n_fractions", 10_000_000), ["n_fractions", "whole number from 1 to 100"]),
    (course("interval_months", 1e9), ["interval_months", "from 0 to 600"]),
    (course("interval_months", "24"), ["interval_months", "'24'"]),
    (course("modality", "laser"), ["modality", "radiation type", "'laser'"]),
    (course("prescription_gy", -70.0), ["prescription_gy", "> 0", "150 Gy"]),
    (lambda meta: meta["structures"].append(dict(meta["structures"][0])), ["listed more than once"]),
    (lambda meta: meta.__setitem__("comment", "mine"), ["unknown key", "'comment'"]),
])
def test_an_implausible_case_json_is_refused(folder, tmp_path, json_edit, words):
    with pytest.raises(CaseFormatError) as info:
        load_case(edited(folder, tmp_path, json_edit=json_edit))
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("npz_edit, words", [
    (lambda a: a.__setitem__("spacing_mm", np.array([2.0, 2.0, 2.0])), ["case.npz", "spacing_mm", "disagrees"]),
    (lambda a: a.__setitem__("prior_dose_gy", a["prior_dose_gy"] * 1000), ["case.npz", "prior_dose_gy", "150 Gy"]),
])
def test_an_implausible_case_npz_is_refused(folder, tmp_path, npz_edit, words):
    with pytest.raises(CaseFormatError) as info:
        load_case(edited(folder, tmp_path, npz_edit=npz_edit))
    for word in words:
        assert word in str(info.value)


def test_a_plausible_case_loads_and_an_ion_is_named_by_its_charge(folder, tmp_path):
    case = load_case(edited(folder, tmp_path, json_edit=course("modality", "ion(Z=6)")))
    assert case.prior.modality == "ion(Z=6)" and case.prior.n_fractions == 33


def test_a_plan_of_an_empty_target_is_refused_before_any_work(folder, tmp_path):
    case = load_case(folder)
    case.structures["rGTV"].mask[:] = False
    del case.structures["PTV"], case.structures["rCTV"]
    with pytest.raises(ValueError, match=r"structure 'rGTV' is empty"):
        plan(case)


def test_import_dicom_refuses_a_prior_modality_that_is_no_radiation_type(tmp_path, capsys):
    from reirrad_opt.cli import main

    with pytest.raises(SystemExit) as info:
        main(["import-dicom", str(tmp_path), "--interval-months", "24", "--prior-modality", "laser",
              "--out", str(tmp_path / "out")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--prior-modality" in err and "'laser'" in err and "radiation type" in err
    assert not (tmp_path / "out").exists()
