"""Distal-end check on a water box: organs placed at known water depths behind, in front of and
beside a proton field whose spots stop at known ranges (R80 = CSDA range in water)."""
import numpy as np
import pytest

from phantoms.water import water_box
from reirrad_opt.compare.distal import Organ, distal_end_check, water_equivalent_density
from reirrad_opt.dose import ParticleField, compute_influence
from reirrad_opt.dose.particle import energy_for_range

SPACING = 5.0
RANGES_MM = (80.0, 85.0, 90.0, 95.0, 100.0)   # deepest spots stop (R80) at 100 mm of water


@pytest.fixture(scope="module")
def box():
    # water from y = 0 (entrance surface of a gantry-0 field, which travels towards +y) to 150 mm;
    # voxel centres at y = 1, 3, 5, ... mm, so water depth = y
    case = water_box(width_x_mm=60.0, depth_mm=150.0, width_z_mm=60.0, spacing_mm=(2.5, 2.0, 2.5))
    g = np.arange(-2, 3) * SPACING
    u, v = np.meshgrid(g, g, indexing="ij")
    u, v = np.tile(u.ravel(), len(RANGES_MM)), np.tile(v.ravel(), len(RANGES_MM))
    e = np.repeat(energy_for_range(np.array(RANGES_MM)), u.size // len(RANGES_MM))
    fld = ParticleField(0.0, 0.0, (0.0, 80.0, 0.0), "proton", SPACING, u, v, e)
    inf = compute_influence(case.grid, case.ct_hu, case.body, [fld])
    return case, fld, inf


def slab(case, y0, y1, x0=-7.5, x1=7.5):
    z, y, x = np.meshgrid(*case.grid.axis_coordinates_mm(), indexing="ij")
    return (y >= y0) & (y < y1) & (x >= x0) & (x < x1) & (np.abs(z) < 7.5)


def run(case, fld, inf, organs, weights=None, **kw):
    w = np.ones(inf.n_columns) if weights is None else weights
    return distal_end_check(case.grid, water_equivalent_density(case.ct_hu, case.body), [fld], inf.columns, w,
                            organs, matrix=inf.matrix, plan_dose_gy=inf.dose(w), **kw)


def test_spot_ranges_are_the_planned_ones(box):
    _, fld, _ = box
    assert np.allclose(np.unique(fld.spot_range_mm), RANGES_MM, atol=0.05)


def test_organ_at_the_end_of_range_is_flagged_and_upstream_is_not(box):
    case, fld, inf = box
    organs = [Organ("Brainstem", slab(case, 102.0, 106.0), 1),        # depths 103, 105: R80 100 -> 105
              Organ("SpinalCord", slab(case, 30.0, 40.0), 1),         # in the entrance path
              Organ("Lobe_Temporal_L", slab(case, 102.0, 106.0, 17.5, 27.5), 2)]   # beside the field
    rep = run(case, fld, inf, organs)
    assert rep.flagged("nominal") == {"Brainstem"}
    hit = next(h for h in rep.hits if h.scenario == "nominal")
    assert hit.priority == 1 and hit.field_index == 0
    assert hit.depth_range_mm[0] >= 100.0 and hit.depth_range_mm[1] <= 105.0
    # the 25 deepest spots (R80 = 100 mm) end in front of it; the slab spans 3 x 3 lateral cells
    assert hit.n_spots == 9
    # beyond the distal 80 % point the dose is below 80 % of the peak (and not zero 3-5 mm beyond)
    axis_dose = inf.dose(np.ones(inf.n_columns))
    assert 0.0 < hit.max_field_dose_gy < 0.8 * axis_dose.max()
    assert hit.max_plan_dose_gy == pytest.approx(hit.max_field_dose_gy, rel=1e-5)   # one field
    assert "Brainstem" in rep.warnings()[0]


def test_range_error_scenarios(box):
    case, fld, inf = box
    # depths 107 and 109 mm: beyond the nominal region (100-105 mm), inside the +3.5 % overshoot
    # region of the deepest spots (103.5-108.5 mm), outside every undershoot region
    organs = [Organ("OpticChiasm", slab(case, 106.0, 110.0), 1)]
    rep = run(case, fld, inf, organs, range_error_pct=3.5)
    assert rep.flagged("nominal") == set()
    assert rep.flagged("overshoot") == {"OpticChiasm"}
    assert rep.flagged("undershoot") == set()
    hit = rep.hits[0]
    assert hit.depth_range_mm == (pytest.approx(107.0, abs=0.2), pytest.approx(107.0, abs=0.2))
    # an organ just inside the nominal region leaves it when the spots undershoot by 3.5 %
    near = [Organ("Brainstem", slab(case, 102.0, 106.0), 1)]
    rep2 = run(case, fld, inf, near, range_error_pct=3.5)
    assert rep2.flagged("nominal") == {"Brainstem"} and rep2.flagged("undershoot") == set()
    assert rep2.flagged(None) == {"Brainstem"}


def test_margin_and_weight_threshold(box):
    case, fld, inf = box
    organs = [Organ("OpticChiasm", slab(case, 106.0, 110.0), 1)]
    # a 10 mm distal region reaches 107 mm nominally
    assert run(case, fld, inf, organs, distal_margin_mm=10.0).flagged("nominal") == {"OpticChiasm"}
    # without weight on the deepest layer the organ behind it is no longer at anyone's end of range
    w = np.ones(inf.n_columns)
    w[np.isclose(inf.columns["range_r80_mm"], 100.0, atol=0.05)] = 0.01
    organs = [Organ("Brainstem", slab(case, 102.0, 106.0), 1)]
    rep = run(case, fld, inf, organs, weights=w)
    assert rep.flagged("nominal") == set()
    # ... except if the 95 mm spots overshoot by 3.5 %: 98.3 to 103.3 mm holds the 103 mm voxels
    assert rep.flagged("overshoot") == {"Brainstem"}
    assert all(h.depth_range_mm == pytest.approx((103.0, 103.0), abs=0.2) for h in rep.hits)
    assert run(case, fld, inf, organs, weights=w, min_weight_fraction=0.005).flagged("nominal") == {"Brainstem"}


def test_bad_parameters(box):
    case, fld, inf = box
    organs = [Organ("Brainstem", slab(case, 102.0, 106.0), 1)]
    with pytest.raises(ValueError, match="distal_margin_mm"):
        run(case, fld, inf, organs, distal_margin_mm=0.0)
    with pytest.raises(ValueError, match="weights"):
        run(case, fld, inf, organs, weights=np.ones(3))
    photon_columns = {k: v for k, v in inf.columns.items() if k != "range_r80_mm"}
    with pytest.raises(ValueError, match="range_r80_mm"):
        distal_end_check(case.grid, water_equivalent_density(case.ct_hu, case.body), [fld], photon_columns,
                         np.ones(inf.n_columns), organs)
