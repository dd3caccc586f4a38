"""InfluenceMatrix: the contract the optimizer relies on, disk format, cache, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from phantoms.water import water_box
from reirrad_opt.dose import (InfluenceMatrix, ParticleField, PhotonBeam, compute_influence, particle_fields,
                              photon_beams)


@pytest.fixture(scope="module")
def small_case():
    case = water_box(60.0, 80.0, 60.0, spacing_mm=(4.0, 4.0, 4.0))
    target = np.zeros(case.grid.shape, bool)
    k, j, i = (s // 2 for s in case.grid.shape)
    target[k - 2:k + 3, j - 2:j + 3, i - 2:i + 3] = True
    return case, target


def test_photon_matrix_contract(small_case):
    case, target = small_case
    beams = photon_beams(case.grid, target, gantry_angles_deg=[0.0, 90.0])
    inf = compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=target)
    m = inf.matrix
    assert isinstance(m, sp.csr_matrix)
    assert m.shape == (case.grid.n_voxels, sum(b.n_columns for b in beams))
    assert m.dtype == np.float32 and m.indices.dtype == np.int32 and m.indptr.dtype == np.int32
    assert m.has_canonical_format
    assert inf.modality == "photon" and inf.grid == case.grid and inf.beams == beams
    cols = inf.columns
    np.testing.assert_array_equal(cols.beam, np.repeat([0, 1], [b.n_columns for b in beams]))
    np.testing.assert_allclose(cols["u_mm"], np.concatenate([b.bixel_u_mm for b in beams]))
    assert "energy_mev" not in cols
    # rows outside the body receive nothing
    outside = ~case.body.ravel()
    assert m[np.flatnonzero(outside)].nnz == 0
    d = inf.dose(np.ones(inf.n_columns))
    assert d.shape == case.grid.shape and d[target].min() > 0


def test_particle_columns_carry_energy_and_range(small_case):
    case, target = small_case
    fields = particle_fields(case.grid, target, case.ct_hu, gantry_angles_deg=[0.0])
    inf = compute_influence(case.grid, case.ct_hu, case.body, fields)
    assert inf.modality == "proton"
    np.testing.assert_allclose(inf.columns.energy_mev, fields[0].spot_energy_mev)
    np.testing.assert_allclose(inf.columns.range_r80_mm, fields[0].spot_range_mm)


def test_save_load_round_trip(small_case, tmp_path):
    case, target = small_case
    fields = particle_fields(case.grid, target, case.ct_hu, gantry_angles_deg=[0.0, 180.0])
    inf = compute_influence(case.grid, case.ct_hu, case.body, fields)
    path = inf.save(tmp_path / "m.npz")
    back = InfluenceMatrix.load(path)
    assert (back.matrix != inf.matrix).nnz == 0
    assert back.grid == inf.grid and back.modality == "proton" and back.rel_cutoff == inf.rel_cutoff
    for k in inf.columns:
        np.testing.assert_array_equal(back.columns[k], inf.columns[k])
    assert [b.to_dict() for b in back.beams] == [b.to_dict() for b in inf.beams]
    w = np.linspace(0, 1, inf.n_columns)
    np.testing.assert_allclose(back.dose(w), inf.dose(w))


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        InfluenceMatrix.load(bad)
    with pytest.raises(FileNotFoundError):
        InfluenceMatrix.load(tmp_path / "none.npz")


def test_cache_hit_and_miss(small_case, tmp_path):
    case, target = small_case
    beams = photon_beams(case.grid, target, gantry_angles_deg=[0.0, 120.0, 240.0])
    first = compute_influence(case.grid, case.ct_hu, case.body, beams, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("influence-*.npz"))) == 1
    messages = []
    second = compute_influence(case.grid, case.ct_hu, case.body, beams, cache_dir=tmp_path, progress=messages.append)
    assert any("cache" in m for m in messages)
    assert (second.matrix != first.matrix).nnz == 0 and second.meta["key"] == first.meta["key"]
    # any changed input is a different entry
    ct = case.ct_hu.copy()
    ct[case.body] = 10.0
    compute_influence(case.grid, ct, case.body, beams, cache_dir=tmp_path)
    compute_influence(case.grid, case.ct_hu, case.body, beams, cache_dir=tmp_path, rel_cutoff=2e-3)
    assert len(list(tmp_path.glob("influence-*.npz"))) == 3


def test_cache_dir_with_a_tilde_is_under_the_home_folder(small_case, tmp_path, monkeypatch):
    """``cache_dir="~/..."`` (as docs/dose.md writes it) is the user's home folder, not a folder named '~'."""
    case, target = small_case
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    beams = photon_beams(case.grid, target, gantry_angles_deg=[0.0])
    compute_influence(case.grid, case.ct_hu, case.body, beams, cache_dir="~/.cache/reirrad")
    assert len(list((tmp_path / "home" / ".cache" / "reirrad").glob("influence-*.npz"))) == 1
    assert not (tmp_path / "~").exists()


def test_progress_reports_each_beam(small_case):
    case, target = small_case
    beams = photon_beams(case.grid, target, gantry_angles_deg=[0.0, 180.0])
    messages = []
    compute_influence(case.grid, case.ct_hu, case.body, beams, progress=messages.append)
    assert sum("beam 1/2" in m for m in messages) == 1 and sum("beam 2/2" in m for m in messages) == 1


def test_bad_input_is_named(small_case):
    case, target = small_case
    photon = photon_beams(case.grid, target, gantry_angles_deg=[0.0])
    proton = particle_fields(case.grid, target, case.ct_hu, gantry_angles_deg=[0.0])
    with pytest.raises(ValueError, match="mixes modalities"):
        compute_influence(case.grid, case.ct_hu, case.body, photon + proton)
    with pytest.raises(ValueError, match="empty"):
        compute_influence(case.grid, case.ct_hu, case.body, [])
    with pytest.raises(ValueError, match="body_mask"):
        compute_influence(case.grid, case.ct_hu, case.body[:-1], photon)
    with pytest.raises(ValueError, match="rel_cutoff"):
        compute_influence(case.grid, case.ct_hu, case.body, photon, rel_cutoff=0.0)
    inf = compute_influence(case.grid, case.ct_hu, case.body, photon)
    with pytest.raises(ValueError, match=">= 0"):
        inf.dose(-np.ones(inf.n_columns))
    with pytest.raises(ValueError, match="one per column"):
        inf.dose(np.ones(inf.n_columns + 1))
    with pytest.raises(ValueError, match="ion"):
        ParticleField(0.0, 0.0, (0, 0, 0), "helium", 5.0, [0.0], [0.0], [100.0])
    with pytest.raises(ValueError, match="same length"):
        PhotonBeam(0.0, 0.0, (0, 0, 0), 5.0, [0.0, 5.0], [0.0])


@pytest.mark.parametrize("kind", ["photon", "proton"])
def test_matrix_does_not_depend_on_thread_count(small_case, monkeypatch, kind):
    """Beams run in parallel threads; each beam's sampling is seeded from its index, so one thread
    and three threads give the same matrix, entry for entry."""
    case, target = small_case
    angles = [0.0, 120.0, 240.0]
    beams = photon_beams(case.grid, target, gantry_angles_deg=angles) if kind == "photon" else \
        particle_fields(case.grid, target, case.ct_hu, gantry_angles_deg=angles)
    matrices = []
    for n in ("1", "3"):
        monkeypatch.setenv("REIRRAD_THREADS", n)
        matrices.append(compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=target).matrix)
    a, b = matrices
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


def test_bad_thread_count_is_named(small_case, monkeypatch):
    case, target = small_case
    beams = photon_beams(case.grid, target, gantry_angles_deg=[0.0])
    for bad in ("two", "0"):
        monkeypatch.setenv("REIRRAD_THREADS", bad)
        with pytest.raises(ValueError, match="REIRRAD_THREADS"):
            compute_influence(case.grid, case.ct_hu, case.body, beams)


def test_the_beams_chunks_hold_four_byte_rows_and_give_the_same_matrix(small_case, monkeypatch):
    """Until the matrix is assembled, every beam's entries wait in chunks: their grid rows are 4-byte
    integers (half the memory of 8-byte ones), and the matrix is entry for entry the one assembled
    from 8-byte copies of the same chunks."""
    import reirrad_opt.dose.influence as influence
    from reirrad_opt.dose.engine import ColumnBlock

    case, target = small_case
    fields = particle_fields(case.grid, target, case.ct_hu, gantry_angles_deg=[0.0, 120.0, 240.0])
    seen = {}
    original = influence.to_csc

    def spy(blocks, n_rows):
        seen["dtypes"] = {r.dtype for b in blocks for r in b.rows}
        wide = [ColumnBlock([r.astype(np.int64) for r in b.rows], list(b.values), b.counts.copy(), b.row_map)
                for b in blocks]
        seen["wide"] = original(wide, n_rows).toarray()
        return original(blocks, n_rows)

    monkeypatch.setattr(influence, "to_csc", spy)
    inf = compute_influence(case.grid, case.ct_hu, case.body, fields, target_mask=target)
    assert seen["dtypes"] == {np.dtype(np.int32)}
    np.testing.assert_array_equal(inf.matrix.toarray(), seen["wide"])


def test_chunk_index_arrays_narrow_to_four_bytes_only_when_their_values_fit():
    """The assembly's per-chunk (column, cell, segment) arrays are held as 4-byte integers; an array
    whose values do not fit keeps its 8 bytes (never a wrapped index)."""
    from reirrad_opt.dose.engine import _index32

    small = np.array([0, 5, 2 ** 31 - 1, -3], dtype=np.int64)
    narrowed = _index32(small)
    assert narrowed.dtype == np.int32 and np.array_equal(narrowed, small)
    large = np.array([0, 2 ** 31], dtype=np.int64)
    assert _index32(large).dtype == np.int64 and np.array_equal(_index32(large), large)
    assert _index32(np.array([-(2 ** 31) - 1])).dtype == np.int64
    assert _index32(np.zeros(0, dtype=np.int64)).dtype == np.int32
