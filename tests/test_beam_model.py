"""The particle beam model file: validation with the file, key and line named; spot size, energy
spread, growth and range shifter reaching the dose; ``--beam-model`` recorded in plan.json and
report.html."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad

from phantoms.water import water_box
from reirrad_opt.cli import main
from reirrad_opt.dose import ParticleField, compute_influence
from reirrad_opt.dose.beam_model import BeamModelError, default_beam_model, load_beam_model
from reirrad_opt.dose.direct import direct_dose
from reirrad_opt.dose.particle import csda_range_mm, energy_for_range, r80_mm, spot_kernel

GOOD = """[beam_model]
name = "test machine"
ion = "proton"
energies_mev = [70.0, 230.0]
spot_sigma_mm = [5.0, 2.0]
energy_spread_percent = [0.5, 0.3]
sigma_growth_mm_per_mm = 0.0
"""


def _write(tmp_path: Path, text: str, name: str = "machine.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_generic_model_is_the_shipped_file_with_the_former_numbers():
    m = default_beam_model("proton")
    assert m.name == "generic" and m.source == "shipped: generic.toml"
    # linear 6.0 mm at 70 MeV to 3.0 mm at 230 MeV, constant outside
    assert float(m.sigma_air_mm(150.0)) == pytest.approx(4.5)
    assert float(m.sigma_air_mm(50.0)) == pytest.approx(6.0) and float(m.sigma_air_mm(250.0)) == pytest.approx(3.0)
    assert float(m.energy_spread_rel(150.0)) == 0.0
    c = default_beam_model("carbon")
    assert c.ion == "carbon" and float(c.sigma_air_mm(100.0)) == pytest.approx(4.0)


def test_a_valid_file_is_read(tmp_path):
    m = load_beam_model(_write(tmp_path, GOOD + "\n[range_shifter]\nwet_mm = 40.0\nisocenter_distance_mm = 300.0\n"))
    assert m.name == "test machine" and m.energies_mev == (70.0, 230.0)
    assert float(m.energy_spread_rel(150.0)) == pytest.approx(0.004)
    assert m.range_shifter.wet_mm == 40.0 and m.range_shifter.isocenter_distance_mm == 300.0


@pytest.mark.parametrize("old, new, key, line, words", [
    ("spot_sigma_mm = [5.0, 2.0]", "spot_sigma_mm = [5.0]", "spot_sigma_mm", 5, "expected 2 values"),
    ("spot_sigma_mm = [5.0, 2.0]", "spot_sigma_mm = [5.0, 0.0]", "spot_sigma_mm", 5, "outside the plausible range"),
    ("energies_mev = [70.0, 230.0]", "energies_mev = [230.0, 70.0]", "energies_mev", 4, "must increase"),
    ('ion = "proton"', 'ion = "helium"', "ion", 3, "expected one of"),
    ("energy_spread_percent = [0.5, 0.3]", "energy_spread_percent = [0.5, 9.0]", "energy_spread_percent", 6,
     "outside the plausible range"),
    ("sigma_growth_mm_per_mm = 0.0", "sigma_growth_mm_per_mm = 0.0\nspot_size = 3", "spot_size", 8, "unknown key"),
    ("energy_spread_percent = [0.5, 0.3]", 'energy_spread_percent = ["a", 0.3]', "energy_spread_percent", 6,
     "expected numbers"),
])
def test_bad_values_are_refused_naming_file_key_and_line(tmp_path, old, new, key, line, words):
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(BeamModelError) as info:
        load_beam_model(path)
    msg = str(info.value)
    assert str(path) in msg and key in msg and f"(line {line})" in msg and words in msg


def test_missing_key_and_missing_table_are_named(tmp_path):
    with pytest.raises(BeamModelError, match="'spot_sigma_mm' is missing"):
        load_beam_model(_write(tmp_path, GOOD.replace("spot_sigma_mm = [5.0, 2.0]\n", "")))
    with pytest.raises(BeamModelError, match=r"the \[beam_model\] table is missing"):
        load_beam_model(_write(tmp_path, "name = 'x'\n", "b.toml"))
    with pytest.raises(BeamModelError, match=r"\[range_shifter\].*wet_mm"):
        load_beam_model(_write(tmp_path, GOOD + "[range_shifter]\nwet_mm = 40.0\n", "c.toml"))


def test_spot_size_and_energy_spread_come_from_the_model(tmp_path):
    m = load_beam_model(_write(tmp_path, GOOD))
    k_gen = spot_kernel(150.0, "proton")
    k = spot_kernel(150.0, "proton", beam=m)
    assert k.sigma_air_mm == pytest.approx(3.5) and k_gen.sigma_air_mm == pytest.approx(4.5)
    z = k.step_mm * np.arange(k.idd.size)
    # energy spread: same R80 (a symmetric range spread), lower and wider peak, same energy
    assert r80_mm(z, k.idd) == pytest.approx(r80_mm(z[:k_gen.idd.size], k_gen.idd), abs=0.3)
    assert k.idd.max() < 0.95 * k_gen.idd.max()


def _one_spot_dose(model, energy=150.0, spacing=(2.0, 2.0, 2.0)):
    case = water_box(120.0, 200.0, 120.0, spacing_mm=spacing)
    # the water spans y = 0 to 200 mm; gantry 0 runs towards +y; the isocentre at y = 100 mm
    f = ParticleField(0.0, 0.0, (0.0, 100.0, 0.0), "proton", 5.0, [0.0], [0.0], [energy], beam_model=model)
    inf = compute_influence(case.grid, case.ct_hu, case.body, [f], rel_cutoff=1e-6)
    return case, f, inf.dose(np.ones(1))


def _sigma_lateral(dose_plane, x):
    prof = dose_plane.sum(axis=0)
    mean = (prof * x).sum() / prof.sum()
    return float(np.sqrt((prof * (x - mean) ** 2).sum() / prof.sum()))


def test_spot_size_growth_with_distance_reaches_the_matrix_exactly(tmp_path):
    """With growth g the in-air sigma at a point w mm downstream of the isocentre is s0 + g w;
    the matrix equals the direct calculation, and the spread differs between two depths as the
    model says."""
    m = load_beam_model(_write(tmp_path, GOOD.replace("sigma_growth_mm_per_mm = 0.0", "sigma_growth_mm_per_mm = 0.02")))
    case, field, dose = _one_spot_dose(m)
    ref = direct_dose(case.grid, case.ct_hu, case.body, field)
    assert np.max(np.abs(dose - ref)) <= 2e-3 * ref.max()
    flat_case, _, flat = _one_spot_dose(load_beam_model(_write(tmp_path, GOOD, "flat.toml")))
    y = case.grid.axis_coordinates_mm()[1] - 100.0                # distance downstream of the isocentre
    x = case.grid.axis_coordinates_mm()[2]
    for w in (-60.0, 20.0):                                       # 40 and 120 mm deep (range 158 mm)
        j = int(np.argmin(np.abs(y - w)))
        s_g, s_0 = _sigma_lateral(dose[:, j, :], x), _sigma_lateral(flat[:, j, :], x)
        s_air = float(m.sigma_air_mm(150.0))
        expected = np.sqrt(s_0 ** 2 - s_air ** 2 + (s_air + 0.02 * w) ** 2)
        assert s_g == pytest.approx(expected, rel=0.02)


def test_range_shifter_serves_shallow_layers_and_adds_highland_scatter(tmp_path):
    text = GOOD + "\n[range_shifter]\nwet_mm = 40.0\nisocenter_distance_mm = 300.0\n"
    m = load_beam_model(_write(tmp_path, text))
    shallow = float(csda_range_mm(70.0)) - 15.0                        # below the machine's lowest range
    k = spot_kernel(float(np.round(energy_for_range(shallow + 40.0), 3)), "proton", beam=m, rs_wet_mm=40.0)
    z = k.step_mm * np.arange(k.idd.size)
    assert r80_mm(z, k.idd) == pytest.approx(shallow, abs=0.5)
    # scatter in a 40 mm water slab 300 mm upstream of the isocentre: Highland with its log term
    e = k.energy_mev_u
    r_in = float(csda_range_mm(e))

    def inv_pv2(x):
        t = e * ((r_in - x) / r_in) ** (1 / 1.77)
        return 1.0 / ((t * t + 2 * t * 938.272) / (t + 938.272)) ** 2

    theta = 14.1 * (1 + np.log10(40.0 / 360.8) / 9) * np.sqrt(quad(inv_pv2, 0.0, 40.0)[0] / 360.8)
    extra = theta * np.sqrt(300.0 ** 2 + 300.0 * 40.0 + 40.0 ** 2 / 3)
    s_nozzle = float(m.sigma_air_mm(e))
    assert k.sigma_air_mm == pytest.approx(np.hypot(s_nozzle, extra), rel=0.05)
    assert extra > 1.0          # a shifter far from the patient matters (mm)


def test_particle_fields_put_the_shifter_in_for_layers_the_machine_cannot_reach(tmp_path):
    from reirrad_opt.dose import particle_fields

    m = load_beam_model(_write(tmp_path, GOOD + "\n[range_shifter]\nwet_mm = 40.0\nisocenter_distance_mm = 300.0\n"))
    case = water_box(60.0, 120.0, 60.0, spacing_mm=(3.0, 3.0, 3.0))
    y = case.grid.voxel_centres_xyz(np.arange(case.grid.n_voxels))[:, 1].reshape(case.grid.shape)
    target = (np.abs(y - 20.0) < 10.0) & case.body          # 10-30 mm deep (the water starts at y = 0)
    target &= np.abs(case.grid.voxel_centres_xyz(np.arange(case.grid.n_voxels))[:, 0].reshape(case.grid.shape)) < 8
    (field,) = particle_fields(case.grid, target, case.ct_hu, [0.0], beam_model=m)
    r70 = float(csda_range_mm(70.0))
    shifted = field.spot_rs_wet_mm > 0
    assert shifted.any() and np.all(field.spot_range_mm[shifted] < r70)
    np.testing.assert_allclose(field.spot_range_mm, csda_range_mm(field.spot_energy_mev) - field.spot_rs_wet_mm)
    assert np.all(field.spot_energy_mev[shifted] >= 70.0 - 1e-3)
    case_dose = compute_influence(case.grid, case.ct_hu, case.body, [field]).dose(np.ones(field.n_columns))
    assert case_dose[target].min() > 0


def test_cli_beam_model_is_validated_and_recorded(tmp_path, capsys):
    bad = _write(tmp_path, GOOD.replace("spot_sigma_mm = [5.0, 2.0]", "spot_sigma_mm = [5.0, 50.0]"), "bad.toml")
    assert main(["plan", "--phantom", "npc", "--modality", "proton", "--beam-model", str(bad),
                 "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "bad.toml" in err and "spot_sigma_mm" in err and "(line 5)" in err
    assert not (tmp_path / "x").exists()
    good = _write(tmp_path, GOOD)
    rc = main(["plan", "--phantom", "npc", "--resolution-mm", "5", "--modality", "proton", "--beam-model", str(good),
               "--spot-spacing-mm", "8", "--quiet", "--out", str(tmp_path / "p")])
    assert rc in (0, 3)
    meta = json.loads((tmp_path / "p" / "plan.json").read_text())
    import hashlib

    # recorded by a portable path (here the name: the file lies outside the current folder) and its hash
    assert meta["beam_model"]["name"] == "test machine" and meta["beam_model"]["source"] == "machine.toml"
    assert meta["beam_model"]["sha256"] == hashlib.sha256(good.read_bytes()).hexdigest()
    assert meta["beam_model"]["spot_sigma_mm"] == [5.0, 2.0]
    assert "test machine" in (tmp_path / "p" / "report.html").read_text()
