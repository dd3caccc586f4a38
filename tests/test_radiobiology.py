"""Radiobiology: LQ identities, textbook values, the guideline's worked example, dose caps
checked against brute-force root finding, recovery models and voxel-wise summation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from reirrad_opt.radiobiology import (
    RecoveryModel, alpha_beta_map, bed, cumulative_eqd2, effective_prior_eqd2, eqd2, new_course_dose_cap,
    physical_dose_for_eqd2, physical_dose_for_eqd2_at_dose_per_fraction, prior_eqd2,
)


# ----------------------------------------------------------------------------- EQD2 identities

@pytest.mark.parametrize("ab", [1.5, 2.0, 2.5, 3.0, 10.0])
@pytest.mark.parametrize("n", [1, 5, 30, 35])
def test_two_gy_fractions_have_eqd2_equal_to_physical_dose(ab, n):
    dose = 2.0 * n
    assert eqd2(dose, n, ab) == pytest.approx(dose, rel=1e-12)


def test_textbook_values():
    # 10 x 3 Gy at a/b 3 Gy: BED = 30 (1 + 3/3) = 60 Gy; EQD2 = 60 / (1 + 2/3) = 36 Gy.
    assert bed(30.0, 10, 3.0) == pytest.approx(60.0)
    assert eqd2(30.0, 10, 3.0) == pytest.approx(36.0)
    # 5 x 6 Gy at a/b 10 Gy: BED = 30 * 1.6 = 48 Gy; EQD2 = 48 / 1.2 = 40 Gy.
    assert bed(30.0, 5, 10.0) == pytest.approx(48.0)
    assert eqd2(30.0, 5, 10.0) == pytest.approx(40.0)
    # The guideline's BID schedule 54 x 1.2 Gy = 64.8 Gy at a/b 10: EQD2 = 64.8 * 11.2 / 12 = 60.48 Gy.
    assert eqd2(64.8, 54, 10.0) == pytest.approx(60.48)
    # Zero dose is zero in every unit.
    assert eqd2(0.0, 30, 2.5) == 0.0 and bed(0.0, 30, 2.5) == 0.0


def test_eqd2_is_vectorised_over_voxels_and_alpha_beta_maps():
    dose = np.array([[0.0, 20.0], [60.0, 70.0]])
    ab = np.array([[2.0, 3.0], [10.0, 2.5]])
    out = eqd2(dose, 35, ab)
    assert out.shape == dose.shape
    for idx in np.ndindex(dose.shape):
        d = dose[idx]
        assert out[idx] == pytest.approx(d * (d / 35 + ab[idx]) / (2 + ab[idx]))


@pytest.mark.parametrize("ab", [2.0, 2.5, 3.0, 10.0])
@pytest.mark.parametrize("n", [1, 10, 30, 54])
def test_inverse_is_exact_both_ways(ab, n):
    doses = np.linspace(0.0, 90.0, 37)
    assert np.allclose(physical_dose_for_eqd2(eqd2(doses, n, ab), n, ab), doses, rtol=1e-12, atol=1e-12)
    targets = np.linspace(0.0, 120.0, 41)
    assert np.allclose(eqd2(physical_dose_for_eqd2(targets, n, ab), n, ab), targets, rtol=1e-12, atol=1e-12)


def test_hyperfractionation_and_hypofractionation_move_eqd2_the_expected_way():
    # Below 2 Gy per fraction the EQD2 of late-responding tissue is lower than the physical dose;
    # above 2 Gy it is higher.
    assert eqd2(64.8, 54, 2.5) < 64.8
    assert eqd2(60.0, 20, 2.5) > 60.0


@pytest.mark.parametrize("bad", [
    dict(dose_gy=-1.0, n_fractions=30, alpha_beta_gy=2.5),
    dict(dose_gy=np.nan, n_fractions=30, alpha_beta_gy=2.5),
    dict(dose_gy=10.0, n_fractions=0, alpha_beta_gy=2.5),
    dict(dose_gy=10.0, n_fractions=2.5, alpha_beta_gy=2.5),
    dict(dose_gy=10.0, n_fractions=30, alpha_beta_gy=0.0),
])
def test_bad_input_is_rejected(bad):
    with pytest.raises(ValueError):
        eqd2(**bad)


# ----------------------------------------------------------------------------- worked example

def test_guideline_worked_example_brainstem():
    # Brainstem tolerance 54 Gy EQD2: 130 % = 70.2 Gy (desirable), 150 % = 81 Gy (acceptable).
    desirable, acceptable = 1.3 * 54.0, 1.5 * 54.0
    assert desirable == pytest.approx(70.2) and acceptable == pytest.approx(81.0)
    # Prior 50 Gy EQD2 -> 20.2 / 31 Gy EQD2 left; prior 60 Gy -> 10.2 / 21 Gy ("Dmax by the second
    # course using conventional fractionation of 2 Gy daily").
    for prior, (left_d, left_a) in ((50.0, (20.2, 31.0)), (60.0, (10.2, 21.0))):
        for limit, left in ((desirable, left_d), (acceptable, left_a)):
            # In 2 Gy fractions the physical dose equals the EQD2.
            assert physical_dose_for_eqd2_at_dose_per_fraction(limit - prior, 2.0, 2.5) == pytest.approx(left, abs=1e-12)
            # The exact cap of a 30-fraction course uses the whole remaining budget.
            cap30 = new_course_dose_cap(limit, prior, 30, 2.5)
            assert not cap30.exhausted
            assert eqd2(cap30.cap_gy, 30, 2.5) == pytest.approx(left, rel=1e-12)
            # The voxel then gets less than 2 Gy per fraction, so more physical dose than EQD2.
            assert cap30.cap_gy > left


def test_fixed_dose_per_fraction_inverse():
    # 3 Gy fractions at a/b 3: EQD2 36 Gy <-> 30 Gy physical (textbook pair above).
    assert physical_dose_for_eqd2_at_dose_per_fraction(36.0, 3.0, 3.0) == pytest.approx(30.0)
    with pytest.raises(ValueError):
        physical_dose_for_eqd2_at_dose_per_fraction(36.0, 0.0, 3.0)


# ----------------------------------------------------------------------------- dose caps

@pytest.mark.parametrize("ab", [2.0, 2.5, 3.0])
@pytest.mark.parametrize("n", [1, 15, 30, 54])
def test_cap_matches_brute_force_root_finding(ab, n):
    rng = np.random.default_rng(7)
    limits = rng.uniform(40.0, 130.0, 25)
    priors = rng.uniform(0.0, 120.0, 25)
    result = new_course_dose_cap(limits, priors, n, ab)
    for L, E, cap, ex in zip(limits, priors, result.cap_gy, result.exhausted):
        if L <= E:
            assert ex and cap == 0.0
            continue
        # The cumulative EQD2 E + EQD2(D) crosses L exactly once on [0, big].
        root = brentq(lambda D: E + D * (D / n + ab) / (2 + ab) - L, 0.0, 1000.0, xtol=1e-12, rtol=1e-14)
        assert not ex
        assert cap == pytest.approx(root, rel=1e-10, abs=1e-10)


def test_cap_is_zero_and_flagged_where_prior_reaches_limit():
    res = new_course_dose_cap(70.2, np.array([70.2, 80.0, 69.0, 0.0]), 30, 2.5)
    assert list(res.exhausted) == [True, True, False, False]
    assert res.cap_gy[0] == 0.0 and res.cap_gy[1] == 0.0
    assert res.cap_gy[2] > 0.0
    # No prior dose: the cap is the physical dose whose EQD2 is the whole limit.
    assert eqd2(res.cap_gy[3], 30, 2.5) == pytest.approx(70.2)


def test_cap_scalar_in_scalar_out():
    res = new_course_dose_cap(81.0, 50.0, 30, 2.5)
    assert isinstance(res.cap_gy, float) and res.exhausted is False


def test_cap_is_monotone_in_prior_and_fraction_number():
    priors = np.linspace(0, 70, 50)
    caps = new_course_dose_cap(70.2, priors, 30, 2.5).cap_gy
    assert np.all(np.diff(caps) < 0)
    # More fractions -> smaller dose per fraction -> more physical dose allowed for the same EQD2.
    c = [new_course_dose_cap(70.2, 50.0, n, 2.5).cap_gy for n in (5, 15, 30, 54)]
    assert c == sorted(c)


# ----------------------------------------------------------------------------- recovery

def test_recovery_none_constant_table():
    assert RecoveryModel.none().fraction_for("Brainstem", 24.0) == 0.0
    assert RecoveryModel("constant", fraction=0.3).fraction_for("Brainstem", None) == 0.3
    table = RecoveryModel("table", table=((6, 0.0), (12, 0.25), (24, 0.5)))
    assert table.fraction_for("X", 6) == 0.0
    assert table.fraction_for("X", 9) == pytest.approx(0.125)
    assert table.fraction_for("X", 18) == pytest.approx(0.375)
    assert table.fraction_for("X", 3) == 0.0          # held at the first value
    assert table.fraction_for("X", 60) == 0.5         # held at the last value
    with pytest.raises(ValueError, match="interval"):
        table.fraction_for("X", None)


def test_recovery_per_structure_override_and_description():
    model = RecoveryModel("constant", fraction=0.3,
                          per_structure={"SpinalCord": RecoveryModel("table", table=((0, 0.0), (12, 0.5)))})
    assert model.fraction_for("Brainstem", 12) == 0.3
    assert model.fraction_for("SpinalCord", 6) == pytest.approx(0.25)
    text = model.describe(6.0)
    assert "30 %" in text and "SpinalCord" in text and "25 %" in text
    assert "none" in RecoveryModel.none().describe()
    again = RecoveryModel.from_dict(model.to_dict())
    assert again == model


@pytest.mark.parametrize("kwargs", [
    dict(kind="linear"),
    dict(kind="constant", fraction=1.2),
    dict(kind="constant", fraction=-0.1),
    dict(kind="table", table=((12, 0.2), (6, 0.1))),
    dict(kind="table", table=((0, 0.2), (6, 1.5))),
    dict(kind="table", table=()),
    dict(kind="none", fraction=0.3),
])
def test_recovery_validation(kwargs):
    with pytest.raises(ValueError):
        RecoveryModel(**kwargs)


def test_effective_prior_eqd2_discounts_recovered_fraction():
    e = np.array([50.0, 60.0])
    assert np.allclose(effective_prior_eqd2(e, 0.3), [35.0, 42.0])
    assert np.allclose(effective_prior_eqd2(e, np.array([0.0, 0.5])), [50.0, 30.0])
    with pytest.raises(ValueError):
        effective_prior_eqd2(e, 1.5)


def test_thirty_percent_recovery_equals_the_130_percent_rule_at_full_tolerance():
    # The guideline: a 130 % cumulative limit "is basically equivalent to 30 % recovery" when the
    # prior course reached the tolerance T: budget(130 % of T, no recovery) = 1.3 T - T = 0.3 T
    # = T - 0.7 T = budget(100 % of T, 30 % recovery).
    T = 54.0
    cap_a = new_course_dose_cap(1.3 * T, T, 30, 2.5).cap_gy
    cap_b = new_course_dose_cap(T, float(effective_prior_eqd2(T, 0.3)), 30, 2.5).cap_gy
    assert cap_a == pytest.approx(cap_b)


# ----------------------------------------------------------------------------- summation

def test_prior_converted_with_its_own_fractionation_before_summing():
    prior = np.array([70.0, 35.0, 0.0])
    new = np.array([0.0, 30.0, 64.8])
    cum = cumulative_eqd2(prior, 35, new, 54, 2.5)
    # 70 Gy in 35 fx = 2 Gy/fx -> EQD2 70; 64.8 Gy in 54 fx at a/b 2.5 -> 64.8 * 3.7 / 4.5.
    assert cum[0] == pytest.approx(70.0)
    assert cum[2] == pytest.approx(64.8 * (1.2 + 2.5) / 4.5)
    assert cum[1] == pytest.approx(35 * (1 + 2.5) / 4.5 + 30 * (30 / 54 + 2.5) / 4.5)
    # Converting the SUM of physical doses with one fractionation would be wrong:
    assert cum[1] != pytest.approx(eqd2(65.0, 35, 2.5))
    assert np.allclose(prior_eqd2(prior, 35, 2.5), [70.0, 35 * 3.5 / 4.5, 0.0])


def test_cumulative_metric_is_of_the_voxelwise_sum():
    # Hot spots of the two courses in different voxels: max of the sum < sum of the maxima.
    prior = np.array([60.0, 10.0])
    new = np.array([4.0, 40.0])
    cum = cumulative_eqd2(prior, 30, new, 20, 2.0)
    assert cum.max() < prior_eqd2(prior, 30, 2.0).max() + eqd2(new, 20, 2.0).max()


def test_cumulative_with_recovery():
    cum = cumulative_eqd2(np.array([60.0]), 30, np.array([0.0]), 30, 2.5, recovered_fraction=0.5)
    assert cum[0] == pytest.approx(30.0)


def test_alpha_beta_map_min_where_overlapping():
    a = np.zeros((2, 2, 2), bool)
    b = np.zeros((2, 2, 2), bool)
    a[0] = True
    b[:, 0] = True
    m = alpha_beta_map((2, 2, 2), [(a, 10.0), (b, 2.5)], default_gy=3.0)
    assert m[0, 0, 0] == 2.5          # overlap: smallest
    assert m[0, 1, 0] == 10.0         # only a
    assert m[1, 0, 1] == 2.5          # only b
    assert m[1, 1, 1] == 3.0          # none
    with pytest.raises(ValueError):
        alpha_beta_map((2, 2, 2), [(a, -1.0)], 3.0)
    with pytest.raises(ValueError):
        alpha_beta_map((2, 2, 3), [(a, 2.0)], 3.0)


# ----------------------------------------------------------------------------- reirrad-opt budget

def _budget(capsys, *args):
    import json

    from reirrad_opt.cli import main

    code = main(["budget", *args, "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


@pytest.mark.parametrize("prior, desirable_left, acceptable_left", [(50.0, 20.2, 31.0), (60.0, 10.2, 21.0)])
def test_budget_cli_reproduces_the_guideline_worked_example(capsys, prior, desirable_left, acceptable_left):
    b = _budget(capsys, "--structure", "Brainstem", "--prior-eqd2-gy", str(prior), "--fractions", "30",
                "--dose-per-fraction-gy", "2")
    assert b["limit_desirable_eqd2_gy"] == 70.2 and b["limit_acceptable_eqd2_gy"] == 81.0
    assert b["remaining_desirable_eqd2_gy"] == desirable_left
    assert b["remaining_acceptable_eqd2_gy"] == acceptable_left
    # In 2 Gy fractions the physical cap equals the remaining EQD2 (the guideline's "Dmax by the
    # second course using conventional fractionation of 2 Gy daily").
    assert b["cap_desirable_gy"] == desirable_left and b["cap_acceptable_gy"] == acceptable_left
    assert b["alpha_beta_gy"] == 2.5 and b["n_fractions"] == 30


def test_budget_cli_exact_cap_and_aliases(capsys):
    b = _budget(capsys, "--structure", "BRSTEM", "--prior-eqd2-gy", "50", "--fractions", "54")
    # Exact cap: EQD2 of the cap in 54 fractions is the remaining budget.
    assert eqd2(b["cap_desirable_gy"], 54, 2.5) == pytest.approx(20.2, rel=1e-9)
    assert eqd2(b["cap_acceptable_gy"], 54, 2.5) == pytest.approx(31.0, rel=1e-9)
    assert b["cap_desirable_gy"] > 20.2          # below 2 Gy per fraction: more physical dose


def test_budget_cli_exhausted_and_no_acceptable_limit(capsys):
    b = _budget(capsys, "--structure", "Brainstem", "--prior-eqd2-gy", "75", "--fractions", "30")
    assert b["exhausted_desirable"] is True and b["cap_desirable_gy"] == 0.0
    assert b["remaining_desirable_eqd2_gy"] == pytest.approx(-4.8)
    assert b["exhausted_acceptable"] is False and b["cap_acceptable_gy"] > 0
    b = _budget(capsys, "--structure", "OpticNrv_L", "--prior-eqd2-gy", "50", "--fractions", "30",
                "--optic-nerve-rule", "unilateral")
    assert b["limit_acceptable_eqd2_gy"] is None and b["cap_acceptable_gy"] is None


def test_budget_cli_text_and_errors(capsys):
    from reirrad_opt.cli import main

    assert main(["budget", "--structure", "SpinalCord", "--prior-eqd2-gy", "40", "--fractions", "30"]) == 0
    text = capsys.readouterr().out
    assert "58.50 Gy" in text and "67.50 Gy" in text and "18.50 Gy" in text and "27.50 Gy" in text
    assert main(["budget", "--structure", "Parotid_L", "--prior-eqd2-gy", "40", "--fractions", "30"]) == 2
    assert "Parotid_L" in capsys.readouterr().err
    assert main(["budget", "--structure", "Brainstem", "--prior-eqd2-gy", "-1", "--fractions", "30"]) == 2
    assert "prior-eqd2-gy" in capsys.readouterr().err
