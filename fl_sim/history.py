"""What a run records, round by round, and how it is saved and loaded.

A :class:`History` is saved whole as JSON (:meth:`History.save_json`) or CSV; while a
run is going, :class:`HistoryJournal` appends each finished round to a JSON Lines file
(``history.jsonl``, flushed and synced per round), so the finished rounds survive an
interrupt, an exception or a crash; :meth:`History.load_jsonl` reads it back.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .json_file import JsonFile, from_jsonable, to_jsonable

__all__ = ["JOURNAL_NAME", "RoundRecord", "History", "HistoryJournal"]

JOURNAL_NAME = "history.jsonl"  # the per-round journal in a run's output_dir


@dataclass(frozen=True)
class RoundRecord:
    """Metrics of one round (after its aggregation)."""

    round: int  # 1-based round number
    train_loss: float | None  # F(w): weighted training objective incl. weight decay
    test_loss: float | None  # global test set
    test_accuracy: float | None  # None for regression
    bytes_up: int  # all participants together
    bytes_down: int  # all participants together
    bytes_up_per_client: list[int]
    bytes_down_per_client: list[int]
    ranks_down: dict[str, int]
    ranks_up: dict[str, list[int]]
    err_server: float  # ||C_s(w_r) - w_r||
    err_client: float  # ||sum_k a_k (C_c(w^k) - w^k)||
    dist_sq: float | None  # ||w_{r+1} - w*||^2 when an optimum is given
    clients: list[int]  # participants
    seconds: float  # wall time of the round (training + compression)
    compress_seconds: float  # of which compression


@dataclass
class History(JsonFile):
    """A run: its configuration and one record per round."""

    config: dict[str, Any]
    records: list[RoundRecord] = field(default_factory=list)
    initial: dict[str, Any] = field(default_factory=dict)  # metrics of w_0 (round 0)
    # what bit-identity depends on besides the config: torch version, threads, device
    environment: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> list[Any]:
        """One metric over rounds, e.g. ``history.column("test_accuracy")``."""
        return [getattr(r, name) for r in self.records]

    @property
    def cumulative_bytes(self) -> list[int]:
        """Up + down bytes sent up to and including each round."""
        total, out = 0, []
        for r in self.records:
            total += r.bytes_up + r.bytes_down
            out.append(total)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config, "initial": self.initial,
                "environment": self.environment,
                "records": [dataclasses.asdict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(config=data["config"], initial=data.get("initial", {}),
                   environment=data.get("environment", {}),
                   records=[RoundRecord(**r) for r in data["records"]])

    @classmethod
    def load_jsonl(cls, path: str | Path) -> History:
        """Read a journal written by :class:`HistoryJournal`.

        A last line cut short (the process died while writing it) is dropped; any
        other unreadable line is an error naming the file and the line.
        """
        path = Path(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = []
        for i, line in enumerate(lines):
            try:
                rows.append(from_jsonable(json.loads(line)))
            except json.JSONDecodeError as exc:
                if i == len(lines) - 1 and i > 0:
                    break  # a torn final write
                raise ValueError(f"{path}: line {i + 1} is not JSON ({exc})") from exc
        if not rows or "config" not in rows[0]:
            raise ValueError(f"{path}: not a history journal (no header line)")
        head = rows[0]
        return cls(config=head["config"], initial=head.get("initial", {}),
                   environment=head.get("environment", {}),
                   records=[RoundRecord(**r) for r in rows[1:]])

    def save_csv(self, path: str | Path) -> Path:
        """Write the scalar metrics, one row per round (lists and dicts as JSON strings)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = [f.name for f in dataclasses.fields(RoundRecord)]
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(names)
            for r in self.records:
                row = [getattr(r, n) for n in names]
                writer.writerow([json.dumps(v) if isinstance(v, list | dict) else v for v in row])
        return path


class HistoryJournal:
    """Append-only JSON Lines copy of a history, one line per finished round.

    The first line holds the config, the initial metrics and the environment; each
    :meth:`append` writes one record and flushes and syncs the file, so a round is on
    disk before the next one starts. Opening a journal rewrites the file from
    ``history`` (a resumed run starts from its checkpoint's records).

    Parameters
    ----------
    path : str or Path
        The journal file (conventionally ``output_dir / JOURNAL_NAME``).
    history : History
        The rounds so far (often none).
    """

    def __init__(self, path: str | Path, history: History) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", encoding="utf-8")
        head = {"config": history.config, "initial": history.initial,
                "environment": history.environment}
        self._write(head)
        for r in history.records:
            self._write(dataclasses.asdict(r))

    def _write(self, row: dict[str, Any]) -> None:
        self._fh.write(json.dumps(to_jsonable(row), allow_nan=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def append(self, record: RoundRecord) -> None:
        """Write one finished round."""
        self._write(dataclasses.asdict(record))

    def close(self) -> None:
        """Close the file (the journal stays on disk)."""
        self._fh.close()
