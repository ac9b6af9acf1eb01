"""Matrix decompositions for batches of matrices ``(..., m, n)``.

Three ways to get a truncated SVD ``A ~ U diag(S) V^T``:

- :func:`exact_svd`: LAPACK through ``torch.linalg.svd``, with fallbacks when
  the default driver fails to converge;
- :func:`randomized_svd`: Halko, Martinsson & Tropp (2011), Alg. 4.4 + 5.1, with
  oversampling ``p`` and ``q`` power (subspace) iterations;
- :func:`power_svd`: PowerSGD-style subspace iteration (Vogels et al. 2019)
  that can be warm-started from the previous call's right factor.

:func:`subspace_iteration` is the cheap relative of :func:`power_svd` for a matrix
known to be close to a given rank-``k`` right basis (FedDLR's local models start from
the broadcast factors): it returns ``A ~ U V^T`` with ``V`` orthonormal, not an SVD, and
orthonormalizes by Cholesky QR instead of Householder QR.

All return an :class:`SVDResult` with ``U (..., m, k)``, ``S (..., k)``
(descending) and ``V (..., n, k)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from ._random import draw
from ._validation import check_matrix

__all__ = ["SVDResult", "exact_svd", "randomized_svd", "power_svd", "orthonormalize",
           "cholesky_orthonormalize", "subspace_iteration"]


@dataclass(frozen=True)
class SVDResult:
    """A (possibly truncated) singular value decomposition ``A ~ U diag(S) V^T``."""

    U: torch.Tensor  # (..., m, k), orthonormal columns
    S: torch.Tensor  # (..., k), non-negative, descending
    V: torch.Tensor  # (..., n, k), orthonormal columns

    @property
    def rank(self) -> int:
        """Number of singular triplets held (``k``)."""
        return self.S.shape[-1]


def _scipy_svd(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched SVD through SciPy's ``gesvd`` driver (slower, more robust)."""
    arr = a.detach().cpu().double().numpy()
    batch_shape, (m, n) = arr.shape[:-2], arr.shape[-2:]
    flat = arr.reshape(-1, m, n)
    k = min(m, n)
    us, ss, vhs = np.empty((len(flat), m, k)), np.empty((len(flat), k)), np.empty((len(flat), k, n))
    for i, mat in enumerate(flat):
        us[i], ss[i], vhs[i] = scipy.linalg.svd(mat, full_matrices=False, lapack_driver="gesvd")

    def back(x: np.ndarray, *tail: int) -> torch.Tensor:
        return torch.from_numpy(x.reshape(*batch_shape, *tail)).to(a.device, a.dtype)

    return back(us, m, k), back(ss, k), back(vhs, k, n)


def exact_svd(a: torch.Tensor, *, name: str = "matrix") -> SVDResult:
    """Thin SVD of a matrix or a batch of matrices.

    Tries ``torch.linalg.svd`` in the input precision (float32 for float16 and
    bfloat16, which LAPACK lacks); if LAPACK fails to converge
    (``torch.linalg.LinAlgError``) it retries in float64, then with SciPy's
    ``gesvd`` driver, and warns each time it falls back. Any other error (out of
    memory, for one) propagates unchanged.

    Parameters
    ----------
    a : torch.Tensor
        Shape ``(..., m, n)``, floating point, finite.
    name : str
        Used in error and warning messages.

    Returns
    -------
    SVDResult
        ``k = min(m, n)`` singular triplets, in the dtype of ``a``.
    """
    check_matrix(a, name)
    if a.dtype in (torch.float16, torch.bfloat16):  # LAPACK has no half precision
        r = exact_svd(a.float(), name=name)
        return SVDResult(U=r.U.to(a.dtype), S=r.S.to(a.dtype), V=r.V.to(a.dtype))
    try:
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
    except torch.linalg.LinAlgError as first:  # only non-convergence is retried (not OOM)
        warnings.warn(f"{name}: SVD did not converge in {a.dtype} ({first}); retrying in float64",
                      RuntimeWarning, stacklevel=2)
        try:
            u, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
            u, s, vh = u.to(a.dtype), s.to(a.dtype), vh.to(a.dtype)
        except torch.linalg.LinAlgError:
            warnings.warn(f"{name}: float64 SVD failed too; using SciPy's gesvd driver",
                          RuntimeWarning, stacklevel=2)
            u, s, vh = _scipy_svd(a)
    return SVDResult(U=u, S=s, V=vh.mT)


def orthonormalize(y: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the column space of each matrix (reduced QR)."""
    q, _ = torch.linalg.qr(y, mode="reduced")
    return q


def _check_target_rank(k: int, m: int, n: int, name: str) -> int:
    if isinstance(k, bool) or int(k) != k or k <= 0:
        raise ValueError(f"{name}: target rank must be a positive integer, got {k!r}")
    return min(int(k), m, n)


def randomized_svd(
    a: torch.Tensor,
    rank: int,
    *,
    oversampling: int = 10,
    power_iters: int = 2,
    generator: torch.Generator | None = None,
    name: str = "matrix",
) -> SVDResult:
    """Randomized truncated SVD (Halko, Martinsson & Tropp 2011).

    A Gaussian sketch ``Y = A Omega`` with ``rank + oversampling`` columns,
    ``power_iters`` rounds of re-orthonormalized subspace iteration
    (HMT Alg. 4.4), then an exact SVD of the small matrix ``Q^T A`` (Alg. 5.1).

    The expected error obeys HMT Thm 10.5 (``q = 0``, ``p >= 2``)::

        E ||A - Q Q^T A||_F <= (1 + k/(p-1))^{1/2} (sum_{j>k} s_j^2)^{1/2}

    and power iterations only sharpen it (HMT Cor. 10.10).

    Parameters
    ----------
    a : torch.Tensor
        ``(..., m, n)`` floating point.
    rank : int
        Number of singular triplets returned (clipped to ``min(m, n)``).
    oversampling : int
        Extra sketch columns ``p`` (default 10, HMT's recommendation).
    power_iters : int
        Subspace iterations ``q`` (default 2).
    generator : torch.Generator, optional
        Source of the Gaussian test matrix; pass one for reproducible results.
    name : str
        Used in error messages.
    """
    check_matrix(a, name)
    m, n = a.shape[-2:]
    k = _check_target_rank(rank, m, n, name)
    if oversampling < 0:
        raise ValueError(f"oversampling: must be >= 0, got {oversampling}")
    if power_iters < 0:
        raise ValueError(f"power_iters: must be >= 0, got {power_iters}")
    sketch = min(k + oversampling, m, n)
    omega = draw(torch.randn, (*a.shape[:-2], n, sketch), generator, a.dtype, a.device)
    q = orthonormalize(a @ omega)
    for _ in range(power_iters):
        q = orthonormalize(a.mT @ q)
        q = orthonormalize(a @ q)
    small = exact_svd(q.mT @ a, name=name)
    return SVDResult(U=(q @ small.U)[..., :k], S=small.S[..., :k], V=small.V[..., :k])


def power_svd(
    a: torch.Tensor,
    rank: int,
    *,
    iters: int = 1,
    warm_start: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    name: str = "matrix",
) -> SVDResult:
    """Subspace (power) iteration, PowerSGD-style, with an optional warm start.

    Each iteration computes ``P = orth(A Q)`` then ``Q = A^T P``; the
    approximation is ``P Q^T = P P^T A``. The result is put in SVD form by an
    exact SVD of the small ``Q`` (``n x rank``). Reusing ``result.V`` from the
    previous round as ``warm_start`` (Vogels et al. 2019) makes one iteration
    per round enough when the matrix changes slowly.

    Parameters
    ----------
    a : torch.Tensor
        ``(..., m, n)`` floating point.
    rank : int
        Rank of the approximation (clipped to ``min(m, n)``).
    iters : int
        Number of iterations (>= 1).
    warm_start : torch.Tensor, optional
        ``(..., n, rank)`` starting right basis; random Gaussian if omitted or
        if its shape does not match.
    generator : torch.Generator, optional
        Source of the random start.
    name : str
        Used in error messages.
    """
    check_matrix(a, name)
    m, n = a.shape[-2:]
    k = _check_target_rank(rank, m, n, name)
    if iters < 1:
        raise ValueError(f"iters: must be >= 1, got {iters}")
    expected = (*a.shape[:-2], n, k)
    if warm_start is not None and tuple(warm_start.shape) == expected:
        q = warm_start.to(a.dtype)
    else:
        q = draw(torch.randn, expected, generator, a.dtype, a.device)
    for _ in range(iters):
        p = orthonormalize(a @ q)
        q = a.mT @ p
    small = exact_svd(q, name=name)  # q = Uq diag(s) Vq^T, so A ~ P Vq diag(s) Uq^T
    return SVDResult(U=p @ small.V, S=small.S, V=small.U)


def cholesky_orthonormalize(y: torch.Tensor) -> torch.Tensor:
    """Orthonormal basis of the columns of each ``(..., m, k)`` matrix by Cholesky QR.

    ``Y = Q R`` with ``R^T R = Y^T Y``: one Gram ``bmm`` and a ``k x k`` Cholesky instead
    of a Householder QR of the tall matrix. The columns are scaled to unit norm first
    (``Y_s = Y D``; the span is the same), which removes the condition number that their
    lengths alone make: the Gram is formed in ``y``'s own dtype, and ``Q = Y (D L^{-T})``
    with the small ``k x k`` factor computed in float64. Cholesky QR's loss of
    orthonormality grows like ``eps * cond(Y_s)^2`` (the Gram squares the condition
    number, and ``eps`` is the precision it is formed in); a matrix
    where ``eps * c > 1e-5``, with ``c = ||G_s||_inf ||L^{-1}||_1 ||L^{-1}||_inf >=
    cond(Y_s)^2`` an upper bound computed from the factor, gets a second pass on its
    ``Q`` (Cholesky QR2) where ``eps * c <= 1e-2``; one whose Gram is not numerically
    positive definite, or past that, is done again with the Gram in float64, and
    where that fails too, by :func:`orthonormalize` (Householder QR). So ``Q^T Q - I``
    is ~1e-5 or better for every matrix (measured ~1e-6 in float32 on FedDLR's
    matrices, docs/benchmarks.md).

    Parameters
    ----------
    y : torch.Tensor
        ``(..., m, k)`` with ``k <= m``, floating point.

    Returns
    -------
    torch.Tensor
        ``(..., m, k)`` in the dtype of ``y``, contiguous.
    """
    work = y if y.dtype in (torch.float32, torch.float64) else y.float()
    gram = (work.mT @ work).double()
    d = gram.diagonal(dim1=-2, dim2=-1).clamp(min=1e-300).rsqrt()  # 1 / column norms
    gram.mul_(d.unsqueeze(-1)).mul_(d.unsqueeze(-2))  # G_s = D G D, unit diagonal
    chol, info = torch.linalg.cholesky_ex(gram)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # L^{-1}
    inv_abs = inv.abs()
    bound = (gram.abs().sum(-1).amax(-1) * inv_abs.sum(-2).amax(-1)
             * inv_abs.sum(-1).amax(-1))  # ||G_s||_inf ||L^-1||_1 ||L^-1||_inf
    q = work @ (inv.mT * d.unsqueeze(-1)).to(work.dtype)  # Y D L^{-T}
    bad = (info != 0) | ~(torch.finfo(work.dtype).eps * bound <= 1e-5)  # NaN bound is bad
    if not bool(bad.any()):
        return q.to(y.dtype)
    # redo only the matrices that need it: a second pass on Q where the first one was
    # accurate enough to leave it well conditioned (eps c <= 1e-2: Cholesky QR2), else a
    # float64 Gram, else (in float64) Householder QR
    redo = bad & (info == 0) & (torch.finfo(work.dtype).eps * bound <= 1e-2)
    again = bad & ~redo
    for mask, fix in ((redo, lambda i: cholesky_orthonormalize(q[i])),
                      (again, lambda i: orthonormalize(work[i]) if work.dtype == torch.float64
                       else cholesky_orthonormalize(work[i].double()).to(work.dtype))):
        if bool(mask.any()):
            sel = mask.nonzero(as_tuple=True) if mask.ndim else ...
            q[sel] = fix(sel)
    return q.to(y.dtype)


def subspace_iteration(
    a: torch.Tensor,
    warm_start: torch.Tensor,
    *,
    iters: int = 1,
    name: str = "matrix",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-``k`` factors ``A ~ U V^T`` by subspace iteration from a right basis.

    Each iteration computes ``V = orth(A^T (A V))`` (:func:`cholesky_orthonormalize`;
    ``A V`` needs no orthonormalization of its own: ``span(A^T A V R^{-1}) =
    span(A^T A V)``); the result is the projection of ``A`` on the
    row space ``span(V)``: ``U = A V``, so ``||A - U V^T||_F^2 = ||A||_F^2 - ||U||_F^2``
    exactly (``V`` orthonormal). After ``q`` iterations ``span(V) =
    span((A^T A)^q V_0)``: the error approaches the Eckart-Young optimum at the rate
    ``(s_{k+1} / s_k)^{2q}`` in each direction, from wherever ``V_0`` starts (Halko,
    Martinsson & Tropp 2011, §4.5). Starting from the broadcast factors of a model
    that was then trained for a few steps, one or two iterations suffice
    (measured in docs/benchmarks.md).

    Parameters
    ----------
    a : torch.Tensor
        ``(..., m, n)`` floating point.
    warm_start : torch.Tensor
        ``(..., n, k)`` (or ``(n, k)``, broadcast over the batch) starting right
        basis, ``k <= min(m, n)``; need not be orthonormal.
    iters : int
        Number of iterations (>= 1).
    name : str
        Used in error messages.

    Returns
    -------
    U : torch.Tensor
        ``(..., m, k)``: ``A V`` (columns not orthogonal in general).
    V : torch.Tensor
        ``(..., n, k)``, orthonormal columns.
    """
    check_matrix(a, name)
    m, n = a.shape[-2:]
    if iters < 1:
        raise ValueError(f"iters: must be >= 1, got {iters}")
    k = warm_start.shape[-1] if warm_start.ndim >= 2 else 0
    if warm_start.ndim < 2 or warm_start.shape[-2] != n or not 1 <= k <= min(m, n):
        raise ValueError(f"{name}: warm_start must be (..., {n}, k) with 1 <= k <= {min(m, n)}, "
                         f"got {tuple(warm_start.shape)}")
    return _subspace_iteration(a, warm_start, iters=iters)


def _subspace_iteration(a: torch.Tensor, warm_start: torch.Tensor, *, iters: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`subspace_iteration` without the checks (the caller made them)."""
    v = warm_start.to(device=a.device, dtype=a.dtype)
    for _ in range(iters):
        v = cholesky_orthonormalize(a.mT @ (a @ v))
    return a @ v, v
