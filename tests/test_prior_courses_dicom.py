"""import-dicom with two prior folders on real data (the RayStation pelvis export, see
prior_courses_data): the new folder is its CT and RTSTRUCT; prior course 1 is the export itself
(60 Gy in 20 fx, RTPLAN), prior course 2 a second RTDOSE on the same CT (the PLAN dose halved, a new
SOP Instance UID, no RTPLAN, 5 fx). One frame of reference: each course is mapped by the identity,
so every course's dose on the case grid must be the one-folder import's (x 1 and x 0.5), and the
case's effective prior EQD2 the LQ sum of the two, each with its own dose per fraction (3 and 6 Gy
at the maximum). Also the named refusals: option counts that do not fit the --prior folders, and
one RTDOSE given as two courses."""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from prior_courses_data import linked, write_two_course_example
from reirrad_opt.case import load_case as load_case_folder
from reirrad_opt.cli import main as cli_main
from reirrad_opt.prior_eqd2 import prior_eqd2_at

pytestmark = pytest.mark.realdata

PELVIS = "raystation_alderson_pelvis_pydosert"
VOXEL_MM = "6"


@pytest.fixture(scope="module")
def folders(realdata, tmp_path_factory):
    """(new, prior 1, prior 2, the one-folder import's prior dose on the 6 mm grid)."""
    from tps_adapters.dicom import load_case

    pelvis = realdata / PELVIS
    if not pelvis.is_dir():
        pytest.fail(f"real-data folder missing: {pelvis}")
    root = tmp_path_factory.mktemp("priors")
    new, prior2 = write_two_course_example(pelvis, root)
    prior1 = linked(pelvis, root / "course1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = load_case(pelvis, interval_months=24, voxel_mm=float(VOXEL_MM))
    return new, prior1, prior2, one.prior_dose_gy


def test_two_prior_folders_become_two_courses(folders, tmp_path, capsys):
    new, prior1, prior2, one = folders
    out = tmp_path / "case"
    rc = cli_main(["import-dicom", str(new), "--prior", str(prior1), "--prior", str(prior2),
                   "--interval-months", "60", "--interval-months", "18", "--prior-fractions", "20",
                   "--prior-fractions", "5", "--voxel-mm", VOXEL_MM, "--out", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    case = load_case_folder(out)
    c1, c2 = case.prior_courses
    assert (c1.course.n_fractions, c1.course.interval_months, c1.course.prescription_gy) == (20, 60.0, 60.0)
    assert (c2.course.n_fractions, c2.course.interval_months, c2.course.prescription_gy) == (5, 18.0, None)
    assert c1.course.mapping.startswith("identity") and c2.course.mapping.startswith("identity")
    # identity mapping of the same RTDOSE: the one-folder import's trilinear resampling, x 1 and x 0.5
    assert float(one.max()) > 55
    assert np.allclose(c1.dose_gy, one, atol=1e-4) and np.allclose(c2.dose_gy, 0.5 * one, atol=1e-4)
    # effective prior EQD2 (a/b 3 Gy, nothing recovered) at the hottest voxel, by hand:
    # course 1: D1 (D1/20 + 3) / 5; course 2: D2 (D2/5 + 3) / 5
    hot = np.unravel_index(int(np.argmax(c1.dose_gy)), case.grid.shape)
    d1, d2 = float(c1.dose_gy[hot]), float(c2.dose_gy[hot])
    by_hand = d1 * (d1 / 20 + 3) / 5 + d2 * (d2 / 5 + 3) / 5
    value = float(prior_eqd2_at(case.prior_courses, lambda d: d[hot], 3.0, (0.0, 0.0)))
    assert value == pytest.approx(by_hand, rel=1e-9)
    summed_dose = (d1 + d2) * ((d1 + d2) / 25 + 3) / 5     # the summed physical dose in all 25 fractions: wrong
    assert abs(value - summed_dose) > 0.02 * value
    meta = json.loads((out / "case.json").read_text())
    assert meta["format_version"] == 2 and len(meta["source"]["prior_mappings"]) == 2
    assert [m["prior_dir"] for m in meta["source"]["prior_mappings"]] == [str(prior1.resolve()), str(prior2.resolve())]
    assert meta["source"]["registration"].startswith("prior course 1: identity")
    assert any(n.startswith("prior course 2: prior dose: mapped from") for n in meta["source"]["notes"])
    for png in ("registration_qa_course1.png", "registration_qa_course2.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("options, message", [
    (["--interval-months", "60"], r"--interval-months given 1 time \(60.0\) for 2 prior courses .*: give it once per "
                                  r"--prior, in the order of the --prior options"),
    (["--interval-months", "60", "--interval-months", "18", "--prior-fractions", "20"],
     r"--prior-fractions given 1 time \(20\) for 2 prior courses"),
    (["--interval-months", "60", "--interval-months", "18", "--registration", "identity", "--registration",
      "identity", "--registration", "identity"],
     r"--registration given 3 times .* give it once \(for every course\) or once per --prior"),
])
def test_option_counts_that_do_not_fit_the_priors_are_refused(folders, tmp_path, capsys, options, message):
    new, prior1, prior2, _ = folders
    out = tmp_path / "c"
    rc = cli_main(["import-dicom", str(new), "--prior", str(prior1), "--prior", str(prior2), *options,
                   "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert re.search(message, err), err


def test_several_values_without_prior_are_refused(realdata, tmp_path, capsys):
    rc = cli_main(["import-dicom", str(realdata / PELVIS), "--interval-months", "60", "--interval-months", "18",
                   "--out", str(tmp_path / "c")])
    assert rc == 2 and "--interval-months given 2 times (60.0, 18.0) without --prior" in capsys.readouterr().err


def test_one_rtdose_given_as_two_courses_is_refused(folders, tmp_path, capsys):
    new, prior1, _, _ = folders
    again = linked(prior1, tmp_path / "course1_again")
    rc = cli_main(["import-dicom", str(new), "--prior", str(prior1), "--prior", str(again), "--interval-months", "60",
                   "--interval-months", "18", "--voxel-mm", VOXEL_MM, "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert rc == 2 and "the same RTDOSE (SOP Instance UID)" in err and "counted twice" in err
