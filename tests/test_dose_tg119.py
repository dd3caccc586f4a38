"""The CORT TG-119 phantom (matRad format) read into a Case, and a coarse influence run on it."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require

from reirrad_opt.dose import compute_influence, photon_beams

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the benchmarks/ folder holds the reader
from benchmarks.tg119 import load_tg119, resample_case  # noqa: E402


@pytest.mark.realdata
def test_tg119_reads_and_supports_an_influence_run(realdata):
    case = load_tg119(require(realdata / "cort_tg119_matrad" / "TG119.mat"))
    assert set(case.structures) == {"PTV", "Core", "External"}
    ptv, core, body = (case.structures[n].mask for n in ("PTV", "Core", "External"))
    assert case.structures["PTV"].role == "target" and case.structures["External"].role == "external"
    # CORT TG-119 geometry: a C-shaped target wrapped around a central core, both inside the body
    assert not (ptv & core).any() and (ptv <= body).all() and (core <= body).all()
    g = case.grid
    c_core = g.index_to_patient(np.argwhere(core).mean(axis=0))
    c_ptv = g.index_to_patient(np.argwhere(ptv).mean(axis=0))
    assert np.linalg.norm(c_ptv - c_core) < 25.0           # the C surrounds the core
    assert case.ct_hu[body].mean() == pytest.approx(0.0, abs=60.0)   # water-like phantom
    coarse = resample_case(case, 10.0)
    beams = photon_beams(coarse.grid, coarse.structures["PTV"].mask, gantry_angles_deg=[0.0])
    inf = compute_influence(coarse.grid, coarse.ct_hu, coarse.body, beams)
    dose = inf.dose(np.ones(inf.n_columns))
    assert dose[coarse.structures["PTV"].mask].mean() > dose[~coarse.body].max()
