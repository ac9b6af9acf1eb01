"""The pieces every federated algorithm shares.

An algorithm is a small object with two methods (after FedJAX's
``FederatedAlgorithm``): :meth:`Algorithm.init` builds the server state from the
initial model, and :meth:`Algorithm.round` maps a state and a round's context to
the next state and a :class:`RoundComms` record of what was sent.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..params import Params
from ..participation import Participation

__all__ = ["ServerState", "RoundContext", "RoundComms", "Algorithm",
           "broadcast", "weighted_sum", "aggregation_error", "chunks"]

TrainFn = Callable[[Params, torch.Tensor], Params]


@dataclass(frozen=True)
class ServerState:
    """What the server holds between rounds.

    Two kinds of named slots (``slot -> {tensor name -> tensor}``), both saved in
    checkpoints (:mod:`fl_sim.checkpoint`): ``memory`` holds per-client stacks, one row
    per client ``(N, ...)`` (error-feedback residuals, control variates); ``server_memory``
    holds the server's own tensors of any shape (e.g. the right bases of the last
    broadcast, the warm starts of ``method="subspace"``). An algorithm that does not
    use a slot passes it on unchanged or drops it.
    """

    params: Params  # the global model w_r (dense)
    round: int  # rounds completed
    memory: dict[str, Params] = field(default_factory=dict)  # per-client stacks (N, ...)
    server_memory: dict[str, Params] = field(default_factory=dict)  # server-side, any shape


@dataclass(frozen=True)
class RoundContext:
    """What an algorithm needs from the simulator in one round."""

    participation: Participation  # clients and aggregation weights
    train: TrainFn  # (stacked start params, clients) -> stacked local params
    generator: torch.Generator  # compression randomness
    num_clients: int  # N


@dataclass(frozen=True)
class RoundComms:
    """Bytes, ranks and compression errors of one round."""

    bytes_down_per_client: list[int]  # sent to each participant
    bytes_up_per_client: list[int]  # received from each participant
    ranks_down: dict[str, int]  # per compressed layer (empty if the downlink is dense)
    ranks_up: dict[str, list[int]]  # per compressed layer, one rank per participant
    err_server: float  # ||C_s(w_r) - w_r||
    err_client: float  # ||sum_k a_k (C_c(w^k) - w^k)||
    compress_seconds: float  # wall time spent compressing and decompressing


class Algorithm(ABC):
    """A federated algorithm: ``init`` and ``round``."""

    name: str  # label used in histories (declared by each concrete algorithm)

    def init(self, params: Params, num_clients: int) -> ServerState:
        """Server state before the first round."""
        return ServerState(params={n: p.detach().clone() for n, p in params.items()}, round=0)

    @abstractmethod
    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        """Run one round and return the new state and what was sent."""


def broadcast(params: Params, k: int) -> Params:
    """``K`` stacked copies of a model (views, no copy)."""
    return {n: p.unsqueeze(0).expand(k, *p.shape) for n, p in params.items()}


def weighted_sum(stacked: Params, weights: torch.Tensor) -> Params:
    """``sum_k a_k x_k`` for each stacked tensor."""
    return {n: torch.tensordot(weights.to(x.dtype).to(x.device), x, dims=1)
            for n, x in stacked.items()}


def aggregation_error(sent: Params, true: Params, weights: torch.Tensor) -> float:
    """``||sum_k a_k (sent_k - true_k)||`` over the whole model."""
    diff = weighted_sum({n: sent[n] - true[n] for n in true}, weights)
    return math.sqrt(sum(float(d.double().square().sum()) for d in diff.values()))


def chunks(k: int, size: int | None) -> list[slice]:
    """``[0, k)`` in consecutive slices of at most ``size`` (one slice if ``size`` is None).

    How participants are processed a chunk at a time (``SimConfig.chunk_size``).
    """
    size = k if size is None else max(1, size)
    return [slice(i, min(i + size, k)) for i in range(0, max(k, 1), size)]
