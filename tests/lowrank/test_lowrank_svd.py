"""Tests of lowrank.svd: exact SVD (and its fallbacks), randomized SVD, power iteration."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from lowrank import SVDResult, exact_svd, power_svd, randomized_svd


def dense(res: SVDResult) -> torch.Tensor:
    """``U diag(S) V^T`` of a (batched) SVD result."""
    return (res.U * res.S.unsqueeze(-2)) @ res.V.mT


def fro2(x: torch.Tensor) -> torch.Tensor:
    return x.double().square().sum(dim=(-2, -1))


# ---------------------------------------------------------------------------------------------
# exact_svd
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 7), (9, 4), (4, 9), (3, 5, 6), (2, 3, 6, 5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exact_svd_is_a_thin_svd(shape, dtype):
    a = torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    res = exact_svd(a)
    m, n = shape[-2:]
    k = min(m, n)
    assert res.U.shape == (*shape[:-2], m, k)
    assert res.S.shape == (*shape[:-2], k)
    assert res.V.shape == (*shape[:-2], n, k)
    assert res.rank == k
    assert res.U.dtype == res.S.dtype == res.V.dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    eye = torch.eye(k, dtype=dtype)
    torch.testing.assert_close(res.U.mT @ res.U, eye.expand(*shape[:-2], k, k), atol=tol, rtol=0)
    torch.testing.assert_close(res.V.mT @ res.V, eye.expand(*shape[:-2], k, k), atol=tol, rtol=0)
    assert bool((res.S[..., :-1] >= res.S[..., 1:]).all()) and bool((res.S >= 0).all())
    torch.testing.assert_close(dense(res), a, atol=10 * tol, rtol=0)
    # singular values agree with an independent implementation (numpy's LAPACK binding)
    ref = np.linalg.svd(a.double().numpy(), compute_uv=False)
    np.testing.assert_allclose(res.S.double().numpy(), ref, atol=10 * tol, rtol=0)


def _reference(a):
    ref = exact_svd(a)
    return ref, dense(ref)


def test_exact_svd_falls_back_to_float64_when_float32_fails(monkeypatch):
    a = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))
    ref, ref_dense = _reference(a)
    real_svd = torch.linalg.svd
    calls = []

    def flaky(x, *args, **kwargs):
        calls.append(x.dtype)
        if x.dtype == torch.float32:
            raise torch.linalg.LinAlgError("simulated: the algorithm failed to converge")
        return real_svd(x, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", flaky)
    with pytest.warns(RuntimeWarning, match="my_layer.*float64") as record:
        res = exact_svd(a, name="my_layer")
    assert calls == [torch.float32, torch.float64]
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    assert res.U.dtype == res.S.dtype == res.V.dtype == torch.float32
    torch.testing.assert_close(res.S, ref.S, atol=1e-5, rtol=0)
    torch.testing.assert_close(dense(res), ref_dense, atol=1e-5, rtol=0)
    torch.testing.assert_close(dense(res), a, atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch", [(), (3,)])
def test_exact_svd_falls_back_to_scipy_when_torch_always_fails(monkeypatch, batch):
    a = torch.randn(*batch, 10, 6, generator=torch.Generator().manual_seed(2),
                    dtype=torch.float64)
    ref, ref_dense = _reference(a)

    def broken(x, *args, **kwargs):
        raise torch.linalg.LinAlgError("simulated: the algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", broken)
    with pytest.warns(RuntimeWarning) as record:
        res = exact_svd(a, name="conv.weight")
    messages = [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 2
    assert "conv.weight" in messages[0] and "SciPy" in messages[1]
    assert res.U.shape == ref.U.shape and res.V.shape == ref.V.shape
    assert res.S.dtype == torch.float64
    torch.testing.assert_close(res.S, ref.S, atol=1e-12, rtol=0)
    torch.testing.assert_close(dense(res), ref_dense, atol=1e-12, rtol=0)
    eye = torch.eye(6, dtype=torch.float64).expand(*batch, 6, 6)
    torch.testing.assert_close(res.U.mT @ res.U, eye, atol=1e-12, rtol=0)


def test_exact_svd_does_not_warn_when_lapack_succeeds():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact_svd(torch.randn(5, 4))


# ---------------------------------------------------------------------------------------------
# randomized_svd
# ---------------------------------------------------------------------------------------------

N_SEEDS = 200


def _spectra():
    j = torch.arange(1, 41, dtype=torch.float64)
    return {
        "s_j = 1/j": j**-1.0,
        "s_j = j^-0.1 (nearly flat)": j**-0.1,
        "gap after 5": torch.cat([torch.full((5,), 10.0), torch.ones(35)]).double(),
    }


@pytest.mark.parametrize("spectrum", list(_spectra()))
@pytest.mark.parametrize(("k", "p"), [(3, 2), (5, 3), (10, 5)])
def test_randomized_projection_error_within_hmt_thm_10_5(matrix_with_spectrum, spectrum, k, p):
    """HMT (2011) Thm 10.5 on the object it is about.

    The theorem bounds ``E ||A - Q Q^T A||_F`` where ``Q`` is an orthonormal basis of
    ``A Omega`` for a standard Gaussian ``Omega`` with ``k + p`` columns (no power
    iterations). ``randomized_svd(A, rank=k + p, oversampling=0, power_iters=0)`` draws
    exactly such an ``Omega`` (sketch size ``min(rank + oversampling, m, n) = k + p``) and
    returns the *full* SVD of ``Q^T A`` (``k + p`` triplets, nothing truncated), so
    ``U diag(S) V^T = Q (Q^T A) = Q Q^T A``: the error measured below is exactly the
    theorem's quantity. The sample mean over 200 seeds plus 4 standard errors must stay
    below the bound (a conservative reading of a statement about the expectation).
    """
    s = _spectra()[spectrum]
    a = matrix_with_spectrum(60, 40, s, seed=0)
    tail = float(s[k:].square().sum().sqrt())
    bound = math.sqrt(1 + k / (p - 1)) * tail
    errors = []
    for seed in range(N_SEEDS):
        res = randomized_svd(a, k + p, oversampling=0, power_iters=0,
                             generator=torch.Generator().manual_seed(seed))
        assert res.rank == k + p
        errors.append(float(fro2(a - dense(res)).sqrt()))
    errors = np.array(errors)
    mean, se = errors.mean(), errors.std(ddof=1) / math.sqrt(N_SEEDS)
    assert mean + 4 * se <= bound, (mean, se, bound)
    # and no draw beats Eckart-Young: QQ^T A has rank k + p, so error >= tail beyond k + p
    assert errors.min() >= float(s[k + p:].square().sum().sqrt()) * (1 - 1e-12)


@pytest.mark.parametrize(("k", "p"), [(3, 2), (5, 3), (10, 5)])
def test_randomized_truncated_error_within_derived_bound(matrix_with_spectrum, k, p):
    """The rank-``k`` result that ``randomized_svd(A, k, oversampling=p)`` returns.

    It returns ``Q [Q^T A]_k`` (best rank-``k`` part of the ``k + p`` sketch). Because
    ``(I - QQ^T) A`` is orthogonal to the range of ``Q``,
    ``||A - Q [B]_k||^2 = ||A - QQ^T A||^2 + ||B - [B]_k||^2`` with ``B = Q^T A``, and
    ``sigma_j(B) <= sigma_j(A)`` gives ``||B - [B]_k||^2 <= tail_k^2``. HMT's proof of
    Thm 10.5 bounds the second moment, ``E ||A - QQ^T A||_F^2 <= (1 + k/(p-1)) tail_k^2``
    (their Thm 9.1 + Prop 10.1), so ``E ||A - Q [B]_k||_F^2 <= (2 + k/(p-1)) tail_k^2``.
    We check that mean (plus 4 standard errors) and the exact Pythagorean split per draw.
    """
    s = torch.arange(1, 41, dtype=torch.float64) ** -1.0
    a = matrix_with_spectrum(60, 40, s, seed=1)
    tail2 = float(s[k:].square().sum())
    sq = []
    for seed in range(N_SEEDS):
        res = randomized_svd(a, k, oversampling=p, power_iters=0,
                             generator=torch.Generator().manual_seed(seed))
        assert res.rank == k
        err2 = float(fro2(a - dense(res)))
        sq.append(err2)
        if seed < 5:  # the Pythagorean split, with the same Omega
            full = randomized_svd(a, k + p, oversampling=0, power_iters=0,
                                  generator=torch.Generator().manual_seed(seed))
            proj2 = float(fro2(a - dense(full)))
            b_tail2 = float(full.S[k:].square().sum())
            assert err2 == pytest.approx(proj2 + b_tail2, rel=1e-10)
            assert b_tail2 <= tail2 * (1 + 1e-12)
            assert err2 >= tail2 * (1 - 1e-12)  # Eckart-Young: never better than optimal
    sq = np.array(sq)
    mean, se = sq.mean(), sq.std(ddof=1) / math.sqrt(N_SEEDS)
    assert mean + 4 * se <= (2 + k / (p - 1)) * tail2, (mean, se, tail2)


def test_power_iterations_reduce_randomized_error_on_slow_decay(matrix_with_spectrum):
    # s_j = j^-0.5: a slowly decaying spectrum, where HMT recommend q > 0 (their §4.5)
    s = torch.arange(1, 61, dtype=torch.float64) ** -0.5
    a = matrix_with_spectrum(80, 60, s, seed=2)
    k, p = 8, 4
    by_q = {}
    for q in (0, 1, 2):
        errs = []
        for seed in range(100):
            res = randomized_svd(a, k, oversampling=p, power_iters=q,
                                 generator=torch.Generator().manual_seed(seed))
            errs.append(float(fro2(a - dense(res))))
        by_q[q] = np.array(errs)
    optimum = float(s[k:].square().sum())
    # same seeds => same Omega for every q: compare paired differences
    for lo, hi in [(0, 1), (1, 2)]:
        diff = by_q[lo] - by_q[hi]
        assert diff.mean() > 4 * diff.std(ddof=1) / math.sqrt(diff.size), (lo, hi, diff.mean())
    assert by_q[2].mean() < by_q[0].mean()
    assert by_q[2].min() >= optimum * (1 - 1e-12)


def test_randomized_svd_is_reproducible_and_orthonormal():
    a = torch.randn(30, 20, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r1 = randomized_svd(a, 5, generator=torch.Generator().manual_seed(7))
    r2 = randomized_svd(a, 5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(r1.U, r2.U) and torch.equal(r1.S, r2.S) and torch.equal(r1.V, r2.V)
    eye = torch.eye(5, dtype=torch.float64)
    torch.testing.assert_close(r1.U.mT @ r1.U, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(r1.V.mT @ r1.V, eye, atol=1e-12, rtol=0)
    assert bool((r1.S[:-1] >= r1.S[1:]).all())


def test_randomized_svd_rank_clipped_to_min_dim():
    a = torch.randn(6, 4, dtype=torch.float64)
    res = randomized_svd(a, 10, generator=torch.Generator().manual_seed(0))
    assert res.rank == 4
    torch.testing.assert_close(dense(res), a, atol=1e-12, rtol=0)


def test_randomized_svd_exact_on_low_rank_input(matrix_with_spectrum):
    s = torch.tensor([5.0, 3.0, 1.0], dtype=torch.float64)
    a = matrix_with_spectrum(40, 30, s, seed=4)
    res = randomized_svd(a, 3, oversampling=2, power_iters=0,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(res.S, s, atol=1e-12, rtol=0)
    assert float(fro2(a - dense(res))) <= 1e-24 * float(fro2(a))


# ---------------------------------------------------------------------------------------------
# power_svd
# ---------------------------------------------------------------------------------------------


def test_power_svd_warm_start_no_worse_than_cold(matrix_with_spectrum):
    s = torch.arange(1, 31, dtype=torch.float64) ** -0.7
    a = matrix_with_spectrum(50, 30, s, seed=5)
    k = 5
    warm, cold = [], []
    for seed in range(100):
        first = power_svd(a, k, iters=1, generator=torch.Generator().manual_seed(seed))
        # a fresh cold start (a different draw) versus continuing from the previous V
        c = power_svd(a, k, iters=1, generator=torch.Generator().manual_seed(10_000 + seed))
        w = power_svd(a, k, iters=1, warm_start=first.V)
        cold.append(float(fro2(a - dense(c))))
        warm.append(float(fro2(a - dense(w))))
    warm, cold = np.array(warm), np.array(cold)
    assert warm.mean() <= cold.mean()
    optimum = float(s[k:].square().sum())
    assert warm.min() >= optimum * (1 - 1e-12)


def test_power_svd_warm_start_equals_continuing_iterations(matrix_with_spectrum):
    s = torch.arange(1, 21, dtype=torch.float64) ** -1.0
    a = matrix_with_spectrum(30, 20, s, seed=6)
    one = power_svd(a, 4, iters=1, generator=torch.Generator().manual_seed(0))
    two = power_svd(a, 4, iters=2, generator=torch.Generator().manual_seed(0))
    continued = power_svd(a, 4, iters=1, warm_start=one.V)
    torch.testing.assert_close(dense(continued), dense(two), atol=1e-12, rtol=0)


def test_power_svd_converges_to_exact_truncation(matrix_with_spectrum):
    s = torch.arange(1, 21, dtype=torch.float64) ** -1.0
    a = matrix_with_spectrum(30, 20, s, seed=7)
    k = 4
    res = power_svd(a, k, iters=300, generator=torch.Generator().manual_seed(0))
    ex = exact_svd(a)
    best = (ex.U[:, :k] * ex.S[:k]) @ ex.V[:, :k].T
    torch.testing.assert_close(res.S, s[:k], atol=1e-12, rtol=0)
    torch.testing.assert_close(dense(res), best, atol=1e-10, rtol=0)
    assert float(fro2(a - dense(res))) == pytest.approx(float(s[k:].square().sum()), rel=1e-10)
    eye = torch.eye(k, dtype=torch.float64)
    torch.testing.assert_close(res.U.mT @ res.U, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(res.V.mT @ res.V, eye, atol=1e-12, rtol=0)


def test_power_svd_ignores_warm_start_of_wrong_shape():
    a = torch.randn(10, 8, dtype=torch.float64)
    res = power_svd(a, 3, warm_start=torch.randn(8, 2, dtype=torch.float64),
                    generator=torch.Generator().manual_seed(0))
    assert res.U.shape == (10, 3) and res.V.shape == (8, 3)


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------

BATCH_SHAPES = [(4, 9, 6), (2, 3, 5, 7)]


@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_exact_svd_batched_equals_per_matrix(shape):
    a = torch.randn(*shape, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    batched = exact_svd(a)
    flat = a.reshape(-1, *shape[-2:])
    bd = dense(batched).reshape(-1, *shape[-2:])
    bs = batched.S.reshape(-1, batched.S.shape[-1])
    for i, mat in enumerate(flat):
        single = exact_svd(mat)
        torch.testing.assert_close(bs[i], single.S, atol=1e-13, rtol=0)
        torch.testing.assert_close(bd[i], dense(single), atol=1e-13, rtol=0)


@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_power_svd_batched_equals_per_matrix_with_given_warm_start(shape):
    g = torch.Generator().manual_seed(9)
    a = torch.randn(*shape, generator=g, dtype=torch.float64)
    k = 3
    start = torch.randn(*shape[:-2], shape[-1], k, generator=g, dtype=torch.float64)
    batched = power_svd(a, k, iters=2, warm_start=start)
    m, n = shape[-2:]
    bd = dense(batched).reshape(-1, m, n)
    bs = batched.S.reshape(-1, k)
    for i, (mat, st) in enumerate(zip(a.reshape(-1, m, n), start.reshape(-1, n, k), strict=True)):
        single = power_svd(mat, k, iters=2, warm_start=st)
        torch.testing.assert_close(bs[i], single.S, atol=1e-13, rtol=0)
        torch.testing.assert_close(bd[i], dense(single), atol=1e-13, rtol=0)


@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_randomized_svd_batched_shapes_and_quality(shape, matrix_with_spectrum):
    # The batched draw of Omega is not the per-matrix stream, so compare quality, not bits:
    # on exactly low-rank matrices the sketch captures everything, per matrix.
    m, n = shape[-2:]
    s = torch.tensor([4.0, 2.0], dtype=torch.float64)
    count = math.prod(shape[:-2])
    mats = torch.stack([matrix_with_spectrum(m, n, s, seed=i) for i in range(count)])
    a = mats.reshape(shape)
    res = randomized_svd(a, 2, oversampling=2, generator=torch.Generator().manual_seed(0))
    assert res.U.shape == (*shape[:-2], m, 2) and res.V.shape == (*shape[:-2], n, 2)
    torch.testing.assert_close(res.S, s.expand(*shape[:-2], 2), atol=1e-12, rtol=0)
    torch.testing.assert_close(dense(res), a, atol=1e-12, rtol=0)
