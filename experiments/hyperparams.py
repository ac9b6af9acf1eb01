"""Experiment 5: one small, equal-budget hyperparameter grid per method (issue 13).

Every low-rank method gets the same grid size and the same budget: its compression knob
at the same three levels (a rank policy for FedDLR, FedDLR-EF, FedHM, FedLMT, FedMUD;
FedPara's parameter ratio gamma, which has no rank policy, at three values) times the
same learning rates, the same rounds and seeds, on the MLP, Dirichlet(1.0) digits
setting. No method is tuned by hand: the table reports every cell, and the best cell of
each method is the one with the highest final accuracy.
"""

from __future__ import annotations

from .runner import Runner, seed_stats
from .settings import MLP_BASE, Grid, factorized_kwargs

__all__ = ["HP_METHODS", "run_hyperparams"]

HP_METHODS = ("feddlr", "feddlr_ef", "fedhm", "fedlmt", "fedpara", "fedmud")


def _changes(method: str, knob) -> dict:
    if method in ("feddlr", "feddlr_ef"):
        return {"algorithm": method, "policy_down": knob, "policy_up": knob}
    return {"algorithm": method, "model_kwargs": factorized_kwargs(method, knob)}


def run_hyperparams(grid: Grid, runner: Runner) -> dict:
    """Rows ``(method, knob, lr, acc_mean, acc_std, total_mb)`` and each method's best cell."""
    base = MLP_BASE.replace(rounds=grid.hp_rounds)
    print(f"[hyperparameters] {len(HP_METHODS)} methods x {len(grid.hp_knobs)} knobs x "
          f"{len(grid.hp_lrs)} lrs x {len(grid.hp_seeds)} seeds x {base.rounds} rounds",
          flush=True)
    fedavg = {lr: seed_stats(runner.seeds(base.replace(algorithm="fedavg", lr=lr),
                                          grid.hp_seeds)) for lr in grid.hp_lrs}
    rows = [{"method": "fedavg", "knob": "-", "lr": lr, "acc_mean": st.acc_mean,
             "acc_std": st.acc_std, "total_mb": st.total_bytes / 1e6}
            for lr, st in fedavg.items()]
    for method in HP_METHODS:
        knobs = grid.hp_gammas if method == "fedpara" else grid.hp_knobs
        for knob in knobs:
            for lr in grid.hp_lrs:
                cfg = base.replace(lr=lr, **_changes(method, knob))
                st = seed_stats(runner.seeds(cfg, grid.hp_seeds))
                rows.append({"method": method, "knob": str(knob), "lr": lr,
                             "acc_mean": st.acc_mean, "acc_std": st.acc_std,
                             "total_mb": st.total_bytes / 1e6})
    best = {}
    for r in rows:
        if r["method"] not in best or r["acc_mean"] > best[r["method"]]["acc_mean"]:
            best[r["method"]] = r
    return {"rounds": base.rounds, "seeds": list(grid.hp_seeds), "lrs": list(grid.hp_lrs),
            "rows": rows, "best": best}
