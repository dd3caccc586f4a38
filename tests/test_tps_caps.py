"""The new-course cap map (reirrad_opt/tps/caps.py) on a small synthetic case with known prior doses.

Physics is checked against the LQ model written out here, not against the code's own inversion:
prior EQD2 + EQD2 of the cap in the new fractions = the cumulative limit, voxel by voxel; the
smallest cap holds where organs overlap; a voxel whose prior EQD2 alone reaches the limit gets 0."""
from __future__ import annotations

import numpy as np
import pytest

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure
from reirrad_opt.protocol import load_protocol
from reirrad_opt.tps.caps import cap_map

N_PRIOR, N_NEW = 33, 54


def _eqd2(dose_gy, n, ab):
    dose_gy = np.asarray(dose_gy, dtype=float)
    return dose_gy * (dose_gy / n + ab) / (2.0 + ab)


@pytest.fixture(scope="module")
def case():
    grid = Grid((1, 4, 6), (3.0, 3.0, 3.0))
    prior = np.zeros(grid.shape, np.float32)
    prior[0, :, :] = np.linspace(10.0, 80.0, 6)[None, :]      # Gy, rising along x
    brainstem = np.zeros(grid.shape, bool)
    brainstem[0, 0:2, :] = True
    cord = np.zeros(grid.shape, bool)
    cord[0, 1:3, :] = True                                      # row 1 overlaps the brainstem
    body = np.ones(grid.shape, bool)
    structures = {"Brainstem": Structure("Brainstem", brainstem, "oar"),
                  "SpinalCord": Structure("SpinalCord", cord, "oar"),
                  "External": Structure("External", body, "external")}
    return Case("caps", grid, np.zeros(grid.shape, np.float32), structures, prior,
                PriorCourse(n_fractions=N_PRIOR, interval_months=24.0))


def test_caps_invert_the_cumulative_limit_voxel_by_voxel(case):
    protocol = load_protocol(None, fractionation="bid-1.2")
    caps = cap_map(case, protocol, N_NEW)
    prior = case.prior_dose_gy.astype(float)
    for goal_id, name, limit in (("Brainstem_D0.03cc", "Brainstem", 70.2), ("SpinalCord_D0.03cc", "SpinalCord", 58.5)):
        line = caps.line(goal_id)
        assert (line.tier, line.limit_eqd2_gy) == ("desirable", limit)
        mask = case.structures[name].mask
        left = limit - _eqd2(prior[mask], N_PRIOR, 2.5)
        ok = left > 0
        assert np.allclose(_eqd2(line.cap_gy[ok], N_NEW, 2.5), left[ok], atol=1e-9)
        assert np.all(line.cap_gy[~ok] == 0.0) and (~ok).any()   # 80 Gy in 33 fx exhausts both organs
        assert line.exhausted_cc == pytest.approx((~ok).sum() * 0.027)
        assert line.min_cap_gy == 0.0 and line.max_cap_gy == pytest.approx(line.cap_gy.max())


def test_overlaps_take_the_smallest_cap_and_uncovered_voxels_none(case):
    protocol = load_protocol(None, fractionation="bid-1.2")
    caps = cap_map(case, protocol, N_NEW)
    bs, sc = caps.line("Brainstem_D0.03cc"), caps.line("SpinalCord_D0.03cc")
    # row 1 is in both organs: the cord's lower limit (58.5 < 70.2 Gy EQD2) decides there
    row1_bs = bs.cap_gy.reshape(2, 6)[1]
    row1_sc = sc.cap_gy.reshape(2, 6)[0]
    assert np.array_equal(caps.cap_gy[0, 1], np.minimum(row1_bs, row1_sc))
    assert np.all(row1_sc <= row1_bs) and np.any(row1_sc < row1_bs)
    assert np.array_equal(caps.cap_gy[0, 0], bs.cap_gy.reshape(2, 6)[0])
    assert np.all(np.isnan(caps.cap_gy[0, 3]))                 # row 3: no organ with a cumulative limit
    assert np.all(caps.filled(74.52)[0, 3] == np.float32(74.52))


def test_acceptable_tier_and_rbe(case):
    protocol = load_protocol(None, fractionation="bid-1.2")
    caps = cap_map(case, protocol, N_NEW, tiers={"Brainstem_D0.03cc": "acceptable"}, rbe=1.1, unit="Gy(RBE)")
    line = caps.line("Brainstem_D0.03cc")
    assert (line.tier, line.limit_eqd2_gy) == ("acceptable", 81.0)
    assert caps.line("SpinalCord_D0.03cc").tier == "desirable"
    assert np.allclose(caps.physical_cap_gy[0, 0], caps.cap_gy[0, 0] / 1.1)
    with pytest.raises(ValueError, match="default_tier"):
        cap_map(case, protocol, N_NEW, default_tier="planned")


MEAN_PROTOCOL = """
[protocol]
name = "mean_test"
schema_version = 1
description = "a cumulative mean-dose limit next to a D0.03cc one"

[prescription]
eqd2_gy = 60.0
eqd2_range_gy = [60.0, 66.0]
alpha_beta_gy = 10.0
default_fractionation = "bid-1.2"

[fractionations."bid-1.2"]
dose_per_fraction_gy = 1.2
n_fractions = 54
fractions_per_day = 2
min_interval_h = 6.0

[slips]
1 = "1 %"

[[goal]]
structure = "Brainstem"
priority = 1
metric = "Dmean"
sense = "max"
desirable = "40 Gy"
cumulative = true
alpha_beta_gy = 2.5

[[goal]]
structure = "SpinalCord"
priority = 1
metric = "D0.03cc"
sense = "max"
desirable = "58.5 Gy"
cumulative = true
alpha_beta_gy = 2.5
"""


def test_a_cumulative_mean_limit_is_no_voxel_cap(case, tmp_path):
    path = tmp_path / "mean.toml"
    path.write_text(MEAN_PROTOCOL)
    caps = cap_map(case, load_protocol(path), N_NEW)
    assert [c.goal_id for c in caps.lines] == ["SpinalCord_D0.03cc"]
    assert np.all(np.isnan(caps.cap_gy[0, 0]))          # brainstem-only row: no cap
