"""The lexicographic problem value: frozen, left as it was by optimize_plan, and built from the protocol
(slips in Gy, organ caps, the normal-tissue stage) on the 5 mm NPC phantom."""
import copy
import dataclasses
from collections.abc import Mapping

import numpy as np
import pytest
import scipy.sparse as sp

from phantoms.npc import make_npc_phantom
from reirrad_opt.dose import compute_influence, photon_beams
from reirrad_opt.optimize import LexicographicProblem, build_problem, optimize_plan
from reirrad_opt.optimize.terms import CEILING_IDS
from reirrad_opt.planning_settings import PlanningSettings
from reirrad_opt.protocol import load_protocol

ANGLES = [0.0, 120.0, 240.0]


@pytest.fixture(scope="module")
def npc():
    case = make_npc_phantom(5.0)
    protocol = load_protocol(None)
    ptv = case.structures["PTV"].mask
    beams = photon_beams(case.grid, ptv, gantry_angles_deg=ANGLES, bixel_mm=10.0)
    influence = compute_influence(case.grid, case.ct_hu, case.body, beams, target_mask=ptv)
    settings = PlanningSettings()
    return case, protocol, settings, build_problem(case, protocol, influence, settings)


def same(a, b) -> bool:
    """Deep equality of the problem's parts (arrays, sparse matrices, mappings, dataclasses)."""
    if sp.issparse(a) or sp.issparse(b):
        return sp.issparse(a) and sp.issparse(b) and a.shape == b.shape and (a != b).nnz == 0
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return type(a) is type(b) and all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


def test_the_problem_is_frozen(npc):
    *_, problem = npc
    assert isinstance(problem, LexicographicProblem)
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.rx_gy = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.terms = ()
    with pytest.raises(AttributeError):
        problem.terms.append(problem.terms[0])
    assert isinstance(problem.terms, tuple)
    with pytest.raises(TypeError):
        problem.slips_gy[1] = 0.0
    with pytest.raises(TypeError):
        problem.masks["PTV"] = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.terms[0].level_gy = 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.normal.hot_weight = 0.0


def test_optimize_plan_leaves_the_problem_as_it_was(npc):
    *_, problem = npc
    before = copy.deepcopy(problem)
    assert same(problem, before)
    out = optimize_plan(problem, engine="first-order")
    assert out.weights.shape == (problem.matrix.shape[1],)
    assert same(problem, before)


def test_slips_caps_and_normal_tissue_follow_the_protocol(npc):
    case, protocol, settings, problem = npc
    # Rx and the slips from the protocol's own numbers (the shipped slips are in % of Rx)
    frac = protocol.prescription.fractionation
    rx = frac.dose_per_fraction_gy * frac.n_fractions
    assert problem.rx_gy == pytest.approx(rx, abs=1e-9)
    expected_slips = {p: (s.value if s.unit == "Gy" else s.value / 100.0 * rx) for p, s in protocol.slips.items()}
    assert set(problem.slips_gy) == set(expected_slips) == {1, 2, 3}
    for p, gy in expected_slips.items():
        assert problem.slips_gy[p] == pytest.approx(gy, abs=1e-12)
    assert problem.slips_gy[1] == pytest.approx(0.01 * rx)

    # caps: the first-priority maximum goals on organs the case contours (not skipped), plus the plan ceilings
    skipped_ids = {note.split(":")[0] for note in problem.skipped}
    organ_caps = {g.id for g in protocol.goals
                  if g.priority == 1 and g.sense == "max" and g.structure in case.structures
                  and case.structures[g.structure].role != "target" and case.structures[g.structure].mask.any()
                  and g.id not in skipped_ids}
    assert organ_caps, "the NPC protocol has first-priority organ limits"
    assert set(problem.caps) == organ_caps | set(CEILING_IDS)
    assert list(problem.caps) == sorted(problem.caps)
    assert problem.plan_ceiling
    relaxable = {g.id for g in protocol.goals if g.id in organ_caps and g.acceptable is not None}
    assert set(problem.relaxable) == relaxable
    assert all(t.priority == 1 for t in problem.terms if t.hard)
    assert problem.limit_choice == protocol.options.get("limit_choice", "desirable_then_acceptable")

    # the normal-tissue stage: body outside the PTV, a ring falling from Rx to 25 % of Rx, the PTV's window
    nt = problem.normal
    ptv = case.structures["PTV"].mask.ravel()
    body = case.body.ravel()
    assert nt.body_rows.size and body[nt.body_rows].all() and not ptv[nt.body_rows].any()
    assert nt.ring_rows.size and body[nt.ring_rows].all() and not ptv[nt.ring_rows].any()
    assert np.all(nt.ring_reference_gy <= rx + 1e-9) and np.all(nt.ring_reference_gy >= 0.25 * rx - 1e-9)
    assert np.array_equal(nt.target_rows, np.flatnonzero(ptv))
    assert nt.target_reference_gy == pytest.approx(rx)
    assert nt.hot_weight == settings.target_homogeneity_weight
    assert nt.target_floor_gy == pytest.approx(settings.target_floor_pct_rx / 100.0 * rx)
    assert nt.roughness is not None and nt.roughness.shape[1] == problem.matrix.shape[1]

    # the grid and masks the loop reads the goals in
    assert problem.grid is case.grid
    assert set(problem.masks) == set(case.structures)


def test_a_bad_limit_choice_is_refused_when_the_problem_is_made(npc):
    *_, problem = npc
    with pytest.raises(ValueError, match="limit_choice"):
        dataclasses.replace(problem, limit_choice="whatever")


def test_the_normal_tissue_stage_follows_the_problem_settings(npc):
    """The ring's width, its reference fall-off and the sample counts come from settings.problem: a ring
    of 10 mm holds only voxels within 10 mm of the PTV, at most ring_samples of them, with Rx/2 at the
    ring_half_dose_mm given; the body sample is capped at normal_tissue_samples."""
    from reirrad_opt.geometry import distance_outside_mm
    from reirrad_opt.planning_settings import ProblemSettings

    case, protocol, _, default = npc
    influence_like = type("Cols", (), {"matrix": default.matrix, "columns": None, "modality": "photon"})()
    narrow = PlanningSettings(problem=ProblemSettings(ring_mm=10.0, ring_half_dose_mm=5.0, ring_samples=100,
                                                      normal_tissue_samples=500))
    problem = build_problem(case, protocol, influence_like, narrow)
    dist = distance_outside_mm(case.structures["PTV"].mask, case.grid).ravel()
    ring, nt = problem.normal.ring_rows, problem.normal
    assert dist[ring].max() <= 10.0 < dist[default.normal.ring_rows].max()
    assert 0 < ring.size <= 100 < default.normal.ring_rows.size
    assert 0 < nt.body_rows.size <= 500 < default.normal.body_rows.size
    expected = problem.rx_gy * np.maximum(0.25, 1.0 - 0.5 * dist[ring] / 5.0)   # Rx/2 at 5 mm
    assert np.allclose(nt.ring_reference_gy, expected)
