"""Import checks on a corruption corpus made from a real OpenKBP patient (see inputchecks_corpus)."""
from __future__ import annotations

import json

import pytest

from inputchecks_corpus import openkbp_export, rewrite_csv
from reirrad_opt.cli import main as cli_main
from reirrad_opt.plausibility import ImplausibleInputError, OverrideRequiredError
from tps_adapters.openkbp import OpenKBPFormatError, load_openkbp_case

pytestmark = pytest.mark.realdata


def load(folder, **kwargs):
    return load_openkbp_case(folder, interval_months=24, **kwargs)


def cli(folder, out, *extra) -> int:
    return cli_main(["import-openkbp", str(folder), "--interval-months", "24", "--out", str(out), *extra])


def test_empty_dose_file_is_a_format_error(realdata, tmp_path):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("dose.csv",))
    rewrite_csv(got["dose.csv"], header=None)
    with pytest.raises(OpenKBPFormatError, match=r"dose.csv: the file is empty \(0 bytes\)"):
        load(tmp_path / "pt")


def test_header_only_dose_needs_accept_zero_prior_which_is_recorded(realdata, tmp_path, capsys):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("dose.csv",))
    rewrite_csv(got["dose.csv"], keep_rows=False)
    with pytest.raises(OverrideRequiredError, match="dose.csv: the prior dose is zero everywhere") as exc:
        load(tmp_path / "pt")
    assert exc.value.flag == "--accept-zero-prior"
    assert cli(tmp_path / "pt", tmp_path / "refused") == 2 and not (tmp_path / "refused").exists()
    assert "--accept-zero-prior" in capsys.readouterr().err
    assert cli(tmp_path / "pt", tmp_path / "out", "--accept-zero-prior") == 0
    source = json.loads((tmp_path / "out" / "case.json").read_text())["source"]
    assert [o["flag"] for o in source["input_overrides"]] == ["--accept-zero-prior"]


def test_duplicate_index_is_refused(realdata, tmp_path):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("dose.csv",))
    first = got["dose.csv"].read_text().splitlines()[1]
    index = first.split(",")[0]
    rewrite_csv(got["dose.csv"], rows=[f"{index},0.0"])  # would zero the first listed voxel
    with pytest.raises(OpenKBPFormatError, match=rf"listed more than once \(first: {index}, 2 times\)"):
        load(tmp_path / "pt")


def test_a_1e30_gy_voxel_is_refused(realdata, tmp_path):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("dose.csv",))
    lines = got["dose.csv"].read_text().splitlines()
    index = lines[1].split(",")[0]
    got["dose.csv"].write_text("\n".join([lines[0], f"{index},1e30", *lines[2:]]) + "\n")
    with pytest.raises(ImplausibleInputError, match=r"dose.csv: the prior dose reaches 1e\+30 Gy, above the plausible "
                                                    r"maximum of 150 Gy"):
        load(tmp_path / "pt")


def test_dose_far_above_the_prescription_is_refused(realdata, tmp_path):
    openkbp_export(realdata, tmp_path / "pt")
    # pt_201's maximum is 72.3 Gy: plausible for 70 Gy, 3.6 x a 20 Gy prescription
    with pytest.raises(ImplausibleInputError, match=r"72.3 Gy, 3.61 x the prescription of 20 Gy"):
        load(tmp_path / "pt", prior_prescription_gy=20.0)


def test_implausible_prescription_and_fractions(realdata, tmp_path, capsys):
    openkbp_export(realdata, tmp_path / "pt")
    with pytest.raises(ImplausibleInputError, match="prior prescription -70 Gy; expected more than 0"):
        load(tmp_path / "pt", prior_prescription_gy=-70.0)
    with pytest.raises(ImplausibleInputError, match="100000 fractions; expected 1 to 100"):
        load(tmp_path / "pt", prior_fractions=100000)
    with pytest.raises(SystemExit):
        cli(tmp_path / "pt", tmp_path / "out", "--prior-prescription-gy", "-70")
    assert "--prior-prescription-gy: invalid value '-70'" in capsys.readouterr().err


def test_voxel_size_of_1e200_mm_is_refused(realdata, tmp_path):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("voxel_dimensions.csv",))
    got["voxel_dimensions.csv"].write_text("1e200\n1e200\n3.0\n")
    with pytest.raises(ImplausibleInputError, match=r"voxel_dimensions.csv: voxel size \[1e\+200, 1e\+200, 3\] mm"):
        load(tmp_path / "pt")


def test_ct_value_of_1e33_is_refused(realdata, tmp_path):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("ct.csv",))
    lines = got["ct.csv"].read_text().splitlines()
    got["ct.csv"].write_text("\n".join([lines[0], lines[1].split(",")[0] + ",1e33", *lines[2:]]) + "\n")
    with pytest.raises(OpenKBPFormatError, match=r"ct.csv: stored CT values from 1 to 1e\+33"):
        load(tmp_path / "pt")


def test_empty_structure_files_are_reported_not_kept_as_0_cc(realdata, tmp_path):
    got = openkbp_export(realdata, tmp_path / "pt", copy=("Brainstem.csv", "Larynx.csv"))
    rewrite_csv(got["Brainstem.csv"], header=None)
    rewrite_csv(got["Larynx.csv"], keep_rows=False)
    case = load(tmp_path / "pt")
    assert "Brainstem" not in case.structures and "Larynx" not in case.structures
    assert case.source["empty_rois"] == ["Brainstem", "Larynx"]
    notes = "\n".join(case.source["notes"])
    assert "Brainstem.csv is empty (0 bytes)" in notes and "Larynx.csv is a header without voxels" in notes
    assert "input_overrides" not in case.source


def test_the_shipped_protocol_meets_a_real_case_without_a_spelling_complaint(realdata, tmp_path):
    from reirrad_opt.protocol import load_protocol
    from reirrad_opt.protocol_names import check_protocol_names

    openkbp_export(realdata, tmp_path / "pt")
    case = load(tmp_path / "pt")  # Parotid_L/R but no A_Carotid_L/R, no optic structures: not misspellings
    check_protocol_names(case, load_protocol())
