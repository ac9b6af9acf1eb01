"""Loss and accuracy of a model given as a parameter dict."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from .models import per_sample_loss
from .params import Params

__all__ = ["Evaluation", "evaluate", "squared_norm"]


@dataclass(frozen=True)
class Evaluation:
    """Mean loss (plus the L2 term if asked) and accuracy on a data set."""

    loss: float
    accuracy: float | None  # None for regression


def squared_norm(params: Params) -> float:
    """``||w||^2`` over all tensors, in float64."""
    return sum(float(p.double().square().sum()) for p in params.values())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    task: str,
    *,
    weight_decay: float = 0.0,
    chunk: int = 8192,
) -> Evaluation:
    """Evaluate ``params`` on ``(x, y)``.

    Parameters
    ----------
    model : nn.Module
        Template for ``functional_call``.
    params : dict[str, torch.Tensor]
        The model's parameters.
    x, y : torch.Tensor
        Inputs and labels/targets.
    task : str
        ``classification`` or ``regression``.
    weight_decay : float
        Adds ``weight_decay / 2 * ||w||^2`` to the loss (the theory's objective).
    chunk : int
        Rows evaluated at a time.
    """
    if x.shape[0] == 0:
        raise ValueError("x: cannot evaluate on an empty data set")
    loss_fn = per_sample_loss(task)
    total, correct = 0.0, 0
    for start in range(0, x.shape[0], chunk):
        out = functional_call(model, params, (x[start:start + chunk],))
        target = y[start:start + chunk]
        total += float(loss_fn(out, target).double().sum())
        if task == "classification":
            correct += int((out.argmax(dim=-1) == target).sum())
    loss = total / x.shape[0] + 0.5 * weight_decay * squared_norm(params)
    return Evaluation(loss=loss, accuracy=correct / x.shape[0] if task == "classification"
                      else None)
