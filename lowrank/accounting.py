"""Byte accounting shared by every payload: what a tensor or a state dict costs to send."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["tensor_nbytes", "state_nbytes"]


def tensor_nbytes(x: torch.Tensor) -> int:
    """Bytes of a dense tensor at its own dtype (``numel * element_size``)."""
    return x.numel() * x.element_size()


def state_nbytes(state: Mapping[str, torch.Tensor]) -> int:
    """Bytes of a dense state dict: what FedAvg sends each way per client."""
    return sum(tensor_nbytes(t) for t in state.values())
