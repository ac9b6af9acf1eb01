"""FedDLR-EF (our extension, not the FedDLR paper): dual-side low-rank compression of
*differences* with error feedback on both links.

FedDLR (fl_sim/algorithms/model_compression.py) truncates the model itself on both
links and so leaves an error floor; compressing differences with memory removes it
(EF21-P for the downlink, Gruntkowski et al. 2023; EF21 for the uplink, Richtárik et
al. 2021; the same residual-compression idea as DORE and MCM). One round ``t``:

1. **Downlink, EF21-P.** The server holds the model ``w`` and a copy of the clients'
   replica ``h`` (``h = 0`` at the start, known to everyone for free). It sends
   ``c = C_d(w - h)`` (low-rank factors, ``policy_down``) and both sides set
   ``h <- h + c``. Participants train from ``h``.
2. **Uplink, EF21.** Client ``k`` keeps ``g_k`` (zero at the start; the server keeps a
   copy), computes its update ``D_k = w^k - h`` after ``E`` local steps, sends
   ``m_k = C_u(D_k - g_k)`` (``policy_up``) and both sides set ``g_k <- g_k + m_k``.
3. **Aggregation.** ``w <- sum_k a_k (h + g_k)`` over the round's participants, the
   average of the models the server can rebuild (``= h + sum_k a_k g_k`` when the
   weights sum to 1; under ``scheme2`` they need not, as in FedAvg's model average).

With no compression (``None`` policies, or ranks at which factors do not pay off) the
messages are exact, ``h = w`` and ``g_k = D_k``, and the round is FedAvg's.

**Catch-up bytes.** Clients are stateful (``h``, ``g_k``). With partial participation a
client that missed broadcasts needs the messages of those rounds or ``h`` dense,
whichever is smaller (fl_sim/algorithms/catch_up.py); the ledger charges exactly
that. ``g_k`` is the client's own state and costs nothing to keep.

**Compact model.** ``w`` and ``h`` are sums of low-rank messages, not low-rank
themselves; this variant exports no natively factorized model. Its compact model is
the final ``w`` truncated once with the downlink policy (``fl_sim.export.export_compact``),
the same operation as "FedAvg truncated once after training".

State (``ServerState.memory``): ``replica`` (``h``, one copy shown as a stride-0 stack
over clients), ``g`` (stacks ``(N, ...)``) and the catch-up ledger. Bytes are counted by
:func:`lowrank.compress_state` payloads (:mod:`lowrank.accounting`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lowrank import CompressedState, RankPolicy, compress_state, state_nbytes

from ..params import Params
from .base import (
    Algorithm,
    RoundComms,
    RoundContext,
    ServerState,
    aggregation_error,
    broadcast,
    weighted_sum,
)
from .catch_up import SLOT, catch_up_bytes, init_ledger, ledger_slot

__all__ = ["FedDLREF"]


def _ranks(c: CompressedState) -> dict:
    return {n: (r.tolist() if hasattr(r, "tolist") else r) for n, r in c.ranks.items()}


def _as_stack(h: Params, num_clients: int) -> Params:
    """``h`` as a per-client stack without copies (stride 0): every synced client holds it.

    ``ServerState.memory`` holds per-client stacks (the layout fl_sim/checkpoint.py
    verifies); the replica is one tensor per parameter, shown to it as ``N`` views.
    """
    return {n: t.unsqueeze(0).expand(num_clients, *t.shape) for n, t in h.items()}


@dataclass(frozen=True)
class FedDLREF(Algorithm):
    """FedDLR with EF21-P on the downlink and EF21 on the uplink (our extension).

    Parameters
    ----------
    down, up : RankPolicy or None
        Policies for the broadcast difference ``w - h`` and the uploads ``D_k - g_k``;
        ``None`` sends that link dense.
    method, min_compression_rate, max_rank, overrides
        As for :class:`fl_sim.algorithms.model_compression.ModelCompression`.
    name : str
        Label used in histories.
    """

    down: RankPolicy | None
    up: RankPolicy | None
    method: str = "exact"
    min_compression_rate: float = 1.0
    max_rank: int | None = None
    overrides: dict[str, RankPolicy | str | None] | None = None
    name: str = "feddlr_ef"

    def compress(self, params: Params, policy: RankPolicy | None,
                 generator: torch.Generator | None, *, batched: bool = False
                 ) -> CompressedState:
        """One side's compression (the signature of ``ModelCompression.compress``)."""
        return compress_state(params, policy, method=self.method,
                              min_compression_rate=self.min_compression_rate,
                              overrides=self.overrides, batched=batched,
                              max_rank=self.max_rank, generator=generator)

    def init(self, params: Params, num_clients: int) -> ServerState:
        state = super().init(params, num_clients)
        memory = {"replica": _as_stack({n: torch.zeros_like(p) for n, p in state.params.items()},
                                       num_clients),
                  "g": {n: torch.zeros(num_clients, *p.shape, dtype=p.dtype, device=p.device)
                        for n, p in state.params.items()},
                  SLOT: ledger_slot(state.params, init_ledger(num_clients))}
        return ServerState(params=state.params, round=0, memory=memory)

    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        clients, weights = ctx.participation.clients, ctx.participation.weights
        k = clients.numel()
        w = state.params
        h = {n: t[0] for n, t in state.memory["replica"].items()}
        t0 = time.perf_counter()
        sent = self.compress({n: w[n] - h[n] for n in w}, self.down, ctx.generator)
        step = sent.decompress()
        h = {n: h[n] + step[n] for n in h}
        err_server = math.sqrt(sum(float((h[n] - w[n]).double().square().sum()) for n in h))
        (owed,) = state.memory[SLOT].values()
        down_bytes, owed = catch_up_bytes(owed, clients, message=sent.nbytes,
                                          dense=state_nbytes(h))
        seconds = time.perf_counter() - t0

        local = ctx.train(broadcast(h, k), clients)

        t0 = time.perf_counter()
        idx = clients.to(next(iter(w.values())).device)
        g_old = {n: g[idx] for n, g in state.memory["g"].items()}
        delta = {n: local[n] - h[n] for n in h}
        sent_up = self.compress({n: delta[n] - g_old[n] for n in h}, self.up, ctx.generator,
                                batched=True)
        msg = sent_up.decompress()
        g_new = {n: g_old[n] + msg[n] for n in h}
        new_w = weighted_sum({n: h[n] + g_new[n] for n in h}, weights)
        g_all = {n: g.clone() for n, g in state.memory["g"].items()}
        for n in g_all:
            g_all[n][idx] = g_new[n]
        err_client = aggregation_error(g_new, delta, weights)
        seconds += time.perf_counter() - t0
        comms = RoundComms(bytes_down_per_client=down_bytes,
                           bytes_up_per_client=sent_up.nbytes_per_item,
                           ranks_down=_ranks(sent) if self.down is not None else {},
                           ranks_up=_ranks(sent_up) if self.up is not None else {},
                           err_server=err_server, err_client=err_client,
                           compress_seconds=seconds)
        memory = {"replica": _as_stack(h, ctx.num_clients), "g": g_all,
                  SLOT: ledger_slot(w, owed)}
        return ServerState(params=new_w, round=state.round + 1, memory=memory), comms
