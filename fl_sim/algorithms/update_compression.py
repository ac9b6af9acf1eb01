"""Baselines that compress the client *update* ``w^k - w_r`` rather than the model.

The downlink is dense. Each participant compresses its update with a
per-client compressor whose memory (error-feedback residuals, warm-start bases)
lives in the server state as stacks ``(N, ...)``, so a run checkpoints and
resumes exactly. A round writes the rows of its participants in place (it consumes
the state it is given):

- ``lowrank_update``: PowerSGD-style rank-r update + error feedback;
- ``topk_ef``: top-k sparsification + error feedback;
- ``qsgd``: unbiased stochastic quantization, no feedback (FedPAQ-style).

Aggregation: ``w_{r+1} = w_r + sum_k a_k C(w^k - w_r)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from lowrank import QSGD, ErrorFeedback, TopK, state_nbytes
from lowrank.powersgd import PowerSGD

from ..device import synchronized_clock
from ..params import Params
from .base import (
    Algorithm,
    RoundComms,
    RoundContext,
    ServerState,
    broadcast,
    weighted_sum,
)

__all__ = ["UpdateCompression", "lowrank_update", "topk_ef", "qsgd"]

# builds one client's compressor from the round's generator and that client's memory
CompressorFactory = Callable[[torch.Generator, dict[str, Params]], object]


@dataclass(frozen=True)
class UpdateCompression(Algorithm):
    """Compressed updates with optional per-client memory.

    Parameters
    ----------
    name : str
        Label used in histories.
    make_compressor : callable
        ``(generator, client_memory) -> compressor``; the compressor's memory
        dicts (``residuals``, ``bases``) are written back after each client.
    memory_slots : tuple of str
        Names of the per-client memories (``"residuals"``, ``"bases"``).
    """

    name: str
    make_compressor: CompressorFactory
    memory_slots: tuple[str, ...] = ()

    def init(self, params: Params, num_clients: int) -> ServerState:
        state = super().init(params, num_clients)
        return ServerState(params=state.params, round=0,
                           memory={slot: {} for slot in self.memory_slots})

    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        clients, weights = ctx.participation.clients, ctx.participation.weights
        k = clients.numel()
        w = state.params
        local = ctx.train(broadcast(w, k), clients)
        t0 = synchronized_clock(local)  # after the training's queued kernels (CUDA)
        delta = {n: local[n].sub_(w[n]) for n in w}  # the trainer's output is ours
        true_step = weighted_sum(delta, weights)  # sum_k a_k delta_k, before it is overwritten
        # each participant's row of ``delta`` is overwritten by what the server receives
        # once the client's compressor is done with it: no second stack of K models
        received = delta
        # the per-client stacks are updated in place, in the rows of the participants
        # only (a copy of all N clients' memory per round cost O(N) time and memory):
        # the state passed in is consumed
        memory = {slot: dict(stack) for slot, stack in state.memory.items()}
        up_bytes = []
        for i, client in enumerate(clients.tolist()):
            own = {slot: {n: t[client] for n, t in stack.items()}
                   for slot, stack in memory.items()}
            compressor = self.make_compressor(ctx.generator, own)
            sent = 0
            for n, d in delta.items():
                try:
                    payload = compressor.compress(d[i], name=n)
                except (ValueError, TypeError) as exc:
                    raise type(exc)(f"client {client}: {exc}") from exc
                received[n][i] = payload.decompress()  # delta_i is not read again
                sent += payload.nbytes
            up_bytes.append(sent)
            for slot, stack in memory.items():
                for n, value in own[slot].items():
                    if n not in stack:
                        stack[n] = torch.zeros(ctx.num_clients, *value.shape, dtype=value.dtype,
                                               device=value.device)
                    stack[n][client] = value
        step = weighted_sum(received, weights)
        new_params = {n: w[n] + step[n] for n in w}
        # ||sum_k a_k (C(delta_k) - delta_k)|| as the difference of the two sums (each
        # rounded in the model's dtype: ~1e-7 of ||step|| in float32)
        err_client = math.sqrt(sum(float((step[n].double() - true_step[n].double()).square()
                                         .sum()) for n in step))
        comms = RoundComms(bytes_down_per_client=[state_nbytes(w)] * k,
                           bytes_up_per_client=up_bytes, ranks_down={}, ranks_up={},
                           err_server=0.0, err_client=err_client,
                           compress_seconds=synchronized_clock(new_params) - t0)
        return ServerState(params=new_params, round=state.round + 1, memory=memory), comms


def lowrank_update(rank: int, iters: int = 1) -> UpdateCompression:
    """PowerSGD-style rank-``rank`` updates with error feedback and warm starts."""
    PowerSGD(rank, iters=iters)  # validate now, not in the first round

    def make(generator: torch.Generator, memory: dict[str, Params]) -> ErrorFeedback:
        inner = PowerSGD(rank, iters=iters, generator=generator,
                         bases=memory["bases"])
        return ErrorFeedback(inner, residuals=memory["residuals"])

    return UpdateCompression("lowrank_update", make, ("residuals", "bases"))


def topk_ef(ratio: float) -> UpdateCompression:
    """Top-k sparsified updates (fraction ``ratio`` kept) with error feedback."""
    TopK(ratio=ratio)  # validate now

    def make(generator: torch.Generator, memory: dict[str, Params]) -> ErrorFeedback:
        return ErrorFeedback(TopK(ratio=ratio), residuals=memory["residuals"])

    return UpdateCompression("topk_ef", make, ("residuals",))


def qsgd(levels: int) -> UpdateCompression:
    """QSGD-quantized updates with ``levels`` levels, unbiased, no feedback (FedPAQ)."""
    QSGD(levels)  # validate now

    def make(generator: torch.Generator, memory: dict[str, Params]) -> QSGD:
        return QSGD(levels, generator=generator)

    return UpdateCompression("qsgd", make)
