"""Checkpoints that resume a run bit-identically, load with ``weights_only=True`` and
carry a content hash.

:func:`save_checkpoint` stores a SHA-256 over every tensor's bytes, dtype and shape and
over the plain data (config, round, history); :func:`load_checkpoint` refuses a file
whose hash, structure or metadata do not check out, and, given the model's parameters,
one whose names, shapes or dtypes differ. Every error names the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .algorithms import ServerState
from .json_file import to_jsonable
from .params import Params

__all__ = ["Checkpoint", "save_checkpoint", "load_checkpoint", "content_hash"]

FORMAT = 3  # 3: with the server's own slots (ServerState.server_memory)
#   2: without them (loaded with an empty server_memory); 1: no content hash (refused)
_KEYS = ("format", "config", "round", "params", "memory", "server_memory", "rng", "history",
         "sha256")


@dataclass(frozen=True)
class Checkpoint:
    """Everything needed to continue a run after ``state.round`` rounds."""

    config: dict[str, Any]
    state: ServerState
    rng: dict[str, torch.Tensor]  # RandomStreams.state_dict()
    history: dict[str, Any]  # History.to_dict()


def _feed(h: Any, obj: Any) -> None:
    """Hash ``obj`` canonically: dicts by sorted key, tensors by dtype, shape and bytes."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(json.dumps(str(k)).encode())
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(json.dumps(to_jsonable(obj)).encode())


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 (hex) of a checkpoint payload, its ``"sha256"`` entry excluded."""
    h = hashlib.sha256()
    _feed(h, {k: v for k, v in payload.items() if k != "sha256"})
    return h.hexdigest()


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write a checkpoint atomically (temporary file, then rename), with its content hash."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "config": ckpt.config, "round": ckpt.state.round,
               "params": {n: p.detach().cpu() for n, p in ckpt.state.params.items()},
               "memory": {s: {n: t.detach().cpu() for n, t in d.items()}
                          for s, d in ckpt.state.memory.items()},
               "server_memory": {s: {n: t.detach().cpu() for n, t in d.items()}
                                 for s, d in ckpt.state.server_memory.items()},
               "rng": ckpt.rng, "history": ckpt.history}
    payload["sha256"] = content_hash(payload)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def _tensor_dict(value: Any, what: str, bad) -> dict[str, torch.Tensor]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in value.items()):
        raise bad(f"{what} is not a dict of named tensors")
    return value


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu", *,
                    params: Params | None = None, num_clients: int | None = None
                    ) -> Checkpoint:
    """Read and verify a checkpoint (``torch.load(..., weights_only=True)``).

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_checkpoint`.
    device : torch.device or str
        Where the tensors go.
    params : dict[str, torch.Tensor], optional
        The model's parameters: the checkpoint must hold exactly these names, with
        these shapes and dtypes (and per-client memory stacks of them).
    num_clients : int, optional
        ``N``: the leading dimension of the per-client memory stacks.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        ``resume_from: <path>: <what is corrupt or inconsistent>``: unreadable or
        truncated, objects other than tensors and plain data, a content-hash mismatch,
        missing entries, round numbers that disagree with the history, or parameters
        that do not fit the model.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"resume_from: no checkpoint at {path}")

    def bad(what: str) -> ValueError:
        return ValueError(f"resume_from: {path}: {what}")

    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise bad("refused: it holds objects other than tensors and plain data (not "
                  "written by fl_sim, or tampered with)") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a torn zip
        msg = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise bad(f"not a readable checkpoint, corrupt or truncated ({msg})") from exc
    if not isinstance(data, dict):
        raise bad(f"not a checkpoint (a {type(data).__name__}, not a dict)")
    if data.get("format") not in (2, FORMAT):
        raise bad(f"has format {data.get('format')!r}, expected 2 or {FORMAT} (checkpoints "
                  "of format 1 carry no content hash: rerun to write a new one)")
    keys = _KEYS if data["format"] == FORMAT else tuple(k for k in _KEYS
                                                         if k != "server_memory")
    missing = [k for k in keys if k not in data]
    if missing:
        raise bad(f"incomplete: missing {missing}")
    if data["sha256"] != content_hash(data):
        raise bad("content hash mismatch: the file is corrupt (e.g. a flipped bit) or was "
                  "edited; use another checkpoint or rerun")
    rnd, history, config = data["round"], data["history"], data["config"]
    if isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 0:
        raise bad(f"round must be an integer >= 0, got {rnd!r}")
    if not isinstance(config, dict) or not isinstance(history, dict) \
            or not isinstance(history.get("records"), list):
        raise bad("config or history is malformed")
    numbers = [r.get("round") if isinstance(r, dict) else None for r in history["records"]]
    if numbers != list(range(1, rnd + 1)):
        raise bad(f"inconsistent: it is at round {rnd} but its history holds rounds "
                  f"{numbers[:5]}{'...' if len(numbers) > 5 else ''}")
    if isinstance(config.get("rounds"), int) and rnd > config["rounds"]:
        raise bad(f"inconsistent: round {rnd} is past its config's rounds={config['rounds']}")
    saved = _tensor_dict(data["params"], "params", bad)
    rng = _tensor_dict(data["rng"], "rng", bad)
    if not isinstance(data["memory"], dict):
        raise bad("memory is not a dict")
    memory = {s: _tensor_dict(d, f"memory[{s!r}]", bad) for s, d in data["memory"].items()}
    server_memory = data.get("server_memory", {})  # format 2 has none
    if not isinstance(server_memory, dict):
        raise bad("server_memory is not a dict")
    server_memory = {s: _tensor_dict(d, f"server_memory[{s!r}]", bad)
                     for s, d in server_memory.items()}
    if params is not None:
        _check_fits(saved, memory, params, num_clients, bad)
    state = ServerState(params={n: p.to(device) for n, p in saved.items()}, round=rnd,
                        memory={s: {n: t.to(device) for n, t in d.items()}
                                for s, d in memory.items()},
                        server_memory={s: {n: t.to(device) for n, t in d.items()}
                                       for s, d in server_memory.items()})
    return Checkpoint(config=config, state=state, rng=rng, history=history)


def _check_fits(saved: dict[str, torch.Tensor], memory: dict[str, dict[str, torch.Tensor]],
                params: Params, num_clients: int | None, bad) -> None:
    """Names, shapes and dtypes of a checkpoint against the model's parameters."""
    missing = sorted(set(params) - set(saved))
    extra = sorted(set(saved) - set(params))
    if missing or extra:
        raise bad(f"does not fit the model: missing parameters {missing}, unknown "
                  f"parameters {extra}")
    for n, p in params.items():
        t = saved[n]
        if tuple(t.shape) != tuple(p.shape) or t.dtype != p.dtype:
            raise bad(f"parameter {n!r} is {t.dtype} {tuple(t.shape)}, the model needs "
                      f"{p.dtype} {tuple(p.shape)}")
    for slot, stack in memory.items():
        for n, t in stack.items():
            if n not in params:
                raise bad(f"memory[{slot!r}] holds unknown parameter {n!r}")
            if num_clients is not None and (t.ndim == 0 or t.shape[0] != num_clients):
                raise bad(f"memory[{slot!r}][{n!r}] has shape {tuple(t.shape)}, expected one "
                          f"row per client ({num_clients}, ...)")
