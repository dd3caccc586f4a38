"""Large sparse products split over row blocks in threads (reirrad_opt.optimize.split_product), and the
thread count the tool reads (reirrad_opt.threads): the same values to the last bit as one thread's
product, so a plan does not depend on how many threads computed it."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

from test_optimize_core import run, terms_for

from reirrad_opt.optimize import split_product
from reirrad_opt.optimize.dose_rows import DoseRows
from reirrad_opt.optimize.split_product import MIN_SPLIT_NNZ, RowSplit, TransposedProduct
from reirrad_opt.threads import n_threads


def _matrix(nnz: int, seed: int = 0) -> sp.csr_matrix:
    rows, cols = 6000, 900
    return sp.random(rows, cols, density=nnz / (rows * cols), format="csr", random_state=seed)


@pytest.mark.parametrize("fraction", [0.0, 0.0005, 0.01, 0.029, 0.2, 1.0])
def test_transposed_product_from_the_non_zero_rows_is_bit_identical_to_the_full_one(fraction):
    """A gradient pulled back through a point map (mostly zero) read from its non-zero rows, or through the
    full transposed product above 3 % of the rows: the same bits as ``matrix.T @ y`` either way, with
    signed entries, empty rows and negative weights."""
    rng = np.random.default_rng(4)
    n_points, n_rows = 40_000, 3_000
    per_row = rng.integers(0, 8, n_points)                          # 0-7 entries per point, some empty
    rows = np.repeat(np.arange(n_points), per_row)
    cols = rng.integers(0, n_rows, rows.size)
    m = sp.csr_matrix((rng.normal(size=rows.size), (rows, cols)), shape=(n_points, n_rows))
    y = rng.normal(size=n_points) * (rng.random(n_points) < fraction)
    reference = m.T.tocsr() @ y
    for parts in (1, 2):
        product = TransposedProduct(m, parts)
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert np.array_equal(product(y, pool), reference)
        assert np.array_equal(product(y), reference)
        assert product(y).shape == (n_rows,) and product(y).dtype == np.float64
    with pytest.raises(TypeError, match="CSR"):
        TransposedProduct(m.tocsc(), 1)


@pytest.mark.parametrize("parts", [2, 3])
def test_split_product_is_bit_identical_and_its_blocks_are_views(parts):
    a = _matrix(2 * MIN_SPLIT_NNZ)
    x = np.random.default_rng(1).random(a.shape[1])
    split = RowSplit(a, parts)
    assert len(split.parts) == parts
    bounds = [(lo, hi) for lo, hi, _ in split.parts]
    assert bounds[0][0] == 0 and bounds[-1][1] == a.shape[0]
    assert all(hi == lo2 for (_, hi), (lo2, _) in zip(bounds[:-1], bounds[1:]))     # every row once
    sizes = [part.nnz for _, _, part in split.parts]
    assert max(sizes) - min(sizes) < 0.01 * a.nnz                                     # about equal work
    assert all(np.shares_memory(part.data, a.data) and np.shares_memory(part.indices, a.indices)
               for _, _, part in split.parts)                                       # no copy of the matrix
    with ThreadPoolExecutor(max_workers=parts - 1) as pool:
        threaded = split(x, pool)
    assert np.array_equal(threaded, a @ x)
    assert np.array_equal(split(x), a @ x)      # without a pool: the plain product


def test_small_matrices_and_one_thread_are_not_split():
    assert RowSplit(_matrix(MIN_SPLIT_NNZ // 4), 2).parts == []
    assert RowSplit(_matrix(2 * MIN_SPLIT_NNZ), 1).parts == []


def test_split_needs_a_csr_matrix():
    with pytest.raises(TypeError, match="CSR"):
        RowSplit(_matrix(1000).tocsc(), 2)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("REIRRAD_THREADS", "3")
    assert n_threads() == 3
    assert DoseRows(_matrix(1000)).threads == 3
    for bad in ("two", "0", "-1", "1.5"):
        monkeypatch.setenv("REIRRAD_THREADS", bad)
        with pytest.raises(ValueError, match="REIRRAD_THREADS"):
            n_threads()
    monkeypatch.delenv("REIRRAD_THREADS")
    assert n_threads() >= 1


def test_a_plan_does_not_depend_on_the_thread_count(monkeypatch):
    """The first-order engine's products split (every product, however small) over 1 or 3 threads:
    the same fluence, bit for bit."""
    monkeypatch.setattr(split_product, "MIN_SPLIT_NNZ", 0)
    weights = []
    for threads in ("1", "3"):
        monkeypatch.setenv("REIRRAD_THREADS", threads)
        weights.append(run(terms_for(60, 66, cap_des=10.0), engine="first-order").weights)
    assert np.array_equal(weights[0], weights[1])


def test_point_bounds_and_goal_surrogates_read_the_same_on_two_threads():
    """The first-order engine's point products (the stacked caps and holds, a goal's surrogate) split over
    threads when they are large: the same values and gradients to the last bit as on one thread."""
    from reirrad_opt.optimize.smooth_terms import BoundStack, PointBounds, Surrogate
    from reirrad_opt.optimize.terms import Term

    n = MIN_SPLIT_NNZ + 50_000
    rng = np.random.default_rng(4)
    d = rng.normal(60.0, 2.0, n)
    position = np.arange(n)
    held = Term("T_D95", "T", 1, "cvar_lower", np.arange(n), 58.0, fraction=0.05)
    cap = Term("T_Dmax", "T", 1, "voxel_max", np.arange(n), 64.0, hard=True)
    bounds = [PointBounds(held, np.arange(n), np.full(n, 58.0), -1.0, False),
              PointBounds(cap, np.arange(n), np.full(n, 64.0), 1.0, True)]
    for b in bounds:
        b.bind(position)
    one, two = BoundStack(bounds, n, 1), BoundStack(bounds, n, 2)
    assert len(two._S.parts) == 2 and len(one._S.parts) == 0
    m = rng.random(2 * n)
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert np.array_equal(one.excess(d), two.excess(d, pool))
        assert np.array_equal(one.pull(m), two.pull(m, pool))
        s1, s2 = Surrogate(held, 0.1), Surrogate(held, 0.1)
        s1.bind(position, 1)
        s2.bind(position, 2)
        v1, g1, e1 = s1.value(d, 58.5)
        v2, g2, e2 = s2.value(d, 58.5, pool)
    assert (v1, e1) == (v2, e2) and np.array_equal(g1, g2)
