"""Experiment 3: the final FedDLR model as a factorized network (lowrank.factorize).

Parameters, FLOPs (multiply-adds per sample, ``theory.costs.factorized_flops``),
measured CPU inference time of the dense and the compact model in the same process
(``fl_sim.export.time_inference``: median of interleaved repeats), and the test
accuracy of both. A FedAvg model truncated after training with the same policy is
the fair baseline: it needs no low-rank training at all.

Beside them (issue 13): FedDLR-EF's compact model (its final model truncated once with
the same policy: the variant trains no low-rank model), and FedHM's and FedLMT's
*natively* factorized models at the same rank, whose compact form is the trained model
itself; their "dense" column is that model rebuilt as dense layers (``densify``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from fl_sim import setup
from fl_sim.export import export_compact, time_inference
from fl_sim.models import LowRankLayer
from theory.costs import factorized_flops

from .runner import Runner
from .settings import MLP_BASE, Grid, factorized_kwargs

__all__ = ["run_computation", "model_flops", "densify"]

NATIVE = ("fedhm", "fedlmt")  # methods whose trained model is factorized



def model_flops(model: nn.Module) -> int:
    """Multiply-adds per sample of the Linear layers of a dense or factorized MLP.

    A :class:`fl_sim.models.LowRankLayer` counts ``r (m + n)`` (its two thin layers).
    """
    total = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            total += factorized_flops(m.out_features, m.in_features, 1).dense
        elif isinstance(m, LowRankLayer) and m.conv is None:
            rows, cols = m.shape
            total += factorized_flops(rows, cols, m.V.shape[0]).factorized
    return total


def densify(model: nn.Module) -> nn.Module:
    """A copy of a natively factorized MLP with each ``LowRankLayer`` rebuilt as ``nn.Linear``."""
    dense = copy.deepcopy(model)
    for name, layer in list(dense.named_modules()):
        if isinstance(layer, LowRankLayer) and layer.conv is None:
            m, n = layer.shape
            lin = nn.Linear(n, m, bias=layer.bias is not None, dtype=layer.U.dtype)
            with torch.no_grad():
                lin.weight.copy_(layer.matrix())
                if layer.bias is not None:
                    lin.bias.copy_(layer.bias)
            parent_name, _, child = name.rpartition(".")
            setattr(dense.get_submodule(parent_name) if parent_name else dense, child, lin)
    return dense.eval()


@torch.no_grad()
def _accuracy(model: nn.Module, x, y) -> float:
    return float((model(x).argmax(-1) == y).double().mean())


def run_computation(grid: Grid, runner: Runner, partition: str = "iid") -> dict:
    base = MLP_BASE.replace(rounds=grid.comm_rounds, seed=grid.seeds[0])
    base = base.replace(partition="iid", dataset_kwargs={}) if partition == "iid" else base
    print(f"[computation] MLP, {partition}, {base.rounds} rounds, export and timing", flush=True)
    data = runner.data(base)
    sim = setup(base, data)
    x, y = sim.data.test_x, sim.data.test_y
    batches = {"batch 1": x[:1], f"batch {x.shape[0]}": x,
               f"batch {8 * x.shape[0]}": x.repeat(8, 1)}
    fedavg = runner(base.replace(algorithm="fedavg"))
    rows = []
    for pol in grid.comp_policies:
        feddlr = runner(base.replace(algorithm="feddlr", policy_down=pol, policy_up=pol))
        ef = runner(base.replace(algorithm="feddlr_ef", policy_down=pol, policy_up=pol))
        models = []
        for source, result in (("feddlr", feddlr), ("fedavg truncated", fedavg),
                               ("feddlr_ef truncated", ef)):
            dense, compact, rep = export_compact(sim.model, result.params, pol,
                                                 overrides=base.policy_overrides)
            models.append((source, dense, compact, rep.ranks, rep.params_before,
                           rep.params_after))
        for method in NATIVE:
            result = runner(base.replace(algorithm=method,
                                         model_kwargs=factorized_kwargs(method, pol)))
            compact = result.model.eval()
            dense = densify(compact)
            ranks = {n: m.V.shape[0] for n, m in compact.named_modules()
                     if isinstance(m, LowRankLayer)}
            models.append((f"{method} (native)", dense, compact, ranks,
                           sum(p.numel() for p in dense.parameters()),
                           sum(p.numel() for p in compact.parameters())))
        for source, dense, compact, ranks, before, after in models:
            row = {"policy": pol, "source": source, "ranks": ranks,
                   "params_dense": before, "params_compact": after,
                   "flops_dense": model_flops(dense), "flops_compact": model_flops(compact),
                   "acc_dense": _accuracy(dense, x, y), "acc_compact": _accuracy(compact, x, y),
                   "timing": {}}
            for name, xb in batches.items():
                t = time_inference(dense, compact, xb, repeats=grid.inference_repeats)
                row["timing"][name] = {"dense_ms": 1e3 * t.dense_seconds,
                                       "compact_ms": 1e3 * t.compact_seconds,
                                       "speedup": t.speedup}
            rows.append(row)
    return {"partition": partition, "rounds": base.rounds, "seed": base.seed,
            "threads": torch.get_num_threads(), "repeats": grid.inference_repeats,
            "rows": rows, "batches": list(batches)}
