"""The server's side on Flower: a strategy that runs any fl_sim algorithm of the two families.

:class:`FlSimStrategy` subclasses ``flwr.serverapp.strategy.Strategy`` and drives
Flower's own round loop (``Strategy.start``: configure, send and receive with a
timeout, aggregate, evaluate). Each round it draws the participants from fl_sim's
``sampling`` stream, sends each one the downlink of the algorithm's
:class:`~fl_sim.flower.protocols.Protocol` (factors for FedDLR, the catch-up
messages or the replica for FedDLR-EF, ...), decodes the replies and aggregates
them with the protocol. Evaluation is centralized, on the same
train and test sets as fl_sim, and produces fl_sim's :class:`~fl_sim.history.RoundRecord`.

Failures: a participant with no reply within the round timeout, an error reply or no
connected node is left out of the round and named in the log and in the
:class:`~fl_sim.flower.ledger.FlowerLedger`; the others' weights are rescaled to the
round's planned total. With fewer than ``min_replies`` replies the run stops with a
one-line error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from ..algorithms import ServerState
from ..evaluation import evaluate
from ..history import History, RoundRecord
from ..params import Params
from ..participation import Participation, sample_participants
from ..simulator import Simulation
from .codec import decode, encode, message_nbytes
from .ledger import Failure, FlowerLedger, FlowerRound
from .protocols import Downlink, Send, check_supported, protocol_for
from .run_config import FlowerOptions

__all__ = ["FlSimStrategy", "centralized_metrics"]

logger = logging.getLogger("flwr")


def centralized_metrics(sim: Simulation, params: Params) -> dict:
    """Training objective and test metrics of ``params``, as fl_sim records them."""
    cfg, data = sim.config, sim.data
    train = evaluate(sim.model, params, data.train_x, data.train_y, data.task,
                     weight_decay=cfg.weight_decay)
    test = evaluate(sim.model, params, data.test_x, data.test_y, data.task)
    return {"train_loss": train.loss, "test_loss": test.loss, "test_accuracy": test.accuracy,
            "dist_sq": None}


@dataclass
class _Sent:
    """One round in flight: what was sent to whom."""

    t0: float
    participation: Participation
    send: Send
    failed: list[Failure]


@dataclass
class _Done:
    """One round aggregated, waiting for its evaluation."""

    seconds: float
    compress_seconds: float
    flower: FlowerRound
    ranks_down: dict
    ranks_up: dict[str, list[int]]
    err_server: float


def _records(down: Downlink, cache: dict[int, tuple[ArrayRecord, int]]
             ) -> dict[str, ArrayRecord]:
    """The downlink's records as ArrayRecords (records shared between participants once)."""
    out, total = {}, 0
    for name, payloads in down.records.items():
        if id(payloads) not in cache:
            arrays, nbytes = encode(payloads)
            cache[id(payloads)] = (ArrayRecord({k: Array(v) for k, v in arrays.items()}),
                                   nbytes)
        out[name], nbytes = cache[id(payloads)]
        total += nbytes
    if total != down.nbytes:
        raise AssertionError(f"downlink arrays hold {total} bytes, the ledger says "
                             f"{down.nbytes}")
    return out


class FlSimStrategy(Strategy):
    """fl_sim's algorithm for ``sim.config`` as a Flower strategy.

    The round's work on each side is the algorithm's :class:`~fl_sim.flower.protocols.Protocol`
    (:func:`~fl_sim.flower.protocols.protocol_for`); this class sends, collects, handles
    failures, and records.

    Parameters
    ----------
    sim : Simulation
        The run (from :func:`fl_sim.setup`): data for weights and evaluation, the
        initial model, the algorithm object and the random streams.
    options : FlowerOptions
        Round timeout and minimum replies.
    node_of : dict[int, int]
        fl_sim client index -> the Flower node id that serves it.
    ledger : FlowerLedger
        Filled with one :class:`FlowerRound` per round.
    tag : str
        Names the run in every message (``run-tag``) when one Flower run carries several.
    """

    def __init__(self, sim: Simulation, options: FlowerOptions, node_of: dict[int, int],
                 ledger: FlowerLedger, tag: str = "") -> None:
        self.sim, self.options, self.node_of, self.ledger = sim, options, node_of, ledger
        self.tag = tag
        check_supported(sim.algorithm)
        self.protocol = protocol_for(sim)
        self.state: ServerState = self.protocol.init_state()
        self.history = History(config=sim.config.to_dict())
        self._p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
        self._sent: _Sent | None = None
        self._pending: list[tuple[int, int, int, Message]] = []
        self._done: _Done | None = None

    def summary(self) -> None:
        cfg = self.sim.config
        logger.info("fl_sim %s on Flower: %d clients, %d rounds, timeout %.0f s, "
                    "min replies %d", cfg.algorithm, self.sim.data.num_clients, cfg.rounds,
                    self.options.round_timeout, self.options.min_replies)

    # ---- training -----------------------------------------------------------------
    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        t0 = time.perf_counter()
        cfg = self.sim.config
        part = sample_participants(self._p, cfg.participation, cfg.clients_per_round,
                                   self.sim.streams.sampling)
        send = self.protocol.send(self.state, part, server_round)
        alive = set(grid.get_node_ids())
        clients = part.clients.tolist()
        messages, failed, cache = [], [], {}
        for i, k in enumerate(clients):
            node = self.node_of.get(k)
            down = send.downlinks[i]
            records = _records(down, cache)
            if node is None or node not in alive:
                failed.append(Failure(k, node, "its node is not connected"))
                continue
            content = RecordDict({**records, "config": ConfigRecord(
                {"round": server_round, "client": k, "position": i,
                 "participants": len(clients), "run-tag": self.tag, **down.config})})
            messages.append((i, k, node, Message(content, dst_node_id=node,
                                                 message_type=MessageType.TRAIN)))
        self._sent = _Sent(t0, part, send, failed)
        self._pending = messages
        return [m for *_, m in messages]

    def aggregate_train(self, server_round: int, replies: Iterable[Message]
                        ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        sent, cfg = self._sent, self.sim.config
        by_id = {m.metadata.message_id: (i, k, node, m) for i, k, node, m in self._pending}
        failed = list(sent.failed)
        got: dict[int, Message] = {}
        errored: set[int] = set()
        for reply in replies:
            i, k, node, _ = by_id[reply.metadata.reply_to_message_id]
            if reply.has_error():
                failed.append(Failure(k, node, f"error reply: {reply.error.reason}"))
                errored.add(i)
            else:
                got[i] = reply
        for i, k, node, _ in self._pending:
            if i not in got and i not in errored:
                failed.append(Failure(k, node,
                                      f"no reply within {self.options.round_timeout:g} s"))
        for f in failed:
            logger.warning("round %d: client %d (node %s) failed: %s", server_round, f.client,
                           f.node, f.reason)
        k_planned = sent.participation.clients.numel()
        if len(got) < self.options.min_replies:
            names = ", ".join(f"client {f.client} (node {f.node}: {f.reason})" for f in failed)
            raise RuntimeError(f"round {server_round}: {len(got)} of {k_planned} replies, "
                               f"fewer than min_replies={self.options.min_replies}; {names}")
        t0 = time.perf_counter()
        order = sorted(got)
        like = self.protocol.uplink_like(self.state)
        received, pay_up, wire_up, wire_down, clients, client_seconds = [], [], [], [], [], 0.0
        lookup = {i: (k, node, m) for i, k, node, m in self._pending}
        for i in order:
            reply = got[i]
            k, _, msg = lookup[i]
            metrics = reply.content["metrics"]
            arrays = {key: a.numpy() for key, a in reply.content["payload"].items()}
            dec = decode(arrays, like, qsgd_levels=cfg.qsgd_levels, device=self.sim.device)
            if dec.nbytes != int(metrics["ledger-bytes"]):
                raise RuntimeError(f"round {server_round}, client {k}: received "
                                   f"{dec.nbytes} payload bytes, the client's ledger says "
                                   f"{int(metrics['ledger-bytes'])}")
            received.append(dec)
            pay_up.append(dec.nbytes)
            wire_up.append(message_nbytes(reply))
            wire_down.append(message_nbytes(msg))
            clients.append(k)
            client_seconds += float(metrics["compress-seconds"])
        weights = sent.participation.weights[order]
        if len(order) < k_planned:  # rescale the replies to the round's planned total
            weights = weights * (sent.participation.weights.sum() / weights.sum())
        replied = Participation(sent.participation.clients[order], weights)
        agg = self.protocol.aggregate(self.state, replied, received)
        new = agg.state.params
        if not all(bool(torch.isfinite(v).all()) for v in new.values()):
            raise FloatingPointError(f"non-finite global model after round {server_round}")
        self.state = agg.state
        if failed:
            self.state = self.protocol.failed(self.state, [f.client for f in failed])
        now = time.perf_counter()
        flower = FlowerRound(round=server_round, clients=clients,
                             payload_down=[sent.send.downlinks[i].nbytes for i in order],
                             wire_down=wire_down, payload_up=pay_up, wire_up=wire_up,
                             failed=failed)
        self._done = _Done(seconds=now - sent.t0,
                           compress_seconds=sent.send.seconds + (now - t0) + client_seconds,
                           flower=flower, ranks_down=agg.ranks_down, ranks_up=agg.ranks_up,
                           err_server=agg.err_server)
        out = ArrayRecord({n: Array(p.detach().cpu().numpy()) for n, p in new.items()})
        return out, MetricRecord({"replies": len(order), "failed": len(failed)})

    # ---- no federated evaluation: fl_sim evaluates centrally ----------------------
    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return []

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]
                           ) -> MetricRecord | None:
        return None

    def evaluate(self, server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        """Centralized evaluation (``Strategy.start``'s ``evaluate_fn``): one RoundRecord."""
        cfg = self.sim.config
        if server_round == 0:
            self.history.initial = centralized_metrics(self.sim, self.state.params)
            return _metric_record(self.history.initial)
        done = self._done
        last = server_round == cfg.rounds
        if server_round % cfg.eval_every == 0 or last:
            m = centralized_metrics(self.sim, self.state.params)
        else:
            m = dict.fromkeys(("train_loss", "test_loss", "test_accuracy", "dist_sq"))
        f = done.flower
        self.history.records.append(RoundRecord(
            round=server_round, **m, bytes_up=sum(f.payload_up), bytes_down=sum(f.payload_down),
            bytes_up_per_client=f.payload_up, bytes_down_per_client=f.payload_down,
            ranks_down=done.ranks_down, ranks_up=done.ranks_up, err_server=done.err_server,
            err_client=math.nan, clients=f.clients, seconds=done.seconds,
            compress_seconds=done.compress_seconds))
        self.ledger.rounds.append(f)
        return _metric_record(m)


def _metric_record(m: dict) -> MetricRecord:
    return MetricRecord({k.replace("_", "-"): float(v) for k, v in m.items() if v is not None})

