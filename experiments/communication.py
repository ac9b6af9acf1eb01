"""Experiment 1: communication efficiency, every algorithm in every setting, over seeds."""

from __future__ import annotations

import math

import numpy as np

from fl_sim import History

from .runner import Runner, bytes_to_target, diverged_lrs, finished, mean_std, seed_stats
from .settings import Algo, Grid, Setting

__all__ = ["run_algo", "run_setting", "run_communication"]


def _mean_curve(histories, key: str) -> list[float]:
    if key == "cumulative_bytes":
        cols = [h.cumulative_bytes for h in histories]
    else:
        cols = [[math.nan if v is None else v for v in h.column(key)] for h in histories]
    return [float(v) for v in np.mean(np.asarray(cols, dtype=np.float64), axis=0)]


def run_algo(setting: Setting, algo: Algo, seeds, runner: Runner) -> list[History]:
    """The histories of one algorithm of a setting, over ``seeds``."""
    return runner.seeds(algo.config(setting.base), seeds)


def run_setting(setting: Setting, seeds, runner: Runner,
                runs: dict[str, list[History]] | None = None) -> dict:
    """Rows of the table and the mean curves of one setting.

    ``runs`` (label -> histories over ``seeds``, e.g. from worker processes) skips the
    runs; missing labels are run here. A seed that diverged at every learning rate the
    runner tries (:meth:`experiments.runner.Runner.seeds`) is left out of the row's means
    and curve and listed in its ``diverged`` (seed and rates); a row whose every seed
    diverged has NaN numbers and no curve.
    """
    print(f"[communication] {setting.title}: {len(setting.algos)} algorithms x "
          f"{len(seeds)} seeds x {setting.base.rounds} rounds", flush=True)
    runs = dict(runs or {})
    runs = {a.label: runs[a.label] if a.label in runs else run_algo(setting, a, seeds, runner)
            for a in setting.algos}
    fedavg = finished(runs["fedavg"])
    base_acc, _ = mean_std([h.column("test_accuracy")[-1] for h in fedavg])
    # every FedAvg seed diverged: no target (NaN), no row reaches it
    target = (math.floor(100 * setting.target_fraction * base_acc) / 100
              if math.isfinite(base_acc) else math.nan)
    rows, curves = [], {}
    base_total = seed_stats(fedavg).total_bytes
    base_to_target, _ = mean_std([bytes_to_target(h, target) for h in fedavg])
    for label, all_hs in runs.items():
        st = seed_stats(all_hs)
        hs = finished(all_hs)
        diverged = [{"seed": h.config["seed"], "lrs": diverged_lrs(h)} for h in all_hs
                    if diverged_lrs(h) is not None]
        reached = [bytes_to_target(h, target) for h in hs]
        to_target, _ = mean_std(reached)
        n_reached = sum(b is not None for b in reached)
        rows.append({
            "algorithm": label, "acc_mean": st.acc_mean, "acc_std": st.acc_std,
            "up_mb": st.up_bytes / 1e6, "down_mb": st.down_bytes / 1e6,
            "total_mb": st.total_bytes / 1e6, "ratio": base_total / st.total_bytes,
            "to_target_mb": to_target / 1e6, "reached": n_reached, "seeds": len(hs),
            "to_target_ratio": (base_to_target / to_target
                                if hs and n_reached == len(hs) and not math.isnan(base_to_target)
                                else math.nan),
            "diverged": diverged,  # seeds left out: diverged at every rate tried
            "acc_gap": st.acc_mean - base_acc,
            "lrs": sorted({h.config["lr"] for h in hs}),  # below the base lr: diverged there
            "seconds_per_round": st.seconds_per_round,
            "any_nan": any(not math.isfinite(r.train_loss) for h in hs for r in h.records
                           if r.train_loss is not None),
            # the last round's downlink ranks of the first seed (a ratchet shows here)
            "ranks_down_last": dict(hs[0].records[-1].ranks_down or {}) if hs else {},
        })
        if not hs:
            continue
        curves[label] = {"round": hs[0].column("round"),
                         "accuracy": _mean_curve(hs, "test_accuracy"),
                         "cumulative_mb": [b / 1e6 for b in _mean_curve(hs, "cumulative_bytes")]}
    return {"name": setting.name, "title": setting.title, "target": target,
            "rounds": setting.base.rounds, "seeds": list(seeds),
            "config": {k: v for k, v in setting.base.to_dict().items() if k != "algorithm"},
            "rows": rows, "curves": curves}


def run_communication(grid: Grid, runner: Runner) -> list[dict]:
    return [run_setting(s, grid.seeds, runner) for s in grid.settings()]
