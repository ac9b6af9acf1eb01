"""Low-rank factors of a matrix and :func:`compress_matrix`, the matrix-level operator.

A compressed ``m x n`` matrix of rank ``r`` is sent as ``U (m x r)`` with the
singular values folded in and ``V (n x r)`` with orthonormal columns:
``r * (m + n)`` values at the payload dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ._random import draw
from ._validation import all_finite, check_matrix, check_payload_dtype
from .accounting import factors_nbytes, wire_nbytes
from .policies import RankPolicy, parse_policy
from .svd import SVDResult, _subspace_iteration, exact_svd, power_svd, randomized_svd

__all__ = ["LowRankFactors", "compress_matrix", "Method", "METHODS"]

Method = Literal["exact", "randomized", "power", "subspace"]
METHODS: tuple[str, ...] = ("exact", "randomized", "power", "subspace")


@dataclass(frozen=True)
class LowRankFactors:
    """Factors ``W ~ U V^T`` of a matrix or a batch of matrices.

    For a single matrix ``U`` is ``(m, r)`` and ``V`` is ``(n, r)``. For a batch
    (``(..., m, n)``) the matrices may have different ranks: ``U`` and ``V`` hold
    ``max(ranks)`` columns and the columns past each matrix's rank are zero;
    :meth:`unbind` gives the per-matrix factors, trimmed.
    """

    U: torch.Tensor  # (..., m, R): left singular vectors scaled by singular values
    #   (method "subspace": W V, whose columns need not be orthogonal)
    V: torch.Tensor  # (..., n, R): right basis, orthonormal columns (a warm start)
    ranks: torch.Tensor  # int64 (...): rank kept per matrix
    sq_error: torch.Tensor  # float64 (...): ||W - U V^T||_F^2 actually made
    energy: torch.Tensor  # float64 (...): ||W||_F^2
    dtype: torch.dtype  # dtype of the original matrix, restored by to_dense()
    requested_rank: int | None = None  # rank the policy asked for, before clipping

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)`` of each matrix."""
        return (self.U.shape[-2], self.V.shape[-2])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading batch dimensions (empty for a single matrix)."""
        return tuple(self.ranks.shape)

    @property
    def rank(self) -> int:
        """Rank of a single matrix (use :attr:`ranks` for a batch)."""
        if self.ranks.ndim:
            raise ValueError("rank: this is a batch of factors; use .ranks")
        return int(self.ranks)

    @property
    def clipped(self) -> bool:
        """True when the requested rank exceeded ``min(m, n)`` and was clipped."""
        return self.requested_rank is not None and self.requested_rank > min(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the factors: ``sum(ranks) * (m + n) * itemsize`` of the payload dtype.

        What factors cost, whether or not they pay off; what a matrix costs on the
        wire is :func:`lowrank.accounting.wire_nbytes`.
        """
        m, n = self.shape
        return int(factors_nbytes(m, n, self.ranks.sum(), self.U.element_size()))

    @property
    def dense_nbytes(self) -> int:
        """Bytes the dense matrices would take in the original dtype."""
        m, n = self.shape
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return int(self.ranks.numel()) * wire_nbytes((m, n), None, itemsize)

    @property
    def relative_sq_error(self) -> torch.Tensor:
        """``||W - U V^T||_F^2 / ||W||_F^2`` (0 where ``W = 0``)."""
        return torch.where(self.energy > 0, self.sq_error / self.energy.clamp(min=1e-300),
                           torch.zeros_like(self.energy))

    def to_dense(self) -> torch.Tensor:
        """Rebuild ``U V^T`` in the original dtype, shape ``(..., m, n)``."""
        return (self.U @ self.V.mT).to(self.dtype)

    def unbind(self) -> list[LowRankFactors]:
        """Split a batch (flattened) into single-matrix factors with exactly ``r`` columns."""
        m, n = self.shape
        u = self.U.reshape(-1, m, self.U.shape[-1])
        v = self.V.reshape(-1, n, self.V.shape[-1])
        ranks, err, en = self.ranks.reshape(-1), self.sq_error.reshape(-1), self.energy.reshape(-1)
        return [
            LowRankFactors(U=u[i, :, : int(r)].clone(), V=v[i, :, : int(r)].clone(), ranks=r,
                           sq_error=err[i], energy=en[i], dtype=self.dtype,
                           requested_rank=self.requested_rank)
            for i, r in enumerate(ranks)
        ]


def _decompose(
    w: torch.Tensor,
    policy: RankPolicy,
    method: Method,
    *,
    max_rank: int | None,
    oversampling: int,
    power_iters: int,
    warm_start: torch.Tensor | None,
    generator: torch.Generator | None,
    name: str,
) -> SVDResult:
    if method == "exact":
        return exact_svd(w, name=name)
    m, n = w.shape[-2:]
    sketch_rank = max_rank if max_rank is not None else policy.max_rank(m, n)
    if sketch_rank is None:
        raise ValueError(
            f"max_rank: {type(policy).__name__} chooses its rank from the spectrum, so "
            f"method={method!r} needs max_rank (the sketch size) for {name}"
        )
    if method == "randomized":
        return randomized_svd(w, sketch_rank, oversampling=oversampling,
                              power_iters=power_iters, generator=generator, name=name)
    if method == "power":
        return power_svd(w, sketch_rank, iters=max(1, power_iters), warm_start=warm_start,
                         generator=generator, name=name)
    raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")


def compress_matrix(
    w: torch.Tensor,
    policy: RankPolicy | str,
    method: Method = "exact",
    *,
    max_rank: int | None = None,
    oversampling: int = 10,
    power_iters: int = 2,
    warm_start: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    payload_dtype: torch.dtype | None = None,
    name: str = "matrix",
) -> LowRankFactors:
    """Truncate a matrix, or a batch of matrices, to a rank chosen by a policy.

    Parameters
    ----------
    w : torch.Tensor
        ``(m, n)`` or ``(..., m, n)``, floating point and finite.
    policy : RankPolicy or str
        How to choose the rank (see :mod:`lowrank.policies`); a string such as
        ``"energy:0.99"`` is parsed by :func:`~lowrank.policies.parse_policy`.
    method : {"exact", "randomized", "power", "subspace"}
        Exact SVD, randomized SVD (HMT 2011), PowerSGD-style subspace iteration, or
        ``"subspace"``: :func:`~lowrank.svd.subspace_iteration` from ``warm_start``
        (``power_iters`` iterations; the exact SVD when ``warm_start`` is None). It
        needs a policy that fixes the rank (``fixed:``, ``ratio:``); its factors are
        ``U = W V``, ``V`` orthonormal (not an SVD), and its ``sq_error`` is
        ``||W||^2 - ||U||^2`` (squares of row norms summed in float64). In float32 it
        differs from the directly computed error by about 1e-7 of ``||W||^2`` (the
        rounding of ``W`` and ``U``, and ``V`` orthonormal to ~1e-6 by
        :func:`~lowrank.svd.cholesky_orthonormalize`): 7e-5 of the error itself on the
        benchmark's layers, measured in docs/benchmarks.md; an error below 1e-4 of
        ``||W||^2`` is computed directly instead.
    max_rank : int, optional
        Sketch size for ``randomized``/``power`` when the policy does not fix a rank.
    oversampling : int
        Randomized SVD oversampling ``p``.
    power_iters : int
        Randomized SVD power iterations ``q``; iterations of the ``power`` method.
    warm_start : torch.Tensor, optional
        ``(..., n, r)`` (or ``(n, r)``, shared by the batch) right basis for ``power``
        and ``subspace`` (e.g. the previous ``.V``). For ``subspace``, a basis with
        more columns than the rank is cut, one with fewer is completed by Gaussian
        columns drawn from ``generator``.
    generator : torch.Generator, optional
        Randomness for the sketching methods.
    payload_dtype : torch.dtype, optional
        Dtype of the factors sent (default: the dtype of ``w``).
    name : str
        Name of the tensor, used in error messages.

    Returns
    -------
    LowRankFactors
        With ``.ranks``, ``.to_dense()``, ``.nbytes`` and ``.sq_error``, the
        squared Frobenius error actually made (computed in float64).
    """
    policy = parse_policy(policy)
    check_payload_dtype(payload_dtype)
    if method == "subspace" and warm_start is not None:
        # checks finiteness through ||W||^2 (check_matrix reads every entry once more)
        return _subspace_factors(w, policy, warm_start, iters=power_iters, generator=generator,
                                 payload_dtype=payload_dtype, name=name)
    check_matrix(w, name)
    m, n = w.shape[-2:]
    if method == "subspace":
        method = "exact"  # nothing to start from (first round): the reference
    svd = _decompose(w, policy, method, max_rank=max_rank, oversampling=oversampling,
                     power_iters=power_iters, warm_start=warm_start, generator=generator,
                     name=name)
    if w.dtype != torch.float64 and not bool(torch.isfinite(svd.S).all()):
        # finite entries whose singular values pass the dtype's range (e.g. 3e38 in float32)
        svd = _decompose(w.double(), policy, method, max_rank=max_rank,
                         oversampling=oversampling, power_iters=power_iters,
                         warm_start=warm_start, generator=generator, name=name)
    w64 = w.double()
    energy = w64.square().sum(dim=(-2, -1))
    ranks = policy.select(svd.S, m, n, total_energy=energy).to(svd.S.device)
    r_max = int(ranks.max()) if ranks.numel() else 1
    keep = (torch.arange(r_max, device=svd.S.device) < ranks.unsqueeze(-1)).to(svd.S.dtype)
    s = svd.S[..., :r_max] * keep
    dtype = payload_dtype or w.dtype
    u = (svd.U[..., :r_max] * s.unsqueeze(-2)).to(dtype)
    v = (svd.V[..., :r_max] * keep.unsqueeze(-2)).to(dtype)
    if not (bool(all_finite(u)) and bool(all_finite(v))):
        raise ValueError(f"{name}: the factors overflow {dtype} (largest singular value "
                         f"{float(svd.S.max()):.3g}); scale the matrix down or send a float64 "
                         "payload")
    sq_error = (w64 - u.double() @ v.double().mT).square().sum(dim=(-2, -1))
    return LowRankFactors(U=u, V=v, ranks=ranks.cpu(), sq_error=sq_error.cpu(),
                          energy=energy.cpu(), dtype=w.dtype,
                          requested_rank=policy.requested_rank(m, n))


def _sq_norm(x: torch.Tensor) -> torch.Tensor:
    """``||x||_F^2`` of each matrix in float64, from its rows' norms.

    The norm of each row is taken in ``x``'s dtype (a short sum: ~1e-8 relative in
    float32), the squares are summed in float64: as accurate as summing ``x.double()``
    squared, without a float64 copy of ``x``.
    """
    return torch.linalg.vector_norm(x, dim=-1).double().square().sum(dim=-1)


def _subspace_factors(
    w: torch.Tensor,
    policy: RankPolicy,
    warm_start: torch.Tensor,
    *,
    iters: int,
    generator: torch.Generator | None,
    payload_dtype: torch.dtype | None,
    name: str,
) -> LowRankFactors:
    """``compress_matrix(method="subspace")`` with a warm start: see its docstring."""
    if not isinstance(w, torch.Tensor) or not w.dtype.is_floating_point or w.ndim < 2:
        check_matrix(w, name)  # raises the one-line error
    m, n = w.shape[-2:]
    energy = _sq_norm(w)
    if not bool(torch.isfinite(energy).all()):
        check_matrix(w, name)  # NaN/Inf: raises, naming the tensor
        energy = w.double().square().sum(dim=(-2, -1))  # finite but past float32's range
    requested = policy.requested_rank(m, n)
    if requested is None:
        raise ValueError(f"method: 'subspace' needs a policy that fixes the rank (fixed:, "
                         f"ratio:); {type(policy).__name__} chooses it from the spectrum "
                         f"({name})")
    r = min(requested, m, n)
    start = warm_start[..., :r]
    if start.shape[-1] < r:  # complete a smaller basis with random directions
        extra = draw(torch.randn, (*start.shape[:-1], r - start.shape[-1]), generator,
                     w.dtype, w.device)
        start = torch.cat([start.to(w.device, w.dtype), extra], dim=-1)
    u, v = _subspace_iteration(w, start, iters=iters)
    dtype = payload_dtype or w.dtype
    u, v = u.to(dtype), v.to(dtype)
    # V orthonormal: ||W - W V V^T||^2 = ||W||^2 - ||W V||^2, exact up to the rounding of
    # the norms (~1e-8 of ||W||^2 in float32, _sq_norm) and of V's orthonormality (~1e-6
    # in float32, cholesky_orthonormalize; ~1e-7 of ||W||^2 measured); where
    # the error is below 1e-4 of the energy (a matrix of rank ~r), or the factors were
    # rounded to another dtype, it is measured
    sq_error = energy - _sq_norm(u)
    direct = sq_error < 1e-4 * energy
    if dtype != w.dtype:
        direct = torch.ones_like(direct)
    if bool(direct.any()):
        sel = direct if direct.ndim else ...
        made = w[sel].double() - u[sel].double() @ v[sel].double().mT
        sq_error = sq_error.clone()
        sq_error[sel] = made.square().sum(dim=(-2, -1))
    sq_error = sq_error.clamp(min=0)
    ranks = torch.full(w.shape[:-2], r, dtype=torch.int64)
    return LowRankFactors(U=u, V=v, ranks=ranks, sq_error=sq_error.cpu(), energy=energy.cpu(),
                          dtype=w.dtype, requested_rank=requested)
