"""FedMUD, AAD variant (Zhang et al., ICML 2025): a low-rank *update* with one factor frozen.

Each chosen layer computes ``W = weight + A B`` (:class:`fl_sim.models.MUDLayer`):
``weight`` is the global model (frozen during local training), ``A (m, r)`` is drawn
afresh each round from a seed the server broadcasts (frozen), and only ``B (r, n)``
is trained, starting at zero. Because every client shares ``A``, averaging is exact,
``sum_k a_k A B_k = A (sum_k a_k B_k)`` (AAD, "aggregation-aware decomposition"), and
the global model absorbs the aggregated update at the end of the round,
``weight <- weight + A B_bar`` (MUD). Layers left dense (the classifier, layers whose
factors would not be smaller) are trained and averaged as in FedAvg.

What travels (counted with :mod:`lowrank.accounting`):

- **up**, per participant: ``B_k`` of each factorized layer and the dense tensors
  (biases, dense layers);
- **down**, per participant: the dense tensors' current values, this round's seed
  (8 bytes), and the ``B_bar`` of every round since the client last synced with those
  rounds' seeds, or the factorized layers' weights dense if that is smaller; a client
  that never participated downloads the weights dense (fl_sim/algorithms/catch_up.py).

Reconstructed here (the released code, ``Leopold1423/fedmud-icml25``, ships the full
state dict through Flower, so its "compression" is a trainable-parameter ratio, not
wire bytes): the rank is the model's (``rank`` in ``model_kwargs``, e.g. ``ratio:0.25``
of ``min(m, n)``; FedMUD sets ``r = ceil(m n ratio / (m + n))``); ``A`` has i.i.d.
``N(0, 1/m)`` entries, so ``A A^T`` is close to a projection and a local SGD step on
``B`` moves ``W`` by ``-eta A A^T grad`` at the learning rate dense SGD uses; BKD
(Kronecker blocks) and the ``fab+cfd`` two-term variant are not modelled. The
compact model is the dense global model (FedMUD compresses the traffic, not the model).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lowrank import state_nbytes, tensor_nbytes

from ..params import Params
from .base import Algorithm, RoundComms, RoundContext, ServerState, broadcast, weighted_sum
from .catch_up import SLOT, catch_up_bytes, init_ledger, ledger_slot
from .factorized_model import require_factorized

__all__ = ["FedMUD", "frozen_factors"]

SEED_BYTES = tensor_nbytes(torch.zeros((), dtype=torch.int64))  # one int64 seed


def frozen_factors(seed: int, shapes: dict[str, tuple[int, int]], dtype: torch.dtype,
                   device: torch.device) -> Params:
    """The frozen ``A`` of each layer, regenerated from the round's seed (any party, same A).

    Parameters
    ----------
    seed : int
        The round's shared seed.
    shapes : dict
        Layer prefix -> ``(m, r)``, in model order.
    """
    gen = torch.Generator().manual_seed(seed)
    return {p: (torch.randn(m, r, generator=gen, dtype=torch.float64) / math.sqrt(m))
            .to(dtype=dtype, device=device) for p, (m, r) in shapes.items()}


@dataclass(frozen=True)
class FedMUD(Algorithm):
    """Seeded frozen ``A``, trained ``B``, exact averaging, global absorption each round."""

    name: str = "fedmud"

    def init(self, params: Params, num_clients: int) -> ServerState:
        require_factorized(params, self.name, "mud")
        state = super().init(params, num_clients)
        for p in require_factorized(params, self.name, "mud"):
            state.params[f"{p}.B"].zero_()
        owed = init_ledger(num_clients, never_dense=True)  # clients hold no weights yet
        return ServerState(params=state.params, round=0,
                           memory={SLOT: ledger_slot(state.params, owed)})

    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        clients, weights = ctx.participation.clients, ctx.participation.weights
        k = clients.numel()
        w = state.params
        layers = require_factorized(w, self.name, "mud")
        t0 = time.perf_counter()
        seed = int(torch.randint(0, 2**62, (1,), generator=ctx.generator,
                                 device=ctx.generator.device))
        ref = w[f"{layers[0]}.A"]
        a = frozen_factors(seed, {p: tuple(w[f"{p}.A"].shape) for p in layers}, ref.dtype,
                           ref.device)
        frozen = {f"{p}.{f}" for p in layers for f in ("weight", "A", "B")}
        start = dict(w)
        for p in layers:
            start[f"{p}.A"] = a[p]
            start[f"{p}.B"] = torch.zeros_like(w[f"{p}.B"])
        # down: dense tensors as they are, plus the messages missed (each round's seed and
        # the previous round's B_bar), or the factorized weights dense and the seed
        fixed = state_nbytes({n: t for n, t in w.items() if n not in frozen})
        dense = state_nbytes({f"{p}.weight": w[f"{p}.weight"] for p in layers}) + SEED_BYTES
        message = SEED_BYTES + (state_nbytes({f"{p}.B": w[f"{p}.B"] for p in layers})
                                if state.round > 0 else 0)
        (owed,) = state.memory[SLOT].values()
        down, owed = catch_up_bytes(owed, clients, message, dense=dense, fixed=fixed)
        seconds = time.perf_counter() - t0

        local = ctx.train(broadcast(start, k), clients)

        t0 = time.perf_counter()
        trained = {n: x for n, x in local.items() if n not in frozen or n.endswith(".B")}
        up = state_nbytes({n: x[0] for n, x in trained.items()})
        avg = weighted_sum(trained, weights)
        new = {n: (avg[n] if n in avg else w[n]) for n in w}
        for p in layers:
            b_bar = avg[f"{p}.B"]
            shape = w[f"{p}.weight"].shape
            new[f"{p}.weight"] = w[f"{p}.weight"] + (a[p] @ b_bar).reshape(shape)
            new[f"{p}.A"] = a[p]
            new[f"{p}.B"] = torch.zeros_like(b_bar)  # absorbed into weight
        new_state = ServerState(params=new, round=state.round + 1,
                                memory={SLOT: ledger_slot(new, owed)})
        comms = RoundComms(bytes_down_per_client=down, bytes_up_per_client=[up] * k,
                           ranks_down={}, ranks_up={p: [a[p].shape[1]] * k for p in layers},
                           err_server=0.0, err_client=0.0,
                           compress_seconds=time.perf_counter() - t0 + seconds)
        return new_state, comms
