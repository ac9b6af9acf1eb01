"""Tests of lowrank.factors: compress_matrix and LowRankFactors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank import EnergyThreshold, ErrorBudget, FixedRank, LowRankFactors, compress_matrix


def held_nbytes(f: LowRankFactors) -> int:
    """Bytes of the tensors a single-matrix payload actually holds."""
    return f.U.numel() * f.U.element_size() + f.V.numel() * f.V.element_size()


@st.composite
def matrices(draw):
    """Small float64 matrices of several kinds, built from a drawn seed."""
    m, n = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**31 - 1))
    kind = draw(st.sampled_from(["gaussian", "decaying", "repeated", "low_rank", "scaled"]))
    g = torch.Generator().manual_seed(seed)
    k = min(m, n)
    if kind == "gaussian":
        w = torch.randn(m, n, generator=g, dtype=torch.float64)
    else:
        u, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
        v, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
        j = torch.arange(1, k + 1, dtype=torch.float64)
        s = {"decaying": j**-2.0,
             "repeated": torch.ones(k, dtype=torch.float64),  # ties everywhere
             "low_rank": (j <= max(1, k // 2)).double(),
             "scaled": 1e3 * j**-0.5}[kind]
        w = (u * s) @ v.T
    return w


@settings(max_examples=40, deadline=None)
@given(w=matrices(), extra=st.integers(0, 13))
def test_eckart_young_error_equals_tail_energy(w, extra):
    m, n = w.shape
    k = min(m, n)
    r = 1 + extra % (k + 2)  # 1 .. k + 2 (above k is clipped)
    f = compress_matrix(w, FixedRank(r))
    s = np.linalg.svd(w.numpy(), compute_uv=False)  # independent reference spectrum
    tail = float(np.sum(s[min(r, k):] ** 2))
    energy = float(np.sum(s**2))
    assert f.sq_error.dtype == torch.float64
    assert float(f.sq_error) == pytest.approx(tail, rel=1e-9, abs=1e-12 * energy)
    assert float(f.energy) == pytest.approx(float(w.square().sum()), rel=1e-15)
    # the error reported is the error actually made
    made = float((w - f.to_dense()).square().sum())
    assert float(f.sq_error) == pytest.approx(made, rel=1e-12, abs=1e-14 * energy)


@settings(max_examples=40, deadline=None)
@given(w=matrices(), tau=st.floats(0.05, 1.0))
def test_energy_threshold_error_at_most_one_minus_tau(w, tau):
    f = compress_matrix(w, EnergyThreshold(tau))
    energy = float(f.energy)
    # Eckart-Young + the policy: ||W - C(W)||^2 <= (1 - tau) ||W||^2 (float64 rounding only)
    assert float(f.sq_error) <= (1 - tau) * energy + 1e-12 * energy


@settings(max_examples=40, deadline=None)
@given(w=matrices(), frac=st.floats(0.0, 1.0))
def test_error_budget_error_at_most_eps(w, frac):
    eps = frac * float(w.norm())
    f = compress_matrix(w, ErrorBudget(eps))
    assert float(f.sq_error) <= eps**2 + 1e-12 * float(f.energy)


@pytest.mark.parametrize("method", ["exact", "randomized", "power"])
@pytest.mark.parametrize(("m", "n", "k"), [(20, 15, 1), (20, 15, 4), (8, 30, 8), (12, 12, 12)])
def test_exact_recovery_when_rank_at_least_true_rank(matrix_with_spectrum, method, m, n, k):
    s = torch.linspace(5.0, 1.0, k, dtype=torch.float64)
    w = matrix_with_spectrum(m, n, s, seed=k)
    energy = float(w.square().sum())
    for r in sorted({k, k + 1, k + 3, min(m, n)}):
        f = compress_matrix(w, FixedRank(r), method, power_iters=3,
                            generator=torch.Generator().manual_seed(r))
        assert f.rank == min(r, m, n)
        assert float(f.sq_error) <= 1e-24 * energy
        torch.testing.assert_close(f.to_dense(), w, atol=1e-12 * math.sqrt(energy), rtol=0)


def test_exact_recovery_of_integer_valued_rank_one_matrix():
    w = torch.outer(torch.tensor([1.0, 2.0, -3.0]), torch.tensor([4.0, 0.0, 5.0, 6.0])).double()
    f = compress_matrix(w, FixedRank(1))
    torch.testing.assert_close(f.to_dense(), w, atol=1e-13, rtol=0)
    assert float(f.energy) == float(w.square().sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(9, 5), (5, 9), (1, 7), (7, 1)])
def test_nbytes_equals_bytes_held_single(dtype, shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    for r in (1, 2, 5):
        f = compress_matrix(w, FixedRank(r))
        assert f.nbytes == held_nbytes(f)
        assert f.nbytes == f.rank * sum(shape) * w.element_size()
        assert f.dense_nbytes == w.numel() * w.element_size()


@pytest.mark.parametrize("batch", [(4,), (2, 3)])
def test_nbytes_of_batch_is_sum_over_unbind(batch):
    g = torch.Generator().manual_seed(1)
    # different spectra per matrix, so EnergyThreshold picks different ranks
    w = torch.randn(*batch, 10, 8, generator=g) * torch.logspace(
        0, -3, 8).expand(*batch, 10, 8) ** torch.rand(*batch, 1, 1, generator=g)
    f = compress_matrix(w, EnergyThreshold(0.9))
    assert f.batch_shape == batch
    assert len(set(f.ranks.reshape(-1).tolist())) > 1, "the test needs differing ranks"
    items = f.unbind()
    assert len(items) == math.prod(batch)
    assert f.nbytes == sum(held_nbytes(i) for i in items) == sum(i.nbytes for i in items)
    # the padded columns of the batch are not counted
    assert f.nbytes < f.U.numel() * f.U.element_size() + f.V.numel() * f.V.element_size()
    with pytest.raises(ValueError, match="ranks"):
        _ = f.rank


@pytest.mark.parametrize("batched", [False, True])
def test_payload_float16_halves_nbytes(batched):
    shape = (3, 12, 7) if batched else (12, 7)
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    full = compress_matrix(w, FixedRank(3))
    half = compress_matrix(w, FixedRank(3), payload_dtype=torch.float16)
    assert half.U.dtype == half.V.dtype == torch.float16
    assert half.nbytes * 2 == full.nbytes
    if not batched:
        assert half.nbytes == held_nbytes(half)
    # to_dense restores the original dtype; fp16 rounding is the only extra error
    assert half.to_dense().dtype == torch.float32
    torch.testing.assert_close(half.to_dense(), full.to_dense(), atol=1e-2, rtol=1e-2)
    # the error reported is the one the fp16 payload actually makes
    made = (w.double() - half.U.double() @ half.V.double().mT).square().sum(dim=(-2, -1))
    torch.testing.assert_close(half.sq_error, made, rtol=1e-12, atol=0)


def test_unbind_trims_and_preserves_each_matrix():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 9, 6, generator=g, dtype=torch.float64)
    w[1] = torch.outer(torch.randn(9, generator=g, dtype=torch.float64),
                       torch.randn(6, generator=g, dtype=torch.float64))
    f = compress_matrix(w, EnergyThreshold(0.95))
    items = f.unbind()
    assert items[1].rank == 1
    dense = f.to_dense()
    for i, item in enumerate(items):
        r = int(f.ranks[i])
        assert item.U.shape == (9, r) and item.V.shape == (6, r)
        # the columns trimmed off were exactly zero; only the summation order differs
        assert not f.U[i, :, r:].any() and not f.V[i, :, r:].any()
        assert torch.equal(item.U, f.U[i, :, :r]) and torch.equal(item.V, f.V[i, :, :r])
        torch.testing.assert_close(item.to_dense(), dense[i], atol=1e-14, rtol=0)
        assert float(item.sq_error) == float(f.sq_error[i])


def _spread_batch(shape, seed):
    """Float64 batch with a different decay rate per matrix (so ranks differ)."""
    g = torch.Generator().manual_seed(seed)
    *batch, m, n = shape
    k = min(m, n)
    u, _ = torch.linalg.qr(torch.randn(*batch, m, k, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(*batch, n, k, generator=g, dtype=torch.float64))
    decay = 0.2 + 2.5 * torch.rand(*batch, 1, generator=g, dtype=torch.float64)
    s = torch.arange(1, k + 1, dtype=torch.float64) ** -decay
    return (u * s.unsqueeze(-2)) @ v.mT


@pytest.mark.parametrize("shape", [(6, 10, 7), (2, 3, 8, 11)])
@pytest.mark.parametrize("policy", [FixedRank(3), EnergyThreshold(0.9), ErrorBudget(0.3)])
def test_compress_matrix_batched_equals_per_matrix_exact(shape, policy):
    w = _spread_batch(shape, seed=4)
    batched = compress_matrix(w, policy)
    assert batched.batch_shape == shape[:-2]
    m, n = shape[-2:]
    dense = batched.to_dense().reshape(-1, m, n)
    ranks, errs = batched.ranks.reshape(-1), batched.sq_error.reshape(-1)
    for i, mat in enumerate(w.reshape(-1, m, n)):
        single = compress_matrix(mat, policy)
        assert single.rank == int(ranks[i])
        assert float(errs[i]) == pytest.approx(float(single.sq_error), rel=1e-10, abs=1e-15)
        torch.testing.assert_close(dense[i], single.to_dense(), atol=1e-13, rtol=0)
    if not isinstance(policy, FixedRank):
        assert len(set(ranks.tolist())) > 1, "the test needs differing ranks"


@pytest.mark.parametrize("shape", [(6, 10, 7), (2, 3, 8, 11)])
def test_compress_matrix_batched_equals_per_matrix_power_with_warm_start(shape):
    w = _spread_batch(shape, seed=5)
    m, n = shape[-2:]
    start = torch.randn(*shape[:-2], n, 3, generator=torch.Generator().manual_seed(0),
                        dtype=torch.float64)
    batched = compress_matrix(w, FixedRank(3), "power", power_iters=2, warm_start=start)
    dense = batched.to_dense().reshape(-1, m, n)
    for i, (mat, st_) in enumerate(zip(w.reshape(-1, m, n), start.reshape(-1, n, 3),
                                       strict=True)):
        single = compress_matrix(mat, FixedRank(3), "power", power_iters=2, warm_start=st_)
        torch.testing.assert_close(dense[i], single.to_dense(), atol=1e-13, rtol=0)
        assert float(batched.sq_error.reshape(-1)[i]) == pytest.approx(
            float(single.sq_error), rel=1e-10)


def test_sketching_methods_need_max_rank_for_adaptive_policies():
    w = torch.randn(10, 8)
    with pytest.raises(ValueError, match="max_rank"):
        compress_matrix(w, EnergyThreshold(0.9), "randomized")
    f = compress_matrix(w.double(), EnergyThreshold(0.9), "randomized", max_rank=8,
                        generator=torch.Generator().manual_seed(0))
    ex = compress_matrix(w.double(), EnergyThreshold(0.9))
    # a sketch as large as the matrix is exact
    assert f.rank == ex.rank
    assert float(f.sq_error) == pytest.approx(float(ex.sq_error), rel=1e-9)


def test_unknown_method_rejected():
    with pytest.raises(ValueError, match="method"):
        compress_matrix(torch.randn(4, 4), FixedRank(1), "qr")  # type: ignore[arg-type]


def test_relative_error_and_zero_matrix():
    f = compress_matrix(torch.zeros(4, 3, dtype=torch.float64), EnergyThreshold(0.9))
    assert f.rank == 1
    assert float(f.sq_error) == 0.0 and float(f.relative_sq_error) == 0.0
    assert torch.equal(f.to_dense(), torch.zeros(4, 3, dtype=torch.float64))
    w = torch.randn(6, 5, dtype=torch.float64)
    g = compress_matrix(w, FixedRank(2))
    assert float(g.relative_sq_error) == pytest.approx(float(g.sq_error / g.energy), rel=1e-15)


def test_string_policy_accepted():
    w = torch.randn(6, 5, dtype=torch.float64)
    assert compress_matrix(w, "fixed:2").rank == 2
