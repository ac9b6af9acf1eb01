"""FedDLR and its ablations: low-rank compression of the *model* on either link.

One round (docs/theory.md §0, reconstructed from the paper's abstract):

1. the server compresses the global model, ``w_hat = C_s(w_r)``, and broadcasts
   the factors (dense if no downlink policy);
2. every participant rebuilds ``w_hat`` and runs ``E`` local SGD steps;
3. each compresses its local model, ``C_c(w^k)``, and uploads the factors;
4. the server averages the reconstructions: ``w_{r+1} = sum_k a_k C_c(w^k)``.

With no policy on either side this is FedAvg.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

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

__all__ = ["ModelCompression"]


def _ranks(c: CompressedState) -> dict:
    return {n: (r.tolist() if hasattr(r, "tolist") else r) for n, r in c.ranks.items()}


@dataclass(frozen=True)
class ModelCompression(Algorithm):
    """Dual-side (or one-side) low-rank model compression.

    Parameters
    ----------
    name : str
        Label used in histories (``fedavg``, ``feddlr``, ``feddlr_up``, ``feddlr_down``).
    down : RankPolicy or None
        Server-side policy; None broadcasts the dense model.
    up : RankPolicy or None
        Client-side policy; None uploads dense models.
    method : str
        Decomposition (``exact``, ``randomized``, ``power``).
    min_compression_rate : float
        A layer goes as factors only where they are this many times smaller
        (:func:`lowrank.accounting.sends_factors`).
    max_rank : int or None
        Sketch size for spectrum-based policies with sketching methods.
    overrides : dict or None
        Per-layer policies by ``fnmatch`` pattern (``None`` sends that layer dense).
    """

    name: str
    down: RankPolicy | None  # server -> clients
    up: RankPolicy | None  # clients -> server
    method: str = "exact"
    min_compression_rate: float = 1.0
    max_rank: int | None = None
    overrides: dict[str, RankPolicy | str | None] | None = None

    def _compress(self, params: Params, policy: RankPolicy, ctx: RoundContext, batched: bool):
        return compress_state(params, policy, method=self.method,
                              min_compression_rate=self.min_compression_rate,
                              overrides=self.overrides,
                              batched=batched, max_rank=self.max_rank, generator=ctx.generator)

    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        clients, weights = ctx.participation.clients, ctx.participation.weights
        k = clients.numel()
        seconds = 0.0
        t0 = time.perf_counter()
        if self.down is None:
            start, down_bytes, ranks_down, err_server = state.params, state_nbytes(
                state.params), {}, 0.0
        else:
            sent = self._compress(state.params, self.down, ctx, batched=False)
            start, down_bytes = sent.decompress(), sent.nbytes
            ranks_down, err_server = _ranks(sent), math.sqrt(sent.sq_error)
        seconds += time.perf_counter() - t0

        local = ctx.train(broadcast(start, k), clients)

        t0 = time.perf_counter()
        if self.up is None:
            received, up_bytes, ranks_up = local, [state_nbytes(start)] * k, {}
        else:
            sent_up = self._compress(local, self.up, ctx, batched=True)
            received, up_bytes, ranks_up = (sent_up.decompress(), sent_up.nbytes_per_item,
                                            _ranks(sent_up))
        new_params = weighted_sum(received, weights)
        err_client = 0.0 if self.up is None else aggregation_error(received, local, weights)
        seconds += time.perf_counter() - t0

        comms = RoundComms(bytes_down_per_client=[down_bytes] * k, bytes_up_per_client=up_bytes,
                           ranks_down=ranks_down, ranks_up=ranks_up, err_server=err_server,
                           err_client=err_client, compress_seconds=seconds)
        return ServerState(params=new_params, round=state.round + 1, memory=state.memory), comms
