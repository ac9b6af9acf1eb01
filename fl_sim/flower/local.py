"""Each side of one round, as fl_sim's algorithm objects define it, for one client at a time.

Flower runs a round as messages: the server sends each participant its downlink
payload, each client trains and sends its uplink payload, the server aggregates.
This module holds the work on each side, built from the algorithm object of
:func:`fl_sim.algorithms.make_algorithm` (its policies, compressor factory and
memory slots) and fl_sim's local trainer, with no Flower import, so it can be
checked against :func:`fl_sim.run` directly:

- model compression (``fedavg``, ``feddlr``, ``feddlr_up``, ``feddlr_down``,
  :class:`~fl_sim.algorithms.ModelCompression`): the server sends ``C_s(w_r)`` as
  factors, the client trains from its reconstruction and sends ``C_c(w^k)``;
- update compression (``lowrank_update``, ``topk_ef``, ``qsgd``,
  :class:`~fl_sim.algorithms.UpdateCompression`): the server sends ``w_r`` dense,
  the client sends ``C(w^k - w_r)`` and keeps its own compressor memory.

Randomness follows fl_sim's streams so that runs compare round by round: the
server draws participants and its own compression from the run's ``sampling`` and
``compression`` streams, and each client rebuilds fl_sim's ``batches`` stream and
takes its own column of the round's minibatch draw (:func:`minibatch_rows`). Only the
clients' compression randomness (randomized SVD, power-iteration starts, QSGD rounding)
cannot follow fl_sim, whose clients share one stream in sequence: each client draws
from its own child of the ``compression`` stream (:func:`client_generator`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from lowrank import state_nbytes
from lowrank.baselines import DensePayload

from ..algorithms import Algorithm, ModelCompression, UpdateCompression
from ..algorithms.base import ServerState, weighted_sum
from ..config import SimConfig
from ..params import Params
from ..rng import RandomStreams, purpose_seed
from ..simulator import Simulation, setup

__all__ = ["ServerSend", "cached_setup", "check_family", "client_generator",
           "client_update", "minibatch_rows", "server_aggregate", "server_send", "train_client"]


def check_family(algorithm: Algorithm) -> Algorithm:
    """``algorithm`` if it belongs to a family this module runs, else a one-line error."""
    if not isinstance(algorithm, ModelCompression | UpdateCompression):
        raise ValueError(f"algorithm: {algorithm.name!r} ({type(algorithm).__name__}) is not "
                         f"a ModelCompression or UpdateCompression algorithm")
    return algorithm


@functools.lru_cache(maxsize=4)
def _setup_json(config_json: str) -> Simulation:
    return setup(SimConfig.from_dict(json.loads(config_json)))


def cached_setup(config: SimConfig) -> Simulation:
    """:func:`fl_sim.setup` of ``config``, built once per process (data, model, algorithm)."""
    return _setup_json(json.dumps(config.to_dict(), sort_keys=True))


def minibatch_rows(config: SimConfig, round_index: int, participants: int, position: int,
                   client_size: int) -> torch.Tensor | None:
    """Rows ``(E, B)`` of a client's own data that fl_sim's round ``round_index`` trains on.

    fl_sim draws ``u ~ U[0, 1)`` of shape ``(E, K, B)`` from its ``batches`` stream once
    per round (:class:`fl_sim.local_training.LocalTrainer`); the participant at
    ``position`` of ``K`` uses column ``u[:, position]``. The stream is rebuilt from
    the seed and replayed up to this round, so a client needs no state for it.
    ``None`` for full-batch training (``batch_size=None``), which draws nothing.
    """
    if config.batch_size is None:
        return None
    gen = RandomStreams.from_seed(config.seed).batches
    shape = (config.local_steps, participants, config.batch_size)
    for _ in range(round_index):
        torch.rand(*shape, generator=gen, dtype=torch.float64)
    u = torch.rand(*shape, generator=gen, dtype=torch.float64)[:, position, :]
    return (u * client_size).long()


def client_generator(config: SimConfig, client: int, round_index: int) -> torch.Generator:
    """Client ``client``'s compression stream in round ``round_index``.

    A child of the run's ``compression`` stream keyed by client and round.
    """
    parent = purpose_seed(config.seed, "compression")
    child = np.random.SeedSequence(parent.entropy,
                                   spawn_key=(*parent.spawn_key, client, round_index))
    gen = torch.Generator()
    gen.manual_seed(int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
    return gen


def train_client(sim: Simulation, start: Params, client: int, round_index: int,
                 participants: int, position: int) -> Params:
    """``E`` local SGD steps of one client from ``start``, as fl_sim's round would run them.

    Drives :class:`fl_sim.local_training.LocalTrainer` on the client's own rows: one
    full-batch step on each step's minibatch (the same loss, weights ``1/B`` per drawn
    row, and learning rate ``eta_{r E + j}``), or one call of ``E`` full-batch steps.

    Returns
    -------
    dict[str, torch.Tensor]
        The local model (unstacked); a non-finite loss or weight is a one-line error.
    """
    cfg, trainer = sim.config, sim.trainer
    offset, size = int(trainer.client_offsets[client]), int(trainer.client_sizes[client])
    x = trainer.train_x[offset:offset + size]
    y = trainer.train_y[offset:offset + size]
    one = torch.zeros(1, dtype=torch.int64)
    params = {n: p.unsqueeze(0).clone() for n, p in start.items()}
    rows = minibatch_rows(cfg, round_index, participants, position, size)
    unused = torch.Generator()
    if rows is None:
        own = dataclasses.replace(trainer, train_x=x, train_y=y, client_offsets=one,
                                  client_sizes=torch.tensor([size]))
        params, losses = own.train(params, one, round_index, unused)
    else:
        for j in range(cfg.local_steps):
            sel = rows[j].to(x.device)
            step = dataclasses.replace(trainer, train_x=x[sel], train_y=y[sel],
                                       client_offsets=one,
                                       client_sizes=torch.tensor([sel.numel()]),
                                       local_steps=1, batch_size=None)
            params, losses = step.train(params, one, round_index * cfg.local_steps + j, unused)
    finite = bool(torch.isfinite(losses).all()) and all(
        bool(torch.isfinite(p).all()) for p in params.values())
    if not finite:
        raise FloatingPointError(f"non-finite loss or weights at round {round_index + 1}, "
                                 f"client {client} (lr={cfg.lr}); try a smaller learning rate")
    return {n: p[0] for n, p in params.items()}


def _ranks(compressed) -> dict[str, int]:
    return {n: int(r) for n, r in compressed.ranks.items()}


@dataclass(frozen=True)
class ServerSend:
    """The downlink of one round: what is sent, and the model the clients rebuild."""

    payloads: dict[str, object]  # tensor name -> lowrank payload (factors or dense)
    start: Params  # the model every participant rebuilds and trains from
    nbytes: int  # payload bytes per participant
    ranks_down: dict[str, int]
    err_server: float
    seconds: float  # compression time
    server_memory: dict[str, dict[str, torch.Tensor]]  # the server's slots after sending


def server_send(sim: Simulation, state: ServerState) -> ServerSend:
    """The server's side before training: ``C_s(w_r)`` for FedDLR-like algorithms, else dense.

    Uses the run's ``compression`` stream and, under ``method="subspace"``, starts from the
    bases of the last broadcast kept in ``state.server_memory``, as
    :meth:`ModelCompression.round` does.
    """
    alg = check_family(sim.algorithm)
    params, memory = state.params, state.server_memory
    t0 = time.perf_counter()
    if isinstance(alg, ModelCompression) and alg.down is not None:
        sent = alg.compress(params, alg.down, sim.streams.compression,
                            warm_starts=alg.server_warm_starts(state))
        payloads = sent.unbind()[0].entries
        start, nbytes = sent.decompress(), sent.nbytes
        ranks, err = _ranks(sent), math.sqrt(sent.sq_error)
        memory = alg.remember_broadcast(state, sent)
    else:
        payloads = {n: DensePayload(p) for n, p in params.items()}
        start, nbytes, ranks, err = params, state_nbytes(params), {}, 0.0
    return ServerSend(payloads, start, nbytes, ranks, err, time.perf_counter() - t0, memory)


def client_update(sim: Simulation, start: Params, local: Params, client: int, round_index: int,
                  memory: dict[str, Params], bases: dict[str, torch.Tensor] | None = None
                  ) -> dict[str, object]:
    """A client's uplink payloads: ``C_c(w^k)`` (model compression) or ``C(w^k - w_r)``.

    Parameters
    ----------
    sim : Simulation
        The run (its algorithm object decides what is sent).
    start : dict[str, torch.Tensor]
        The model the client started from (``w_r`` for update compression).
    local : dict[str, torch.Tensor]
        The client's model after local training.
    client : int
        The client's index (names errors, seeds its compression stream).
    round_index : int
        Round number from 0.
    memory : dict[str, dict[str, torch.Tensor]]
        The client's compressor memory by slot (error-feedback ``residuals``, PowerSGD
        ``bases``); updated in place, to be kept until the client's next round.
    bases : dict[str, torch.Tensor], optional
        The right factors ``V`` the client received on the downlink: the warm starts of
        ``method="subspace"`` (fl_sim also starts from the ``V`` of matrices the byte
        rule sent dense; a Flower client never received those, and truncates them from
        scratch).

    Returns
    -------
    dict[str, payload]
        Tensor name -> :mod:`lowrank` payload.
    """
    alg = check_family(sim.algorithm)
    gen = client_generator(sim.config, client, round_index)
    if isinstance(alg, ModelCompression):
        if alg.up is None:
            return {n: DensePayload(p) for n, p in local.items()}
        return alg.compress(local, alg.up, gen, warm_starts=bases).unbind()[0].entries
    for slot in alg.memory_slots:
        memory.setdefault(slot, {})
    compressor = alg.make_compressor(gen, memory)
    out = {}
    for n, p in local.items():
        try:
            out[n] = compressor.compress(p - start[n], name=n)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"client {client}: {exc}") from exc
    return out


def server_aggregate(sim: Simulation, params: Params, received: list[Params],
                     weights: torch.Tensor) -> Params:
    """``w_{r+1}``: ``sum_k a_k C_c(w^k)`` (model compression) or ``w_r + sum_k a_k C(delta_k)``.

    Parameters
    ----------
    sim : Simulation
        The run.
    params : dict[str, torch.Tensor]
        ``w_r``.
    received : list of dict[str, torch.Tensor]
        The participants' decoded uplinks, in the order of ``weights``.
    weights : torch.Tensor
        Their aggregation weights ``a_k`` (float64).
    """
    alg = check_family(sim.algorithm)
    stacked = {n: torch.stack([r[n] for r in received]) for n in params}
    step = weighted_sum(stacked, weights)
    if isinstance(alg, ModelCompression):
        return step
    return {n: params[n] + step[n] for n in params}
