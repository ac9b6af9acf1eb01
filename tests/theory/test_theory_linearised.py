"""theory.linearised: FedAvg linearised at w* (exact for ridge, second order for logistic)."""

from __future__ import annotations

import numpy as np
import pytest

from theory.constants import logistic_problem, ridge_problem
from theory.linearised import linearise, linearised_round
from theory.quadratic import LeastSquaresClients, round_maps


def _data(seed, N=3, n=12, d=3, c=3, labels=False):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(N):
        x = rng.normal(size=(n, d)) * (1 + 0.5 * k) + k
        y = rng.integers(0, c, size=n) if labels else rng.normal(size=(n, c)) + k
        out.append((x, y))
    return out


def test_linearisation_of_ridge_is_the_exact_round_map():
    conv = ridge_problem(_data(0), lam=0.1)
    cl = LeastSquaresClients.from_convex(conv)
    E, eta = 3, 0.5 / conv.L
    lin = linearise(conv)
    W0 = np.random.default_rng(1).normal(size=conv.shape)
    exact = round_maps(cl, np.full(E, eta), E)[0].trajectory(W0, 15) - conv.w_star
    approx = linearised_round(lin, eta, E).trajectory(lin.to_vec(W0), 15)
    np.testing.assert_allclose(approx.reshape(exact.shape), exact, rtol=1e-9, atol=1e-12)


def _true_round(conv, W, eta, E):
    """One round of full-batch FedAvg on the true objective (numpy)."""
    out = np.zeros_like(W)
    for k, pk in enumerate(conv.p):
        w = W.copy()
        for _ in range(E):
            w = w - eta * conv.grad_k(k, w)
        out += pk * w
    return out


def test_logistic_linearisation_is_second_order_and_unbiased_for_one_step():
    conv = logistic_problem(_data(2, labels=True), num_classes=3, lam=0.1)
    lin = linearise(conv)
    eta = 0.5 / conv.L
    assert lin.heterogeneity_at_optimum > 1e-3  # clients disagree at w*
    assert np.linalg.norm(linearised_round(lin, eta, 1).fixed_point()) < 1e-10
    assert np.linalg.norm(linearised_round(lin, eta, 4).fixed_point()) > 1e-4
    rm = linearised_round(lin, eta, 4)
    direction = np.random.default_rng(3).normal(size=conv.shape)
    errs = []
    for scale in (1e-1, 5e-2):
        W = conv.w_star + scale * direction
        true = lin.to_vec(_true_round(conv, W, eta, 4))
        errs.append(float(np.linalg.norm(rm(lin.to_vec(W)) - true)))
    assert errs[1] < errs[0] / 3  # the remainder is O(||w - w*||^2): halving divides by ~4
    with pytest.raises(ValueError, match="eta, E"):
        linearised_round(lin, 0.0, 2)
