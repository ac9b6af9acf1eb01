"""One round of each algorithm, split into the server's send, a client's update and the aggregate.

fl_sim's algorithm objects run a whole round in :meth:`Algorithm.round`; on Flower the
round is messages, so each algorithm gets a :class:`Protocol` with the three halves
(no Flower import here, so they are checked against :func:`fl_sim.run` directly):

- :meth:`Protocol.send` (server): one :class:`Downlink` per participant, the
  :mod:`lowrank` payloads it receives, grouped in named records;
- :meth:`Protocol.client` (client): from the received arrays and the client's own memory
  (a node's ``Context.state``), train and return the uplink payloads;
- :meth:`Protocol.aggregate` (server): the next :class:`~fl_sim.algorithms.ServerState`
  from the decoded replies.

=======================================  ==============================================
algorithms                               protocol
=======================================  ==============================================
fedavg, feddlr, feddlr_up, feddlr_down,  :class:`FamilyProtocol` (fl_sim/flower/local.py):
fedlmt, fedpara, lowrank_update,         one downlink for all, ``C_c(w^k)`` or
topk_ef, qsgd                            ``C(w^k - w_r)`` up
fedhm                                    :class:`FedHMProtocol`: factors both ways, the
                                         aggregate is ``FedHM.round`` itself
fedmud                                   :class:`FedMUDProtocol`: seed, catch-up ``B_bar``
                                         or weights dense down, ``B_k`` up; the aggregate
                                         is ``FedMUD.round`` itself
feddlr_ef                                :class:`FedDLREFProtocol`: EF21-P replica down
                                         (catch-up or dense), EF21 up
=======================================  ==============================================

Where the algorithm's round can aggregate what the clients sent (FedHM, FedMUD: the
server sees exactly the tensors fl_sim's server sees), :meth:`Protocol.aggregate` calls
``algorithm.round`` with a ``train`` that returns the received tensors, and checks its
byte ledger against the arrays sent. FedDLR-EF's clients compress on their side (EF21:
``m_k = C_u(D_k - g_k)``), which ``FedDLREF.round`` does on the server, so its halves are
written here from the algorithm's public pieces (``FedDLREF.compress``,
:func:`fl_sim.algorithms.catch_up.catch_up_bytes`) and checked against fl_sim's run by
``tests/flower``.

**Catch-up.** FedDLR-EF and FedMUD broadcast *changes*. A participant receives the
messages broadcast since it last synced, or the state dense, whichever is smaller: the
rule of fl_sim/algorithms/catch_up.py, so the payload bytes equal fl_sim's. The server
keeps the messages of past rounds and the round each client last synced; a client keeps
its state and that round in its memory and refuses messages that do not start there.
A participant that failed is resynced dense the next time (FedDLR-EF also zeroes its
uplink memory ``g_k`` on both sides), so a lost reply costs bytes, never consistency.
Both need each client at most once per round: ``participation="scheme1"`` (draws with
replacement) is refused for them.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from lowrank import state_nbytes
from lowrank.baselines import DensePayload
from lowrank.state import resolve_policy

from ..algorithms import (
    Algorithm,
    FedDLREF,
    FedHM,
    FedMUD,
    ModelCompression,
    RoundContext,
    ServerState,
    UpdateCompression,
    make_algorithm,
)
from ..algorithms.base import weighted_sum
from ..algorithms.catch_up import SLOT, catch_up_bytes, ledger_slot
from ..algorithms.fedmud import SEED_BYTES, frozen_factors
from ..config import SimConfig
from ..models import factorized_layers
from ..params import Params
from ..participation import Participation
from ..simulator import Simulation
from .codec import Decoded, decode
from .local import (
    client_generator,
    client_update,
    server_aggregate,
    server_send,
    train_client,
)

__all__ = ["Aggregate", "ClientRound", "Downlink", "FamilyProtocol", "FedDLREFProtocol",
           "FedHMProtocol", "FedMUDProtocol", "Protocol", "Send", "check_runnable",
           "check_supported", "protocol_for"]

PAYLOAD = "payload"  # the record every downlink and uplink has

Arrays = Mapping[str, np.ndarray]  # "<tensor>|<part>" -> array, one record


@dataclass(frozen=True)
class Downlink:
    """What one participant receives: payloads by record, config entries, payload bytes."""

    records: dict[str, dict[str, object]]  # record name -> tensor name -> lowrank payload
    config: dict[str, int]  # extra ConfigRecord entries
    nbytes: int  # payload bytes of our ledger


@dataclass(frozen=True)
class Send:
    """The server's side of one round before training."""

    downlinks: list[Downlink]  # one per participant, in participation order
    ranks_down: dict[str, int]
    err_server: float
    seconds: float


@dataclass(frozen=True)
class Aggregate:
    """The server's side after training: the next state and what the round reports."""

    state: ServerState
    ranks_down: dict
    ranks_up: dict[str, list[int]]
    err_server: float


@dataclass(frozen=True)
class ClientRound:
    """Who a client is in this round (from the message's config)."""

    client: int
    round_index: int  # from 0
    participants: int
    position: int
    config: Mapping[str, int]  # the whole ConfigRecord (protocol entries included)


def _dense(params: Params) -> dict[str, DensePayload]:
    return {n: DensePayload(p) for n, p in params.items()}


def _nbytes(records: Mapping[str, Mapping[str, object]]) -> int:
    return sum(p.nbytes for r in records.values() for p in r.values())


def _stack(received: list[Decoded]) -> Params:
    return {n: torch.stack([d.params[n] for d in received]) for n in received[0].params}


def _raw(arrays: Arrays, name: str) -> np.ndarray:
    return np.asarray(arrays[f"{name}|dense"])


class Protocol(ABC):
    """One algorithm's round as a send, a client update and an aggregate.

    Parameters
    ----------
    sim : Simulation
        The run (from :func:`fl_sim.setup`): data, initial model, algorithm object and
        random streams. The server and every client build it from the same config.
    """

    memory_slots: tuple[str, ...] = ()  # the client's slots in Context.state

    def __init__(self, sim: Simulation) -> None:
        self.sim, self.algorithm = sim, sim.algorithm

    def init_state(self) -> ServerState:
        """The server state before round 1 (the algorithm's ``init``)."""
        return self.algorithm.init(self.sim.initial_params(), self.sim.data.num_clients)

    def uplink_like(self, state: ServerState) -> Params:
        """Tensors (names, shapes, dtypes) of the replies, to decode them."""
        return state.params

    @abstractmethod
    def send(self, state: ServerState, participation: Participation, round_number: int) -> Send:
        """Downlinks of round ``round_number`` (from 1)."""

    @abstractmethod
    def client(self, records: Mapping[str, Arrays], who: ClientRound,
               memory: dict[str, Params]) -> dict[str, object]:
        """One client's round: its uplink payloads; ``memory`` is updated in place."""

    @abstractmethod
    def aggregate(self, state: ServerState, participation: Participation,
                  received: list[Decoded]) -> Aggregate:
        """The next state from the replies (``participation``: the clients that replied,
        their weights rescaled to the round's planned total)."""

    def failed(self, state: ServerState, clients: list[int]) -> ServerState:
        """The state after ``clients`` failed this round (stateless protocols: unchanged)."""
        return state

    def _train(self, start: Params, who: ClientRound) -> Params:
        return train_client(self.sim, start, who.client, who.round_index, who.participants,
                            who.position)

    def _ranks_up(self, received: list[Decoded]) -> dict[str, list[int]]:
        """Ranks of the compressed uplink tensors (those whose ``up`` policy is not None)."""
        up, overrides = getattr(self.algorithm, "up", None), getattr(self.algorithm,
                                                                     "overrides", None)
        out: dict[str, list[int]] = {}
        if up is None:
            return out
        for d in received:
            for n, r in d.ranks.items():
                if resolve_policy(n, up, overrides) is not None:
                    out.setdefault(n, []).append(r)
        return out


class FamilyProtocol(Protocol):
    """Model compression (FedDLR family, FedLMT, FedPara) and update compression."""

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self.memory_slots = tuple(getattr(sim.algorithm, "memory_slots", ()))
        self._send = None

    def send(self, state: ServerState, participation: Participation, round_number: int) -> Send:
        s = server_send(self.sim, state)
        self._send = s
        down = Downlink({PAYLOAD: s.payloads}, {}, s.nbytes)
        return Send([down] * participation.clients.numel(), s.ranks_down, s.err_server,
                    s.seconds)

    def client(self, records: Mapping[str, Arrays], who: ClientRound,
               memory: dict[str, Params]) -> dict[str, object]:
        got = decode(records[PAYLOAD], self.sim.initial_params(), device=self.sim.device)
        local = self._train(got.params, who)
        return client_update(self.sim, got.params, local, who.client, who.round_index,
                             memory, got.bases)

    def aggregate(self, state: ServerState, participation: Participation,
                  received: list[Decoded]) -> Aggregate:
        new = server_aggregate(self.sim, state.params, [d.params for d in received],
                               participation.weights)
        up = self._ranks_up(received) if isinstance(self.algorithm, ModelCompression) else {}
        return Aggregate(ServerState(params=new, round=state.round + 1, memory=state.memory,
                                     server_memory=self._send.server_memory),
                         self._send.ranks_down, up, self._send.err_server)


class _ReplayRound(Protocol):
    """Aggregates by calling ``algorithm.round`` with the received tensors as its training."""

    def _replay(self, state: ServerState, participation: Participation,
                received: list[Decoded], check_start=None):
        stacked = _stack(received)

        def train(start: Params, clients: torch.Tensor) -> Params:
            if check_start is not None:
                check_start(start)
            return stacked

        ctx = RoundContext(participation, train, self.sim.streams.compression,
                           self.sim.data.num_clients)
        new, comms = self.algorithm.round(state, ctx)
        sent = [self._sent_bytes[k] for k in participation.clients.tolist()]
        got = [d.nbytes for d in received]
        if comms.bytes_down_per_client != sent or comms.bytes_up_per_client != got:
            raise AssertionError(f"round {state.round + 1}: {self.algorithm.name} counts "
                                 f"{comms.bytes_down_per_client} / {comms.bytes_up_per_client} "
                                 f"bytes down / up, the arrays hold {sent} / {got}")
        return new, comms


class FedHMProtocol(_ReplayRound):
    """FedHM: the model's factors down and up; the aggregate is ``FedHM.round`` itself."""

    def send(self, state: ServerState, participation: Participation, round_number: int) -> Send:
        down = Downlink({PAYLOAD: _dense(state.params)}, {}, state_nbytes(state.params))
        self._sent_bytes = {k: down.nbytes for k in participation.clients.tolist()}
        return Send([down] * participation.clients.numel(), {}, 0.0, 0.0)

    def client(self, records: Mapping[str, Arrays], who: ClientRound,
               memory: dict[str, Params]) -> dict[str, object]:
        start = decode(records[PAYLOAD], self.sim.initial_params(), device=self.sim.device)
        return _dense(self._train(start.params, who))

    def aggregate(self, state: ServerState, participation: Participation,
                  received: list[Decoded]) -> Aggregate:
        new, comms = self._replay(state, participation, received)
        return Aggregate(new, comms.ranks_down, comms.ranks_up, comms.err_server)


class _CatchUp:
    """The server's view of which round each client last synced (0: never)."""

    def __init__(self, num_clients: int) -> None:
        self.synced = [0] * num_clients
        self.resync: set[int] = set()  # failed clients: send them the state dense next time

    @staticmethod
    def owed(state: ServerState) -> torch.Tensor:
        (owed,) = state.memory[SLOT].values()
        return owed

    def plan(self, owed: torch.Tensor, clients: list[int], message: int, dense: int
             ) -> list[bool]:
        """Per participant: whether it gets the missed messages (True) or the state dense."""
        if len(set(clients)) != len(clients):
            raise ValueError("participation: a client listed twice in one round; "
                             "fl_sim.flower runs feddlr_ef and fedmud with full or scheme2 "
                             "participation")
        return [k not in self.resync and float(owed[k]) + message < dense for k in clients]

    def with_failures(self, state: ServerState, clients: list[int]) -> ServerState:
        owed = self.owed(state).clone()
        for k in clients:
            owed[k] = math.inf
            self.resync.add(k)
        memory = dict(state.memory)
        memory[SLOT] = ledger_slot(state.params, owed)
        return ServerState(params=state.params, round=state.round, memory=memory)


def _check_synced(memory: dict[str, Params], who: ClientRound) -> None:
    held = int(memory["tag"]["synced"]) if memory.get("tag") else 0
    if held != int(who.config["synced"]):
        raise ValueError(f"client {who.client}: holds the state of round {held}, the server "
                         f"sent the messages after round {int(who.config['synced'])}")


class FedMUDProtocol(_ReplayRound):
    """FedMUD: dense tensors, the round's seed and the missed ``B_bar`` (or the weights) down.

    Records: ``payload`` (tensors that are not factorized: current values), ``seeds``
    (int64, the seeds of the rounds the client missed and this one), ``B-<j>``
    (``B_bar`` of round ``j - 1``, sent in round ``j``) or ``weights`` (the factorized
    layers' weights dense). Up: ``B_k`` and the dense tensors.
    """

    memory_slots = ("weight", "tag")

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self.params0 = sim.initial_params()
        self.layers = factorized_layers(self.params0, "mud")
        self.frozen = {f"{p}.{f}" for p in self.layers for f in ("weight", "A", "B")}
        self.trained = [n for n in self.params0 if n not in self.frozen or n.endswith(".B")]
        self.ledger = _CatchUp(sim.data.num_clients)
        self.log: dict[int, tuple[int, dict[str, DensePayload] | None]] = {}
        self.b_bar: dict[str, DensePayload] | None = None

    def _factors(self, seed: int) -> Params:
        ref = self.params0[f"{self.layers[0]}.A"]
        shapes = {p: tuple(self.params0[f"{p}.A"].shape) for p in self.layers}
        return frozen_factors(seed, shapes, ref.dtype, self.sim.device)

    def uplink_like(self, state: ServerState) -> Params:
        return {n: state.params[n] for n in self.trained}

    def send(self, state: ServerState, participation: Participation, round_number: int) -> Send:
        t0 = time.perf_counter()
        w = state.params
        gen = self.sim.streams.compression
        before = gen.get_state()  # FedMUD.round draws the seed again from this state
        seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device))
        gen.set_state(before)
        self.seed = seed
        self.log[round_number] = (seed, self.b_bar)
        weights = {f"{p}.weight": w[f"{p}.weight"] for p in self.layers}
        fixed = _dense({n: t for n, t in w.items() if n not in self.frozen})
        message = SEED_BYTES + (state_nbytes({f"{p}.B": w[f"{p}.B"] for p in self.layers})
                                if round_number > 1 else 0)
        clients = participation.clients.tolist()
        owed = self.ledger.owed(state)
        plan = self.ledger.plan(owed, clients, message, state_nbytes(weights) + SEED_BYTES)
        downs, self._sent_bytes = [], {}
        for k, catch_up in zip(clients, plan, strict=True):
            records = {PAYLOAD: fixed}
            if catch_up:
                rounds = range(self.ledger.synced[k] + 1, round_number + 1)
                seeds = [self.log[j][0] for j in rounds]
                records.update({f"B-{j}": self.log[j][1] for j in rounds
                                if self.log[j][1] is not None})
                config = {"mode": 1, "synced": self.ledger.synced[k]}
            else:
                seeds, config = [seed], {"mode": 0, "synced": 0}
                records["weights"] = _dense(weights)
            records["seeds"] = {"seeds": DensePayload(torch.tensor(seeds, dtype=torch.int64))}
            down = Downlink(records, config, _nbytes(records))
            downs.append(down)
            self._sent_bytes[k] = down.nbytes
            self.ledger.synced[k] = round_number
            self.ledger.resync.discard(k)
        oldest = min(self.ledger.synced)
        self.log = {j: m for j, m in self.log.items() if j > oldest}
        return Send(downs, {}, 0.0, time.perf_counter() - t0)

    def client(self, records: Mapping[str, Arrays], who: ClientRound,
               memory: dict[str, Params]) -> dict[str, object]:
        p0, dev = self.params0, self.sim.device
        fixed = decode(records[PAYLOAD], {n: t for n, t in p0.items() if n not in self.frozen},
                       device=dev).params
        seeds = [int(s) for s in _raw(records["seeds"], "seeds")]
        like_w = {f"{p}.weight": p0[f"{p}.weight"] for p in self.layers}
        if int(who.config["mode"]) == 0:
            weight = decode(records["weights"], like_w, device=dev).params
        else:
            _check_synced(memory, who)
            weight = dict(memory["weight"])
            previous = int(memory["tag"]["seed"]) if memory.get("tag") else None
            first = int(who.config["synced"]) + 1
            like_b = {f"{p}.B": p0[f"{p}.B"] for p in self.layers}
            for j, seed in enumerate(seeds, start=first):
                if f"B-{j}" in records:  # B_bar of round j - 1, drawn with that round's seed
                    b_bar = decode(records[f"B-{j}"], like_b, device=dev).params
                    a = self._factors(previous)
                    for p in self.layers:
                        shape = weight[f"{p}.weight"].shape
                        weight[f"{p}.weight"] = weight[f"{p}.weight"] + (
                            a[p] @ b_bar[f"{p}.B"]).reshape(shape)
                previous = seed
        a = self._factors(seeds[-1])
        start = dict(fixed)
        for p in self.layers:
            start[f"{p}.weight"] = weight[f"{p}.weight"]
            start[f"{p}.A"] = a[p]
            start[f"{p}.B"] = torch.zeros_like(p0[f"{p}.B"], device=dev)
        start = {n: start[n] for n in p0}
        memory["weight"] = weight
        memory["tag"] = {"synced": torch.tensor(who.round_index + 1),
                         "seed": torch.tensor(seeds[-1])}
        local = self._train(start, who)
        return _dense({n: local[n] for n in self.trained})

    def aggregate(self, state: ServerState, participation: Participation,
                  received: list[Decoded]) -> Aggregate:
        a = self._factors(self.seed)

        def check_start(start: Params) -> None:  # FedMUD.round drew the seed that was sent
            if not all(torch.equal(start[f"{p}.A"][0], a[p]) for p in self.layers):
                raise AssertionError(f"round {state.round + 1}: FedMUD's frozen factors are "
                                     f"not those of the seed sent")

        new, comms = self._replay(state, participation, received, check_start)
        stacked = _stack(received)
        b_bar = weighted_sum({f"{p}.B": stacked[f"{p}.B"] for p in self.layers},
                             participation.weights)
        self.b_bar = _dense(b_bar)
        return Aggregate(new, comms.ranks_down, comms.ranks_up, comms.err_server)

    def failed(self, state: ServerState, clients: list[int]) -> ServerState:
        return self.ledger.with_failures(state, clients)


class FedDLREFProtocol(Protocol):
    """FedDLR-EF: EF21-P replica down (messages or ``h`` dense), EF21 ``m_k`` up.

    Records down: ``c-<j>`` (round ``j``'s compressed difference ``C_d(w - h)``, as
    factors) for the rounds since the client synced, or ``replica`` (``h`` dense; with
    config ``reset-g = 1`` after a failure). Up: ``m_k = C_u(D_k - g_k)``.
    """

    memory_slots = ("replica", "g", "tag")

    def __init__(self, sim: Simulation) -> None:
        super().__init__(sim)
        self.ledger = _CatchUp(sim.data.num_clients)
        self.log: dict[int, dict[str, object]] = {}

    def send(self, state: ServerState, participation: Participation, round_number: int) -> Send:
        t0 = time.perf_counter()
        alg, w = self.algorithm, state.params
        h_old = {n: t[0] for n, t in state.memory["replica"].items()}
        sent = alg.compress({n: w[n] - h_old[n] for n in w}, alg.down,
                            self.sim.streams.compression)
        step = sent.decompress()
        h = {n: h_old[n] + step[n] for n in h_old}
        self.h, self.message = h, sent.nbytes
        err = math.sqrt(sum(float((h[n] - w[n]).double().square().sum()) for n in h))
        self.log[round_number] = sent.unbind()[0].entries
        clients = participation.clients.tolist()
        plan = self.ledger.plan(self.ledger.owed(state), clients, sent.nbytes, state_nbytes(h))
        downs = []
        for k, catch_up in zip(clients, plan, strict=True):
            if catch_up:
                records = {f"c-{j}": self.log[j]
                           for j in range(self.ledger.synced[k] + 1, round_number + 1)}
                config = {"mode": 1, "synced": self.ledger.synced[k], "reset-g": 0}
            else:
                records = {"replica": _dense(h)}
                config = {"mode": 0, "synced": 0, "reset-g": int(k in self.ledger.resync)}
            downs.append(Downlink(records, config, _nbytes(records)))
            self.ledger.synced[k] = round_number
            self.ledger.resync.discard(k)
        oldest = min(self.ledger.synced)
        self.log = {j: m for j, m in self.log.items() if j > oldest}
        self._ranks_down = ({n: int(r) for n, r in sent.ranks.items()}
                            if alg.down is not None else {})
        self._err, self._sent_bytes = err, {k: d.nbytes for k, d in zip(clients, downs,
                                                                         strict=True)}
        return Send(downs, self._ranks_down, err, time.perf_counter() - t0)

    def client(self, records: Mapping[str, Arrays], who: ClientRound,
               memory: dict[str, Params]) -> dict[str, object]:
        alg, p0, dev = self.algorithm, self.sim.initial_params(), self.sim.device
        zeros = {n: torch.zeros_like(t, device=dev) for n, t in p0.items()}
        g = dict(memory["g"]) if memory.get("g") else dict(zeros)
        if int(who.config["mode"]) == 0:
            h = decode(records["replica"], p0, device=dev).params
            if int(who.config["reset-g"]):
                g = dict(zeros)
        else:
            _check_synced(memory, who)
            h = dict(memory["replica"]) if memory.get("replica") else dict(zeros)
            for j in range(int(who.config["synced"]) + 1, who.round_index + 2):
                step = decode(records[f"c-{j}"], p0, device=dev).params
                h = {n: h[n] + step[n] for n in h}
        local = self._train(h, who)
        gen = client_generator(self.sim.config, who.client, who.round_index)
        m = alg.compress({n: local[n] - h[n] - g[n] for n in h}, alg.up, gen)
        msg = m.decompress()
        memory["replica"] = h
        memory["g"] = {n: g[n] + msg[n] for n in g}
        memory["tag"] = {"synced": torch.tensor(who.round_index + 1)}
        return m.unbind()[0].entries

    def aggregate(self, state: ServerState, participation: Participation,
                  received: list[Decoded]) -> Aggregate:
        h, w = self.h, state.params
        clients = participation.clients
        idx = clients.to(next(iter(w.values())).device)
        msg = _stack(received)
        g_new = {n: g[idx] + msg[n] for n, g in state.memory["g"].items()}
        new_w = weighted_sum({n: h[n] + g_new[n] for n in h}, participation.weights)
        g_all = {n: g.clone() for n, g in state.memory["g"].items()}
        for n in g_all:
            g_all[n][idx] = g_new[n]
        owed = self.ledger.owed(state)
        down, owed = catch_up_bytes(owed, clients, self.message, state_nbytes(h))
        sent = [self._sent_bytes[k] for k in clients.tolist()]
        if down != sent:
            raise AssertionError(f"round {state.round + 1}: feddlr_ef counts {down} bytes "
                                 f"down, the arrays hold {sent}")
        n_clients = self.sim.data.num_clients
        memory = {"replica": {n: t.unsqueeze(0).expand(n_clients, *t.shape)
                              for n, t in h.items()},
                  "g": g_all, SLOT: ledger_slot(w, owed)}
        return Aggregate(ServerState(params=new_w, round=state.round + 1, memory=memory),
                         self._ranks_down, self._ranks_up(received), self._err)

    def failed(self, state: ServerState, clients: list[int]) -> ServerState:
        state = self.ledger.with_failures(state, clients)
        g = {n: t.clone() for n, t in state.memory["g"].items()}
        for n in g:
            g[n][clients] = 0  # both sides restart the client's uplink memory
        return ServerState(params=state.params, round=state.round,
                           memory={**state.memory, "g": g})


def check_runnable(config: SimConfig) -> None:
    """A one-line error, before any process starts, if ``config`` cannot run on Flower."""
    alg = check_supported(make_algorithm(config))
    if isinstance(alg, FedDLREF | FedMUD) and config.participation == "scheme1":
        raise ValueError(f"participation: scheme1 may list a client twice in a round; "
                         f"fl_sim.flower runs {alg.name} with full or scheme2 participation")


_PROTOCOLS: tuple[tuple[type, type[Protocol]], ...] = (
    (FedDLREF, FedDLREFProtocol), (FedMUD, FedMUDProtocol), (FedHM, FedHMProtocol),
    (ModelCompression | UpdateCompression, FamilyProtocol))


def _protocol_class(algorithm: Algorithm) -> type[Protocol]:
    for kind, protocol in _PROTOCOLS:
        if isinstance(algorithm, kind):
            return protocol
    raise ValueError(f"algorithm: {algorithm.name!r} ({type(algorithm).__name__}) has no "
                     f"Flower protocol yet (fl_sim/flower/protocols.py)")


def check_supported(algorithm: Algorithm) -> Algorithm:
    """``algorithm`` if fl_sim.flower has a protocol for it, else a one-line error.

    Every algorithm of :data:`fl_sim.algorithms.ALGORITHMS` has one; an algorithm class
    added later needs its own entry in ``_PROTOCOLS``.
    """
    _protocol_class(algorithm)
    return algorithm


def protocol_for(sim: Simulation) -> Protocol:
    """The :class:`Protocol` of ``sim.algorithm``, or a one-line error naming it."""
    return _protocol_class(sim.algorithm)(sim)
