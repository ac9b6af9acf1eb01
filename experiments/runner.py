"""Run configurations over seeds, reusing each seed's federated data across algorithms."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from fl_sim import History, RunResult, SimConfig, run
from fl_sim.federated_data import DATA_FIELDS, FederatedData, data_from_config

__all__ = ["Runner", "SeedStats", "seed_stats", "bytes_to_target", "mean_std"]


class Runner:
    """``runner(config) -> RunResult`` with a cache of federated data per data-defining fields."""

    def __init__(self, verbose: bool = True) -> None:
        self._data: dict[str, FederatedData] = {}
        self.verbose = verbose
        self.runs = 0
        self.seconds = 0.0
        self.backoffs: list[tuple[str, int, float]] = []  # (algorithm, seed, lr that diverged)

    def data(self, cfg: SimConfig) -> FederatedData:
        """The config's data (:func:`fl_sim.federated_data.data_from_config`), cached."""
        key = json.dumps([getattr(cfg, f) for f in DATA_FIELDS], sort_keys=True)
        if key not in self._data:
            self._data[key] = data_from_config(cfg)
        return self._data[key]

    def __call__(self, cfg: SimConfig, **kwargs) -> RunResult:
        """Run ``cfg``; if it diverges, run it again at half the learning rate (twice at most).

        The same rule for every algorithm (no method is tuned by hand): a run that stops
        with :class:`fl_sim.simulator.DivergenceError` or a non-finite loss is repeated
        at ``lr / 2``, then ``lr / 4``; the history's config records the rate that ran,
        and :attr:`backoffs` lists ``(algorithm, seed, lr that diverged)``.
        """
        t0 = time.perf_counter()
        for attempt in range(3):
            try:
                result = run(cfg, data=self.data(cfg), **kwargs)
                break
            except FloatingPointError as exc:
                if attempt == 2:
                    raise
                self.backoffs.append((cfg.algorithm, cfg.seed, cfg.lr))
                if self.verbose:
                    print(f"  {cfg.algorithm} seed {cfg.seed} diverged at lr {cfg.lr:g} "
                          f"({str(exc)[:60]}...); again at lr {cfg.lr / 2:g}", flush=True)
                cfg = cfg.replace(lr=cfg.lr / 2)
        h = result.history
        dt = time.perf_counter() - t0
        self.runs += 1
        self.seconds += dt
        if self.verbose:
            acc = h.column("test_accuracy")[-1]
            acc_s = f"{acc:.4f}" if acc is not None else "-"
            print(f"  [{self.runs:4d}] {cfg.algorithm:<15} {cfg.model:<4} seed {cfg.seed} "
                  f"R={cfg.rounds:<4} acc {acc_s}  {h.cumulative_bytes[-1] / 1e6:8.2f} MB  "
                  f"{dt:6.1f} s", flush=True)
        return result

    def seeds(self, cfg: SimConfig, seeds) -> list[History]:
        """The histories of ``cfg`` over ``seeds``."""
        return [self(cfg.replace(seed=s)).history for s in seeds]


def mean_std(values) -> tuple[float, float]:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if a.size == 0:
        return math.nan, math.nan
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def bytes_to_target(h: History, target: float) -> int | None:
    """Cumulative bytes (up + down) at the first round with test accuracy >= target."""
    for acc, b in zip(h.column("test_accuracy"), h.cumulative_bytes, strict=True):
        if acc is not None and acc >= target:
            return b
    return None


@dataclass(frozen=True)
class SeedStats:
    """Summary of one configuration over seeds."""

    acc_mean: float
    acc_std: float
    up_bytes: float  # mean over seeds of the total uplink bytes
    down_bytes: float
    seconds_per_round: float  # median over seeds and rounds 2.. of the wall time per round

    @property
    def total_bytes(self) -> float:
        return self.up_bytes + self.down_bytes


def seed_stats(histories: list[History]) -> SeedStats:
    accs = [h.column("test_accuracy")[-1] for h in histories]
    m, s = mean_std(accs)
    secs = [r.seconds for h in histories for r in h.records[1:]] or \
        [r.seconds for h in histories for r in h.records]
    return SeedStats(m, s, float(np.mean([sum(h.column("bytes_up")) for h in histories])),
                     float(np.mean([sum(h.column("bytes_down")) for h in histories])),
                     float(np.median(secs)))
