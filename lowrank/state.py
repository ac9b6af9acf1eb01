"""Model-level compression: every tensor of a state dict, or of a batch of them.

Tensors of two or more dimensions are matricized as ``W.reshape(out, -1)`` (a
conv kernel ``(O, I, kh, kw)`` becomes ``O x (I*kh*kw)``) and truncated by a
rank policy. One-dimensional tensors (biases, norms), layers matched by an
override of ``None`` and layers whose factors would not pay off
(the rule of :mod:`lowrank.accounting`) are sent raw.

With ``batched=True`` every tensor carries a leading client dimension; each
layer of all clients is compressed in one batched call, and the raw/low-rank
decision is made per client.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import torch

from ._validation import check_float_tensor
from .accounting import (
    check_min_compression_rate,
    matricized_shape,
    sends_factors,
    tensor_nbytes,
    wire_nbytes,
)
from .baselines import DensePayload
from .factors import LowRankFactors, Method, compress_matrix
from .policies import RankPolicy, parse_policy

__all__ = ["MatrixEntry", "CompressedState", "compress_state", "resolve_policy",
           "planned_ranks"]

PolicyOverrides = Mapping[str, RankPolicy | str | None]


@dataclass(frozen=True)
class MatrixEntry:
    """A matricized tensor sent as low-rank factors (or raw where that is smaller).

    Whether an item goes raw is decided by :func:`lowrank.accounting.sends_factors`
    at ``min_compression_rate``; its bytes by :func:`lowrank.accounting.wire_nbytes`.
    """

    factors: LowRankFactors  # (B, m, R) / (m, r) factors
    shape: tuple[int, ...]  # original per-item shape, e.g. (O, I, kh, kw)
    dense_items: torch.Tensor  # (count, m, n): the items sent raw, in the original dtype
    min_compression_rate: float = 1.0  # factors only where they are this many times smaller

    @classmethod
    def from_matrix(cls, matrix: torch.Tensor, factors: LowRankFactors, shape: tuple[int, ...],
                    min_compression_rate: float = 1.0) -> MatrixEntry:
        """The entry for ``matrix`` (``(..., m, n)``) and its factors: raw items kept."""
        m, n = factors.shape
        raw = ~sends_factors(m, n, factors.ranks, min_compression_rate)
        return cls(factors, shape, matrix[raw.to(matrix.device)].clone(), min_compression_rate)

    @property
    def sent_dense(self) -> torch.Tensor:
        """bool ``(B,)`` or ``()``: items sent raw because factors would not pay off."""
        m, n = self.factors.shape
        return ~sends_factors(m, n, self.factors.ranks, self.min_compression_rate)

    @property
    def nbytes_per_item(self) -> torch.Tensor:
        """int64 bytes of each item (``()`` for a single matrix)."""
        return wire_nbytes(self.shape, self.factors.ranks, self.factors.U.element_size(),
                           self.min_compression_rate, self.dense_items.element_size())

    @property
    def nbytes(self) -> int:
        return int(self.nbytes_per_item.sum())

    @property
    def ranks(self) -> torch.Tensor:
        """Rank per item; ``min(m, n)`` for items sent dense."""
        full = torch.full_like(self.factors.ranks, min(self.factors.shape))
        return torch.where(self.sent_dense, full, self.factors.ranks)

    @property
    def sq_error(self) -> torch.Tensor:
        return torch.where(self.sent_dense, torch.zeros_like(self.factors.sq_error),
                           self.factors.sq_error)

    def decompress(self) -> torch.Tensor:
        dense = self.factors.to_dense()
        if bool(self.sent_dense.any()):
            dense = dense.clone()
            dense[self.sent_dense.to(dense.device)] = self.dense_items.to(dense.device)
        return dense.reshape(*self.factors.batch_shape, *self.shape)


Entry = DensePayload | MatrixEntry  # raw tensors are (B, *shape) when batched


@dataclass(frozen=True)
class CompressedState:
    """What one side of a round sends: a compressed state dict (or a batch of them)."""

    entries: dict[str, Entry]
    batch_size: int | None  # None: a single state dict; B: B state dicts stacked

    def decompress(self) -> dict[str, torch.Tensor]:
        """The reconstructed state dict, original shapes and dtypes (batched if stacked)."""
        return {name: e.decompress() for name, e in self.entries.items()}

    @property
    def nbytes(self) -> int:
        """Total bytes sent, over all items of the batch."""
        return sum(e.nbytes for e in self.entries.values())

    @property
    def nbytes_per_item(self) -> list[int]:
        """Bytes sent by each item of a batch (one entry for a single state).

        Equal to ``[s.nbytes for s in self.unbind()]``, computed without copying.
        """
        if not self.batch_size:
            return [self.nbytes]
        total = torch.zeros(self.batch_size, dtype=torch.int64)
        for e in self.entries.values():
            if isinstance(e, DensePayload):
                total += tensor_nbytes(e.tensor[0])
            else:
                total += e.nbytes_per_item
        return total.tolist()

    @property
    def ranks(self) -> dict[str, int | torch.Tensor]:
        """Rank per matricized tensor (``min(m, n)`` where sent dense)."""
        out: dict[str, int | torch.Tensor] = {}
        for name, e in self.entries.items():
            if isinstance(e, MatrixEntry):
                out[name] = e.ranks if self.batch_size else int(e.ranks)
        return out

    @property
    def sq_errors(self) -> dict[str, float | torch.Tensor]:
        """Squared Frobenius reconstruction error per tensor (0 for raw tensors)."""
        out: dict[str, float | torch.Tensor] = {}
        for name, e in self.entries.items():
            err = e.sq_error if isinstance(e, MatrixEntry) else torch.zeros(
                self.batch_size or (), dtype=torch.float64)
            out[name] = err if self.batch_size else float(err)
        return out

    @property
    def sq_error(self) -> float | torch.Tensor:
        """Total squared error, summed over tensors (per item when batched)."""
        total = sum(torch.as_tensor(v, dtype=torch.float64) for v in self.sq_errors.values())
        total = torch.as_tensor(total, dtype=torch.float64)
        return total if self.batch_size else float(total)

    def unbind(self) -> list[CompressedState]:
        """Split a batch into single-state payloads holding exactly what each item sends."""
        if not self.batch_size:
            # a matrix sent raw still holds its (unsent) factors here: drop them
            entries: dict[str, Entry] = {}
            for name, e in self.entries.items():
                if isinstance(e, MatrixEntry) and bool(e.sent_dense):
                    f = e.factors
                    e = replace(e, factors=replace(f, U=f.U[..., :0], V=f.V[..., :0]))
                entries[name] = e
            return [CompressedState(entries=entries, batch_size=None)]
        items: list[dict[str, Entry]] = [{} for _ in range(self.batch_size)]
        for name, e in self.entries.items():
            if isinstance(e, DensePayload):
                for i in range(self.batch_size):
                    items[i][name] = DensePayload(e.tensor[i].clone())
                continue
            dense_iter = iter(e.dense_items)
            for i, f in enumerate(e.factors.unbind()):
                if bool(e.sent_dense[i]):
                    m, n = f.shape
                    empty = LowRankFactors(U=f.U[:, :0], V=f.V[:, :0], ranks=f.ranks,
                                           sq_error=f.sq_error, energy=f.energy, dtype=f.dtype,
                                           requested_rank=f.requested_rank)
                    items[i][name] = replace(e, factors=empty, dense_items=next(dense_iter)
                                             .reshape(1, m, n).clone())
                else:
                    items[i][name] = replace(e, factors=f, dense_items=e.dense_items[:0].clone())
        return [CompressedState(entries=d, batch_size=None) for d in items]


def resolve_policy(
    name: str, default: RankPolicy | str | None, overrides: PolicyOverrides | None
) -> RankPolicy | None:
    """The policy for a tensor: the first override whose pattern matches, else the default.

    Patterns are shell-style (``fnmatch``): ``"*.bias"``, ``"classifier.*"``.
    A value of ``None`` means "send this tensor raw".
    """
    for pattern, policy in (overrides or {}).items():
        if fnmatch.fnmatchcase(name, pattern):
            return None if policy is None else parse_policy(policy)
    return None if default is None else parse_policy(default)


def compress_state(
    state: Mapping[str, torch.Tensor],
    policy: RankPolicy | str | None,
    *,
    method: Method = "exact",
    overrides: PolicyOverrides | None = None,
    min_compression_rate: float = 1.0,
    batched: bool = False,
    payload_dtype: torch.dtype | None = None,
    max_rank: int | None = None,
    oversampling: int = 10,
    power_iters: int = 2,
    generator: torch.Generator | None = None,
    warm_starts: Mapping[str, torch.Tensor] | None = None,
) -> CompressedState:
    """Compress every tensor of a state dict (or of a stack of state dicts).

    Parameters
    ----------
    state : Mapping[str, torch.Tensor]
        A model's ``state_dict()``; with ``batched=True`` each tensor has a leading
        dimension ``B`` (one slice per client).
    policy : RankPolicy, str or None
        Default rank policy; ``None`` sends everything raw.
    method : {"exact", "randomized", "power", "subspace"}
        Decomposition used (see :func:`lowrank.compress_matrix`).
    overrides : Mapping[str, RankPolicy | str | None], optional
        Per-tensor policies by ``fnmatch`` pattern; ``None`` forces raw.
    min_compression_rate : float
        A matrix is sent as factors only if they are this many times smaller
        (:func:`lowrank.accounting.sends_factors`).
    batched : bool
        Whether tensors carry a leading batch (client) dimension.
    payload_dtype : torch.dtype, optional
        Dtype of the factors sent (default: each tensor's own dtype).
    max_rank, oversampling, power_iters, generator
        Passed to :func:`lowrank.compress_matrix`.
    warm_starts : Mapping[str, torch.Tensor], optional
        Right bases by tensor name, passed as ``warm_start`` to
        :func:`lowrank.compress_matrix` (methods ``power`` and ``subspace``), e.g. the
        ``.factors.V`` of the entries of an earlier :class:`CompressedState`.

    Returns
    -------
    CompressedState
        With ``.decompress()``, ``.nbytes``, ``.ranks``, ``.sq_errors``, ``.sq_error``.
    """
    min_compression_rate = check_min_compression_rate(min_compression_rate)
    batch_size: int | None = None
    entries: dict[str, Entry] = {}
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name}: expected a tensor in the state dict, got {type(tensor)}")
        if batched:
            if tensor.ndim == 0:
                raise ValueError(f"{name}: batched=True needs a leading batch dimension")
            if batch_size is None:
                batch_size = tensor.shape[0]
            elif tensor.shape[0] != batch_size:
                raise ValueError(f"{name}: batch dimension {tensor.shape[0]} != {batch_size}")
        item_shape = tuple(tensor.shape[1:] if batched else tensor.shape)
        layer_policy = resolve_policy(name, policy, overrides)
        if layer_policy is None or len(item_shape) < 2 or not tensor.dtype.is_floating_point:
            if tensor.dtype.is_floating_point:
                check_float_tensor(tensor, name)  # raw tensors too: a NaN bias is an error
            entries[name] = DensePayload(tensor.detach())
            continue
        # a matrix is checked by compress_matrix (once: the check reads every entry)
        m = item_shape[0]
        matrix = tensor.detach().reshape(*tensor.shape[: 1 if batched else 0], m, -1)
        factors = compress_matrix(matrix, layer_policy, method, max_rank=max_rank,
                                  oversampling=oversampling, power_iters=power_iters,
                                  generator=generator, payload_dtype=payload_dtype, name=name,
                                  warm_start=(warm_starts or {}).get(name))
        entries[name] = MatrixEntry.from_matrix(matrix, factors, item_shape, min_compression_rate)
    return CompressedState(entries=entries, batch_size=batch_size)


def planned_ranks(
    shapes: Mapping[str, Sequence[int]],
    policy: RankPolicy | str | None,
    overrides: PolicyOverrides | None = None,
) -> dict[str, int | None] | None:
    """The rank each tensor will be compressed to, known before seeing any weights.

    Parameters
    ----------
    shapes : Mapping[str, sequence of int]
        Tensor name -> shape, e.g. ``{n: t.shape for n, t in model.state_dict().items()}``.
    policy, overrides
        As for :func:`compress_state`.

    Returns
    -------
    dict[str, int | None] or None
        ``None`` for a tensor sent dense (fewer than 2 dimensions, or no policy);
        the whole result is ``None`` when a policy picks its rank from the spectrum
        (energy, error budget), which only the run can tell. Feed it to
        :func:`lowrank.accounting.wire_nbytes` (or ``theory.costs.round_bytes``).
    """
    ranks: dict[str, int | None] = {}
    for name, shape in shapes.items():
        layer_policy = resolve_policy(name, policy, overrides)
        mn = matricized_shape(shape)
        if layer_policy is None or mn is None:
            ranks[name] = None
            continue
        r = layer_policy.requested_rank(*mn)
        if r is None:
            return None
        ranks[name] = min(r, *mn)
    return ranks
