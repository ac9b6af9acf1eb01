"""Experiment 3: the final FedDLR model as a factorized network (lowrank.factorize).

Parameters, FLOPs (multiply-adds per sample, ``theory.costs.factorized_flops``),
measured CPU inference time of the dense and the compact model in the same process
(``fl_sim.export.time_inference``: median of interleaved repeats), and the test
accuracy of both. A FedAvg model truncated after training with the same policy is
the fair baseline: it needs no low-rank training at all.
"""

from __future__ import annotations

import torch
from torch import nn

from fl_sim import setup
from fl_sim.export import export_compact, time_inference
from theory.costs import factorized_flops

from .runner import Runner
from .settings import MLP_BASE, Grid

__all__ = ["run_computation", "model_flops"]

POLICIES = ("ratio:0.25", "ratio:0.1", "fixed:8")


def model_flops(model: nn.Module) -> int:
    """Multiply-adds per sample of the Linear layers of a dense or factorized MLP."""
    return sum(factorized_flops(m.out_features, m.in_features, 1).dense
               for m in model.modules() if isinstance(m, nn.Linear))


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
    for pol in POLICIES:
        feddlr = runner(base.replace(algorithm="feddlr", policy_down=pol, policy_up=pol))
        for source, result in (("feddlr", feddlr), ("fedavg truncated", fedavg)):
            dense, compact, rep = export_compact(sim.model, result.params, pol,
                                                 overrides=base.policy_overrides)
            row = {"policy": pol, "source": source, "ranks": rep.ranks,
                   "params_dense": rep.params_before, "params_compact": rep.params_after,
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
