"""``--bound local`` against simulator runs, and the byte-budget choice on logistic regression."""

from __future__ import annotations

import numpy as np
import pytest

import boundcheck as bc
from boundcheck.predict import predict_budget
from theory.budget import choose_policy


@pytest.fixture(scope="module")
def tiny():
    return bc.synthetic_problem(num_clients=4, dim=5, num_classes=3, max_samples_per_client=20,
                                lam=0.5)


@pytest.mark.parametrize("kw", [
    dict(algorithm="feddlr", policy_down="fixed:1", policy_up="fixed:1", batch_size=None),
    dict(algorithm="fedavg", batch_size=None, participation="scheme1", clients_per_round=2),
])
def test_local_bound_holds_on_runs_and_beats_li(tiny, kw):
    cfg = tiny.config(rounds=12, local_steps=3, **kw)
    rep = bc.check(cfg, tiny, seeds=3, bound="local")
    assert rep.constants["bound"] == "local"
    assert rep.holds, rep.violations()
    li = np.asarray(rep.constants["li"]["bound_dist_sq"])
    assert np.all(rep.bound_dist_sq[1:] < li[1:])  # Li et al.'s stays as a column, looser
    assert rep.constants["local"]["drift_first"] <= rep.constants["local"]["drift_bound_first"]


def test_budget_prediction_equals_brute_force_best(tiny):
    """Full batch: the predicted best policy is the runs' best (brute force over the policies)."""
    pols = ["none", "fixed:1", "fixed:2"]
    lr = 1.0 / tiny.convex.L
    res = predict_budget(tiny, pols, 40_000, local_steps=3, seeds=[0], lr=lr)
    assert res.bytes_match
    assert res.predicted_dist_sq == pytest.approx(res.measured_dist_sq, rel=1e-8)
    measured_best = pols[int(np.argmin(res.measured_dist_sq))]
    assert res.predicted_best == measured_best
    lin = predict_budget(tiny, pols, 40_000, local_steps=3, seeds=[0], lr=lr,
                         predictor="linearised")
    assert lin.predicted_best == measured_best
    # the library's choice (theory.budget) from the same w_0 agrees
    import fl_sim
    from boundcheck.problems import PARAM

    base = tiny.config(local_steps=3, rounds=1, batch_size=None, lr=lr)
    w0 = fl_sim.setup(base, tiny.data).initial_params()[PARAM].detach().double().numpy().T
    assert choose_policy(tiny.convex, pols, w0, lr, 3, 40_000).best == measured_best
