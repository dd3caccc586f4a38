"""OpenKBP reader on small synthetic patient folders (written here), the synthetic-recurrence
placement and the case coarsening, against hand-computed positions and volumes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reirrad_opt.case import Case, PriorCourse
from reirrad_opt.geometry import Grid, Structure
from tps_adapters.openkbp import SHAPE, OpenKBPFormatError, coarsen, load_openkbp_case, to_case_axes
from tps_adapters.recurrence import place_recurrence, prior_high_dose_target


def write_sparse(path: Path, flat: np.ndarray, values: np.ndarray | None = None) -> None:
    lines = [",data"]
    for k, i in enumerate(flat):
        lines.append(f"{int(i)},{'' if values is None else repr(float(values[k]))}")
    path.write_text("\n".join(lines) + "\n")


def flat_index(i0, i1, i2):
    return np.ravel_multi_index((np.atleast_1d(i0), np.atleast_1d(i1), np.atleast_1d(i2)), SHAPE)


@pytest.fixture
def patient(tmp_path):
    """A body block with one marked voxel of each kind at known OpenKBP indices."""
    d = tmp_path / "pt_1"
    d.mkdir()
    (d / "voxel_dimensions.csv").write_text("3.5\n3.5\n2.0\n")
    i0, i1, i2 = np.meshgrid(np.arange(40, 90), np.arange(30, 100), np.arange(10, 120), indexing="ij")
    body = flat_index(i0.ravel(), i1.ravel(), i2.ravel())
    ct = np.full(body.size, 1024.0)  # 0 HU
    ct[np.searchsorted(body, flat_index(60, 50, 20))] = 5000.0  # beyond 12 bits: clipped to 4095
    write_sparse(d / "ct.csv", body, ct)
    write_sparse(d / "dose.csv", flat_index([60, 61], [50, 50], [20, 20]), np.array([70.5, 12.25]))
    write_sparse(d / "LeftParotid.csv", flat_index(60, 80, 40))
    write_sparse(d / "RightParotid.csv", flat_index(60, 40, 40))
    write_sparse(d / "Brainstem.csv", flat_index(70, 64, 15))
    write_sparse(d / "PTV70.csv", flat_index(60, 50, 20))
    return d


def test_axes_spacing_and_values(patient):
    case = load_openkbp_case(patient, interval_months=30)
    g = case.grid
    assert g.shape == SHAPE and g.spacing_mm == (2.0, 3.5, 3.5)
    assert np.allclose(np.array(g.origin_mm) + (np.array(SHAPE) - 1) / 2 * np.array(g.spacing_mm), 0)  # centred

    def at(i0, i1, i2):  # OpenKBP index -> case index [z, y, x]
        return (127 - i2, i0, i1)

    assert case.prior_dose_gy[at(60, 50, 20)] == pytest.approx(70.5)
    assert case.prior_dose_gy[at(61, 50, 20)] == pytest.approx(12.25)  # i0 + 1: one row posterior
    assert case.ct_hu[at(60, 50, 20)] == pytest.approx(4095 - 1024)
    assert case.ct_hu[at(41, 31, 11)] == 0.0 and case.ct_hu[0, 0, 0] == -1024.0
    assert case["PTV70"].mask[at(60, 50, 20)] and case["PTV70"].mask.sum() == 1
    # the left parotid (higher i1) lies at larger x (patient left), the brainstem (lower i2) higher in z
    assert case["Parotid_L"].centroid_xyz(g)[0] > case["Parotid_R"].centroid_xyz(g)[0]
    assert case["Brainstem"].centroid_xyz(g)[2] > case["PTV70"].centroid_xyz(g)[2]
    assert case["Brainstem"].centroid_xyz(g)[1] > case["PTV70"].centroid_xyz(g)[1]  # i0 70 > 60: posterior
    assert case.prior == PriorCourse(35, 30.0, "photon", 70.0, case.prior.description)
    assert case.source["kind"] == "openkbp"
    # External: the 0 HU block (50 x 70 x 110 voxels)
    assert case["External"].role == "external" and case["External"].mask.sum() == 50 * 70 * 110
    assert any("not contoured" in n and "Larynx" in n for n in case.source["notes"])


def test_to_case_axes_is_a_pure_reordering():
    a = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    b = to_case_axes(a)
    assert b[127 - 5, 7, 9] == a[7, 9, 5]


def test_openkbp_errors_name_the_file(patient):
    with pytest.raises(OpenKBPFormatError, match="interval-months"):
        load_openkbp_case(patient, interval_months=None)
    write_sparse(patient / "Larynx.csv", np.array([128 ** 3 + 5]))
    with pytest.raises(OpenKBPFormatError, match=r"Larynx\.csv.*indices"):
        load_openkbp_case(patient, interval_months=12)
    (patient / "Larynx.csv").unlink()
    (patient / "dose.csv").write_text(",data\n12,abc\n")
    with pytest.raises(OpenKBPFormatError, match=r"dose\.csv"):
        load_openkbp_case(patient, interval_months=12)
    (patient / "dose.csv").unlink()
    with pytest.raises(OpenKBPFormatError, match=r"dose\.csv: missing"):
        load_openkbp_case(patient, interval_months=12)


# ---------------------------------------------------------------- synthetic recurrence

def block_case(with_ptv_name="PTV70") -> Case:
    """2 mm grid; a 40 mm cube target (x, y, z in [-20, 20)) with 70 Gy; an organ slab at x >= 30 mm."""
    g = Grid((40, 40, 60), (2.0, 2.0, 2.0), (-39.0, -39.0, -59.0))
    z, y, x = np.meshgrid(*g.axis_coordinates_mm(), indexing="ij")
    target = (np.abs(x) < 20) & (np.abs(y) < 20) & (np.abs(z) < 20)
    organ = x >= 30
    dose = np.where(target, 70.0, 10.0).astype(np.float32)
    structures = {"External": Structure("External", np.ones(g.shape, bool), "external"),
                  with_ptv_name: Structure(with_ptv_name, target, "target"),
                  "Brainstem": Structure("Brainstem", organ)}
    return Case("block", g, np.zeros(g.shape, np.float32), structures, dose, PriorCourse(35, 24.0), {"notes": []})


def test_recurrence_is_placed_at_the_target_point_nearest_the_organ():
    case = block_case()
    assert prior_high_dose_target(case) == "PTV70"
    r = place_recurrence(case, "Brainstem", radius_mm=8.0)
    info = r.source["synthetic_recurrence"]
    # deepest-fitting centres are >= 8 mm inside the target face x = 19 (last voxel centre): x = 11
    # (voxel centres at odd mm; contraction keeps distance to outside > 8 mm: x <= 11)
    assert info["centre_xyz_mm"][0] == pytest.approx(11.0)
    assert info["centre_to_organ_mm"] == pytest.approx(31.0 - 11.0)
    rgtv = r["rGTV"].mask
    assert not (rgtv & ~case["PTV70"].mask).any() and not (rgtv & case["Brainstem"].mask).any()
    sphere_cc = 4 / 3 * np.pi * 8.0 ** 3 / 1000
    assert r["rGTV"].volume_cc(r.grid) == pytest.approx(sphere_cc, rel=0.1)
    assert r["rGTV"].role == "target" and any("synthetic recurrence" in n for n in r.source["notes"])
    assert case.source["notes"] == []  # the input case is not modified


def test_recurrence_renames_prior_new_course_names_and_refuses_twice():
    case = block_case(with_ptv_name="PTV")
    r = place_recurrence(case, "Brainstem", radius_mm=6.0)
    assert "PTV" not in r.structures and r["PTV_prior"].role == "other"
    assert r.source["synthetic_recurrence"]["target"] == "PTV"
    with pytest.raises(ValueError, match="already has an rGTV"):
        place_recurrence(r, "Brainstem")
    with pytest.raises(ValueError, match="no such structure"):
        place_recurrence(case, "OpticChiasm")


def test_coarsen_preserves_mean_dose_and_volumes_of_aligned_blocks():
    case = block_case()
    c = coarsen(case, 2)
    assert c.grid.spacing_mm == (4.0, 4.0, 4.0)
    # the 40 mm cube is aligned with 4 mm blocks: volume kept exactly; its dose is uniform
    assert c["PTV70"].volume_cc(c.grid) == pytest.approx(case["PTV70"].volume_cc(case.grid))
    assert float(c.prior_dose_gy[c["PTV70"].mask].mean()) == pytest.approx(70.0)
    # block centres: the first coarse voxel centre lies between the first two fine ones
    assert c.grid.origin_mm == pytest.approx(tuple(o + 1.0 for o in case.grid.origin_mm))
