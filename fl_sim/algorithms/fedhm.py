"""FedHM (Yao et al. 2021): clients train the factors of an SVD of the global model.

Each round (after ``haemPark/fedloru_official: src/algorithm/fedhm``):

1. the server holds the global model as factors ``U = U_r sqrt(S_r)``,
   ``V = sqrt(S_r) V_r^T`` of each chosen layer and broadcasts them;
2. every participant trains the factors ``E`` local steps (the model is the
   factorized :class:`fl_sim.models.LowRankLayer`, so gradients flow to ``U``, ``V``);
3. uploads its factors; the server rebuilds each client's ``W_k = U_k V_k``, averages
   ``W = sum_k a_k W_k`` (the full model FedHM's server keeps) and SVD-truncates it
   again to the model's rank: the next round's factors.

The difference to FedLMT (fl_sim/algorithms/fedlmt.py) is step 3: FedHM averages the
products, FedLMT the factors. Reconstructed here: the rank is the model's (``rank`` in
``model_kwargs``, e.g. ``ratio:0.25`` of ``min(m, n)``; FedHM's code uses
``out_channels / rank_factor`` on a ``(O k) x (I k)`` reshape of conv kernels, here
the project's ``O x (I kh kw)`` matricization); the classifier and layers that would
not shrink stay dense (FedHM also keeps the first layers full: add them to
``dense_layers``). Selected by ``model_kwargs={"factorization": "lowrank", ...}``.
The compact model is the trained model itself (factorized).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from lowrank import exact_svd, state_nbytes

from ..params import Params
from .base import Algorithm, RoundComms, RoundContext, ServerState, broadcast, weighted_sum
from .factorized_model import require_factorized

__all__ = ["FedHM", "truncate_factors"]


def truncate_factors(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                float]:
    """``U_r sqrt(S_r)``, ``sqrt(S_r) V_r^T`` of ``matrix`` and the squared error made."""
    svd = exact_svd(matrix.double())
    root = svd.S[:rank].sqrt()
    u = (svd.U[:, :rank] * root).to(matrix.dtype)
    v = (root.unsqueeze(1) * svd.V[:, :rank].T).to(matrix.dtype)
    return u, v, float(svd.S[rank:].square().sum())


@dataclass(frozen=True)
class FedHM(Algorithm):
    """Factors down, factors up, server-side averaging of products and re-truncation."""

    name: str = "fedhm"

    def init(self, params: Params, num_clients: int) -> ServerState:
        require_factorized(params, self.name, "lowrank")
        return super().init(params, num_clients)

    def round(self, state: ServerState, ctx: RoundContext) -> tuple[ServerState, RoundComms]:
        clients, weights = ctx.participation.clients, ctx.participation.weights
        k = clients.numel()
        w = state.params
        layers = require_factorized(w, self.name, "lowrank")
        nbytes = state_nbytes(w)  # the factors (and dense layers), each way
        local = ctx.train(broadcast(w, k), clients)
        t0 = time.perf_counter()
        factor_names = {f"{p}.{f}" for p in layers for f in ("U", "V")}
        new = weighted_sum({n: x for n, x in local.items() if n not in factor_names}, weights)
        sq_err, ranks = 0.0, {}
        for p in layers:
            u, v = local[f"{p}.U"], local[f"{p}.V"]
            r = u.shape[-1]
            products = u @ v.reshape(k, r, -1)  # (K, m, n): each client's W_k
            avg = torch.tensordot(weights.to(u.dtype).to(u.device), products, dims=1)
            new_u, new_v, err = truncate_factors(avg, r)
            new[f"{p}.U"], new[f"{p}.V"] = new_u, new_v.reshape(w[f"{p}.V"].shape)
            sq_err += err
            ranks[p] = r
        new = {n: new[n] for n in w}  # the model's order
        comms = RoundComms(bytes_down_per_client=[nbytes] * k, bytes_up_per_client=[nbytes] * k,
                           ranks_down=ranks, ranks_up={p: [r] * k for p, r in ranks.items()},
                           err_server=math.sqrt(sq_err), err_client=0.0,
                           compress_seconds=time.perf_counter() - t0)
        return ServerState(params=new, round=state.round + 1, memory=state.memory), comms
