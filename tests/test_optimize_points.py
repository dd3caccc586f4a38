"""The optimizer's point stencils reproduce the evaluator's interpolated dose exactly."""
import numpy as np

from reirrad_opt.geometry.sampling import sample_points
from reirrad_opt.geometry import Grid
from reirrad_opt.optimize.build import cluster_points
from reirrad_opt.optimize.points import trilinear_stencil
from reirrad_opt.optimize.terms import dvh_dose


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


def _sphere(grid: Grid, radius_mm: float) -> np.ndarray:
    k, j, i = np.indices(grid.shape)
    c = (np.asarray(grid.shape) - 1) / 2.0
    sp_ = np.asarray(grid.spacing_mm)
    r2 = ((k - c[0]) * sp_[0]) ** 2 + ((j - c[1]) * sp_[1]) ** 2 + ((i - c[2]) * sp_[2]) ** 2
    return r2 <= radius_mm ** 2


def test_cluster_points_keep_the_surface_and_represent_every_interior_voxel_once():
    from scipy import ndimage

    grid = Grid((24, 24, 24), (2.0, 2.0, 2.0))
    mask = _sphere(grid, 20.0)
    rows, weights = cluster_points(mask, grid, 6.0)          # 3 voxels per axis
    flat = mask.ravel()
    assert flat[rows].all()                                   # every point lies in the structure
    assert weights.sum() == mask.sum()                        # the weights account for every voxel once
    surface = np.flatnonzero(mask & ~ndimage.binary_erosion(mask))
    assert np.isin(surface, rows).all() and np.all(weights[np.isin(rows, surface)] == 1.0)
    # each interior 3x3x3 cell: one representative, weighted by its interior voxels
    inner = np.argwhere(mask & ~np.isin(np.arange(mask.size), surface).reshape(mask.shape))
    cells, counts = np.unique(inner // 3, axis=0, return_counts=True)
    reps = np.array(np.unravel_index(rows[~np.isin(rows, surface)], grid.shape)).T
    assert len(reps) == len(cells)
    rep_cells = reps // 3
    order = np.lexsort(rep_cells.T[::-1])
    assert np.array_equal(rep_cells[order], cells)
    assert np.array_equal(weights[~np.isin(rows, surface)][order], counts)
    assert rows.size < 0.5 * mask.sum()


def test_cluster_points_dvh_is_within_the_dose_variation_of_a_cell():
    """On a linear dose gradient a weighted DVH point from the cluster points differs from the
    all-voxel one by no more than the dose difference across a cell (each representative stands
    for voxels at most one cell diagonal away)."""
    grid = Grid((30, 30, 30), (2.0, 2.0, 2.0))
    mask = _sphere(grid, 26.0)
    k, j, i = np.indices(grid.shape)
    gradient = 0.5                                            # Gy/mm along i
    dose = 50.0 + gradient * 2.0 * (i - 15.0)
    rows, weights = cluster_points(mask, grid, 6.0)
    bound = gradient * 3 * 2.0                                # one 6 mm cell along the gradient
    for q, upper in ((0.05, False), (0.02, False), (0.10, True), (0.5, True)):
        full = dvh_dose(dose[mask], q, upper)
        ours = dvh_dose(dose.ravel()[rows], q, upper, weights)
        assert abs(ours - full) <= bound, (q, upper, ours, full)


def test_cluster_points_at_fine_spacing_use_every_voxel():
    grid = Grid((10, 10, 10), (4.0, 4.0, 4.0))
    mask = _sphere(grid, 14.0)
    rows, weights = cluster_points(mask, grid, 5.0)            # 5 mm on a 4 mm grid: one voxel per cell
    assert np.array_equal(rows, np.flatnonzero(mask)) and np.all(weights == 1.0)
    rows, weights = cluster_points(mask, grid, None)
    assert np.array_equal(rows, np.flatnonzero(mask))


def test_ceiling_lattice_is_every_kth_voxel_about_the_lattice_spacing_apart():
    """8 mm lattice: every 3rd voxel at 2.5 mm, every 4th at 2 mm; no two lattice voxels closer than
    the lattice spacing along an axis, and every voxel within half a step of one."""
    from reirrad_opt.optimize.build import lattice

    grid = Grid((12, 14, 16), (2.5, 2.0, 2.0))
    rows = np.arange(int(np.prod(grid.shape)))
    on = lattice(rows, grid, 8.0)
    k, j, i = np.unravel_index(rows[on], grid.shape)
    assert set(np.unique(k)) == {0, 3, 6, 9} and set(np.unique(j)) == {0, 4, 8, 12} and set(np.unique(i)) == {0, 4, 8, 12}
    assert on.sum() == 4 * 4 * 4
    sub = rows[::7]                               # any subset: the same test voxel by voxel
    assert np.array_equal(lattice(sub, grid, 8.0), on[::7])
    assert lattice(rows, grid, 1.0).all()         # finer than the grid: every voxel


def test_near_is_the_shell_of_voxels_within_a_distance_of_a_mask():
    from reirrad_opt.optimize.build import near

    grid = Grid((9, 9, 9), (2.0, 3.0, 3.0))
    mask = np.zeros(grid.shape, bool)
    mask[4, 4, 4] = True
    shell = near(mask, grid, 3.0)
    assert not shell[mask].any()                                   # outside the mask only
    # within 3 mm of the single voxel: one step along k (2 mm) and along j or i (3 mm), not k twice (4 mm)
    expected = {(3, 4, 4), (5, 4, 4), (4, 3, 4), (4, 5, 4), (4, 4, 3), (4, 4, 5)}
    assert {tuple(x) for x in np.argwhere(shell)} == expected
    assert not near(np.zeros(grid.shape, bool), grid, 10.0).any()


def test_plan_ceilings_seed_every_target_voxel_and_the_body_next_to_the_targets():
    """The ceilings start where coverage is bought with hot dose: every target voxel, every body voxel
    within the settings' ceiling_shell_mm of a target, and a lattice elsewhere (when the reference dose
    comes near); other settings move both."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.optimize.build import build_terms, lattice, near
    from reirrad_opt.planning_settings import ProblemSettings
    from reirrad_opt.protocol import load_protocol

    case = make_npc_phantom(3.0)   # a 6 mm lattice: every 2nd voxel along each axis
    protocol = load_protocol()
    targets = np.logical_or.reduce([s.mask for s in case.structures.values() if s.role == "target"])
    seeds = []
    for sampling in (ProblemSettings(), ProblemSettings(ceiling_shell_mm=10.0), ProblemSettings(ceiling_lattice_mm=12.0)):
        ts = build_terms(case, protocol, 30, 64.8, sampling=sampling)
        ceiling = next(t for t in ts.terms if t.goal_id == "plan_Dmax")
        body = next(t for t in ts.terms if t.goal_id == "plan_Dmax_body")
        assert ceiling.seed.all()
        shell = near(targets, case.grid, sampling.ceiling_shell_mm).ravel()[body.rows]
        assert shell.any() and body.seed[shell].all()
        assert np.array_equal(body.seed, shell | lattice(body.rows, case.grid, sampling.ceiling_lattice_mm))
        assert body.seed.mean() < 0.2                               # still a small part of the body
        seeds.append(body.seed)
    assert seeds[1].sum() > seeds[0].sum() > seeds[2].sum()   # a wider shell seeds more, a coarser lattice fewer


def test_organ_caps_are_held_where_the_protocol_reads_them():
    """With evaluation_fine_factor = 1 the evaluation reads voxel centres, and an organ's cap points
    are exactly its voxel centres; with the default (3 per axis) the sub-voxel samples at the organ's
    edge are added, each an interpolation of up to 8 voxels."""
    from phantoms.npc import make_npc_phantom
    from reirrad_opt.optimize.build import build_terms
    from reirrad_opt.protocol import load_protocol

    case = make_npc_phantom(5.0)
    stem = np.flatnonzero(case.structures["Brainstem"].mask.ravel())

    def cap(options):
        ts = build_terms(case, load_protocol(options=options), 30, 64.8)
        return next(t for t in ts.terms if t.structure == "Brainstem" and t.kind == "voxel_max")

    centres = cap({"evaluation_fine_factor": 1})
    assert centres.n_points == stem.size
    assert np.array_equal(np.sort(centres.point_values(np.arange(stem.max() + 1, dtype=float)[centres.rows])),
                          stem.astype(float))
    sub = cap({})
    assert sub.n_points > stem.size
