"""STUDY.toml: checks before any work (errors naming file, key and line), expansion and keys."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from reirrad_opt.cli import main
from reirrad_opt.study import StudyError, load_study

CASE = """
[[case]]
name = "npc"
phantom = "npc"
resolution_mm = 5.0
"""


def write(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sweep_is_a_cartesian_product_with_keys(tmp_path):
    spec = load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE + """
[sweep]
modality = ["photon", "proton"]
fractionation = ["bid-1.2", "qd-2.0"]
recovery = ["none", "constant:0.3", "table:12=0.1,36=0.5"]
"""))
    assert len(spec.variants) == 12 and len(spec.jobs) == 12
    assert spec.swept == ("modality", "fractionation", "recovery")
    assert len({j.key for j in spec.jobs}) == 12
    # one influence matrix per modality: fractionation and recovery do not change it
    assert len({j.influence_key for j in spec.jobs}) == 2
    photon = [j for j in spec.jobs if j.variant.modality == "photon"]
    assert photon[0].variant.beams == 9 and photon[0].variant.bixel_mm == 5.0 and photon[0].variant.rbe is None
    proton = [j for j in spec.jobs if j.variant.modality == "proton"]
    assert proton[0].variant.gantry_angles_deg == (90.0, 270.0, 180.0) and proton[0].variant.spot_spacing_mm == 5.0


def test_keys_follow_content(tmp_path):
    base = '[study]\nname = "s"\n' + CASE + '[sweep]\nbeams = [3, 4]\nrecovery = ["none", "constant:0.3"]\n'
    a = load_study(write(tmp_path, base, "a.toml"))
    b = load_study(write(tmp_path, base.replace('name = "s"', 'name = "renamed"'), "b.toml"))
    assert [j.key for j in a.jobs] == [j.key for j in b.jobs]          # the study's name is not content
    assert len({j.influence_key for j in a.jobs}) == 2                  # one per beam count
    c = load_study(write(tmp_path, base.replace("resolution_mm = 5.0", "resolution_mm = 4.0"), "c.toml"))
    assert not {j.key for j in a.jobs} & {j.key for j in c.jobs}
    protocol = tmp_path / "protocol.toml"
    from reirrad_opt.protocol import DEFAULT_PROTOCOL

    protocol.write_text(DEFAULT_PROTOCOL.read_text().replace('1 = "1 %"', '1 = "2 %"'))
    d = load_study(write(tmp_path, base.replace('name = "s"', 'name = "s"\nprotocol = "protocol.toml"'), "d.toml"))
    assert not {j.key for j in a.jobs} & {j.key for j in d.jobs}       # another protocol, other results


def test_photon_variants_ignore_particle_settings(tmp_path):
    spec = load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE + """
[sweep]
modality = ["photon", "proton"]
rbe = [1.1, 1.2]
"""))
    # two photon variants would be equal (the RBE does not apply): kept once
    assert [(v.modality, v.rbe) for v in spec.variants] == [("photon", None), ("proton", 1.1), ("proton", 1.2)]


def test_variant_list_over_defaults(tmp_path):
    spec = load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE + """
[defaults]
beams = 5
slip = "0.5Gy"
[defaults.options]
hold_dvh_points = false

[[variant]]
fractionation = "qd-2.0"

[[variant]]
interval_months = 12
options = { target_homogeneity_weight = 100.0 }
"""))
    v1, v2 = spec.variants
    assert v1.fractionation == "qd-2.0" and v1.beams == 5 and v1.slip == "0.5 Gy"
    assert dict(v1.options) == {"hold_dvh_points": False}
    assert v2.fractionation == "bid-1.2" and v2.interval_months == 12.0
    assert dict(v2.options) == {"hold_dvh_points": False, "target_homogeneity_weight": 100.0}
    assert spec.jobs[0].interval_months == 24.0 and spec.jobs[1].interval_months == 12.0


BAD = [
    # (text after [study] name, expected key text, expected line)
    (CASE + '[sweep]\nfractionation = ["bid-1.2", "qd-9.9"]\n', "[sweep] fractionation", 9),
    (CASE + '[sweep]\nmodality = ["photon", "electron"]\n', "[sweep] modality", 9),
    (CASE + '[sweep]\nrecovery = ["constant:1.5"]\n', "[sweep] recovery", 9),
    (CASE + '[sweep]\nbeams = 5\n', "[sweep] beams", 9),
    (CASE + '[sweep]\ncolour = ["red"]\n', "[sweep] colour", 9),
    (CASE + '[sweep.options]\nengine = ["lp", "simplex"]\n', "[sweep] options.engine", 9),
    (CASE + '[sweep.options]\nno_such_option = [1]\n', "[sweep] options no_such_option", 9),
    (CASE + '[[variant]]\nslip = "five"\n', "[[variant]] #1 slip", 9),
    (CASE + '[[variant]]\nmodality = "carbon"\n', "variant 1", 8),
    (CASE.replace("resolution_mm = 5.0", "resolution_mm = 12.0"), "[[case]] #1 resolution_mm", 7),
    (CASE.replace("resolution_mm = 5.0", "rgtv_size = 3.0"), "[[case]] #1 rgtv_size", 7),
    (CASE.replace("resolution_mm = 5.0", 'prior_levels_gy = { Liver = 20 }'), "[[case]] #1 prior_levels_gy", 7),
    (CASE.replace('phantom = "npc"', 'dicom = "dicom/pt1"'), "[[case]] #1 dicom", 6),
    (CASE.replace('phantom = "npc"', 'folder = "no/such/case"').replace("resolution_mm = 5.0", ""),
     "[[case]] #1 folder", 6),
    (CASE + CASE, "[[case]] #2 name", 10),
    (CASE + '[sweep]\nbeams = [3]\n[[variant]]\nbeams = 4\n', "[sweep] and [[variant]]", 8),
]


@pytest.mark.parametrize("body, where, line", BAD)
def test_bad_study_named_with_key_and_line(tmp_path, body, where, line):
    path = write(tmp_path, '[study]\nname = "s"\n' + body)
    with pytest.raises(StudyError) as err:
        load_study(path)
    text = str(err.value)
    assert text.startswith(f"{path}: line {line}: {where}:"), text


def test_toml_syntax_error_names_line(tmp_path):
    path = write(tmp_path, '[study]\nname = "s"\n' + CASE + '[sweep]\nbeams = [3,, 4]\nrecovery = ["none"]\n')
    with pytest.raises(StudyError, match=r"not valid TOML: .*line 9"):
        load_study(path)


def test_missing_study_table(tmp_path):
    with pytest.raises(StudyError, match=r"top level: key 'study' is missing"):
        load_study(write(tmp_path, CASE))


def test_cli_refuses_bad_study_before_any_work(tmp_path, capsys):
    path = write(tmp_path, '[study]\nname = "s"\n' + CASE + '[sweep]\nfractionation = ["qd-9.9"]\n')
    out = tmp_path / "out"
    assert main(["study", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"reirrad-opt study: error: .*study.toml: line 9: \[sweep\] fractionation: expected a "
                     r"fractionation of protocol 'npc_reirradiation_2021'", err), err
    assert not out.exists()


def test_cli_refuses_foreign_and_other_command_folders(tmp_path, capsys):
    path = write(tmp_path, '[study]\nname = "s"\n' + CASE)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["study", str(path), "--out", str(foreign)]) == 2
    assert "holds 1 file(s) not written by reirrad-opt study (notes.txt)" in capsys.readouterr().err
    from reirrad_opt.output_folder import write_marker

    other = tmp_path / "plan_out"
    other.mkdir()
    write_marker(other, "plan", "complete")
    assert main(["study", str(path), "--out", str(other)]) == 2
    assert "is the output of reirrad-opt plan, not of reirrad-opt study" in capsys.readouterr().err
    assert main(["study", str(path), "--out", str(tmp_path)]) == 2        # contains the study file
    assert "contains the input" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"


def _row(structure, metric, value, unit, cumulative, goal_id=None, priority=1):
    from types import SimpleNamespace

    return SimpleNamespace(structure=structure, metric=metric, value=value, unit=unit, cumulative=cumulative,
                           goal_id=goal_id or f"{structure}_{metric}", verdict="desirable", priority=priority,
                           sense="max", desirable=70.2, acceptable=81.0)


def test_record_groups_choose_the_columns():
    from types import SimpleNamespace

    import numpy as np
    import scipy.sparse as sp

    from reirrad_opt.study.results import measured_columns

    rows = [_row("Brainstem", "D0.03cc", 69.5, "Gy(RBE)", True), _row("PTV", "V107%", 1.5, "%", False, priority=2),
            _row("PTV", "V107%", None, "%", False, goal_id="PTV_V107%_strict", priority=2)]
    plan = SimpleNamespace(verdict="desirable", dose_unit="Gy(RBE)", rbe=1.1, evaluation=SimpleNamespace(rows=rows),
                           optimization=SimpleNamespace(tier_by_goal={"Brainstem_D0.03cc": "acceptable"}, notes=["b"],
                                                        engine="lp"),
                           timing_s={"optimize": 2.0, "evaluate": 0.5}, notes=["a"])
    influence = SimpleNamespace(meta={"seconds": 1.25}, matrix=sp.csr_matrix(np.ones((1000, 250), dtype=np.float32)))
    cols, lines = measured_columns(plan, ("verdict",), influence)
    assert cols == {"verdict": "desirable", "dose_unit": "Gy(RBE)", "rbe_used": 1.1, "engine": "lp"} and lines == {}
    cols, lines = measured_columns(plan, ("evaluation", "limit_tier", "timings", "notes"), influence)
    assert cols["Brainstem_D0.03cc_cumEQD2_Gy"] == 69.5 and cols["PTV_V107%_new_pct"] == 1.5
    assert cols["PTV_V107%_strict_new_pct"] is None        # a second line on the same metric: by goal id
    assert cols["Brainstem_D0.03cc_tier"] == "acceptable" and cols["notes"] == "a | b"
    assert cols["time_influence_s"] == 1.25 and cols["influence_MB"] == pytest.approx(2.0, abs=0.05)
    assert lines["Brainstem_D0.03cc_cumEQD2_Gy"]["priority"] == 1 and "verdict" not in cols


def test_scheduler_excludes_local_cluster_options(tmp_path, capsys):
    path = write(tmp_path, '[study]\nname = "s"\n' + CASE)
    code = main(["study", str(path), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:1",
                 "--workers", "2"])
    assert code == 2
    assert "--workers and --memory-limit set up the local cluster" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


LP = '[settings]\nengine = "lp"\n'


def test_a_settings_file_is_a_study_variable_and_part_of_the_key(tmp_path):
    """How the plan is computed (engine, its constants) comes from a planning settings file, as for
    `plan --settings`: swept like any variable, read and checked before any work, its content in the key."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "lp.toml").write_text(LP)
    spec = load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE + '[sweep]\nsettings = ["default", "cfg/lp.toml"]\n'))
    assert spec.swept == ("settings",) and len({j.key for j in spec.jobs}) == 2
    assert len({j.influence_key for j in spec.jobs}) == 1          # the settings do not change the matrix
    default, lp = (j.variant for j in spec.jobs)
    assert default.settings is None and lp.settings == str((tmp_path / "cfg" / "lp.toml").resolve())
    assert (tmp_path / "cfg" / "lp.toml").resolve() in spec.inputs()   # an output folder must keep away from it
    # a study without settings keeps the keys it had (no settings keys in the variant's record)
    plain = load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE, "plain.toml"))
    assert plain.jobs[0].key == spec.jobs[0].key
    assert "settings" not in default.to_dict()
    # an edited settings file plans again
    (tmp_path / "cfg" / "lp.toml").write_text(LP + "truncation = 0.02\n")
    again = load_study(tmp_path / "study.toml")
    assert again.jobs[0].key == spec.jobs[0].key and again.jobs[1].key != spec.jobs[1].key


@pytest.mark.parametrize("settings_text, value, words", [
    ('[settings]\nengine = "simplex"\n', '"bad.toml"', ["[sweep] settings", "bad.toml", "engine", "'simplex'"]),
    (None, '"missing.toml"', ["[sweep] settings", "missing.toml", "not found"]),
    (None, "3", ["[sweep] settings", "expected 'default' or the path of a settings file"]),
])
def test_a_bad_settings_file_is_refused_before_any_work(tmp_path, settings_text, value, words):
    if settings_text is not None:
        (tmp_path / "bad.toml").write_text(settings_text)
    with pytest.raises(StudyError) as info:
        load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE + f'[sweep]\nsettings = ["default", {value}]\n'))
    for word in words:
        assert word in str(info.value)


def test_a_settings_file_and_a_deprecated_protocol_option_for_the_same_plan_are_refused(tmp_path):
    (tmp_path / "lp.toml").write_text(LP)
    with pytest.raises(StudyError, match=r"options \['engine'\] are planning settings .*lp.toml"):
        load_study(write(tmp_path, '[study]\nname = "s"\n' + CASE + '[defaults]\nsettings = "lp.toml"\n'
                         '[defaults.options]\nengine = "first-order"\n'))
