"""Organs that are not contoured: 'not evaluated' priority-1 lines make the plan 'incomplete'; organs
declared absent (argument, CLI mapping or protocol option) read 'absent' and do not block a pass.
Checked on a block phantom whose doses are constant over each organ's cell (values by hand)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reirrad_opt.absent import check_absent_names, declared_absent
from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.evaluate import evaluate_plan
from reirrad_opt.geometry import Grid, Structure
from reirrad_opt.protocol import DEFAULT_PROTOCOL, ProtocolError, load_protocol

GRID = Grid((6, 24, 36), (2.0, 2.0, 2.0))
ORGANS = ("Brainstem", "SpinalCord", "OpticChiasm", "OpticNrv_L", "OpticNrv_R", "Lobe_Temporal_L",
          "Lobe_Temporal_R", "A_Carotid_L", "A_Carotid_R")


def block_case(omit=(), empty=()):
    """Organs of 2x4x4 voxels in a row of 6x6 cells; rGTV and PTV in the second row. Prior 20 Gy in 25
    fractions everywhere (EQD2 well below every limit), new dose 60 Gy in the targets only."""
    structures = {}
    for k, name in enumerate(ORGANS):
        mask = np.zeros(GRID.shape, bool)
        r, c = divmod(k, 6)
        mask[2:4, 6 * r + 1:6 * r + 5, 6 * c + 1:6 * c + 5] = True
        if name in omit:
            continue
        structures[name] = Structure(name, mask if name not in empty else np.zeros(GRID.shape, bool))
    ptv = np.zeros(GRID.shape, bool)
    ptv[1:5, 13:23, 13:23] = True
    rgtv = np.zeros(GRID.shape, bool)
    rgtv[2:4, 15:21, 15:21] = True
    structures["PTV"] = Structure("PTV", ptv, "target")
    structures["rGTV"] = Structure("rGTV", rgtv, "target")
    new = np.zeros(GRID.shape)
    new[ptv] = 60.0
    case = Case("blocks", GRID, np.zeros(GRID.shape, np.float32), structures, np.full(GRID.shape, 20.0, np.float32),
                PriorCourse(25, 24.0, prescription_gy=50.0))
    return case, new


@pytest.fixture(scope="module")
def qd():
    return load_protocol(fractionation="qd-2.0")        # Rx 60 Gy in 30 fractions


def test_a_missing_priority1_organ_makes_the_plan_incomplete_and_declaring_it_absent_lets_it_pass(qd):
    case, new = block_case(omit=("OpticChiasm",))
    ev = evaluate_plan(case, qd, new)
    assert ev.verdict == "incomplete" and ev.incomplete and not ev.priority1_failed
    assert ev.row("OpticChiasm_D0.03cc").verdict == "not evaluated" and ev.not_contoured == ["OpticChiasm"]
    assert ev.summary.startswith("INCOMPLETE: OpticChiasm not contoured")

    ev = evaluate_plan(case, qd, new, absent=["OpticChiasm"])
    chiasm = ev.row("OpticChiasm_D0.03cc")
    assert chiasm.verdict == "absent" and chiasm.value is None and chiasm.margin is None
    assert chiasm.note.startswith("declared absent (absent=... (Python))")
    # every other priority-1 line: organs at EQD2 20 Gy, rGTV D98% 60 Gy >= 58.8 Gy
    assert ev.verdict == "desirable", ev.summary
    assert ev.absent == {"OpticChiasm": "absent=... (Python)"}
    doc = ev.to_dict()
    assert doc["absent_structures"] == {"OpticChiasm": "absent=... (Python)"} and doc["verdict"] == "desirable"
    assert doc["verdict_detail"].endswith("declared absent: OpticChiasm.")
    json.dumps(doc)


def test_a_structure_cannot_be_both_declared_absent_and_contoured(qd):
    case, new = block_case()
    with pytest.raises(ValueError, match=r"OpticChiasm is declared absent \(--absent\) but case 'blocks' contours "
                                         r"it as 'OpticChiasm' \(32 voxels\): it cannot be both"):
        evaluate_plan(case, qd, new, absent={"OpticChiasm": "--absent"})
    # present in the case but without a voxel: may be declared absent
    case, new = block_case(empty=("OpticChiasm",))
    assert evaluate_plan(case, qd, new).verdict == "incomplete"
    assert evaluate_plan(case, qd, new, absent=["OpticChiasm"]).row("OpticChiasm_D0.03cc").verdict == "absent"


def test_the_protocol_option_declares_absent_and_is_recorded_with_its_file(qd, tmp_path):
    text = DEFAULT_PROTOCOL.read_text(encoding="utf-8").replace(
        "[options]\n", '[options]\nabsent_structures = ["OpticChiasm", "OpticNrv_L"]\n', 1)
    path = tmp_path / "npc_no_optics.toml"
    path.write_text(text, encoding="utf-8")
    protocol = load_protocol(path, fractionation="qd-2.0")
    assert protocol.options["absent_structures"] == ("OpticChiasm", "OpticNrv_L")
    case, new = block_case(omit=("OpticChiasm", "OpticNrv_L"))
    ev = evaluate_plan(case, protocol, new, absent={"OpticNrv_L": "--absent"})
    how = "protocol option absent_structures (npc_no_optics.toml)"
    assert ev.absent == {"OpticChiasm": how, "OpticNrv_L": f"{how}; --absent"}
    assert ev.verdict == "desirable"


def test_unknown_or_target_names_are_refused_with_the_nearest_protocol_name(tmp_path, qd):
    known = [g.structure for g in qd.goals]
    with pytest.raises(ValueError, match=r"--absent: 'OpticChiasma' is not a structure of the protocol; did you mean "
                                         r"OpticChiasm\?"):
        check_absent_names(["OpticChiasma"], known, "--absent")
    with pytest.raises(ValueError, match="did you mean OpticNrv_L"):
        check_absent_names(["opticnrv_l"], known, "--absent")
    with pytest.raises(ValueError, match="PTV is a target"):
        check_absent_names(["PTV"], known, "--absent")
    with pytest.raises(ValueError, match="single string"):
        declared_absent(qd, "OpticChiasm")
    assert check_absent_names(["OpticNrv_R", "OpticNrv_R"], known, "x") == ["OpticNrv_R"]
    text = DEFAULT_PROTOCOL.read_text(encoding="utf-8").replace(
        "[options]\n", '[options]\nabsent_structures = ["Chiasm"]\n', 1)
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ProtocolError, match=r"bad.toml: \[options\] absent_structures: 'Chiasm' is not a structure "
                                            r"of the protocol; did you mean OpticChiasm\?"):
        load_protocol(path)
    path.write_text(text.replace('["Chiasm"]', '"OpticChiasm"'), encoding="utf-8")
    line = text.splitlines().index("[options]") + 2          # the key's own line, 1-based
    with pytest.raises(ProtocolError, match=rf"bad.toml: \[options\] absent_structures \(line {line}\): expected a "
                                            rf"list of structure names"):
        load_protocol(path)


def test_plan_refuses_a_contoured_absent_structure_before_computing_any_dose():
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.planning import plan

    def no_dose(*args, **kwargs):
        raise AssertionError("the dose was computed before the declaration was checked")

    import reirrad_opt.dose as dose_pkg
    original = dose_pkg.compute_influence
    dose_pkg.compute_influence = no_dose
    try:
        with pytest.raises(ValueError, match="OpticChiasm is declared absent .* it cannot be both"):
            plan(make_npc_phantom(5.0), absent=["OpticChiasm"])
        with pytest.raises(ValueError, match="did you mean OpticChiasm"):
            plan(make_npc_phantom(5.0), absent=["Optic_Chiasm"])
    finally:
        dose_pkg.compute_influence = original
