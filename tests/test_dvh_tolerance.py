"""Tabulated cumulative DVHs (TPS exports): rounding noise below 0.01 % of the volume is accepted
and repaired (stated), a real rise is refused naming its bin."""
import csv

import numpy as np
import pytest

from reirrad_opt.evaluate import DVH
from reirrad_opt.evaluate.dvh import RISE_TOLERANCE_PCT
from conftest import require


def linear_curve(total_cc: float = 20.0):
    d = np.linspace(0.0, 10.0, 101)
    return d, total_cc * (1 - d / 10.0)


def test_rise_below_the_tolerance_is_made_monotonic_and_stated():
    d, v = linear_curve()
    # Eclipse's own export: the last non-zero bin 0.00022 % of the volume above the one before
    v[-2] = v[-3] + 0.0000022 * v[0]
    h = DVH.from_cumulative(d, v)
    assert np.all(np.diff(h.volume_cc) <= 0)
    assert h.volume_cc[-2] == pytest.approx(v[-3])          # running minimum
    assert len(h.notes) == 1 and "bin 99 (9.9 Gy)" in h.notes[0] and "running minimum" in h.notes[0]
    assert "0.01 % tolerance" in h.notes[0]
    # the metrics are those of the curve with that bin flat (a plateau of 9.8-9.9 Gy)
    d_flat, v_flat = linear_curve()
    v_flat[-2] = v_flat[-3]
    flat = DVH.from_cumulative(d_flat, v_flat)
    assert flat.notes == []
    assert h.d_at_volume_pct(50) == pytest.approx(flat.d_at_volume_pct(50))
    assert h.mean_gy == pytest.approx(flat.mean_gy, rel=1e-9)


def test_rise_above_the_tolerance_is_refused_naming_the_bin():
    d, v = linear_curve()
    v[40] = v[39] + 0.001 * v[0]                 # 0.1 % of the volume: not rounding
    with pytest.raises(ValueError, match=r"rises with dose at bin 40 \(4 Gy\).*0\.1 % of the structure volume"):
        DVH.from_cumulative(d, v)
    with pytest.raises(ValueError, match="tolerance 0.01 %"):
        DVH.from_cumulative(d, v)
    # the tolerance is a setting: a looser one accepts it (and says so)
    h = DVH.from_cumulative(d, v, rise_tolerance_pct=0.5)
    assert "bin 40" in h.notes[0]


def test_a_slow_climb_of_small_steps_is_judged_by_its_total_rise():
    # each step below the tolerance, but together 0.05 % above the lowest earlier volume
    d, v = linear_curve()
    v[50:56] = v[49] + np.arange(1, 7) * 0.00009 * v[0]
    with pytest.raises(ValueError, match="bin 55"):
        DVH.from_cumulative(d, v)


def test_other_bad_curves_are_refused():
    assert RISE_TOLERANCE_PCT == 0.01
    with pytest.raises(ValueError, match="ascending; bin 2"):
        DVH.from_cumulative([0, 2, 1], [10, 5, 0])
    with pytest.raises(ValueError, match="must be > 0"):
        DVH.from_cumulative([0, 1], [0, 0])
    with pytest.raises(ValueError, match="finite"):
        DVH.from_cumulative([0, 1], [10, float("nan")])
    with pytest.raises(ValueError, match="rise_tolerance_pct"):
        DVH.from_cumulative([0, 1], [10, 0], rise_tolerance_pct=-1)


@pytest.mark.realdata
def test_the_eclipse_table_imports_and_its_garbled_dose_row_is_named(realdata):
    path = require(realdata / "slicerrt_eclipse_prostate_phantom_partial" / "from_SlicerRT_TestingData"
                   / "EclipseProstate_DvhTable_Eclipse.csv")
    with open(path) as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    names = [header[c].split("_DvhArray")[0] for c in range(0, len(header) - 1, 2)]
    assert names == ["BODY", "Bladder", "FemoralHeadLt", "FemoralHeadRT", "PTV", "Rectum"]
    # The shipped table has one garbled dose (0.00035604 Gy between 35.558 and 35.65 Gy, bin 774,
    # the 35.604 Gy row): refused by name, then imported without that row.
    d_body = np.array([float(r[0]) for r in rows[1:]])
    with pytest.raises(ValueError, match=r"Eclipse DVH BODY: dose must be ascending; bin 774 \(0.00035604 Gy\)"):
        DVH.from_cumulative(d_body, np.linspace(1.0, 0.0, d_body.size), what="Eclipse DVH BODY")
    good = [r for i, r in enumerate(rows[1:]) if i != 774]
    for c, name in zip(range(0, len(header) - 1, 2), names):
        total_cc = float(header[c + 1].split("% of ")[1].split(" cc")[0])
        d = np.array([float(r[c]) for r in good])
        v = np.array([float(r[c + 1]) for r in good]) / 100.0 * total_cc
        h = DVH.from_cumulative(d, v, what=f"Eclipse DVH {name}")
        assert h.total_cc == pytest.approx(total_cc)
        assert h.notes == []      # the volumes of this export never rise: nothing to repair
