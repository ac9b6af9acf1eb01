"""Byte accounting: the one rule for what a tensor costs on the wire.

Every payload, the simulator's ledger and the a-priori costs of
:mod:`theory.costs` count bytes through this module, so the rule is written once:

* a tensor of fewer than two dimensions (a bias, a norm) travels dense;
* a tensor of two or more dimensions is matricized as ``W.reshape(shape[0], -1)``
  (a conv kernel ``(O, I, kh, kw)`` becomes ``O x (I*kh*kw)``);
* a matricized ``m x n`` tensor at rank ``r`` travels as factors ``U (m x r)``,
  ``V (n x r)`` -- ``r (m + n)`` numbers -- only if
  ``r (m + n) * min_compression_rate < m n``; otherwise it travels dense
  (``m n`` numbers). ``min_compression_rate`` is PowerSGD's name for the same
  knob (Vogels et al. 2019): 2 means "factorize only where it halves the bytes".

Bytes are numbers times the itemsize of the dtype they travel in (factors may
travel at a payload dtype other than the tensor's own). The functions accept
Python ints or integer tensors of ranks (a batch of clients), elementwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch

__all__ = [
    "check_min_compression_rate",
    "factors_nbytes",
    "matricized_shape",
    "sends_factors",
    "state_nbytes",
    "tensor_nbytes",
    "wire_nbytes",
]

RankLike = TypeVar("RankLike", int, torch.Tensor)


def check_min_compression_rate(value: float) -> float:
    """``value`` if it is a finite number ``> 0``, else a ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"min_compression_rate: must be a finite number > 0, got {value!r}")
    return float(value)


def matricized_shape(shape: Sequence[int]) -> tuple[int, int] | None:
    """``(m, n)`` of ``W.reshape(shape[0], -1)``, or ``None`` for fewer than 2 dimensions.

    Parameters
    ----------
    shape : sequence of int
        The tensor's shape (every dimension ``>= 1``).

    Returns
    -------
    (int, int) or None
    """
    dims = tuple(int(s) for s in shape)
    if any(s < 1 for s in dims):
        raise ValueError(f"shape: dimensions must be >= 1, got {dims}")
    if len(dims) < 2:
        return None
    return dims[0], math.prod(dims[1:])


def sends_factors(m: int, n: int, rank: RankLike,
                  min_compression_rate: float = 1.0) -> bool | torch.Tensor:
    """Whether rank-``rank`` factors of an ``m x n`` matrix travel instead of the matrix.

    True where ``rank (m + n) * min_compression_rate < m n``; elementwise for a
    tensor of ranks (a bool tensor is returned).
    """
    return rank * (m + n) * min_compression_rate < m * n


def factors_nbytes(m: int, n: int, rank: RankLike, itemsize: int) -> RankLike:
    """Bytes of rank-``rank`` factors of an ``m x n`` matrix: ``rank (m + n) itemsize``."""
    return rank * (m + n) * itemsize


def wire_nbytes(
    shape: Sequence[int],
    rank: RankLike | None,
    itemsize: int,
    min_compression_rate: float = 1.0,
    dense_itemsize: int | None = None,
) -> RankLike:
    """Bytes one tensor costs on the wire: the rule of this module.

    Parameters
    ----------
    shape : sequence of int
        The tensor's shape (per item, without a batch dimension).
    rank : int, int tensor or None
        Rank the factors would have (clipped to ``min(m, n)``); a tensor gives one
        cost per item; ``None`` sends the tensor dense.
    itemsize : int
        Bytes per number of the factors.
    min_compression_rate : float
        Factors travel only if they are this many times smaller than the matrix.
    dense_itemsize : int, optional
        Bytes per number when the tensor travels dense (default ``itemsize``).

    Returns
    -------
    int or torch.Tensor
        Bytes (a tensor of bytes per item when ``rank`` is a tensor).
    """
    dense_size = itemsize if dense_itemsize is None else dense_itemsize
    numel = math.prod(int(s) for s in shape)
    mn = matricized_shape(shape)
    if mn is None or rank is None:
        return numel * dense_size
    m, n = mn
    if isinstance(rank, torch.Tensor):
        r = rank.clamp(max=min(m, n))
        return torch.where(sends_factors(m, n, r, min_compression_rate),
                           factors_nbytes(m, n, r, itemsize),
                           torch.full_like(r, numel * dense_size))
    r = min(int(rank), m, n)
    if sends_factors(m, n, r, min_compression_rate):
        return factors_nbytes(m, n, r, itemsize)
    return numel * dense_size


def tensor_nbytes(x: torch.Tensor) -> int:
    """Bytes of a dense tensor at its own dtype (``numel * element_size``)."""
    return x.numel() * x.element_size()


def state_nbytes(state: Mapping[str, torch.Tensor]) -> int:
    """Bytes of a dense state dict: what FedAvg sends each way per client."""
    return sum(tensor_nbytes(t) for t in state.values())
