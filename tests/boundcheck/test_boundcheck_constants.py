"""The constants a check uses are valid: exact at the points and sup over them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import boundcheck as bc
import fl_sim
from boundcheck.trajectory import constants_at_points


@pytest.fixture(scope="module")
def ridge():
    return bc.ridge_problem(num_clients=3, samples_per_client=20, dim=6, out_dim=3)


def test_vectorized_constants_match_theory(ridge):
    logistic = bc.synthetic_problem(num_clients=3, max_samples_per_client=50, dim=8,
                                    num_classes=3)
    rng = np.random.default_rng(1)
    for prob in (ridge, logistic):
        c = prob.convex
        pts = rng.normal(size=(4, *c.shape))
        s2, g2 = constants_at_points(c, pts, batch_size=3)
        for m in range(4):
            for k in range(c.num_clients):
                np.testing.assert_allclose(s2[m, k], c.sigma2_k_at(k, pts[m], 3), rtol=1e-9)
                np.testing.assert_allclose(g2[m, k], c.G2_k_at(k, pts[m], 3), rtol=1e-9)


def test_recorded_sup_dominates_every_iterate(ridge):
    c = ridge.convex
    cfg = ridge.config(algorithm="feddlr", policy_down="fixed:1", policy_up="fixed:1",
                       local_steps=3, rounds=3)
    rec = bc.TrajectoryRecorder(c, cfg.batch_size, keep_points=True)
    fl_sim.run(cfg, data=ridge.data, observer=rec.observer)
    st = rec.stats()
    assert st.num_points == len(rec.points) == 3 * (1 + 2 * 3) + 4  # j=0 deduplicated
    for W in rec.points[::3]:
        for k in range(c.num_clients):
            assert c.sigma2_k_at(k, W, cfg.batch_size) <= st.sigma2[k] * (1 + 1e-9)
            assert c.G2_k_at(k, W, cfg.batch_size) <= st.G2 * (1 + 1e-9)
    assert np.all(st.sigma2_rounds.max(axis=0) == st.sigma2)
    # the ball of the farthest point contains every point, and its bounds dominate
    ball = c.ball_bound(st.max_radius, cfg.batch_size)
    assert np.all(ball.sigma2 >= st.sigma2) and ball.G2 >= st.G2


def test_problem_constants_are_those_of_the_simulator_arrays(ridge):
    c, data = ridge.convex, ridge.data
    assert np.array_equal(c.p, data.weights)
    for k in range(data.num_clients):
        assert np.array_equal(c.X[k], data.client_x(k).double().numpy())
    # w* is a minimizer of the simulator's objective: its gradient there vanishes
    cfg = ridge.config()
    sim = fl_sim.setup(cfg, ridge.data)
    w = {n: t.clone().requires_grad_(True) for n, t in ridge.w_star_params().items()}
    loss = 0.0
    for k in range(data.num_clients):
        pred = torch.func.functional_call(sim.model, w, (sim.data.client_x(k),))
        per = 0.5 * (pred - sim.data.client_y(k)).square().sum(1).mean()
        loss = loss + float(c.p[k]) * per
    loss = loss + 0.5 * cfg.weight_decay * sum(t.square().sum() for t in w.values())
    (g,) = torch.autograd.grad(loss, list(w.values()))
    assert float(g.norm()) < 1e-10
