"""FedDLR and its ablations: low-rank compression of the *model* on either link.

One round (docs/theory.md §0, reconstructed from the paper's abstract):

1. the server compresses the global model, ``w_hat = C_s(w_r)``, and broadcasts
   the factors (dense if no downlink policy);
2. every participant rebuilds ``w_hat`` and runs ``E`` local SGD steps;
3. each compresses its local model, ``C_c(w^k)``, and uploads the factors;
4. the server averages the reconstructions: ``w_{r+1} = sum_k a_k C_c(w^k)``.

With no policy on either side this is FedAvg.

``method="subspace"`` is the fast path (docs/benchmarks.md): each client's truncation
starts from the broadcast right factors ``V`` (its local model is the broadcast
low-rank model plus ``E`` small steps) and runs :func:`lowrank.svd.subspace_iteration`;
the server's truncation starts from the bases of its previous broadcast, kept in
``ServerState.server_memory[DOWN_BASES]`` (the first round, and a layer with nothing to
start from, e.g. every client layer under ``feddlr_up``, use the exact SVD), and the
aggregate is formed from the factors without decompressing them. Participants are
compressed ``chunk_size`` at a time, which bounds the memory of the upload side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lowrank import CompressedState, RankPolicy, compress_state, state_nbytes
from lowrank.state import MatrixEntry

from ..device import synchronized_clock
from ..params import Params
from .base import (
    Algorithm,
    RoundComms,
    RoundContext,
    ServerState,
    broadcast,
    chunks,
    weighted_sum,
)

__all__ = ["ModelCompression", "DOWN_BASES"]

DOWN_BASES = "down_bases"  # server_memory slot: right bases V of the last broadcast


def _aggregate_factors(sent: CompressedState, own: Params, weights: torch.Tensor
                       ) -> tuple[Params, Params]:
    """``sum_k a_k C(w^k)`` and ``sum_k a_k (C(w^k) - w^k)`` without decompressing.

    For a layer sent as factors, ``sum_k a_k U_k V_k^T`` is one matrix product
    ``[a_1 U_1 ... a_K U_K] [V_1 ... V_K]^T``; raw layers are summed as they are.
    Equal to decompressing and calling :func:`weighted_sum` up to float rounding.
    """
    true = weighted_sum(own, weights)
    agg: Params = {}
    for n, e in sent.entries.items():
        if isinstance(e, MatrixEntry) and not bool(e.sent_dense.any()):
            f = e.factors
            k, m, r = f.U.shape
            # the weights scale the copy of V that the reshape makes anyway
            v = (f.V * weights.to(f.V.dtype).to(f.V.device).view(-1, 1, 1)).permute(1, 0, 2)
            agg[n] = (f.U.permute(1, 0, 2).reshape(m, k * r)
                      @ v.reshape(-1, k * r).mT).reshape(e.shape)  # (m, K R) (K R, n)
        elif isinstance(e, MatrixEntry):
            agg[n] = weighted_sum({n: e.decompress()}, weights)[n]
        else:  # sent raw: received exactly
            agg[n] = true[n]
    return agg, {n: agg[n] - true[n] for n in agg}


def _bases(c: CompressedState) -> dict[str, torch.Tensor]:
    """The right factors ``V`` of every matrix of a single compressed state."""
    return {n: e.factors.V for n, e in c.entries.items() if isinstance(e, MatrixEntry)}


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
        Decomposition (``exact``, ``randomized``, ``power``, ``subspace``: see the
        module docstring).
    min_compression_rate : float
        A layer goes as factors only where they are this many times smaller
        (:func:`lowrank.accounting.sends_factors`).
    max_rank : int or None
        Sketch size for spectrum-based policies with sketching methods.
    overrides : dict or None
        Per-layer policies by ``fnmatch`` pattern (``None`` sends that layer dense).
    subspace_iters : int
        Iterations of the ``subspace`` method from its warm start.
    chunk_size : int or None
        Participants compressed (and aggregated) at a time; None: all at once. The
        result does not depend on it beyond float rounding of the aggregation sums
        (bit-identical when ``chunk_size >= K``).
    """

    name: str
    down: RankPolicy | None  # server -> clients
    up: RankPolicy | None  # clients -> server
    method: str = "exact"
    min_compression_rate: float = 1.0
    max_rank: int | None = None
    overrides: dict[str, RankPolicy | str | None] | None = None
    subspace_iters: int = 1
    chunk_size: int | None = None

    def compress(self, params: Params, policy: RankPolicy, generator: torch.Generator | None,
                 *, batched: bool = False, warm_starts: dict[str, torch.Tensor] | None = None):
        """This algorithm's compression of a model (or a stack of them): one side of a round.

        The simulator's rounds and ``fl_sim.flower``'s clients and server all call it.
        """
        fast = {"power_iters": self.subspace_iters, "warm_starts": warm_starts} \
            if self.method == "subspace" else {}
        return compress_state(params, policy, method=self.method,
                              min_compression_rate=self.min_compression_rate,
                              overrides=self.overrides,
                              batched=batched, max_rank=self.max_rank, generator=generator,
                              **fast)

    def server_warm_starts(self, state: ServerState) -> dict[str, torch.Tensor] | None:
        """The bases the server's truncation of ``state.params`` starts from.

        Those of the previous broadcast (``state.server_memory[DOWN_BASES]``) under
        ``method="subspace"``; None otherwise, or before the first broadcast (then the
        server uses the exact SVD). Pass them as ``warm_starts`` to :meth:`compress`.
        """
        if self.method != "subspace":
            return None
        return state.server_memory.get(DOWN_BASES) or None

    def remember_broadcast(self, state: ServerState,
                           sent: CompressedState) -> dict[str, dict[str, torch.Tensor]]:
        """``state.server_memory`` after broadcasting ``sent``: under ``method="subspace"``
        the broadcast's bases (slot ``DOWN_BASES``), where :meth:`server_warm_starts` finds
        them next round; unchanged otherwise.
        """
        if self.method != "subspace":
            return state.server_memory
        return {**state.server_memory, DOWN_BASES: _bases(sent)}

    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        clients, weights = ctx.participation.clients, ctx.participation.weights
        k = clients.numel()
        seconds = 0.0
        client_bases = None
        server_memory = state.server_memory
        t0 = synchronized_clock(state.params)
        if self.down is None:
            start, down_bytes, ranks_down, err_server = state.params, state_nbytes(
                state.params), {}, 0.0
        else:
            sent = self.compress(state.params, self.down, ctx.generator,
                                 warm_starts=self.server_warm_starts(state))
            start, down_bytes = sent.decompress(), sent.nbytes
            ranks_down, err_server = _ranks(sent), math.sqrt(sent.sq_error)
            server_memory = self.remember_broadcast(state, sent)
            # what every client knows under subspace: the broadcast V, just remembered
            client_bases = server_memory.get(DOWN_BASES) if self.method == "subspace" else None
        seconds += synchronized_clock(state.params) - t0

        local = ctx.train(broadcast(start, k), clients)

        t0 = synchronized_clock(state.params)  # after the training's queued kernels (CUDA)
        if self.up is None:
            up_bytes, ranks_up = [state_nbytes(start)] * k, {}
            new_params, err_client = weighted_sum(local, weights), 0.0
        else:
            new_params, err_client, up_bytes, ranks_up = self._upload(local, weights, ctx,
                                                                      client_bases)
        seconds += synchronized_clock(state.params) - t0

        comms = RoundComms(bytes_down_per_client=[down_bytes] * k, bytes_up_per_client=up_bytes,
                           ranks_down=ranks_down, ranks_up=ranks_up, err_server=err_server,
                           err_client=err_client, compress_seconds=seconds)
        return ServerState(params=new_params, round=state.round + 1, memory=state.memory,
                           server_memory=server_memory), comms

    def _upload(self, local: Params, weights: torch.Tensor, ctx: RoundContext,
                bases: dict[str, torch.Tensor] | None
                ) -> tuple[Params, float, list[int], dict[str, list[int]]]:
        """Compress the participants' models ``chunk_size`` at a time and aggregate.

        Returns ``sum_k a_k C_c(w^k)``, ``||sum_k a_k (C_c(w^k) - w^k)||``, the bytes
        each participant sent and the ranks per layer. One chunk computes exactly what
        :func:`weighted_sum` and :func:`aggregation_error` compute on the whole stack;
        several add up per-chunk sums (float rounding differs only in the last bits).
        """
        k = weights.numel()
        total: Params | None = None
        diff_total: Params | None = None
        up_bytes: list[int] = []
        ranks_up: dict[str, list[int]] = {}
        for part in chunks(k, self.chunk_size):
            own = {n: p[part] for n, p in local.items()}
            sent = self.compress(own, self.up, ctx.generator, batched=True, warm_starts=bases)
            up_bytes += sent.nbytes_per_item
            for n, r in _ranks(sent).items():
                ranks_up.setdefault(n, []).extend(r)
            if self.method == "subspace":
                agg, diff = _aggregate_factors(sent, own, weights[part])
            else:  # the reference: decompress every model
                received = sent.decompress()
                agg = weighted_sum(received, weights[part])
                diff = weighted_sum({n: received[n] - own[n] for n in own}, weights[part])
            if total is None or diff_total is None:
                total, diff_total = agg, diff
            else:
                total = {n: total[n] + agg[n] for n in total}
                diff_total = {n: diff_total[n] + diff[n] for n in diff_total}
        assert total is not None and diff_total is not None  # k >= 1
        err = math.sqrt(sum(float(d.double().square().sum()) for d in diff_total.values()))
        return total, err, up_bytes, ranks_up
