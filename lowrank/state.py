"""Model-level compression: every tensor of a state dict, or of a batch of them.

Tensors of two or more dimensions are matricized as ``W.reshape(out, -1)`` (a
conv kernel ``(O, I, kh, kw)`` becomes ``O x (I*kh*kw)``) and truncated by a
rank policy. One-dimensional tensors (biases, norms), layers matched by an
override of ``None`` and layers that would not shrink
(``r * (m + n) * min_rate >= m * n``) are sent raw.

With ``batched=True`` every tensor carries a leading client dimension; each
layer of all clients is compressed in one batched call, and the raw/low-rank
decision is made per client.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch

from ._validation import check_float_tensor
from .baselines import DensePayload
from .factors import LowRankFactors, Method, compress_matrix
from .policies import RankPolicy, parse_policy

__all__ = ["MatrixEntry", "RawEntry", "CompressedState", "compress_state", "resolve_policy"]

PolicyOverrides = Mapping[str, RankPolicy | str | None]


RawEntry = DensePayload  # a tensor sent as it is, (B, *shape) when batched


@dataclass(frozen=True)
class MatrixEntry:
    """A matricized tensor sent as low-rank factors (or raw where that is smaller)."""

    factors: LowRankFactors  # (B, m, R) / (m, r) factors
    shape: tuple[int, ...]  # original per-item shape, e.g. (O, I, kh, kw)
    sent_dense: torch.Tensor  # bool (B,) or (): items sent raw because factors would not shrink
    dense_items: torch.Tensor  # (count, m, n): the raw items, in the original dtype

    @property
    def nbytes(self) -> int:
        m, n = self.factors.shape
        low_rank = int(self.factors.ranks[~self.sent_dense].sum())
        return low_rank * (m + n) * self.factors.U.element_size() + (
            self.dense_items.numel() * self.dense_items.element_size()
        )

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


Entry = RawEntry | MatrixEntry


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
            if isinstance(e, RawEntry):
                total += e.tensor[0].numel() * e.tensor.element_size()
                continue
            m, n = e.factors.shape
            dense = m * n * e.dense_items.element_size()
            low_rank = e.factors.ranks * (m + n) * e.factors.U.element_size()
            total += torch.where(e.sent_dense, torch.full_like(low_rank, dense), low_rank)
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
                    e = MatrixEntry(replace(f, U=f.U[..., :0], V=f.V[..., :0]), e.shape,
                                    e.sent_dense, e.dense_items)
                entries[name] = e
            return [CompressedState(entries=entries, batch_size=None)]
        items: list[dict[str, Entry]] = [{} for _ in range(self.batch_size)]
        for name, e in self.entries.items():
            if isinstance(e, RawEntry):
                for i in range(self.batch_size):
                    items[i][name] = RawEntry(e.tensor[i].clone())
                continue
            dense_iter = iter(e.dense_items)
            for i, f in enumerate(e.factors.unbind()):
                if bool(e.sent_dense[i]):
                    m, n = f.shape
                    empty = LowRankFactors(U=f.U[:, :0], V=f.V[:, :0], ranks=f.ranks,
                                           sq_error=f.sq_error, energy=f.energy, dtype=f.dtype,
                                           requested_rank=f.requested_rank)
                    items[i][name] = MatrixEntry(empty, e.shape, torch.tensor(True),
                                                 next(dense_iter).reshape(1, m, n).clone())
                else:
                    items[i][name] = MatrixEntry(f, e.shape, torch.tensor(False),
                                                 e.dense_items[:0].clone())
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
    min_rate: float = 1.0,
    batched: bool = False,
    payload_dtype: torch.dtype | None = None,
    max_rank: int | None = None,
    oversampling: int = 10,
    power_iters: int = 2,
    generator: torch.Generator | None = None,
) -> CompressedState:
    """Compress every tensor of a state dict (or of a stack of state dicts).

    Parameters
    ----------
    state : Mapping[str, torch.Tensor]
        A model's ``state_dict()``; with ``batched=True`` each tensor has a leading
        dimension ``B`` (one slice per client).
    policy : RankPolicy, str or None
        Default rank policy; ``None`` sends everything raw.
    method : {"exact", "randomized", "power"}
        Decomposition used (see :func:`lowrank.compress_matrix`).
    overrides : Mapping[str, RankPolicy | str | None], optional
        Per-tensor policies by ``fnmatch`` pattern; ``None`` forces raw.
    min_rate : float
        A matrix is sent as factors only if ``r * (m + n) * min_rate < m * n``.
    batched : bool
        Whether tensors carry a leading batch (client) dimension.
    payload_dtype : torch.dtype, optional
        Dtype of the factors sent (default: each tensor's own dtype).
    max_rank, oversampling, power_iters, generator
        Passed to :func:`lowrank.compress_matrix`.

    Returns
    -------
    CompressedState
        With ``.decompress()``, ``.nbytes``, ``.ranks``, ``.sq_errors``, ``.sq_error``.
    """
    if min_rate <= 0:
        raise ValueError(f"min_rate: must be > 0, got {min_rate}")
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
        if tensor.dtype.is_floating_point:
            check_float_tensor(tensor, name)  # raw tensors too: a NaN bias is an error
        if layer_policy is None or len(item_shape) < 2 or not tensor.dtype.is_floating_point:
            entries[name] = RawEntry(tensor.detach())
            continue
        m = item_shape[0]
        matrix = tensor.detach().reshape(*tensor.shape[: 1 if batched else 0], m, -1)
        n = matrix.shape[-1]
        factors = compress_matrix(matrix, layer_policy, method, max_rank=max_rank,
                                  oversampling=oversampling, power_iters=power_iters,
                                  generator=generator, payload_dtype=payload_dtype, name=name)
        sent_dense = factors.ranks * (m + n) * min_rate >= m * n
        entries[name] = MatrixEntry(factors=factors, shape=item_shape, sent_dense=sent_dense,
                                    dense_items=matrix[sent_dense.to(matrix.device)].clone())
    return CompressedState(entries=entries, batch_size=batch_size)
