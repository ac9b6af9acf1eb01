"""Experiment 5: one small, equal-budget hyperparameter grid per method (issue 13).

Every low-rank method gets the same grid size and the same budget: its compression knob
at the same three levels (a rank policy for FedDLR, FedDLR-EF, FedHM, FedLMT, FedMUD;
FedPara's parameter ratio gamma, which has no rank policy, at three values) times the
same learning rates, the same rounds and seeds, on the MLP, Dirichlet(1.0) digits
setting. No method is tuned by hand: the table reports every cell, and the best cell of
each method is the one with the highest final accuracy.
"""

from __future__ import annotations

import math

from .runner import Runner, seed_stats
from .settings import MLP_BASE, Grid, factorized_kwargs

__all__ = ["HP_METHODS", "assemble_hyperparams", "run_hp_method", "run_hyperparams"]

HP_METHODS = ("feddlr", "feddlr_ef", "fedhm", "fedlmt", "fedpara", "fedmud")


def _changes(method: str, knob) -> dict:
    if method in ("feddlr", "feddlr_ef"):
        return {"algorithm": method, "policy_down": knob, "policy_up": knob}
    return {"algorithm": method, "model_kwargs": factorized_kwargs(method, knob)}


def run_hp_method(method: str, grid: Grid, runner: Runner) -> list[dict]:
    """The rows of one method (``"fedavg"``: the learning rates only) of the grid."""
    base = MLP_BASE.replace(rounds=grid.hp_rounds)
    if method == "fedavg":
        cells = [({"algorithm": "fedavg"}, "-", lr) for lr in grid.hp_lrs]
    else:
        knobs = grid.hp_gammas if method == "fedpara" else grid.hp_knobs
        cells = [(_changes(method, k), str(k), lr) for k in knobs for lr in grid.hp_lrs]
    rows = []
    for changes, knob, lr in cells:
        st = seed_stats(runner.seeds(base.replace(lr=lr, **changes), grid.hp_seeds))
        rows.append({"method": method, "knob": knob, "lr": lr, "acc_mean": st.acc_mean,
                     "acc_std": st.acc_std, "total_mb": st.total_bytes / 1e6,
                     "diverged": st.diverged})
    return rows


def assemble_hyperparams(grid: Grid, rows_by_method: dict[str, list[dict]]) -> dict:
    """The grid's table and each method's best cell (the highest final accuracy)."""
    rows = [r for m in ("fedavg", *HP_METHODS) for r in rows_by_method.get(m, [])]
    best = {}
    for r in rows:
        if not math.isfinite(r["acc_mean"]):  # every seed diverged
            continue
        if r["method"] not in best or r["acc_mean"] > best[r["method"]]["acc_mean"]:
            best[r["method"]] = r
    return {"rounds": grid.hp_rounds, "seeds": list(grid.hp_seeds), "lrs": list(grid.hp_lrs),
            "rows": rows, "best": best}


def run_hyperparams(grid: Grid, runner: Runner) -> dict:
    """Rows ``(method, knob, lr, acc_mean, acc_std, total_mb)`` and each method's best cell."""
    print(f"[hyperparameters] {len(HP_METHODS)} methods x {len(grid.hp_knobs)} knobs x "
          f"{len(grid.hp_lrs)} lrs x {len(grid.hp_seeds)} seeds x {grid.hp_rounds} rounds",
          flush=True)
    return assemble_hyperparams(grid, {m: run_hp_method(m, grid, runner)
                                       for m in ("fedavg", *HP_METHODS)})
