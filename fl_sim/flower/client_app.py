"""The ClientApp: one client's side of a round, on Flower's Message API.

Handlers:

- ``query``: the SuperNode says which fl_sim clients (data partitions) it serves, read
  from its node config (``fl-sim-clients = "0,2"``, or Flower's ``partition-id``);
- ``train``: the algorithm's client half (:meth:`fl_sim.flower.protocols.Protocol.client`:
  rebuild the model from the payload arrays and the client's memory, train, compress),
  reply with the uplink payload arrays and a ``MetricRecord`` (payload bytes of our
  ledger, examples, times).

Per-client memory (error-feedback residuals, PowerSGD bases, FedDLR-EF's replica and
``g_k``, FedMUD's weights, and the round each last synced) lives in the
``Context.state`` of the node, one ``ArrayRecord`` per client and slot, so it
survives across rounds as Flower intends. The run's :class:`~fl_sim.SimConfig` comes
from the run config (:func:`fl_sim.flower.run_config.from_run_config`), or is bound
when the app is built (:func:`make_client_app`, used by the simulation engine).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from ..config import SimConfig
from .codec import encode
from .local import cached_setup
from .protocols import ClientRound, Protocol, protocol_for
from .run_config import from_run_config

__all__ = ["app", "make_client_app", "served_clients"]

CLIENTS_KEY = "fl-sim-clients"  # node config: the fl_sim clients a SuperNode serves


def served_clients(node_config: dict) -> list[int]:
    """The fl_sim clients a node serves: ``fl-sim-clients`` (``"0,2"``) or ``partition-id``."""
    if CLIENTS_KEY in node_config:
        text = str(node_config[CLIENTS_KEY])
        try:
            return [int(c) for c in text.split(",") if c.strip()]
        except ValueError:
            raise ValueError(f"node config: {CLIENTS_KEY}={text!r} is not a comma-separated "
                             f"list of client indices") from None
    if "partition-id" in node_config:
        return [int(node_config["partition-id"])]
    raise ValueError(f"node config: needs {CLIENTS_KEY} or partition-id")


@functools.lru_cache(maxsize=4)
def _protocol_json(config_json: str) -> Protocol:
    return protocol_for(cached_setup(SimConfig.from_dict(json.loads(config_json))))


def cached_protocol(config: SimConfig) -> Protocol:
    """The algorithm's :class:`~fl_sim.flower.protocols.Protocol`, built once per process
    (its client half keeps no state: a client's memory is in ``Context.state``)."""
    return _protocol_json(json.dumps(config.to_dict(), sort_keys=True))


def _memory_key(client: int, slot: str, tag: str = "") -> str:
    return f"fl-sim.memory.{tag + '.' if tag else ''}{client}.{slot}"


def _load_memory(context: Context, client: int, slots: tuple[str, ...],
                 device: torch.device, tag: str = "") -> dict[str, dict[str, torch.Tensor]]:
    memory = {}
    for slot in slots:
        record = context.state.get(_memory_key(client, slot, tag))
        memory[slot] = {} if record is None else {
            n: t.to(device) for n, t in record.to_torch_state_dict().items()}
    return memory


def _save_memory(context: Context, client: int,
                 memory: dict[str, dict[str, torch.Tensor]], tag: str = "") -> None:
    for slot, tensors in memory.items():
        context.state[_memory_key(client, slot, tag)] = ArrayRecord(
            {n: Array(np.ascontiguousarray(t.detach().cpu().numpy()))
             for n, t in tensors.items()})


def handle_train(config: SimConfig, message: Message, context: Context) -> Message:
    """Train one client for one round and reply with its uplink payload.

    The work is the algorithm's :class:`~fl_sim.flower.protocols.Protocol`
    (``Protocol.client``); its memory slots are loaded from and saved to ``context.state``.
    """
    sim = cached_setup(config)
    protocol = cached_protocol(config)
    cfg = message.content["config"]
    client, round_index = int(cfg["client"]), int(cfg["round"]) - 1
    if client not in served_clients(context.node_config):
        raise ValueError(f"client {client}: not served by this node "
                         f"({served_clients(context.node_config)})")
    records = {name: {k: a.numpy() for k, a in record.items()}
               for name, record in message.content.array_records.items()}
    who = ClientRound(client, round_index, int(cfg["participants"]), int(cfg["position"]),
                      dict(cfg))
    tag = str(cfg.get("run-tag", ""))
    t0 = time.perf_counter()
    memory = _load_memory(context, client, protocol.memory_slots, sim.device, tag)
    payloads = protocol.client(records, who, memory)
    t1 = time.perf_counter()
    out, nbytes = encode(payloads)
    _save_memory(context, client, memory, tag)
    t2 = time.perf_counter()
    metrics = MetricRecord({"ledger-bytes": int(nbytes), "client": client,
                            "position": int(cfg["position"]),
                            "num-examples": int(sim.data.client_sizes[client]),
                            "round-seconds": t1 - t0, "compress-seconds": t2 - t1})
    record = ArrayRecord({k: Array(v) for k, v in out.items()})
    return Message(RecordDict({"payload": record, "metrics": metrics}), reply_to=message)


def handle_query(message: Message, context: Context) -> Message:
    """Reply with the fl_sim clients this node serves."""
    clients = served_clients(context.node_config)
    return Message(RecordDict({"clients": MetricRecord({"clients": clients})}),
                   reply_to=message)


def make_client_app(config: SimConfig | Mapping[str, SimConfig] | None = None) -> ClientApp:
    """A ClientApp for ``config``, or for the run config of each run when ``None``.

    A mapping ``run tag -> SimConfig`` serves several runs in one Flower run (one
    simulation-engine start for several algorithms, :func:`fl_sim.flower.simulation.simulate`):
    each message names its run (``run-tag``), and each run's client memory is kept apart.
    """
    client_app = ClientApp()

    @client_app.train()
    def train(message: Message, context: Context) -> Message:
        if config is None:
            cfg = from_run_config(context.run_config)[0]
        elif isinstance(config, SimConfig):
            cfg = config
        else:
            cfg = config[str(message.content["config"]["run-tag"])]
        return handle_train(cfg, message, context)

    @client_app.query()
    def query(message: Message, context: Context) -> Message:
        return handle_query(message, context)

    return client_app


app = make_client_app()  # `flwr run` loads this one: the config comes from the run config
