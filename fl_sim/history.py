"""What a run records, round by round, and how it is saved and loaded."""

from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .json_file import JsonFile

__all__ = ["RoundRecord", "History"]


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
                "records": [dataclasses.asdict(r) for r in self.records]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        return cls(config=data["config"], initial=data.get("initial", {}),
                   records=[RoundRecord(**r) for r in data["records"]])

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
