"""A-posteriori drift (docs/theory.md §11.1): the measured divergence replaces Lemma 3."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import boundcheck as bc
from boundcheck.cli import main
from theory.bounds import recursion_bound


@pytest.fixture(scope="module")
def ridge():
    return bc.ridge_problem(num_clients=4, samples_per_client=25, dim=8, out_dim=3)


def _cfg(prob, alg, E, rounds=8):
    kw = {"algorithm": alg, "local_steps": E, "rounds": rounds}
    if alg == "feddlr":
        kw.update(policy_down="fixed:1", policy_up="fixed:1")
    return prob.config(**kw)


@pytest.fixture(scope="module")
def pairs(ridge):
    """(Lemma 3, measured) reports of the same runs, ridge E = 5, FedAvg and FedDLR."""
    out = {}
    for alg in ("fedavg", "feddlr"):
        cfg = _cfg(ridge, alg, 5)
        out[alg] = (bc.check(cfg, ridge, seeds=3), bc.check(cfg, ridge, seeds=3,
                                                            drift="measured"))
    return out


@pytest.mark.parametrize("alg", ["fedavg", "feddlr"])
def test_measured_drift_bound_holds_every_round(pairs, alg):
    _, rep = pairs[alg]
    assert rep.constants["drift"] == "measured" and rep.summary()["drift"] == "measured"
    assert rep.holds, rep.violations()
    assert np.all(rep.bound_dist_sq >= rep.measured_dist_sq)
    assert np.all(rep.bound_excess >= rep.measured_excess)
    assert np.all(rep.ratio[1:] > 1.0)
    D = np.array(rep.constants["divergence_steps"])
    assert D.shape == (8, 5)
    assert np.all(D[:, 0] == 0.0)  # common start
    assert np.all(D[:, 1:] > 0.0)  # the clients really drift apart
    if alg == "feddlr":
        assert rep.e_c.max() > 0  # compression really happened


@pytest.mark.parametrize("alg", ["fedavg", "feddlr"])
def test_measured_drift_never_looser_than_lemma3(pairs, alg):
    l3, ms = pairs[alg]
    np.testing.assert_array_equal(l3.measured_dist_sq, ms.measured_dist_sq)  # same runs
    E = 5
    D = np.array(ms.constants["divergence_steps"])
    eta = np.repeat(ms.etas_first[:, None], E, axis=1)  # constant step
    G2 = np.array(l3.constants["G2_rounds"])[:, None]
    cap = 4.0 * eta**2 * (E - 1) ** 2 * G2  # Lemma 3's bound on the same quantity
    assert np.all(D <= cap)
    assert np.all(ms.bound_dist_sq <= l3.bound_dist_sq)  # every round
    assert np.all(ms.bound_dist_sq[1:] < l3.bound_dist_sq[1:])
    assert ms.constants["beta_first"] <= l3.constants["beta_first"]
    # each report carries the other variant, computed from the same runs
    np.testing.assert_array_equal(l3.constants["measured_drift"]["bound_dist_sq"],
                                  ms.bound_dist_sq)
    np.testing.assert_array_equal(ms.constants["lemma3_drift"]["bound_dist_sq"],
                                  l3.bound_dist_sq)
    assert l3.summary()["tightness_measured_drift"] == ms.tightness


@pytest.mark.parametrize("alg", ["fedavg", "feddlr"])
def test_E1_zero_divergence_and_both_variants_coincide(ridge, alg):
    cfg = _cfg(ridge, alg, 1, rounds=6)
    l3 = bc.check(cfg, ridge, seeds=2)
    ms = bc.check(cfg, ridge, seeds=2, drift="measured")
    D = np.array(ms.constants["divergence_steps"])
    assert D.shape == (6, 1) and np.all(D == 0.0)
    np.testing.assert_array_equal(ms.bound_dist_sq, l3.bound_dist_sq)
    np.testing.assert_array_equal(ms.bound_excess, l3.bound_excess)
    assert ms.holds and l3.holds


def test_measured_drift_refused_under_partial_participation(ridge):
    cfg = ridge.config(participation="scheme2", clients_per_round=2, local_steps=2, rounds=2)
    with pytest.raises(ValueError, match="full participation"):
        bc.check(cfg, ridge, seeds=2, drift="measured")
    with pytest.raises(ValueError, match="drift"):
        bc.check(_cfg(ridge, "fedavg", 2, rounds=2), ridge, seeds=2, drift="worst")
    rep = bc.check(cfg, ridge, seeds=2)  # the default still works, with no measured column
    assert rep.summary()["tightness_measured_drift"] is None
    assert rep.constants["divergence_steps"] is None


def test_divergence_formula_matches_the_weighted_mean(ridge):
    c = ridge.convex
    rec = bc.TrajectoryRecorder(c, 5)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(c.num_clients, *c.shape))
    v = np.tensordot(c.p, W, axes=1)
    direct = sum(c.p[k] * np.sum((W[k] - v) ** 2) for k in range(c.num_clients))
    got = rec._divergence_of(W, torch.arange(c.num_clients))
    np.testing.assert_allclose(got, direct, rtol=1e-12)
    assert rec._divergence_of(W[:2], torch.arange(2)) is None  # not every client present


def test_step_recursion_equals_round_recursion_with_constant_B():
    rng = np.random.default_rng(3)
    etas = np.full(12, 0.05)
    B_r = rng.random(4) * 5
    es, ec = rng.random(4) * 0.1, rng.random(4) * 0.1
    per_round = recursion_bound(1.3, etas, 3, 0.2, 4.0, B_r, es, ec, C=0.5)
    per_step = recursion_bound(1.3, etas, 3, 0.2, 4.0, np.repeat(B_r[:, None], 3, 1),
                               es, ec, C=0.5)
    np.testing.assert_array_equal(per_step.d, per_round.d)
    smaller = recursion_bound(1.3, etas, 3, 0.2, 4.0,
                              np.repeat(B_r[:, None], 3, 1) * [1.0, 0.5, 0.1], es, ec, C=0.5)
    assert np.all(smaller.d[1:] < per_round.d[1:])
    with pytest.raises(ValueError, match="shape"):
        recursion_bound(1.3, etas, 3, 0.2, 4.0, np.ones((4, 2)), es, ec)


def test_cli_check_drift_measured(tmp_path):
    code = main(["check", "--problem", "ridge", "--rounds", "3", "--local-steps", "3",
                 "--seeds", "2", "--policy", "fixed:2", "--drift", "measured",
                 "--out", str(tmp_path)])
    assert code == 0
    rep = bc.BoundReport.load_json(next(tmp_path.glob("*.json")))
    assert rep.constants["drift"] == "measured" and rep.holds
    assert rep.constants["lemma3_drift"]["tightness"] > rep.tightness


def test_plot_shows_the_other_drift_only_on_request(pairs):
    from boundcheck.plots import plot_report

    l3, ms = pairs["feddlr"]
    _, ax, data = plot_report(l3)
    assert data["bound_other"] is None and len(ax.lines) == 2
    _, ax, data = plot_report(l3, other_drift=True)
    np.testing.assert_array_equal(data["bound_other"], ms.bound_dist_sq)
    assert len(ax.lines) == 3
