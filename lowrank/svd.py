"""Matrix decompositions for batches of matrices ``(..., m, n)``.

Three ways to get a truncated SVD ``A ~ U diag(S) V^T``:

- :func:`exact_svd`: LAPACK through ``torch.linalg.svd``, with fallbacks when
  the default driver fails to converge;
- :func:`randomized_svd`: Halko, Martinsson & Tropp (2011), Alg. 4.4 + 5.1, with
  oversampling ``p`` and ``q`` power (subspace) iterations;
- :func:`power_svd`: PowerSGD-style subspace iteration (Vogels et al. 2019)
  that can be warm-started from the previous call's right factor.

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

__all__ = ["SVDResult", "exact_svd", "randomized_svd", "power_svd", "orthonormalize"]


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

    Tries ``torch.linalg.svd`` in the input precision; if LAPACK fails to
    converge it retries in float64, then with SciPy's ``gesvd`` driver, and
    warns each time it falls back.

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
    try:
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
    except RuntimeError as first:  # torch raises LinAlgError, a RuntimeError subclass
        warnings.warn(f"{name}: SVD did not converge in {a.dtype} ({first}); retrying in float64",
                      RuntimeWarning, stacklevel=2)
        try:
            u, s, vh = torch.linalg.svd(a.double(), full_matrices=False)
            u, s, vh = u.to(a.dtype), s.to(a.dtype), vh.to(a.dtype)
        except RuntimeError:
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
