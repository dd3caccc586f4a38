"""The optimizer's boundaries: it never imports the evaluation (the sample points both use live in
reirrad_opt.geometry.sampling, the evaluation's reading of a goal is passed in), and plan() leaves
its arguments as they were."""
import ast
import subprocess
import sys
from pathlib import Path

import numpy as np

from phantoms.npc import make_npc_phantom
from reirrad_opt.planning import plan
from reirrad_opt.protocol import load_protocol
from reirrad_opt.radiobiology import RecoveryModel

OPTIMIZE = Path(__file__).resolve().parents[1] / "reirrad_opt" / "optimize"


def test_no_optimize_module_imports_the_evaluation():
    offenders = []
    for path in sorted(OPTIMIZE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = ("." * node.level) + (node.module or "")
                if name.startswith("..evaluate") or name.startswith("reirrad_opt.evaluate"):
                    offenders.append(f"{path.name}: from {name}")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name}: import {a.name}" for a in node.names
                              if a.name.startswith("reirrad_opt.evaluate")]
    assert offenders == []
    code = ("import sys, reirrad_opt.optimize, reirrad_opt.optimize.build\n"
            "loaded = [m for m in sys.modules if m.startswith('reirrad_opt.evaluate')]\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_evaluations_sampling_is_the_shared_module():
    from reirrad_opt.evaluate import sampling as old
    from reirrad_opt.geometry import sampling as shared

    assert old.sample_points is shared.sample_points and old.SamplePoints is shared.SamplePoints


def test_plan_does_not_modify_its_case_or_protocol():
    """A case without rCTV/PTV: the plan derives them on its own copy; a recovery given to plan() is
    applied to the plan's protocol, not to the caller's."""
    case = make_npc_phantom(5.0)
    del case.structures["rCTV"], case.structures["PTV"]
    names = list(case.structures)
    protocol = load_protocol(None)
    before = protocol.recovery
    constant = RecoveryModel(kind="constant", fraction=0.25)
    p = plan(case, protocol, gantry_angles_deg=[0.0, 120.0, 240.0], recovery=constant)
    assert list(case.structures) == names                       # the caller's case: no rCTV/PTV added
    assert {"rCTV", "PTV"} <= set(p.case.structures) and p.case.structures["PTV"].mask.any()
    assert protocol.recovery is before and protocol.recovery.kind == "none"
    assert p.protocol.recovery == constant
    assert np.array_equal(p.case.ct_hu, case.ct_hu)
