"""boundcheck.check: the bound holds on small runs; invalid setups are refused."""

from __future__ import annotations

import numpy as np
import pytest

import boundcheck as bc
from theory.bounds import recursion_bound


@pytest.fixture(scope="module")
def ridge():
    return bc.ridge_problem(num_clients=4, samples_per_client=25, dim=8, out_dim=3)


@pytest.fixture(scope="module")
def logistic():
    return bc.synthetic_problem(num_clients=4, max_samples_per_client=50, dim=12,
                                num_classes=4, lam=0.05)


def test_bound_holds_every_round_ridge_feddlr(ridge):
    cfg = ridge.config(algorithm="feddlr", policy_down="fixed:1", policy_up="fixed:1",
                       local_steps=3, rounds=8)
    rep = bc.check(cfg, ridge, seeds=3)
    assert rep.holds, rep.violations()
    assert np.all(rep.bound_dist_sq >= rep.measured_dist_sq)
    assert np.all(rep.ratio[1:] > 1.0)
    assert rep.e_c.max() > 0 and rep.e_s.max() >= 0  # compression really happened
    assert rep.checks["common_start"]
    assert rep.checks["err_server_vs_observed_max_gap"] < 1e-9


def test_bound_holds_every_round_logistic_scheme2(logistic):
    assert logistic.balanced
    cfg = logistic.config(algorithm="feddlr", policy_down="energy:0.9", policy_up="energy:0.9",
                          local_steps=2, rounds=5, participation="scheme2",
                          clients_per_round=2)
    rep = bc.check(cfg, logistic, seeds=3)
    assert rep.holds, rep.violations()
    assert rep.constants["C"] > 0


def test_round_constants_never_exceed_global_ones(ridge):
    cfg = ridge.config(algorithm="fedavg", local_steps=2, rounds=4)
    rep = bc.check(cfg, ridge, seeds=2)
    glob = bc.check(cfg, ridge, seeds=2, constants="global")
    assert max(rep.constants["B_rounds"]) <= glob.constants["B"] * (1 + 1e-12)
    assert np.all(rep.bound_dist_sq <= glob.bound_dist_sq * (1 + 1e-12))
    assert glob.holds


def test_lr_above_one_over_4L_is_rejected(ridge):
    cfg = ridge.config(lr=1.01 / (4 * ridge.convex.L), rounds=2, local_steps=2)
    with pytest.raises(ValueError, match=r"1/\(4L\)"):
        bc.check(cfg, ridge, seeds=2)


@pytest.mark.parametrize(("changes", "match"), [
    ({"weight_decay": 0.2}, "weight_decay"),
    ({"dtype": "float32"}, "float64"),
    ({"algorithm": "topk_ef"}, "algorithm"),
])
def test_other_invalid_setups_are_rejected(ridge, changes, match):
    with pytest.raises(ValueError, match=match):
        bc.validate_config(ridge.config(**changes), ridge)


def test_scheme2_needs_balanced_clients():
    prob = bc.synthetic_problem(num_clients=4, max_samples_per_client=200, dim=12,
                                num_classes=4)
    assert not prob.balanced
    with pytest.raises(ValueError, match="balanced"):
        bc.validate_config(prob.config(participation="scheme2", clients_per_round=2), prob)


def test_per_round_constants_equal_one_constant_when_all_equal():
    rng = np.random.default_rng(0)
    etas = np.full(12, 0.05)
    es, ec = rng.random(4) * 0.1, rng.random(4) * 0.1
    ours = recursion_bound(1.3, etas, 3, 0.2, 4.0, np.full(4, 7.0), es, ec, C=np.full(4, 2.0))
    ref = recursion_bound(1.3, etas, 3, 0.2, 4.0, 7.0, es, ec, C=2.0)
    np.testing.assert_allclose(ours.d, ref.d, rtol=1e-14)
