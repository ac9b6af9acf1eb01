"""Truncation errors of low-rank approximation, exact and a priori.

Everything here rests on the Eckart–Young–Mirsky theorem: the best rank-``r``
approximation of a matrix in the Frobenius norm is its truncated SVD, and the
squared error is the tail energy ``sum_{i>r} s_i^2`` (docs/theory.md, §5).
The a-priori bounds assume an *exact* SVD; a sketched SVD adds the error bounded
by :func:`hmt_expected_error_bound` (docs/theory.md, §8).

Singular values may be numpy arrays or (CPU) torch tensors; results are float64
numpy values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from lowrank.policies import (
    EnergyThreshold,
    ErrorBudget,
    FixedRank,
    FloorGrowth,
    RankPolicy,
    RankRatio,
)

__all__ = [
    "LayerErrorBound",
    "ModelErrorBound",
    "contraction_delta",
    "floor_growth_relative_error_bound",
    "hmt_expected_error_bound",
    "model_error_bound",
    "model_relative_error_bound",
    "policy_error_bound",
    "policy_relative_error_bound",
    "spectral_tail",
    "tail_energy",
]

#: machine epsilon of float32: the default slack of :class:`EnergyThreshold`, which asks for
#: ``tau * (1 - 4 eps)`` of the energy (eps of the SVD dtype), so the guarantee is slightly
#: weaker than ``1 - tau``; float32 covers float32 and float64 runs.
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _as_spectrum(singular_values) -> np.ndarray:
    """Validated float64 array of descending, non-negative singular values ``(..., k)``."""
    if isinstance(singular_values, torch.Tensor):
        singular_values = singular_values.detach().cpu().double().numpy()
    s = np.asarray(singular_values, dtype=np.float64)
    if s.ndim == 0:
        raise ValueError("singular_values: expected an array of shape (..., k), got a scalar")
    if not np.all(np.isfinite(s)):
        raise ValueError("singular_values: must be finite")
    if np.any(s < 0):
        raise ValueError("singular_values: must be non-negative")
    if np.any(np.diff(s, axis=-1) > 0):
        raise ValueError("singular_values: must be sorted in descending order along the last axis")
    return s


def _as_ranks(rank, batch_shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(rank, torch.Tensor):
        rank = rank.detach().cpu().numpy()
    r = np.asarray(rank)
    if not np.issubdtype(r.dtype, np.integer):
        if not np.all(np.isfinite(r)) or not np.all(r == np.round(r)):
            raise ValueError(f"rank: must be integer, got {rank!r}")
        r = r.astype(np.int64)
    if np.any(r < 0):
        raise ValueError(f"rank: must be >= 0, got {rank!r}")
    try:
        return np.broadcast_to(r, batch_shape)
    except ValueError as exc:
        raise ValueError(
            f"rank: shape {r.shape} does not broadcast to the batch shape {batch_shape}"
        ) from exc


def tail_energy(singular_values, rank) -> np.ndarray | float:
    """Squared Frobenius error of the rank-``r`` truncated SVD, ``sum_{i>r} s_i^2``.

    By Eckart–Young–Mirsky this is the smallest ``||W - X||_F^2`` over all ``X`` of
    rank at most ``r`` (docs/theory.md, §5). Exact; no assumption beyond an exact SVD.

    Parameters
    ----------
    singular_values : array_like or torch.Tensor
        Shape ``(..., k)``, descending, non-negative: the *full* spectrum
        (``k = min(m, n)``), otherwise the result is the tail of what was given.
    rank : int or array_like of int
        Rank kept, ``>= 0``; broadcast against the batch shape ``(...)``. Ranks
        ``>= k`` give 0.

    Returns
    -------
    float or numpy.ndarray
        Tail energy per matrix, shape ``(...)`` (a float for a single matrix).
    """
    s = _as_spectrum(singular_values)
    r = _as_ranks(rank, s.shape[:-1])
    keep = np.arange(s.shape[-1]) < r[..., None]
    out = np.where(keep, 0.0, np.square(s)).sum(axis=-1)
    return float(out) if out.ndim == 0 else out


def spectral_tail(singular_values, rank) -> np.ndarray | float:
    """Spectral-norm error of the rank-``r`` truncated SVD, ``s_{r+1}`` (0 if ``r >= k``).

    Eckart–Young–Mirsky in the spectral norm (docs/theory.md, §5).

    Parameters
    ----------
    singular_values : array_like or torch.Tensor
        Shape ``(..., k)``, descending, non-negative.
    rank : int or array_like of int
        Rank kept, ``>= 0``.

    Returns
    -------
    float or numpy.ndarray
        ``s_{r+1}`` per matrix (1-based), shape ``(...)``.
    """
    s = _as_spectrum(singular_values)
    r = _as_ranks(rank, s.shape[:-1])
    k = s.shape[-1]
    padded = np.concatenate([s, np.zeros(s.shape[:-1] + (1,))], axis=-1)
    out = np.take_along_axis(padded, np.minimum(r, k)[..., None], axis=-1)[..., 0]
    return float(out) if out.ndim == 0 else out


def _check_shape(m: int, n: int) -> int:
    for name, v in (("m", m), ("n", n)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    return min(int(m), int(n))


def contraction_delta(rank: int, m: int, n: int) -> float:
    """The ``delta`` of rank-``r`` truncation as a delta-contraction, ``min(r, k)/k``.

    Truncation to rank ``r`` of an ``m x n`` matrix (``k = min(m, n)``) satisfies
    ``||C(W) - W||_F^2 <= (1 - delta) ||W||_F^2`` with ``delta = r/k``: the ``r``
    largest of the ``k`` squared singular values carry at least the fraction
    ``r/k`` of the energy. This is a delta-contraction in the sense of Stich,
    Cordonnier & Jaggi, "Sparsified SGD with Memory", NeurIPS 2018, Def. 2.1;
    derived in docs/theory.md, §5. Assumes an exact SVD.

    Parameters
    ----------
    rank : int
        Rank kept, ``>= 1``; clipped to ``k``.
    m, n : int
        Matrix shape.

    Returns
    -------
    float
        ``delta`` in ``(0, 1]``.
    """
    k = _check_shape(m, n)
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise ValueError(f"rank: must be a positive integer, got {rank!r}")
    return min(int(rank), k) / k


def policy_relative_error_bound(
    policy: RankPolicy, m: int, n: int, *, dtype_eps: float = FLOAT32_EPS
) -> float:
    """A-priori bound on ``||C(W) - W||_F^2 / ||W||_F^2`` for every ``m x n`` matrix ``W``.

    Derived in docs/theory.md, §5 (Eckart–Young–Mirsky; Stich et al. 2018,
    Def. 2.1). Assumes ``C`` is the *exact* truncated SVD at the rank the policy
    selects from the full spectrum. Every policy keeps at least rank 1, which
    gives ``1 - 1/k`` (``k = min(m, n)``); on top of that:

    - :class:`EnergyThreshold` ``(tau)``: ``1 - tau (1 - 4 dtype_eps)`` (the policy
      asks for ``tau (1 - 4 eps)`` of the energy, eps of the SVD dtype);
    - :class:`FixedRank` ``(r)`` / :class:`RankRatio` ``(rho)``: ``1 - r'/k`` with
      ``r'`` the requested rank clipped to ``k``;
    - :class:`FloorGrowth`: :func:`floor_growth_relative_error_bound`.

    Parameters
    ----------
    policy : RankPolicy
        A policy of :mod:`lowrank.policies`.
    m, n : int
        Matrix shape.
    dtype_eps : float
        Machine epsilon of the dtype the SVD runs in (slack of EnergyThreshold);
        the float32 default is also valid for float64.

    Returns
    -------
    float
        Bound in ``[0, 1)``.

    Raises
    ------
    ValueError
        For :class:`ErrorBudget`, whose guarantee is absolute (use
        :func:`policy_error_bound`).
    TypeError
        For a policy this module does not know.
    """
    k = _check_shape(m, n)
    if not (0.0 <= dtype_eps < 0.25):
        raise ValueError(f"dtype_eps: must lie in [0, 0.25), got {dtype_eps}")
    at_least_one = 1.0 - 1.0 / k
    if isinstance(policy, FloorGrowth):
        return floor_growth_relative_error_bound(policy, m, n, dtype_eps=dtype_eps)
    if isinstance(policy, EnergyThreshold):
        return min(at_least_one, max(0.0, 1.0 - policy.tau * (1.0 - 4.0 * dtype_eps)))
    if isinstance(policy, FixedRank | RankRatio):
        r = min(policy.requested_rank(m, n), k)
        return 1.0 - r / k
    if isinstance(policy, ErrorBudget):
        raise ValueError(
            "policy: ErrorBudget bounds the absolute error (tail energy <= eps^2), not the "
            "relative one; use policy_error_bound(policy, m, n, sq_norm=...)"
        )
    raise TypeError(f"policy: no a-priori bound known for {type(policy).__name__}")


def floor_growth_relative_error_bound(
    policy: FloorGrowth, m: int, n: int, *, dtype_eps: float = FLOAT32_EPS
) -> float:
    """A-priori bound on ``||C(W) - W||_F^2 / ||W||_F^2`` for :class:`FloorGrowth`.

    Derivation (Eckart–Young–Mirsky, as in docs/theory.md, §5): the squared error of an
    exact truncated SVD at rank ``r`` is the tail energy ``sum_{i>r} s_i^2``, which does
    not increase with ``r``, and is at most ``(1 - r/k) ||W||_F^2`` (``k = min(m, n)``:
    the ``k - r`` smallest of ``k`` squares hold at most that share). FloorGrowth keeps
    ``r = clamp(r_in + g, f, k)`` with ``r_in >= 1`` the inner policy's rank, ``g`` the
    growth and ``f = max(1, ceil(floor k))``, so ``r >= r_in`` (its error is at most the
    inner policy's bound) and ``r >= r_min = min(k, max(f, r_0 + g))``, ``r_0`` the inner
    rank known in advance (fixed/ratio) or 1. Hence

    ``q^2 <= min(inner bound, 1 - r_min / k)``,

    the inner bound from :func:`policy_relative_error_bound` (nested FloorGrowth
    recursively; for :class:`ErrorBudget`, absolute, only the second term).

    Parameters
    ----------
    policy : FloorGrowth
        The policy (``lowrank.policies.FloorGrowth``).
    m, n : int
        Matrix shape.
    dtype_eps : float
        See :func:`policy_relative_error_bound`.

    Returns
    -------
    float
        Bound in ``[0, 1)``.
    """
    if not isinstance(policy, FloorGrowth):
        raise TypeError(f"policy: expected a FloorGrowth, got {type(policy).__name__}")
    k = _check_shape(m, n)
    inner = policy.inner
    r0 = inner.requested_rank(m, n) or 1
    r_min = min(k, max(policy.floor_rank(m, n), r0 + policy.growth))
    own = 1.0 - r_min / k
    if isinstance(inner, ErrorBudget):
        return own
    return min(own, policy_relative_error_bound(inner, m, n, dtype_eps=dtype_eps))


def policy_error_bound(
    policy: RankPolicy,
    m: int,
    n: int,
    *,
    singular_values=None,
    sq_norm: float | None = None,
    dtype_eps: float = FLOAT32_EPS,
) -> float:
    """Bound on ``||C(W) - W||_F^2`` for one matrix, from its spectrum or its norm.

    With ``singular_values`` (the full spectrum of ``W``) the result is the exact
    Eckart–Young error ``tail_energy(s, policy.select(s))`` (docs/theory.md, §5).
    With only ``sq_norm = ||W||_F^2`` it is
    ``policy_relative_error_bound(...) * sq_norm``, and for :class:`ErrorBudget`
    ``min(eps^2, (1 - 1/k) sq_norm)`` (the policy keeps at least rank 1). Assumes an
    exact SVD.

    Parameters
    ----------
    policy : RankPolicy
        Rank policy.
    m, n : int
        Matrix shape.
    singular_values : array_like, optional
        Full descending spectrum of ``W`` (length ``min(m, n)``).
    sq_norm : float, optional
        ``||W||_F^2``; used when ``singular_values`` is not given.
    dtype_eps : float
        See :func:`policy_relative_error_bound`.

    Returns
    -------
    float
        The bound (exact value when the spectrum is given).
    """
    k = _check_shape(m, n)
    if singular_values is not None:
        s = _as_spectrum(singular_values)
        if s.ndim != 1 or s.shape[0] != k:
            raise ValueError(
                f"singular_values: expected the full spectrum of length min(m, n) = {k}, "
                f"got shape {s.shape}"
            )
        rank = int(policy.select(torch.from_numpy(s.copy()), m, n))
        return float(tail_energy(s, rank))
    if sq_norm is None:
        raise ValueError("policy_error_bound: give singular_values or sq_norm")
    if not math.isfinite(sq_norm) or sq_norm < 0:
        raise ValueError(f"sq_norm: must be finite and >= 0, got {sq_norm}")
    if isinstance(policy, ErrorBudget):
        return min(policy.eps**2, (1.0 - 1.0 / k) * sq_norm)
    return policy_relative_error_bound(policy, m, n, dtype_eps=dtype_eps) * sq_norm


@dataclass(frozen=True)
class LayerErrorBound:
    """Bound for one layer of a model."""

    m: int  # rows of the matricized weight
    n: int  # columns of the matricized weight
    sq_norm: float  # ||W||_F^2
    sq_error: float  # bound on ||C(W) - W||_F^2


@dataclass(frozen=True)
class ModelErrorBound:
    """Bound on the squared compression error of a whole model."""

    sq_error: float  # bound on sum_l ||C(W_l) - W_l||_F^2
    sq_norm: float  # sum_l ||W_l||_F^2 over the layers given
    layers: tuple[LayerErrorBound, ...]  # per-layer bounds, in the order given

    @property
    def relative(self) -> float:
        """``sq_error / sq_norm`` (0 for a zero model)."""
        return self.sq_error / self.sq_norm if self.sq_norm > 0 else 0.0


def model_error_bound(
    layers: Sequence[tuple[RankPolicy, int, int, float]], *, dtype_eps: float = FLOAT32_EPS
) -> ModelErrorBound:
    """Sum of per-layer bounds: ``||C(w) - w||^2 = sum_l ||C(W_l) - W_l||_F^2``.

    Compression acts layer by layer and the squared Euclidean norm of the model is
    the sum over layers, so the model bound is the sum of the layer bounds from
    :func:`policy_error_bound` (docs/theory.md, §5). Layers sent uncompressed
    (biases, or layers whose factors would not pay off, :mod:`lowrank.accounting`)
    have error 0 and may be omitted.

    Parameters
    ----------
    layers : sequence of (policy, m, n, sq_norm)
        Policy, matricized shape and ``||W_l||_F^2`` of each compressed layer.
    dtype_eps : float
        See :func:`policy_relative_error_bound`.

    Returns
    -------
    ModelErrorBound
    """
    out = []
    for i, entry in enumerate(layers):
        try:
            policy, m, n, sq_norm = entry
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"layers[{i}]: expected (policy, m, n, sq_norm), got {entry!r}"
            ) from exc
        bound = policy_error_bound(policy, m, n, sq_norm=float(sq_norm), dtype_eps=dtype_eps)
        out.append(LayerErrorBound(int(m), int(n), float(sq_norm), bound))
    return ModelErrorBound(
        sq_error=float(sum(x.sq_error for x in out)),
        sq_norm=float(sum(x.sq_norm for x in out)),
        layers=tuple(out),
    )


def model_relative_error_bound(
    layers: Sequence[tuple[RankPolicy, int, int]], *, dtype_eps: float = FLOAT32_EPS
) -> float:
    """``q^2``: a bound on ``||C(w) - w||^2 / ||w||^2`` for every model ``w``.

    ``sum_l ||C(W_l) - W_l||^2 <= sum_l delta_l ||W_l||^2 <= max_l delta_l ||w||^2``
    where ``delta_l`` is :func:`policy_relative_error_bound` of layer ``l`` and
    uncompressed parameters contribute 0 (docs/theory.md, §5). This is the ``q^2``
    of the a-priori recursion (:func:`theory.bounds.a_priori_recursion`).

    Parameters
    ----------
    layers : sequence of (policy, m, n)
        The compressed layers. ErrorBudget is not allowed (absolute guarantee).
    dtype_eps : float
        See :func:`policy_relative_error_bound`.

    Returns
    -------
    float
        ``max_l delta_l`` (0 for no layers).
    """
    deltas = [0.0]
    for i, entry in enumerate(layers):
        try:
            policy, m, n = entry
        except (TypeError, ValueError) as exc:
            raise ValueError(f"layers[{i}]: expected (policy, m, n), got {entry!r}") from exc
        deltas.append(policy_relative_error_bound(policy, m, n, dtype_eps=dtype_eps))
    return max(deltas)


def hmt_expected_error_bound(
    singular_values, k: int, p: int, q: int = 0, *, norm: str = "fro", truncated: bool = False
) -> float:
    """Bound on the expected error of the randomized range finder (Halko et al. 2011).

    ``Q`` is an orthonormal basis of ``Y = (A A^T)^q A Omega`` with ``Omega`` an
    ``n x (k + p)`` standard Gaussian matrix (in exact arithmetic subspace
    iteration with re-orthonormalization spans the same range). References:
    Halko, Martinsson & Tropp, "Finding structure with randomness", SIAM Review
    53(2), 2011; derived/quoted in docs/theory.md, §8.

    - ``norm="fro"``, ``q = 0``: Thm 10.5,
      ``E||A - Q Q^T A||_F <= (1 + k/(p-1))^{1/2} (sum_{j>k} s_j^2)^{1/2}``.
    - ``norm="spectral"``, any ``q >= 0``: Cor. 10.10 (Thm 10.6 for ``q = 0``),
      ``E||A - Q Q^T A||_2 <= [(1 + sqrt(k/(p-1))) s_{k+1}^{2q+1}
      + (e sqrt(k+p)/p) (sum_{j>k} s_j^{2(2q+1)})^{1/2}]^{1/(2q+1)}``.
    - ``norm="fro"`` with ``q >= 1`` raises: the paper gives no Frobenius bound for
      the power scheme and we do not invent one.

    Assumptions: ``k >= 2``, ``p >= 2``, ``k + p <= min(m, n)``; the spectrum given
    is the full one. With ``truncated=True`` the bound is for the rank-``k``
    output ``Q [Q^T A]_k`` instead: by the triangle inequality and
    ``s_j(Q^T A) <= s_j(A)`` it adds the optimal error ``(sum_{j>k} s_j^2)^{1/2}``
    (Frobenius) or ``s_{k+1}`` (spectral) (HMT Thm 9.3; docs/theory.md, §8).

    Parameters
    ----------
    singular_values : array_like
        Full descending spectrum of ``A`` (length ``min(m, n)``).
    k : int
        Target rank, ``>= 2``.
    p : int
        Oversampling, ``>= 2``.
    q : int
        Number of power iterations, ``>= 0``.
    norm : {"fro", "spectral"}
        Norm of the error.
    truncated : bool
        Bound the rank-``k`` truncation of ``Q Q^T A`` rather than ``Q Q^T A``.

    Returns
    -------
    float
        Bound on the expected error (the norm itself, not squared).
    """
    s = _as_spectrum(singular_values)
    if s.ndim != 1:
        raise ValueError(f"singular_values: expected one spectrum (1-D), got shape {s.shape}")
    if isinstance(k, bool) or int(k) != k or k < 2:
        raise ValueError(f"k: HMT Thm 10.5/10.6 require a target rank k >= 2, got {k!r}")
    if isinstance(p, bool) or int(p) != p or p < 2:
        raise ValueError(f"p: HMT Thm 10.5/10.6 require oversampling p >= 2, got {p!r}")
    if isinstance(q, bool) or int(q) != q or q < 0:
        raise ValueError(f"q: must be a non-negative integer, got {q!r}")
    if k + p > s.shape[0]:
        raise ValueError(
            f"k, p: HMT require k + p <= min(m, n) = {s.shape[0]} (len(singular_values)), "
            f"got k + p = {k + p}"
        )
    tail = s[k:]
    if norm == "fro":
        if q != 0:
            raise ValueError(
                "norm: HMT (2011) bound the power scheme (q >= 1) only in the spectral norm "
                "(Cor. 10.10); use norm='spectral'"
            )
        fro_tail = math.sqrt(float(np.sum(tail**2)))
        bound = math.sqrt(1.0 + k / (p - 1)) * fro_tail
        return bound + fro_tail if truncated else bound
    if norm == "spectral":
        a = 2 * q + 1
        inner = (1.0 + math.sqrt(k / (p - 1))) * tail[0] ** a + (
            math.e * math.sqrt(k + p) / p
        ) * math.sqrt(float(np.sum(tail ** (2 * a))))
        bound = inner ** (1.0 / a)
        return bound + float(tail[0]) if truncated else bound
    raise ValueError(f"norm: must be 'fro' or 'spectral', got {norm!r}")
