"""Tests of lowrank.baselines: Identity, TopK, QSGD, ErrorFeedback."""

from __future__ import annotations

import math

import pytest
import torch

from lowrank import QSGD, ErrorFeedback, Identity, TopK, compress_matrix


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_identity_counts_bytes_and_copies(dtype):
    x = torch.randn(3, 5).to(dtype)
    p = Identity().compress(x)
    assert p.nbytes == 15 * x.element_size()
    assert torch.equal(p.decompress(), x)
    x.add_(1)  # the payload is a copy
    assert not torch.equal(p.decompress(), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("k", "ratio", "kept"), [(5, None, 5), (None, 0.1, 6), (1000, None, 60)])
def test_topk_keeps_largest_magnitudes(dtype, k, ratio, kept):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 10, generator=g, dtype=dtype)
    p = TopK(k=k, ratio=ratio).compress(x)
    assert p.values.numel() == p.indices.numel() == kept
    assert p.indices.dtype == torch.int32
    assert p.nbytes == kept * x.element_size() + kept * 4
    out = p.decompress()
    assert out.shape == x.shape and out.dtype == x.dtype
    nz = out != 0
    assert int(nz.sum()) == kept
    assert torch.equal(out[nz], x[nz])  # kept entries are sent exactly
    # every kept magnitude >= every dropped magnitude
    if kept < x.numel():
        assert float(x[nz].abs().min()) >= float(x[~nz].abs().max())
    ref = torch.sort(x.abs().reshape(-1), descending=True).values[:kept]
    torch.testing.assert_close(torch.sort(out.abs().reshape(-1), descending=True).values[:kept],
                               ref, atol=0, rtol=0)


def test_topk_rejects_bad_configuration():
    with pytest.raises(ValueError):
        TopK()
    with pytest.raises(ValueError):
        TopK(k=2, ratio=0.5)
    with pytest.raises(ValueError, match="k"):
        TopK(k=0)
    with pytest.raises(ValueError, match="ratio"):
        TopK(ratio=1.5)


def test_qsgd_payload_and_bytes():
    x = torch.randn(100, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = QSGD(4, generator=torch.Generator().manual_seed(0)).compress(x)
    assert p.levels.dtype == torch.int8
    assert int(p.levels.abs().max()) <= 4
    assert p.nbytes == 4 + 50  # float32 norm + 4-bit codes, two per byte (s = 4)
    assert p.nbits_packed == pytest.approx(32 + 100 * math.log2(9))
    assert p.decompress().dtype == torch.float64
    assert QSGD(300).compress(x).levels.dtype == torch.int16
    # zero vector
    z = QSGD(4).compress(torch.zeros(7))
    assert torch.equal(z.decompress(), torch.zeros(7))


@pytest.mark.parametrize("s", [1, 4, 16])
def test_qsgd_is_unbiased_within_variance_bound(s):
    """Mean of N quantizations converges to x, at the rate the variance bound allows.

    Per coordinate, Q(x)_i = ||x|| sign(x_i) l_i / s with l_i Bernoulli between two
    adjacent levels, so Var Q(x)_i <= (||x|| / s)^2 / 4. The mean of N independent draws
    has standard deviation <= ||x|| / (2 s sqrt(N)); we require every coordinate within
    5 such sigmas. For the whole vector, Alistarh et al. (2017) Lemma 3.1 gives
    E||Q(x) - x||^2 <= min(n / s^2, sqrt(n) / s) ||x||^2 =: V, so E||mean - x||^2 <= V / N;
    we require ||mean - x||^2 <= 5^2 V / N (Markov: probability <= 1/25 for any
    distribution, here far smaller) and the empirical mean squared error <= V.
    """
    n, N = 50, 4000
    x = torch.randn(n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x[0] = 0.0  # a zero entry must stay exactly zero
    q = QSGD(s, generator=torch.Generator().manual_seed(3))
    draws = torch.stack([q.compress(x).decompress() for _ in range(N)])
    assert bool((draws[:, 0] == 0).all())
    norm = float(torch.linalg.vector_norm(x).float())  # the norm sent (float32)
    mean = draws.mean(dim=0)
    sigma = norm / (2 * s * math.sqrt(N))
    assert float((mean - x).abs().max()) <= 5 * sigma
    v = min(n / s**2, math.sqrt(n) / s) * float(x.square().sum())
    assert float((mean - x).square().sum()) <= 25 * v / N
    assert float((draws - x).square().sum(dim=1).mean()) <= v
    # each draw takes one of the two levels around |x_i|, with the sign of x_i
    levels = draws / norm * s
    assert torch.allclose(levels, levels.round(), atol=1e-9)
    lo = torch.floor(x.abs() / norm * s)
    assert bool(((levels.abs().round() == lo) | (levels.abs().round() == lo + 1)).all())
    assert bool((levels * x.sign() >= 0).all())


def test_qsgd_rejects_bad_levels():
    for s in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="s"):
            QSGD(s)  # type: ignore[arg-type]


@pytest.mark.parametrize("inner", [TopK(k=3), TopK(ratio=0.25)])
def test_error_feedback_identity_is_exact(inner):
    """sent_t + e_{t+1} == x_t + e_t exactly (float64), step after step, per tensor name."""
    g = torch.Generator().manual_seed(4)
    ef = ErrorFeedback(inner)
    residual = {"a": torch.zeros(4, 5, dtype=torch.float64),
                "b": torch.zeros(12, dtype=torch.float64)}
    total_in = {k: torch.zeros_like(v) for k, v in residual.items()}
    total_sent = {k: torch.zeros_like(v) for k, v in residual.items()}
    for _ in range(6):
        for name, shape in (("a", (4, 5)), ("b", (12,))):
            x = torch.randn(*shape, generator=g, dtype=torch.float64)
            sent = ef.compress(x, name).decompress()
            new = ef.residuals[name]
            assert torch.equal(sent + new, x + residual[name])
            residual[name] = new.clone()
            total_in[name] += x
            total_sent[name] += sent
    assert set(ef.residuals) == {"a", "b"}
    # telescoping: everything that went in was sent or is still held back
    for name in residual:
        torch.testing.assert_close(total_sent[name] + ef.residuals[name], total_in[name],
                                   atol=1e-13, rtol=0)


def test_error_feedback_with_qsgd_keeps_the_rounding_residual():
    g = torch.Generator().manual_seed(5)
    ef = ErrorFeedback(QSGD(2, generator=torch.Generator().manual_seed(6)))
    old = torch.zeros(30, dtype=torch.float64)
    for _ in range(5):
        x = torch.randn(30, generator=g, dtype=torch.float64)
        sent = ef.compress(x, "w").decompress()
        new = ef.residuals["w"]
        # the residual is, by definition, the input corrected by the old residual minus
        # what was sent (bitwise); adding back is exact up to one rounding per entry
        assert torch.equal(new, (x + old) - sent)
        # two roundings (one in the subtraction, one in the addition), each <= eps/2 relative
        eps = torch.finfo(torch.float64).eps
        gap = ((sent + new) - (x + old)).abs()
        assert bool((gap <= eps * ((x + old).abs() + sent.abs())).all())
        old = new.clone()


def test_error_feedback_with_identity_has_zero_residual():
    ef = ErrorFeedback(Identity())
    x = torch.randn(5, dtype=torch.float64)
    assert torch.equal(ef.compress(x).decompress(), x)
    assert not ef.residuals["tensor"].any()


class _LowRank:
    """A low-rank compressor in the Compressor protocol (PowerSGD-style EF baseline)."""

    def compress(self, x, name="tensor"):
        return _Factors(compress_matrix(x, "fixed:1", name=name))


class _Factors:
    def __init__(self, f):
        self.f = f

    @property
    def nbytes(self):
        return self.f.nbytes

    def decompress(self):
        return self.f.to_dense()


def test_error_feedback_around_low_rank_sends_residual_later():
    g = torch.Generator().manual_seed(7)
    ef = ErrorFeedback(_LowRank())
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    first = ef.compress(x).decompress()
    r1 = ef.residuals["tensor"].clone()
    torch.testing.assert_close(first + r1, x, atol=1e-14, rtol=0)
    # with zero input the next round sends the best rank-1 part of the residual
    second = ef.compress(torch.zeros_like(x)).decompress()
    torch.testing.assert_close(second, compress_matrix(r1, "fixed:1").to_dense(),
                               atol=1e-13, rtol=0)


@pytest.mark.parametrize(("s", "bits"), [(1, 2), (3, 4), (7, 4), (8, 8), (127, 8), (300, 16)])
def test_qsgd_packs_levels_and_counts_the_packed_bytes(s, bits):
    x = torch.randn(101, generator=torch.Generator().manual_seed(s), dtype=torch.float64)
    p = QSGD(s, generator=torch.Generator().manual_seed(1)).compress(x)
    assert p.nbytes == 4 + math.ceil(101 * bits / 8)  # norm + packed codes
    assert p.nbytes == p.norm.numel() * p.norm.element_size() + p.packed.numel() * \
        p.packed.element_size()
    # unpacking gives back levels in [-s, s] that reproduce the quantized values
    assert int(p.levels.abs().max()) <= s and p.levels.shape == x.shape
    torch.testing.assert_close(p.decompress(), p.norm.double() * p.levels.double() / s)
