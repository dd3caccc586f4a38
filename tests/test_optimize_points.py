"""The optimizer's point stencils reproduce the evaluator's interpolated dose exactly."""
import numpy as np

from reirrad_opt.evaluate.sampling import sample_points
from reirrad_opt.geometry import Grid
from reirrad_opt.optimize.points import trilinear_stencil


def test_stencil_matches_the_evaluators_interpolation():
    grid = Grid((12, 14, 16), (2.5, 2.0, 2.0))
    rng = np.random.default_rng(3)
    dose = rng.uniform(0, 70, grid.shape)
    mask = np.zeros(grid.shape, bool)
    mask[0:4, 5:9, 12:16] = True   # touches the grid border (nearest-value extrapolation)
    mask[6:9, 2:5, 3:7] = True
    pts = sample_points(mask, grid, 3)
    rows, interp = trilinear_stencil(pts.index_kji, grid.shape)
    ours = interp @ dose.ravel()[rows]
    assert np.allclose(ours, pts.values(dose), atol=1e-9)
    assert np.allclose(np.asarray(interp.sum(axis=1)).ravel(), 1.0)
    assert (interp.data >= 0).all()


def test_linear_dose_is_reproduced_between_voxel_centres():
    grid = Grid((5, 5, 5), (1.0, 1.0, 1.0))
    k, j, i = np.meshgrid(*(np.arange(5.0),) * 3, indexing="ij")
    dose = 3 * k + 2 * j - i
    pts = np.array([[1.5, 2.25, 3.75], [0.1, 0.2, 0.3]])
    rows, interp = trilinear_stencil(pts, grid.shape)
    expected = 3 * pts[:, 0] + 2 * pts[:, 1] - pts[:, 2]
    assert np.allclose(interp @ dose.ravel()[rows], expected)
