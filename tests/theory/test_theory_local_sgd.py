"""The drift-at-the-optimum bound of docs/theory.md §13 (theory.local_sgd).

Exactness where the quantity is computable (full batch: deterministic; client sampling and
minibatches: exact enumeration of every draw), finite differences for the constants.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.constants import logistic_problem, ridge_problem
from theory.local_sgd import (
    LocalRoundMap,
    drift_bound,
    local_gd,
    local_recursion,
    local_steps,
    sample_smoothness,
)
from theory.quadratic import truncate


def _logistic(seed: int, N: int = 3, n: int = 6, d: int = 3, C: int = 3, lam: float = 0.3,
              spread: float = 1.5):
    rng = np.random.default_rng(seed)
    clients = []
    for k in range(N):
        x = rng.normal(spread * rng.normal(size=d), 1.0, size=(n + k, d))
        y = rng.integers(0, C, size=n + k)
        clients.append((x, y))
    return logistic_problem(clients, C, lam, tol=1e-11)


def _round(prob, W, etas, policy, weights):
    """One full-batch FedDLR round with aggregation weights; returns (W+, e_s, e_c)."""
    start = truncate(W, policy)
    outs = [local_gd(prob, k, start, etas) for k in range(prob.num_clients)]
    sent = [truncate(y, policy) for y in outs]
    agg = sum(a * s for a, s in zip(weights, sent, strict=True))
    e_c = np.linalg.norm(sum(a * (s - y) for a, s, y in zip(weights, sent, outs, strict=True)))
    return agg, float(np.linalg.norm(start - W)), float(e_c)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), E=st.integers(1, 6), frac=st.floats(0.2, 1.0),
       lam=st.floats(0.05, 1.0), policy=st.sampled_from([None, "fixed:1", "fixed:2"]))
def test_bound_holds_full_participation_every_round(seed, E, frac, lam, policy):
    """Full batch, full participation: the run is deterministic, the bound must hold each round."""
    prob = _logistic(seed, lam=lam)
    eta = frac * float(np.min(2.0 / (prob.mu_k + prob.L_k)))
    ls = local_steps(prob, [eta] * E)
    W = np.random.default_rng(seed + 1).normal(size=prob.shape)
    d = [float(np.linalg.norm(W - prob.w_star))]
    maps = []
    for _ in range(8):
        W, es, ec = _round(prob, W, [eta] * E, policy, prob.p)
        maps.append(ls.round_map(e_s=es, e_c=ec))
        d.append(float(np.linalg.norm(W - prob.w_star)))
    bound = local_recursion(d[0], maps, prob.L).d
    assert np.all(bound >= np.array(d) * (1 - 1e-12))
    # the a-priori drift (from zeta_k only) is a valid, larger drift
    assert ls.drift_bound >= ls.drift * (1 - 1e-12) - 1e-15  # E = 1: both are ~1e-17 rounding


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), E=st.integers(1, 4), frac=st.floats(0.3, 1.0),
       policy=st.sampled_from([None, "fixed:1"]))
def test_bound_holds_under_client_sampling_exactly(seed, E, frac, policy):
    """scheme1 (K = 2 of N = 3 draws with p_k): L2 norms over every draw sequence, 3 rounds."""
    prob = _logistic(seed)
    eta = frac * float(np.min(2.0 / (prob.mu_k + prob.L_k)))
    ls = local_steps(prob, [eta] * E)
    K, R, N = 2, 3, prob.num_clients
    draws = list(itertools.product(range(N), repeat=K))
    W0 = np.random.default_rng(seed + 1).normal(size=prob.shape)
    paths = [(1.0, W0)]  # (probability, model)
    d = [float(np.linalg.norm(W0 - prob.w_star))]
    maps = []
    for _ in range(R):
        new, es2, ec2 = [], 0.0, 0.0
        for pr, W in paths:
            for dr in draws:
                q = pr * float(np.prod(prob.p[list(dr)]))
                a = np.bincount(dr, minlength=N) / K
                W1, es, ec = _round(prob, W, [eta] * E, policy, a)
                new.append((q, W1))
                es2, ec2 = es2 + q * es**2, ec2 + q * ec**2
        paths = new
        maps.append(ls.round_map("scheme1", K, float(np.sqrt(es2)), float(np.sqrt(ec2))))
        d.append(float(np.sqrt(sum(q * np.sum((W - prob.w_star) ** 2) for q, W in paths))))
    bound = local_recursion(d[0], maps, prob.L).d
    assert np.all(bound >= np.array(d) * (1 - 1e-12))


def test_minibatch_round_bound_exact_enumeration():
    """One minibatch round (b = 1, with replacement) from a fixed w: E||w+ - w*||^2 exactly."""
    rng = np.random.default_rng(3)
    clients = [(rng.normal(size=(3, 2)), rng.normal(size=(3, 2))) for _ in range(2)]
    prob = ridge_problem(clients, lam=0.5)
    E = 2
    eta = 0.9 * float(np.min(2.0 / (prob.lam + sample_smoothness(prob))))
    ls = local_steps(prob, [eta] * E, batch_size=1)
    m = ls.round_map()
    assert ls.sigma2_k.min() > 0 and m.drift == ls.drift_bound
    for scale in (1.0, 0.05, 0.0):  # far (contraction) to at w* (drift and noise only)
        W = prob.w_star + scale * rng.normal(size=prob.shape)
        second = 0.0
        per_client = []
        for k in range(2):
            outs = []
            for seq in itertools.product(range(3), repeat=E):
                y = W.copy()
                for i in seq:
                    x, t = prob.X[k][i:i + 1], prob.Y[k][i:i + 1]
                    y = y - eta * (x.T @ (x @ y - t) + prob.lam * y)
                outs.append(y)
            per_client.append(outs)
        for a, b in itertools.product(per_client[0], per_client[1]):
            w_new = prob.p[0] * a + prob.p[1] * b
            second += np.sum((w_new - prob.w_star) ** 2) / len(per_client[0]) ** 2
        d = float(np.linalg.norm(W - prob.w_star))
        assert float(m(d)) >= np.sqrt(second)
        assert float(m(d)) <= m.rho * d + m.drift  # the cross branch is no worse


def test_contraction_and_drift_constants():
    prob = _logistic(7, lam=0.2)
    E, eta = 4, 0.8 * float(np.min(2.0 / (prob.mu_k + prob.L_k)))
    ls = local_steps(prob, [eta] * E)
    rng = np.random.default_rng(0)
    for k in range(prob.num_clients):  # T_k is contraction_k-Lipschitz
        for _ in range(5):
            x, y = rng.normal(size=(2, *prob.shape)) * 3
            lhs = np.linalg.norm(local_gd(prob, k, x, [eta] * E) - local_gd(prob, k, y, [eta] * E))
            assert lhs <= ls.contraction_k[k] * np.linalg.norm(x - y) * (1 + 1e-12)
    assert ls.contraction_k == pytest.approx((1 - eta * prob.lam) ** E)  # mu = lam (logistic)
    a = float(np.prod(1 - np.full(E, eta) * (prob.L + prob.mu) / 2))
    for k in range(prob.num_clients):  # the clients' maps differ from a I by <= centred
        x, y = rng.normal(size=(2, *prob.shape)) * 3
        diff = local_gd(prob, k, x, [eta] * E) - local_gd(prob, k, y, [eta] * E) - a * (x - y)
        assert np.linalg.norm(diff) <= ls.centred_contraction * np.linalg.norm(x - y) * (
            1 + 1e-12)
    # b: one uncompressed round from w*, client by client with local_gd (not client_drifts)
    moved = sum(prob.p[k] * (local_gd(prob, k, prob.w_star, [eta] * E) - prob.w_star)
                for k in range(prob.num_clients))
    assert ls.drift == pytest.approx(np.linalg.norm(moved), rel=1e-10)
    assert ls.drift > 0  # E > 1 on heterogeneous clients: the round moves off w*
    # zeta_k = ||grad F_k(w*)||, against central finite differences of F_k
    h = 1e-6
    for k in range(prob.num_clients):
        g = np.zeros(prob.shape)
        for idx in np.ndindex(*prob.shape):
            e = np.zeros(prob.shape)
            e[idx] = h
            g[idx] = (prob.F_k(k, prob.w_star + e) - prob.F_k(k, prob.w_star - e)) / (2 * h)
        assert np.linalg.norm(g) == pytest.approx(ls.zeta_k[k], rel=1e-5)
    # the constant-step closed form of the a-priori drift dominates the recursion's
    zeta_star = np.sqrt(ls.heterogeneity_at_optimum)
    closed = drift_bound(prob.L, zeta_star, eta, E) + E * eta * ls.grad_norm
    assert ls.drift <= ls.drift_bound <= closed * (1 + 1e-12)


def test_sample_smoothness_against_finite_differences():
    """Every one-sample loss has a Hessian below lam + ||x||^2 / 2 (logistic)."""
    prob = _logistic(11, N=2, n=4)
    Ls = sample_smoothness(prob)
    rng = np.random.default_rng(1)
    for k in range(prob.num_clients):
        for i in range(prob.X[k].shape[0]):
            one = logistic_problem([(prob.X[k][i:i + 1], prob.Y[k][i:i + 1])], 3, prob.lam)
            W = rng.normal(size=prob.shape)
            H = np.zeros((W.size, W.size))
            h = 1e-6
            for j in range(W.size):
                e = np.zeros(W.size)
                e[j] = h
                H[:, j] = ((one.grad_k(0, W + e.reshape(W.shape))
                            - one.grad_k(0, W - e.reshape(W.shape))).ravel() / (2 * h))
            assert np.linalg.eigvalsh((H + H.T) / 2).max() <= Ls[k] * (1 + 1e-6)


def test_step_condition_and_map_errors():
    prob = _logistic(2)
    too_big = 2.01 / float(np.min(prob.mu_k + prob.L_k))
    with pytest.raises(ValueError, match="etas: step"):
        local_steps(prob, [too_big])
    with pytest.raises(ValueError, match="participation"):
        local_steps(prob, [0.1], batch_size=2).round_map("scheme1", 2)
    m = LocalRoundMap(0.5, 0.1)
    assert m.floor() == pytest.approx(0.2)  # d = 0.5 d + 0.1
    assert LocalRoundMap(1.0, 0.1).floor() == float("inf")  # no contraction, no floor
    # with sampling, the linear branch caps the slope at rho_max
    assert LocalRoundMap(0.9, 0.0, 0.5, 0.1, rho_max=0.9).lipschitz == pytest.approx(0.9)


def test_scheme2_needs_balanced_weights():
    """scheme2's sampling factor (docs/theory.md §13.3) holds for p_k = 1/N only."""
    prob = _logistic(4)  # clients of 6, 7, 8 samples: unbalanced p
    eta = 0.5 * float(np.min(2.0 / (prob.mu_k + prob.L_k)))
    ls = local_steps(prob, [eta] * 2)
    with pytest.raises(ValueError, match="scheme2.*balanced"):
        ls.round_map("scheme2", 2)
    assert ls.round_map("scheme1", 2).rho > 0  # scheme1 takes any weights
