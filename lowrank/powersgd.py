"""PowerSGD-style low-rank compression of updates (Vogels, Karimireddy & Jaggi 2019).

Each tensor of two or more dimensions is matricized (``reshape(out, -1)``) and
approximated at a fixed rank by one warm-started subspace iteration
(:func:`lowrank.svd.power_svd`); the right basis is kept per tensor name and
reused next time. One-dimensional tensors, and matrices whose factors would not
pay off (the rule of :mod:`lowrank.accounting`), are sent dense. A compressed
tensor travels as a :class:`lowrank.state.MatrixEntry`, the payload of the
model-level compressor. Wrap it in :class:`lowrank.ErrorFeedback` for
PowerSGD's error feedback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ._validation import check_float_tensor
from .accounting import check_min_compression_rate, sends_factors
from .baselines import DensePayload
from .factors import compress_matrix
from .policies import FixedRank
from .state import MatrixEntry

__all__ = ["PowerSGD"]


@dataclass
class PowerSGD:
    """Rank-``rank`` compression by warm-started power iteration.

    Parameters
    ----------
    rank : int
        Rank of every compressed matrix.
    iters : int
        Power iterations per call (PowerSGD uses 1 with warm start).
    generator : torch.Generator, optional
        Random start of the first call for each tensor.
    bases : dict[str, torch.Tensor]
        Warm-start right bases by tensor name (filled as it goes).
    min_compression_rate : float
        A matrix is compressed only where its factors are this many times smaller.
    """

    rank: int  # rank of each compressed matrix
    iters: int = 1  # subspace iterations per call
    generator: torch.Generator | None = None
    bases: dict[str, torch.Tensor] = field(default_factory=dict)
    min_compression_rate: float = 1.0  # PowerSGD's name for the same knob

    def __post_init__(self) -> None:
        FixedRank(self.rank)  # validates rank >= 1
        check_min_compression_rate(self.min_compression_rate)

    def compress(self, x: torch.Tensor, name: str = "tensor") -> DensePayload | MatrixEntry:
        check_float_tensor(x, name)
        if x.ndim < 2:
            return DensePayload(x.detach().clone())
        matrix = x.detach().reshape(x.shape[0], -1)
        m, n = matrix.shape
        if not sends_factors(m, n, min(self.rank, m, n), self.min_compression_rate):
            return DensePayload(x.detach().clone())
        warm = self.bases.get(name)
        if warm is not None and not bool(warm.any()):
            warm = None  # an all-zero basis (a client's unused memory slot) is no start
        factors = compress_matrix(matrix, FixedRank(self.rank), "power", power_iters=self.iters,
                                  warm_start=warm, generator=self.generator,
                                  name=name)
        self.bases[name] = factors.V
        return MatrixEntry.from_matrix(matrix, factors, tuple(x.shape),
                                       self.min_compression_rate)
