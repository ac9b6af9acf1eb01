"""Run configurations over seeds, reusing each seed's federated data across algorithms."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np

from fl_sim import History, RunResult, SimConfig, run
from fl_sim.federated_data import DATA_FIELDS, FederatedData, data_from_config

__all__ = ["Diverged", "Runner", "SeedStats", "seed_stats", "bytes_to_target", "diverged_lrs",
           "finished", "format_lrs", "lr_tries", "mean_std"]

LR_TRIES = 3  # the base rate, then half of it, then a quarter


def lr_tries(lr: float) -> list[float]:
    """The learning rates :class:`Runner` tries for a run configured at ``lr``, in order."""
    return [lr / 2**i for i in range(LR_TRIES)]


def format_lrs(lrs) -> str:
    """``"0.1/0.05/0.025"``: rates as the report and the errors print them."""
    return "/".join(f"{v:g}" for v in lrs)


class Diverged(FloatingPointError):
    """A run that diverged at every learning rate :class:`Runner` tries.

    Parameters
    ----------
    algorithm : str
        The config's algorithm.
    seed : int
        The config's seed.
    lrs : tuple of float
        The rates tried, in order.
    message : str
        The last divergence's message.
    """

    def __init__(self, algorithm: str, seed: int, lrs: tuple[float, ...], message: str) -> None:
        super().__init__(f"{algorithm} seed {seed} diverged at lr {format_lrs(lrs)}: {message}")
        self.algorithm, self.seed, self.lrs = algorithm, seed, tuple(lrs)
        self.message = message

    def __reduce__(self):
        # rebuilt from its four fields, so it crosses a process pool (``--jobs N``)
        return (Diverged, (self.algorithm, self.seed, self.lrs, self.message))


def diverged_lrs(h: History) -> list[float] | None:
    """The rates a diverged run tried (:meth:`Runner.seeds`), ``None`` for a finished run."""
    return h.config.get("diverged_lrs")


def finished(histories) -> list[History]:
    """The histories that are not diverged outcomes (:func:`diverged_lrs` is ``None``)."""
    return [h for h in histories if diverged_lrs(h) is None]


class Runner:
    """``runner(config) -> RunResult`` with a cache of federated data per data-defining fields."""

    def __init__(self, verbose: bool = True) -> None:
        self._data: dict[str, FederatedData] = {}
        self.verbose = verbose
        self.runs = 0
        self.seconds = 0.0
        self.backoffs: list[tuple[str, int, float]] = []  # (algorithm, seed, lr that diverged)
        self.diverged: list[Diverged] = []  # runs that diverged at every rate tried

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
        and :attr:`backoffs` lists ``(algorithm, seed, lr that diverged)``. A run that
        diverges at all three rates raises :class:`Diverged` (and is listed in
        :attr:`diverged`); :meth:`seeds` records it as an outcome instead.
        """
        t0 = time.perf_counter()
        tries = lr_tries(cfg.lr)
        for attempt, lr in enumerate(tries):
            cfg = cfg.replace(lr=lr)
            try:
                result = run(cfg, data=self.data(cfg), **kwargs)
                break
            except FloatingPointError as exc:
                if attempt == len(tries) - 1:
                    err = Diverged(cfg.algorithm, cfg.seed, tuple(tries), str(exc)[:120])
                    self.diverged.append(err)
                    self.seconds += time.perf_counter() - t0
                    if self.verbose:
                        print(f"  {err}", flush=True)
                    raise err from exc
                self.backoffs.append((cfg.algorithm, cfg.seed, lr))
                if self.verbose:
                    print(f"  {cfg.algorithm} seed {cfg.seed} diverged at lr {lr:g} "
                          f"({str(exc)[:60]}...); again at lr {tries[attempt + 1]:g}",
                          flush=True)
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
        """The histories of ``cfg`` over ``seeds``; a seed that diverged at every rate
        tried is an empty history whose config holds ``diverged_lrs`` (never dropped:
        :func:`finished` leaves it out of means, :func:`diverged_lrs` reports it)."""
        out = []
        for s in seeds:
            one = cfg.replace(seed=s)
            try:
                out.append(self(one).history)
            except Diverged as err:
                out.append(History(config={**one.to_dict(), "diverged_lrs": list(err.lrs)}))
        return out


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
    diverged: int = 0  # seeds that diverged at every rate tried, left out of the means

    @property
    def total_bytes(self) -> float:
        return self.up_bytes + self.down_bytes


def seed_stats(histories: list[History]) -> SeedStats:
    """Means over the finished seeds (NaN if none finished); ``diverged`` counts the rest."""
    done = finished(histories)
    if not done:
        return SeedStats(math.nan, math.nan, math.nan, math.nan, math.nan, len(histories))
    histories, n_div = done, len(histories) - len(done)
    accs = [h.column("test_accuracy")[-1] for h in histories]
    m, s = mean_std(accs)
    secs = [r.seconds for h in histories for r in h.records[1:]] or \
        [r.seconds for h in histories for r in h.records]
    return SeedStats(m, s, float(np.mean([sum(h.column("bytes_up")) for h in histories])),
                     float(np.mean([sum(h.column("bytes_down")) for h in histories])),
                     float(np.median(secs)), n_div)
