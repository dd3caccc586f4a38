"""The benchmark setups that ``optimizer_floor.py`` times and ``plan_rows.py`` can record, planned the same way.

A setup is ``npc-<mm>-<modality>`` (the NPC phantom at that grid, the default beams of ``plan()``: 9 photon
beams or 3 proton fields), ``tg119-<mm>-photon`` (the CORT TG-119 C-shape with benchmarks/tg119_protocol.toml
and tg119_settings.toml, 9 beams) or ``openkbp-<patient>-<modality>`` (an OpenKBP patient imported as the
README does, ``import-openkbp --interval-months 24 --recurrence-near Brainstem``, at its own grid, the optic
structures absent). The last two need REIRRAD_REALDATA.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODALITIES = ("photon", "proton", "carbon")


def is_setup(name: str) -> bool:
    """Whether ``name`` has the form of a setup (its last part a modality)."""
    parts = name.split("-")
    return len(parts) == 3 and parts[0] in ("npc", "tg119", "openkbp") and parts[2] in MODALITIES


def needs_realdata(name: str) -> bool:
    return name.startswith(("tg119", "openkbp"))


def plan_setup(name: str):
    """The plan of setup ``name`` (engine and settings at their defaults, as ``plan()`` has them); the
    OpenKBP import is outside the plan's own timing."""
    from reirrad_opt.planning import plan

    if not is_setup(name):
        raise ValueError(f"setup {name!r}: expected npc-<mm>-<modality>, tg119-<mm>-photon or "
                         f"openkbp-<patient>-<modality>")
    kind, part, modality = name.split("-")
    if kind == "npc":
        from phantoms.npc import make_npc_phantom

        return plan(make_npc_phantom(float(part)), modality=modality)
    if kind == "tg119":
        from benchmarks.tg119 import load_tg119, resample_case
        from reirrad_opt.planning_settings import load_settings

        return plan(resample_case(load_tg119(), float(part)), ROOT / "benchmarks" / "tg119_protocol.toml",
                    settings=load_settings(ROOT / "benchmarks" / "tg119_settings.toml"), modality=modality,
                    gantry_angles_deg=[40.0 * k for k in range(9)])
    from reirrad_opt.case import load_case
    from reirrad_opt.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        patient = Path(os.environ["REIRRAD_REALDATA"]) / "openkbp_hn" / part
        cli(["import-openkbp", str(patient), "--interval-months", "24", "--recurrence-near", "Brainstem",
             "--out", f"{tmp}/case"])
        case = load_case(f"{tmp}/case")
    return plan(case, modality=modality, absent=["OpticChiasm", "OpticNrv_L", "OpticNrv_R"])
