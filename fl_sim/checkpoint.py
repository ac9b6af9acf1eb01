"""Checkpoints that resume a run bit-identically and load with ``weights_only=True``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .algorithms import ServerState

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint"]

FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to continue a run after ``state.round`` rounds."""

    config: dict[str, Any]
    state: ServerState
    rng: dict[str, torch.Tensor]  # RandomStreams.state_dict()
    history: dict[str, Any]  # History.to_dict()


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": ckpt.config, "round": ckpt.state.round,
               "params": {n: p.cpu() for n, p in ckpt.state.params.items()},
               "memory": {s: {n: t.cpu() for n, t in d.items()}
                          for s, d in ckpt.state.memory.items()},
               "rng": ckpt.rng, "history": ckpt.history}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Read a checkpoint with ``torch.load(..., weights_only=True)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {path}")
    data = torch.load(path, weights_only=True, map_location="cpu")
    if data.get("format") != FORMAT:
        raise ValueError(f"resume_from: {path} has format {data.get('format')}, expected {FORMAT}")
    state = ServerState(params={n: p.to(device) for n, p in data["params"].items()},
                        round=int(data["round"]),
                        memory={s: {n: t.to(device) for n, t in d.items()}
                                for s, d in data["memory"].items()})
    return Checkpoint(config=data["config"], state=state, rng=data["rng"],
                      history=data["history"])
