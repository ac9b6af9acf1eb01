"""The compute device, chosen once at the top of a run."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch

__all__ = ["resolve_device", "synchronized_clock"]


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; anything else is passed to torch.

    Parameters
    ----------
    spec : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    """
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {spec!r} requested but CUDA is not available")
    return device


def synchronized_clock(tensors: Mapping[str, torch.Tensor]) -> float:
    """``time.perf_counter()`` once the device of ``tensors`` has run its queued work.

    On CUDA, kernels run asynchronously: without the synchronization a timer started after
    the training would count the training's queued kernels as the next step's time
    (``RoundComms.compress_seconds``, the simulator's round seconds).

    Parameters
    ----------
    tensors : Mapping[str, torch.Tensor]
        A model's parameters (the first one's device is synchronized; empty: no wait).
    """
    t = next(iter(tensors.values()), None)
    if t is not None and t.is_cuda:
        torch.cuda.synchronize(t.device)
    return time.perf_counter()
