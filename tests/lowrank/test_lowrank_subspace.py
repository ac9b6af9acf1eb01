"""The warm-started fast path (``method="subspace"``) against the exact SVD it replaces."""

from __future__ import annotations

import pytest
import torch

from lowrank import compress_matrix, compress_state
from lowrank.svd import cholesky_orthonormalize, exact_svd, subspace_iteration


def _trained_like(matrix_with_spectrum, m=40, n=30, r=8, eps=0.05, batch=6, seed=0):
    """A broadcast rank-``r`` model plus small local changes, as FedDLR's clients hold.

    Returns the local matrices ``(batch, m, n)`` (float64) and the broadcast right
    factors ``V (n, r)``.
    """
    s = torch.logspace(0, -2, min(m, n), dtype=torch.float64) * 10
    w = matrix_with_spectrum(m, n, s, seed)
    svd = exact_svd(w)
    broadcast = (svd.U[:, :r] * svd.S[:r]) @ svd.V[:, :r].T
    g = torch.Generator().manual_seed(seed + 1)
    local = broadcast + eps * torch.randn(batch, m, n, generator=g, dtype=torch.float64)
    return local, svd.V[:, :r]


def _optimum(w, r):
    return torch.linalg.svdvals(w)[..., r:].square().sum(-1)


@pytest.mark.parametrize("iters, excess", [(1, 0.01), (2, 1e-4)])
def test_warm_start_is_within_the_stated_excess_of_eckart_young(matrix_with_spectrum, iters,
                                                                 excess):
    local, v0 = _trained_like(matrix_with_spectrum)
    f = compress_matrix(local, "fixed:8", "subspace", warm_start=v0, power_iters=iters)
    direct = (local - f.U @ f.V.mT).square().sum(dim=(-2, -1))
    opt = _optimum(local, 8)
    assert bool((direct >= opt * (1 - 1e-9)).all())  # never better than the optimum
    assert bool((direct <= opt * (1 + excess)).all())
    # the reported error is the error made: ||W||^2 - ||W V||^2 with V orthonormal
    torch.testing.assert_close(f.sq_error, direct, rtol=1e-9, atol=0)
    torch.testing.assert_close(f.V.mT @ f.V, torch.eye(8, dtype=torch.float64).expand(6, 8, 8),
                               rtol=0, atol=1e-12)
    assert f.ranks.tolist() == [8] * 6


def test_float32_error_formula_matches_the_direct_error(matrix_with_spectrum):
    local, v0 = _trained_like(matrix_with_spectrum)
    f = compress_matrix(local.float(), "fixed:8", "subspace", warm_start=v0.float())
    direct = (local - f.U.double() @ f.V.double().mT).square().sum(dim=(-2, -1))
    # stated in compress_matrix's docstring: ~1e-5 relative (float32 rounding of U, V)
    torch.testing.assert_close(f.sq_error, direct, rtol=1e-3, atol=0)


def test_without_a_warm_start_subspace_is_the_exact_svd(matrix_with_spectrum):
    local, _ = _trained_like(matrix_with_spectrum)
    fast = compress_matrix(local, "fixed:8", "subspace")
    exact = compress_matrix(local, "fixed:8", "exact")
    assert torch.equal(fast.U, exact.U) and torch.equal(fast.V, exact.V)


def test_the_exact_basis_gives_the_exact_truncation(matrix_with_spectrum):
    s = torch.linspace(5, 1, 20, dtype=torch.float64)
    w = matrix_with_spectrum(30, 20, s, 3)
    svd = exact_svd(w)
    u, v = subspace_iteration(w, svd.V[:, :5])
    torch.testing.assert_close(u @ v.T, (svd.U[:, :5] * svd.S[:5]) @ svd.V[:, :5].T,
                               rtol=1e-10, atol=1e-10)


def test_warm_start_of_another_width_is_cut_or_completed(matrix_with_spectrum):
    local, v0 = _trained_like(matrix_with_spectrum)
    g = torch.Generator().manual_seed(0)
    narrow = compress_matrix(local, "fixed:8", "subspace", warm_start=v0[:, :5], generator=g,
                             power_iters=3)
    wide = compress_matrix(local, "fixed:5", "subspace", warm_start=v0, power_iters=3)
    assert narrow.U.shape == (6, 40, 8) and wide.U.shape == (6, 40, 5)
    assert bool((narrow.sq_error <= _optimum(local, 8) * 1.01).all())
    assert bool((wide.sq_error <= _optimum(local, 5) * 1.01).all())


def test_subspace_refuses_spectrum_policies_and_bad_input(matrix_with_spectrum):
    local, v0 = _trained_like(matrix_with_spectrum)
    with pytest.raises(ValueError, match="method: 'subspace' needs a policy that fixes"):
        compress_matrix(local, "energy:0.9", "subspace", warm_start=v0)
    bad = local.clone()
    bad[2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="layer1: contains 1 NaN"):
        compress_matrix(bad, "fixed:8", "subspace", warm_start=v0, name="layer1")
    with pytest.raises(ValueError, match="warm_start must be"):
        subspace_iteration(local, v0[:10])


def test_compress_state_passes_warm_starts_by_name(matrix_with_spectrum):
    local, v0 = _trained_like(matrix_with_spectrum)
    state = {"fc.weight": local.float(), "fc.bias": torch.zeros(6, 40)}
    sent = compress_state(state, "fixed:8", method="subspace", batched=True,
                          warm_starts={"fc.weight": v0.float()}, power_iters=1)
    direct = compress_matrix(local.float(), "fixed:8", "subspace", warm_start=v0.float(),
                             power_iters=1)
    assert torch.equal(sent.entries["fc.weight"].factors.U, direct.U)


def test_cholesky_orthonormalize_spans_the_columns_and_falls_back_when_singular():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 50, 6, generator=g, dtype=torch.float64)
    q = cholesky_orthonormalize(y)
    torch.testing.assert_close(q.mT @ q, torch.eye(6, dtype=torch.float64).expand(3, 6, 6),
                               rtol=0, atol=1e-12)
    torch.testing.assert_close(q @ (q.mT @ y), y, rtol=0, atol=1e-10)  # same span
    y[1, :, 5] = y[1, :, 4]  # rank-deficient: Cholesky fails, Householder QR takes over
    q = cholesky_orthonormalize(y)
    torch.testing.assert_close(q[1].mT @ q[1], torch.eye(6, dtype=torch.float64),
                               rtol=0, atol=1e-10)


def _residual(q, y):
    """``||y_j - Q Q^T y_j|| / ||y_j||`` per column of float32 ``y`` (in float64)."""
    q, y = q.double(), y.float().double()
    return (y - q @ (q.mT @ y)).norm(dim=-2) / y.norm(dim=-2)


def test_cholesky_orthonormalize_in_float32_scales_columns_and_redoes_the_hard_ones(
        monkeypatch):
    import lowrank.svd as svd

    dtypes = []
    inner = svd.cholesky_orthonormalize

    def spy(y):
        dtypes.append(y.dtype)
        return inner(y)

    monkeypatch.setattr(svd, "cholesky_orthonormalize", spy)
    g = torch.Generator().manual_seed(1)
    # nearly orthogonal columns of lengths 1e-3..1e3: cond(Y) ~1e6, but ~1 after scaling,
    # so one float32 pass suffices
    base = torch.linalg.qr(torch.randn(4, 60, 8, generator=g, dtype=torch.float64))[0]
    y = base + 0.05 * torch.randn(4, 60, 8, generator=g, dtype=torch.float64)
    y = y * torch.logspace(-3, 3, 8, dtype=torch.float64)
    eye = torch.eye(8, dtype=torch.float64).expand(4, 8, 8)
    # then two correlated columns (cond ~30 after scaling: a second float32 pass, Cholesky
    # QR2), then also nearly dependent ones in another matrix (cond ~1e3: a float64 Gram)
    for row, eps, calls in ((None, None, [torch.float32]),
                            (1, 3e-2, [torch.float32] * 2),
                            (2, 1e-3, [torch.float32, torch.float32, torch.float64])):
        if row is not None:
            y[row, :, 7] = y[row, :, 6] / y[row, :, 6].norm() + eps * base[row, :, 7]
        dtypes.clear()
        q = svd.cholesky_orthonormalize(y.float())
        assert dtypes == calls
        assert q.dtype == torch.float32 and q.is_contiguous()
        torch.testing.assert_close(q.double().mT @ q.double(), eye, rtol=0, atol=1e-5)
        assert _residual(q, y).max() < 1e-5  # the same span, column by column


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_the_cuda_path_gives_the_cpu_result(matrix_with_spectrum):
    local, v0 = _trained_like(matrix_with_spectrum)
    cpu = compress_matrix(local, "fixed:8", "subspace", warm_start=v0)
    gpu = compress_matrix(local.cuda(), "fixed:8", "subspace", warm_start=v0.cuda())
    torch.testing.assert_close(gpu.U.cpu() @ gpu.V.cpu().mT, cpu.U @ cpu.V.mT, rtol=1e-9,
                               atol=1e-9)
    torch.testing.assert_close(gpu.sq_error, cpu.sq_error, rtol=1e-9, atol=0)
