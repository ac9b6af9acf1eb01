"""What a Flower run records besides fl_sim's :class:`~fl_sim.history.History`: the wire.

Per round and per message, two byte counts:

- ``payload``: the bytes of our ledger, the :mod:`lowrank` payloads' ``.nbytes``
  (the rule of :mod:`lowrank.accounting`), equal to what fl_sim records;
- ``wire``: what Flower serializes for the whole message
  (:func:`fl_sim.flower.codec.message_nbytes`): the payload arrays in NumPy's ``.npy``
  form, their keys, the config and metric records, the message metadata.

``wire - payload`` is the envelope overhead. Failed clients (no reply in time, an
error reply, or a node gone) are named with their node and the reason. Written as
``<algorithm>.flower.json`` next to ``<algorithm>.history.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..history import History
from ..json_file import JsonFile

__all__ = ["Failure", "FlowerLedger", "FlowerRound", "ledger_table", "side_by_side"]


@dataclass(frozen=True)
class Failure:
    """A participant whose update did not reach the aggregate."""

    client: int
    node: int | None  # Flower node id (None: no node served the client)
    reason: str


@dataclass(frozen=True)
class FlowerRound:
    """Bytes of one round, per message, in the order of the participants that replied."""

    round: int
    clients: list[int]  # participants whose replies were aggregated
    payload_down: list[int]  # ledger bytes sent to each of them
    wire_down: list[int]  # Flower's serialized message size, server -> client
    payload_up: list[int]  # ledger bytes received from each
    wire_up: list[int]  # serialized reply size, client -> server
    failed: list[Failure] = field(default_factory=list)

    @property
    def envelope_down(self) -> int:
        """Bytes Flower adds to the payloads on the downlink (all messages)."""
        return sum(self.wire_down) - sum(self.payload_down)

    @property
    def envelope_up(self) -> int:
        """Bytes Flower adds to the payloads on the uplink (all replies)."""
        return sum(self.wire_up) - sum(self.payload_up)


@dataclass
class FlowerLedger(JsonFile):
    """A Flower run's wire ledger (one :class:`FlowerRound` per round) and its outcome."""

    engine: str  # "simulation" or "deployment"
    flwr_version: str
    nodes: dict[str, int] = field(default_factory=dict)  # client index (str) -> node id
    rounds: list[FlowerRound] = field(default_factory=list)
    error: str | None = None  # one line when the run stopped early

    def to_dict(self) -> dict[str, Any]:
        rounds = []
        for r in self.rounds:
            d = asdict(r)
            d.update(envelope_down=r.envelope_down, envelope_up=r.envelope_up)
            rounds.append(d)
        return {"engine": self.engine, "flwr_version": self.flwr_version, "nodes": self.nodes,
                "rounds": rounds, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlowerLedger:
        rounds = []
        for d in data["rounds"]:
            d = {k: v for k, v in d.items() if k not in ("envelope_down", "envelope_up")}
            d["failed"] = [Failure(**f) for f in d.get("failed", [])]
            rounds.append(FlowerRound(**d))
        return cls(engine=data["engine"], flwr_version=data["flwr_version"],
                   nodes=data.get("nodes", {}), rounds=rounds, error=data.get("error"))


def ledger_table(ledger: FlowerLedger, tablefmt: str = "simple") -> str:
    """Per round: payload and Flower's serialized bytes each way, and the envelope overhead.

    Parameters
    ----------
    ledger : FlowerLedger
        A run's ledger.
    tablefmt : str
        A ``tabulate`` format (``"github"`` for Markdown).
    """
    from tabulate import tabulate

    rows = []
    for r in ledger.rounds:
        failed = ", ".join(f"{f.client}" for f in r.failed) or "-"
        rows.append([r.round, len(r.clients), sum(r.payload_down), sum(r.wire_down),
                     r.envelope_down, sum(r.payload_up), sum(r.wire_up), r.envelope_up, failed])
    headers = ("round", "replies", "payload down", "wire down", "envelope down", "payload up",
               "wire up", "envelope up", "failed clients")
    return (f"Flower {ledger.flwr_version}, {ledger.engine}: bytes per round "
            f"(payload = our ledger, wire = Flower's serialized messages)\n"
            + tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True))


def side_by_side(histories: Mapping[str, History], ledgers: Mapping[str, FlowerLedger],
                 tablefmt: str = "github") -> str:
    """Per round: payload bytes of each run, Flower's wire bytes beside them, accuracies.

    Parameters
    ----------
    histories : Mapping[str, History]
        Label -> history of the same configuration (e.g. ``fl_sim``, ``simulation``,
        ``deployment``), all with the same number of rounds.
    ledgers : Mapping[str, FlowerLedger]
        Label -> wire ledger, for the labels of ``histories`` that ran on Flower.
    tablefmt : str
        A ``tabulate`` format.
    """
    from tabulate import tabulate

    headers = ["round"]
    for label in histories:
        headers.append(f"{label} payload down / up")
        if label in ledgers:
            headers.append(f"{label} wire down / up")
    headers.append("accuracy " + " / ".join(histories))
    rows = []
    for i, r in enumerate(next(iter(histories.values())).records):
        row = [r.round]
        for label, h in histories.items():
            rec = h.records[i]
            row.append(f"{rec.bytes_down:,} / {rec.bytes_up:,}")
            if label in ledgers:
                w = ledgers[label].rounds[i]
                row.append(f"{sum(w.wire_down):,} / {sum(w.wire_up):,}")
        row.append(" / ".join("-" if h.records[i].test_accuracy is None
                              else f"{h.records[i].test_accuracy:.4f}"
                              for h in histories.values()))
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
