"""Communication and compute costs of low-rank factors, counted a priori.

Bytes follow the one rule of :mod:`lowrank.accounting` (this module calls
:func:`lowrank.accounting.wire_nbytes`, the function the simulator's payloads
call): an ``m x n`` matrix at rank ``r`` travels as factors ``U (m x r)``,
``V (n x r)`` (``r (m + n)`` numbers) unless ``r (m + n) min_compression_rate
>= m n``, in which case it travels dense; tensors of fewer than two dimensions
always go dense; a tensor of shape ``(O, I, kh, kw)`` is matricized as
``O x (I kh kw)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from lowrank.accounting import check_min_compression_rate, matricized_shape, wire_nbytes

__all__ = [
    "FlopCount",
    "RoundBytes",
    "conv_factorized_flops",
    "factorized_flops",
    "layer_nbytes",
    "round_bytes",
]


def _check_pos_int(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, bool) or int(v) != v or v < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {v!r}")
    return int(v)


def layer_nbytes(
    shape: Sequence[int], rank: int | None, itemsize: int = 4,
    min_compression_rate: float = 1.0,
) -> int:
    """Bytes one tensor costs on the wire (:func:`lowrank.accounting.wire_nbytes`).

    Parameters
    ----------
    shape : sequence of int
        Tensor shape; 2 or more dimensions are matricized as ``shape[0] x rest``.
    rank : int or None
        Rank of the factors (``>= 1``); None sends the tensor dense.
    itemsize : int
        Bytes per number.
    min_compression_rate : float
        Factors are sent only if ``r (m + n) min_compression_rate < m n``.

    Returns
    -------
    int
    """
    check_min_compression_rate(min_compression_rate)
    matricized_shape(shape)  # validates the dimensions
    itemsize = _check_pos_int("itemsize", itemsize)
    rank = None if rank is None else _check_pos_int("rank", rank)
    return int(wire_nbytes(shape, rank, itemsize, min_compression_rate))


@dataclass(frozen=True)
class RoundBytes:
    """Bytes of one round of dual-side low-rank federated training."""

    downlink_per_client: int  # server -> one client
    uplink_per_client: tuple[int, ...]  # each client -> server
    dense_per_client: int  # what FedAvg sends each way per client
    num_clients: int  # clients in the round

    @property
    def downlink_total(self) -> int:
        """Server -> all clients of the round."""
        return self.downlink_per_client * self.num_clients

    @property
    def uplink_total(self) -> int:
        """All clients of the round -> server."""
        return sum(self.uplink_per_client)

    @property
    def total(self) -> int:
        """Both directions, all clients."""
        return self.downlink_total + self.uplink_total

    @property
    def compression_ratio(self) -> float:
        """FedAvg bytes of the round divided by ours (> 1 means savings)."""
        return 2 * self.dense_per_client * self.num_clients / self.total if self.total else math.inf


def round_bytes(
    layer_shapes: Sequence[Sequence[int]],
    ranks_down: Sequence[int | None],
    ranks_up: Sequence[int | None] | Sequence[Sequence[int | None]],
    num_clients: int,
    itemsize: int = 4,
    min_compression_rate: float = 1.0,
) -> RoundBytes:
    """Bytes of one round: the broadcast to each client and each client's upload.

    Parameters
    ----------
    layer_shapes : sequence of shapes
        Every tensor of the model (biases included).
    ranks_down : sequence of int or None
        Server rank per tensor (None: dense), aligned with ``layer_shapes``.
    ranks_up : sequence of int or None, or one such sequence per client
        Client ranks; a flat sequence applies to every client.
    num_clients : int
        Clients in the round.
    itemsize : int
        Bytes per number.
    min_compression_rate : float
        See :func:`layer_nbytes`.

    Returns
    -------
    RoundBytes
    """
    num_clients = _check_pos_int("num_clients", num_clients)
    shapes = [tuple(s) for s in layer_shapes]
    if len(ranks_down) != len(shapes):
        raise ValueError(
            f"ranks_down: expected {len(shapes)} entries (one per tensor), got {len(ranks_down)}"
        )
    nested = len(ranks_up) > 0 and all(
        isinstance(x, Sequence) and not isinstance(x, str) for x in ranks_up
    )
    per_client = [list(x) for x in ranks_up] if nested else [list(ranks_up)] * num_clients
    if len(per_client) != num_clients:
        raise ValueError(
            f"ranks_up: expected one rank list per client ({num_clients}), got {len(per_client)}"
        )
    for i, ranks in enumerate(per_client):
        if len(ranks) != len(shapes):
            raise ValueError(
                f"ranks_up[{i}]: expected {len(shapes)} entries (one per tensor), got {len(ranks)}"
            )

    def cost(ranks) -> int:
        pairs = zip(shapes, ranks, strict=True)
        return sum(layer_nbytes(s, r, itemsize, min_compression_rate) for s, r in pairs)

    return RoundBytes(
        downlink_per_client=cost(ranks_down),
        uplink_per_client=tuple(cost(r) for r in per_client),
        dense_per_client=cost([None] * len(shapes)),
        num_clients=num_clients,
    )


@dataclass(frozen=True)
class FlopCount:
    """Multiply-adds of a dense layer and of its factorized form."""

    dense: int  # multiply-adds of the dense layer
    factorized: int  # multiply-adds of the two factors

    @property
    def speedup(self) -> float:
        """``dense / factorized``."""
        return self.dense / self.factorized


def factorized_flops(m: int, n: int, r: int) -> FlopCount:
    """Multiply-adds per input vector: dense ``m n`` vs ``Linear(n->r)`` + ``Linear(r->m)``.

    Parameters
    ----------
    m, n : int
        Output and input features.
    r : int
        Rank, ``>= 1``.

    Returns
    -------
    FlopCount
        ``dense = m n``, ``factorized = r (m + n)``.
    """
    m, n, r = _check_pos_int("m", m), _check_pos_int("n", n), _check_pos_int("r", r)
    return FlopCount(dense=m * n, factorized=r * (m + n))


def conv_factorized_flops(
    out_channels: int, in_channels: int, kernel_size: int | tuple[int, int], r: int
) -> FlopCount:
    """Multiply-adds per output pixel of a conv and of its factorized form.

    Dense ``k_h k_w I O``; factorized: a ``k_h x k_w`` conv to ``r`` channels then a
    ``1 x 1`` conv to ``O``: ``k_h k_w I r + r O`` (bias ignored).

    Parameters
    ----------
    out_channels, in_channels : int
        ``O`` and ``I``.
    kernel_size : int or (int, int)
        ``k`` or ``(k_h, k_w)``.
    r : int
        Rank, ``>= 1``.

    Returns
    -------
    FlopCount
    """
    o = _check_pos_int("out_channels", out_channels)
    i = _check_pos_int("in_channels", in_channels)
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    kk = _check_pos_int("kernel_size", kh) * _check_pos_int("kernel_size", kw)
    r = _check_pos_int("r", r)
    return FlopCount(dense=kk * i * o, factorized=kk * i * r + r * o)
