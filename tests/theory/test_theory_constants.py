"""Tests of theory.constants: ridge and logistic constants against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theory.constants import logistic_problem, ridge_problem


def _ridge_clients(rng, sizes=(30, 12, 20), d=4, out=3):
    clients = []
    for k, n in enumerate(sizes):
        x = rng.standard_normal((n, d)) * (1 + k) + 0.5 * k
        y = x @ rng.standard_normal((d, out)) + rng.standard_normal((n, out))
        clients.append((x, y))
    return clients


def _logistic_clients(rng, sizes=(15, 9, 12), d=3, c=3):
    clients = []
    for k, n in enumerate(sizes):
        x = rng.standard_normal((n, d)) + 0.7 * k
        clients.append((x, rng.integers(0, c, n)))
    return clients


@pytest.fixture(scope="module")
def ridge():
    return ridge_problem(_ridge_clients(np.random.default_rng(0)), lam=0.1)


@pytest.fixture(scope="module")
def logistic():
    return logistic_problem(_logistic_clients(np.random.default_rng(1)), num_classes=3, lam=0.05)


def _fd_hessian(problem, k, W, h=1e-5):
    """Central finite differences of the analytic gradient."""
    n = W.size
    H = np.empty((n, n))
    for i in range(n):
        e = np.zeros(n)
        e[i] = h
        gp = problem.grad_k(k, W + e.reshape(W.shape)).ravel()
        gm = problem.grad_k(k, W - e.reshape(W.shape)).ravel()
        H[:, i] = (gp - gm) / (2 * h)
    return 0.5 * (H + H.T)


def _fd_grad(problem, k, W, h=1e-6):
    g = np.empty(W.size)
    for i in range(W.size):
        e = np.zeros(W.size)
        e[i] = h
        g[i] = (problem.F_k(k, W + e.reshape(W.shape)) - problem.F_k(k, W - e.reshape(W.shape))) / (
            2 * h
        )
    return g.reshape(W.shape)


@pytest.mark.parametrize("name", ["ridge", "logistic"])
def test_gradient_matches_finite_differences(name, request):
    problem = request.getfixturevalue(name)
    rng = np.random.default_rng(2)
    for k in range(problem.num_clients):
        W = rng.standard_normal(problem.shape)
        np.testing.assert_allclose(problem.grad_k(k, W), _fd_grad(problem, k, W), atol=1e-7)
        np.testing.assert_allclose(problem.hessian_k(k, W), _fd_hessian(problem, k, W), atol=1e-6)


def test_ridge_L_and_mu_are_the_hessian_extremes(ridge):
    eigs = [np.linalg.eigvalsh(_fd_hessian(ridge, k, np.zeros(ridge.shape)))
            for k in range(ridge.num_clients)]
    assert ridge.L == pytest.approx(max(e[-1] for e in eigs), rel=1e-7)
    assert ridge.mu == pytest.approx(min(e[0] for e in eigs), rel=1e-7)
    for k, e in enumerate(eigs):
        assert ridge.L_k[k] == pytest.approx(e[-1], rel=1e-7)
        assert ridge.mu_k[k] == pytest.approx(e[0], rel=1e-7)


def test_ridge_optimum_and_heterogeneity(ridge):
    assert np.linalg.norm(ridge.grad(ridge.w_star)) < 1e-12
    assert ridge.grad_norm_at_w_star < 1e-12
    rng = np.random.default_rng(3)
    for _ in range(10):
        assert ridge.F(ridge.w_star + 1e-3 * rng.standard_normal(ridge.shape)) > ridge.F_star
    for k in range(ridge.num_clients):
        assert np.linalg.norm(ridge.grad_k(k, ridge.w_k_star[k])) < 1e-12
        assert ridge.F_k_star[k] <= ridge.F_k(k, ridge.w_star)
        assert ridge.F_k_star[k] == pytest.approx(ridge.F_k(k, ridge.w_k_star[k]), abs=1e-12)
    assert ridge.Gamma > 0  # non-iid clients
    assert ridge.Gamma == pytest.approx(ridge.F_star - ridge.p @ ridge.F_k_star)
    assert ridge.p == pytest.approx(np.array([30, 12, 20]) / 62)


def test_ridge_iid_copies_have_zero_gamma():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal((20, 2))
    problem = ridge_problem([(x, y), (x.copy(), y.copy())], lam=0.0)
    assert problem.Gamma == pytest.approx(0.0, abs=1e-12)
    assert problem.mu > 0


@pytest.mark.parametrize("name", ["ridge", "logistic"])
@pytest.mark.parametrize("batch_size, replace", [(1, True), (4, True), (6, False), (1, False)])
def test_sigma2_matches_monte_carlo(name, batch_size, replace, request):
    problem = request.getfixturevalue(name)
    rng = np.random.default_rng(5)
    k = 1  # 12 (ridge) or 9 (logistic) samples: the finite-population correction matters
    W = problem.w_star + rng.standard_normal(problem.shape)
    grads = problem.sample_grads_k(k, W)
    n = grads.shape[0]
    full = problem.grad_k(k, W)
    M = 40_000
    if replace:
        idx = rng.integers(0, n, (M, batch_size))
    else:
        idx = np.argsort(rng.random((M, n)), axis=1)[:, :batch_size]
    sq = np.sum((grads[idx].mean(axis=1) - full) ** 2, axis=(1, 2))
    estimate, se = sq.mean(), sq.std(ddof=1) / math.sqrt(M)
    exact = problem.sigma2_k_at(k, W, batch_size, replace=replace)
    assert abs(estimate - exact) <= 4 * se  # 4 Monte-Carlo standard errors
    other = problem.sigma2_k_at(k, W, batch_size, replace=not replace)
    if batch_size > 1:
        assert abs(estimate - other) > 4 * se  # the test can tell the two formulas apart


def test_sigma2_edge_cases(ridge):
    W = ridge.w_star
    n = ridge.X[1].shape[0]
    assert ridge.sigma2_k_at(1, W, n, replace=False) == 0.0  # the full batch has no noise
    assert ridge.sigma2_k_at(1, W, 2) == pytest.approx(ridge.sigma2_k_at(1, W, 1) / 2)
    with pytest.raises(ValueError, match="batch_size"):
        ridge.sigma2_k_at(1, W, n + 1, replace=False)
    with pytest.raises(ValueError, match="batch_size"):
        ridge.sigma2_k_at(1, W, 0)
    with pytest.raises(ValueError, match="k"):
        ridge.sigma2_k_at(3, W, 1)
    with pytest.raises(ValueError, match="transposed"):
        ridge.F(W.T)


@pytest.mark.parametrize("name", ["ridge", "logistic"])
def test_G2_and_sup_over_points(name, request):
    problem = request.getfixturevalue(name)
    rng = np.random.default_rng(6)
    points = [problem.w_star + rng.standard_normal(problem.shape) for _ in range(4)]
    per = [[float(np.sum(problem.grad_k(k, W) ** 2)) + problem.sigma2_k_at(k, W, 2)
            for k in range(problem.num_clients)] for W in points]
    for W, row in zip(points, per, strict=True):
        assert problem.G2_at(W, 2) == pytest.approx(max(row))
    sup = problem.sup_over_points(points, 2)
    assert sup.G2 == pytest.approx(max(max(r) for r in per))
    for k in range(problem.num_clients):
        assert sup.sigma2[k] == pytest.approx(max(problem.sigma2_k_at(k, W, 2) for W in points))
    with pytest.raises(ValueError, match="points"):
        problem.sup_over_points([], 2)


@pytest.mark.parametrize("name", ["ridge", "logistic"])
@pytest.mark.parametrize("batch_size, replace", [(1, True), (3, True), (3, False)])
def test_ball_bound_dominates_points_in_the_ball(name, batch_size, replace, request):
    problem = request.getfixturevalue(name)
    R = 0.8
    ball = problem.ball_bound(R, batch_size, replace)
    rng = np.random.default_rng(7)
    for _ in range(30):
        u = rng.standard_normal(problem.shape)
        W = problem.w_star + R * rng.uniform() ** 0.1 * u / np.linalg.norm(u)
        assert problem.G2_at(W, batch_size, replace) <= ball.G2
        for k in range(problem.num_clients):
            assert problem.sigma2_k_at(k, W, batch_size, replace) <= ball.sigma2[k]
    at_center = problem.ball_bound(0.0, batch_size, replace)
    assert at_center.G2 == pytest.approx(problem.G2_at(problem.w_star, batch_size, replace))
    with pytest.raises(ValueError, match="radius"):
        problem.ball_bound(-1.0, 1)


def test_logistic_optimum_and_certified_constants(logistic):
    assert logistic.grad_norm_at_w_star <= 1e-10
    assert np.linalg.norm(logistic.grad(logistic.w_star)) <= 1e-10
    assert logistic.w_star_error_bound <= 1e-10 / logistic.mu * (1 + 1e-12)
    for k in range(logistic.num_clients):
        assert np.linalg.norm(logistic.grad_k(k, logistic.w_k_star[k])) <= 1e-10
        assert logistic.F_k_star[k] <= logistic.F_k(k, logistic.w_star)
        assert logistic.F_k_star[k] <= logistic.F_k(k, logistic.w_k_star[k])
    assert logistic.Gamma >= 0
    assert logistic.mu == 0.05


def test_logistic_mu_and_L_bracket_the_hessian(logistic):
    rng = np.random.default_rng(8)
    for _ in range(5):
        W = 3 * rng.standard_normal(logistic.shape)
        for k in range(logistic.num_clients):
            eig = np.linalg.eigvalsh(logistic.hessian_k(k, W))
            assert eig[0] >= logistic.mu - 1e-12
            assert eig[-1] <= logistic.L_k[k] + 1e-12
            assert logistic.L_k[k] <= logistic.L
            # mu = lam is attained: the loss is flat along W = v 1^T
            assert eig[0] == pytest.approx(logistic.lam, abs=1e-10)
    # Boehning's bound is attained up to a factor: at W = 0 (uniform p) it is within 2x
    # of the largest eigenvalue of the data Hessian, for any of these clients
    eig0 = np.linalg.eigvalsh(logistic.hessian_k(0, np.zeros(logistic.shape)))
    assert eig0[-1] >= (logistic.L_k[0] - logistic.lam) / 2


def test_logistic_accepts_probability_rows_and_validates():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((10, 2))
    y = rng.integers(0, 2, 10)
    a = logistic_problem([(x, y)], num_classes=2, lam=0.1)
    b = logistic_problem([(x, np.eye(2)[y])], num_classes=2, lam=0.1)
    np.testing.assert_allclose(a.w_star, b.w_star, atol=1e-9)
    with pytest.raises(ValueError, match="lam"):
        logistic_problem([(x, y)], num_classes=2, lam=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        logistic_problem([(x, y)], num_classes=1, lam=0.1)
    with pytest.raises(ValueError, match="labels"):
        logistic_problem([(x, y + 5)], num_classes=2, lam=0.1)


def test_ridge_validation():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((2, 5))  # n < d: singular without regularization
    with pytest.raises(ValueError, match="lam"):
        ridge_problem([(x, rng.standard_normal(2))], lam=0.0)
    with pytest.raises(ValueError, match="lam"):
        ridge_problem([(x, rng.standard_normal(2))], lam=-1.0)
    with pytest.raises(ValueError, match="rows"):
        ridge_problem([(x, rng.standard_normal(3))], lam=1.0)
    with pytest.raises(ValueError, match="weights"):
        ridge_problem([(x, rng.standard_normal(2))], lam=1.0, weights=[0.5])
    with pytest.raises(ValueError, match="clients"):
        ridge_problem([], lam=1.0)
