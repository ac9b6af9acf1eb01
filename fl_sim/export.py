"""Export a trained global model as a compact factorized network and time it."""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from lowrank import FactorizationReport, RankPolicy, factorize

__all__ = ["load_params", "export_compact", "InferenceTiming", "time_inference"]


def load_params(model: nn.Module, params: dict[str, torch.Tensor]) -> nn.Module:
    """Copy a parameter dict into a model (in place) and return it."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name not in params:
                raise KeyError(f"params: missing tensor for parameter {name!r}")
            p.copy_(params[name])
    return model


def export_compact(
    model: nn.Module, params: dict[str, torch.Tensor], policy: RankPolicy | str,
    *, overrides: dict[str, RankPolicy | str | None] | None = None,
    min_compression_rate: float = 1.0,
) -> tuple[nn.Module, nn.Module, FactorizationReport]:
    """Dense model with ``params`` and its factorized copy under ``policy``.

    ``overrides`` match *parameter* names (``"net.out.weight"``) as in the
    simulator's ``policy_overrides``; they are applied to the owning layers.

    Returns
    -------
    dense, compact : nn.Module
        Both in eval mode.
    report : FactorizationReport
        Ranks and parameter counts.
    """

    dense = load_params(copy.deepcopy(model), params).eval()
    layer_overrides = {pattern.removesuffix(".weight"): value
                       for pattern, value in (overrides or {}).items()}
    compact, report = factorize(dense, policy, overrides=layer_overrides,
                                min_compression_rate=min_compression_rate)
    return dense, compact.eval(), report


@dataclass(frozen=True)
class InferenceTiming:
    """Median seconds per forward pass of a batch, over repeats."""

    dense_seconds: float
    compact_seconds: float

    @property
    def speedup(self) -> float:
        return self.dense_seconds / self.compact_seconds


@torch.no_grad()
def time_inference(dense: nn.Module, compact: nn.Module, x: torch.Tensor, repeats: int = 50
                   ) -> InferenceTiming:
    """Median forward time of both models on ``x``, interleaved in one process."""
    for _ in range(5):
        dense(x), compact(x)
    times: dict[str, list[float]] = {"dense": [], "compact": []}
    for _ in range(repeats):
        for key, model in (("dense", dense), ("compact", compact)):
            t0 = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            times[key].append(time.perf_counter() - t0)
    return InferenceTiming(statistics.median(times["dense"]), statistics.median(times["compact"]))
