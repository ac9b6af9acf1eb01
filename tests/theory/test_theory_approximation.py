"""Tests of theory.approximation: Eckart–Young errors, policy bounds, HMT bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lowrank.policies import EnergyThreshold, ErrorBudget, FixedRank, RankRatio
from theory.approximation import (
    contraction_delta,
    hmt_expected_error_bound,
    model_error_bound,
    model_relative_error_bound,
    policy_error_bound,
    policy_relative_error_bound,
    spectral_tail,
    tail_energy,
)


def _matrix(m, n, s, rng):
    k = len(s)
    u, _ = np.linalg.qr(rng.standard_normal((m, k)))
    v, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return (u * s) @ v.T


def _truncate(w, r):
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r]


@pytest.mark.parametrize("shape", [(7, 5), (4, 9), (6, 6)])
def test_tail_energy_is_the_truncation_error(shape):
    rng = np.random.default_rng(0)
    w = rng.standard_normal(shape)
    s = np.linalg.svd(w, compute_uv=False)
    for r in range(0, min(shape) + 2):
        err = np.linalg.norm(w - _truncate(w, r)) ** 2
        assert tail_energy(s, r) == pytest.approx(err, rel=1e-10, abs=1e-12)
        assert spectral_tail(s, r) == pytest.approx(
            np.linalg.norm(w - _truncate(w, r), 2), rel=1e-10, abs=1e-12
        )


def test_tail_energy_batches_and_per_matrix_ranks():
    rng = np.random.default_rng(1)
    s = -np.sort(-np.abs(rng.standard_normal((3, 2, 5))), axis=-1)
    ranks = np.array([[0, 1], [2, 3], [5, 9]])
    out = tail_energy(s, ranks)
    assert out.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert out[i, j] == pytest.approx(np.sum(s[i, j, ranks[i, j]:] ** 2))
    assert np.all(spectral_tail(s, 5) == 0)
    assert tail_energy(torch.tensor([3.0, 2.0, 1.0]), 1) == pytest.approx(5.0)


def test_eckart_young_no_rank_r_matrix_does_better():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 6))
    s = np.linalg.svd(w, compute_uv=False)
    for _ in range(50):
        x = rng.standard_normal((8, 2)) @ rng.standard_normal((2, 6))
        assert np.linalg.norm(w - x) ** 2 >= tail_energy(s, 2)


@pytest.mark.parametrize("bad", [np.array([1.0, 2.0]), np.array([1.0, -0.5]), np.array([np.nan])])
def test_spectrum_validation(bad):
    with pytest.raises(ValueError, match="singular_values"):
        tail_energy(bad, 1)


def test_rank_validation():
    with pytest.raises(ValueError, match="rank"):
        tail_energy(np.array([2.0, 1.0]), -1)
    with pytest.raises(ValueError, match="rank"):
        tail_energy(np.array([2.0, 1.0]), 0.5)


def test_contraction_delta():
    assert contraction_delta(2, 10, 4) == 0.5
    assert contraction_delta(9, 10, 4) == 1.0
    with pytest.raises(ValueError, match="rank"):
        contraction_delta(0, 3, 3)
    with pytest.raises(ValueError, match="m"):
        contraction_delta(1, 0, 3)


def test_fixed_rank_bound_is_tight_for_a_flat_spectrum():
    # all singular values equal: truncation to r keeps exactly r/k of the energy
    assert policy_relative_error_bound(FixedRank(3), 12, 8) == pytest.approx(5 / 8)
    s = np.full(8, 2.0)
    assert tail_energy(s, 3) / np.sum(s**2) == pytest.approx(5 / 8)
    assert policy_relative_error_bound(FixedRank(100), 12, 8) == 0.0
    assert policy_relative_error_bound(RankRatio(0.25), 12, 8) == pytest.approx(6 / 8)


@pytest.mark.parametrize(
    "policy",
    [FixedRank(1), FixedRank(3), RankRatio(0.4), EnergyThreshold(0.5), EnergyThreshold(0.9),
     EnergyThreshold(0.999)],
)
@pytest.mark.parametrize("decay", [0.0, 0.3, 1.0])
def test_policy_bounds_hold_on_random_matrices(policy, decay):
    rng = np.random.default_rng(3)
    m, n = 10, 7
    for trial in range(20):
        s = np.sort(np.exp(-decay * np.arange(7)) * rng.uniform(0.5, 1.5, 7))[::-1]
        w = _matrix(m, n, s, rng)
        s_num = torch.from_numpy(np.linalg.svd(w, compute_uv=False))
        r = int(policy.select(s_num, m, n))
        err = np.linalg.norm(w - _truncate(w, r)) ** 2
        bound = policy_relative_error_bound(policy, m, n) * np.linalg.norm(w) ** 2
        assert err <= bound * (1 + 1e-12) + 1e-12, (trial, r)
        exact = policy_error_bound(policy, m, n, singular_values=s_num.numpy())
        assert exact == pytest.approx(err, rel=1e-9, abs=1e-12)


def test_energy_threshold_bound_is_nearly_attained():
    # spectrum whose first singular value keeps exactly half the energy
    s = np.array([1.0, 1 / math.sqrt(3), 1 / math.sqrt(3), 1 / math.sqrt(3)])
    rel = tail_energy(s, 1) / np.sum(s**2)
    bound = policy_relative_error_bound(EnergyThreshold(0.5), 4, 4, dtype_eps=0.0)
    assert rel == pytest.approx(0.5) and bound == pytest.approx(0.5)
    r = int(EnergyThreshold(0.5).select(torch.tensor(s), 4, 4))
    assert r == 1
    # the float32 slack makes the default bound slightly larger than 1 - tau
    assert policy_relative_error_bound(EnergyThreshold(0.5), 4, 4) > 0.5


def test_every_policy_keeps_at_least_rank_one():
    assert policy_relative_error_bound(EnergyThreshold(1e-6), 5, 4) == pytest.approx(0.75)
    assert policy_error_bound(ErrorBudget(100.0), 5, 4, sq_norm=8.0) == pytest.approx(6.0)
    assert policy_error_bound(ErrorBudget(0.5), 5, 4, sq_norm=8.0) == pytest.approx(0.25)


def test_error_budget_relative_raises_and_absolute_holds():
    with pytest.raises(ValueError, match="ErrorBudget"):
        policy_relative_error_bound(ErrorBudget(0.1), 5, 5)
    rng = np.random.default_rng(4)
    w = rng.standard_normal((9, 6))
    s = np.linalg.svd(w, compute_uv=False)
    for eps in [0.1, 1.0, 2.5]:
        exact = policy_error_bound(ErrorBudget(eps), 9, 6, singular_values=s)
        assert exact <= eps**2 + 1e-12
        assert exact <= policy_error_bound(ErrorBudget(eps), 9, 6, sq_norm=np.sum(s**2)) + 1e-12


def test_policy_error_bound_input_checks():
    with pytest.raises(ValueError, match="singular_values or sq_norm"):
        policy_error_bound(FixedRank(1), 3, 3)
    with pytest.raises(ValueError, match="sq_norm"):
        policy_error_bound(FixedRank(1), 3, 3, sq_norm=-1.0)
    with pytest.raises(ValueError, match="full spectrum"):
        policy_error_bound(FixedRank(1), 3, 4, singular_values=[2.0, 1.0])
    with pytest.raises(TypeError, match="policy"):
        policy_relative_error_bound(object(), 3, 3)


def test_model_error_bound_sums_layers_and_bounds_a_real_model():
    rng = np.random.default_rng(5)
    shapes = [(12, 8), (8, 20), (5, 8)]
    policies = [FixedRank(2), EnergyThreshold(0.8), RankRatio(0.5)]
    ws = [rng.standard_normal(sh) for sh in shapes]
    triples = zip(policies, shapes, ws, strict=True)
    layers = [(p, *sh, np.linalg.norm(w) ** 2) for p, sh, w in triples]
    bound = model_error_bound(layers)
    assert bound.sq_error == pytest.approx(sum(x.sq_error for x in bound.layers))
    actual = 0.0
    for p, (m, n), w in zip(policies, shapes, ws, strict=True):
        s = torch.from_numpy(np.linalg.svd(w, compute_uv=False))
        actual += np.linalg.norm(w - _truncate(w, int(p.select(s, m, n)))) ** 2
    assert actual <= bound.sq_error
    q2 = model_relative_error_bound([(p, *sh) for p, sh in zip(policies, shapes, strict=True)])
    assert q2 == 1 - 2 / 8  # FixedRank(2) on 12 x 8 dominates 0.2 (+slack) and 1 - 3/5
    assert actual <= q2 * sum(np.linalg.norm(w) ** 2 for w in ws)
    assert bound.relative <= q2 + 1e-12
    with pytest.raises(ValueError, match="layers"):
        model_error_bound([(FixedRank(1), 3)])


def test_hmt_formula_values():
    s = np.array([4.0, 3.0, 2.0, 1.0, 0.5, 0.25, 0.0])
    tail = math.sqrt(1 + 0.25 + 0.0625)
    assert hmt_expected_error_bound(s, 3, 3) == pytest.approx(math.sqrt(1 + 3 / 2) * tail)
    assert hmt_expected_error_bound(s, 3, 3, truncated=True) == pytest.approx(
        (math.sqrt(2.5) + 1) * tail
    )
    spec = (1 + math.sqrt(1.5)) * 1.0 + math.e * math.sqrt(6) / 3 * tail
    assert hmt_expected_error_bound(s, 3, 3, norm="spectral") == pytest.approx(spec)
    tail3 = math.sqrt(1 + 0.5**6 + 0.25**6)
    spec1 = ((1 + math.sqrt(1.5)) * 1.0 + math.e * math.sqrt(6) / 3 * tail3) ** (1 / 3)
    assert hmt_expected_error_bound(s, 3, 3, q=1, norm="spectral") == pytest.approx(spec1)


def test_hmt_bounds_hold_in_monte_carlo():
    rng = np.random.default_rng(6)
    m, n, k, p = 40, 30, 4, 3
    s = 0.7 ** np.arange(30)
    a = _matrix(m, n, s, rng)
    fro, spec, spec_q1, fro_trunc = [], [], [], []
    for _ in range(300):
        omega = rng.standard_normal((n, k + p))
        q, _ = np.linalg.qr(a @ omega)
        resid = a - q @ (q.T @ a)
        fro.append(np.linalg.norm(resid))
        spec.append(np.linalg.norm(resid, 2))
        fro_trunc.append(np.linalg.norm(a - q @ _truncate(q.T @ a, k)))
        q1, _ = np.linalg.qr(a @ (a.T @ (a @ omega)))
        spec_q1.append(np.linalg.norm(a - q1 @ (q1.T @ a), 2))
    assert np.mean(fro) <= hmt_expected_error_bound(s, k, p)
    assert np.mean(fro_trunc) <= hmt_expected_error_bound(s, k, p, truncated=True)
    assert np.mean(spec) <= hmt_expected_error_bound(s, k, p, norm="spectral")
    assert np.mean(spec_q1) <= hmt_expected_error_bound(s, k, p, q=1, norm="spectral")
    # and the bounds are never below the optimum
    assert hmt_expected_error_bound(s, k, p) >= math.sqrt(tail_energy(s, k))
    assert hmt_expected_error_bound(s, k, p, q=2, norm="spectral") >= s[k]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k": 1, "p": 3}, "k"), ({"k": 3, "p": 1}, "p"), ({"k": 4, "p": 4}, "k \\+ p"),
     ({"k": 2, "p": 2, "q": 1}, "spectral"), ({"k": 2, "p": 2, "norm": "nuc"}, "norm"),
     ({"k": 2, "p": 2, "q": -1}, "q")],
)
def test_hmt_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hmt_expected_error_bound(np.array([5.0, 4, 3, 2, 1, 0.5, 0.1]), **kwargs)
