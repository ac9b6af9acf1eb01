"""The independent parts of the experiments in worker processes (``--jobs N``).

The communication settings, the parameter sweeps and the hyperparameter grid share no
state except the cache of federated data, so they can run in ``N`` processes at once;
every run is seeded by its config (``fl_sim/rng.py``), so the numbers do not depend on
``N`` or on the order. Timed parts (the compact model's inference time, the engines'
seconds per round) are not run here: ``python -m experiments`` runs them afterwards in
the main process, alone. Workers are started with ``spawn`` (no torch thread pool is
inherited across a fork) and set ``torch.set_num_threads(threads)``.
"""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .communication import run_setting
from .hyperparams import run_hyperparams
from .parameters import run_parameters
from .runner import Runner
from .settings import Grid, Setting

__all__ = ["Part", "parts_of", "run_parts"]


@dataclass(frozen=True)
class Part:
    """One independent part: ``kind`` is ``"setting"``, ``"parameters"`` or ``"hyperparams"``."""

    kind: str
    grid: Grid
    setting: Setting | None = None


def parts_of(grid: Grid) -> list[Part]:
    """Every independent part of ``grid``: its communication settings, sweeps and grid."""
    return ([Part("setting", grid, s) for s in grid.settings()]
            + [Part("parameters", grid), Part("hyperparams", grid)])


def _weight(part: Part) -> float:
    """A rough cost, to start the longest parts first (the order of results is unchanged)."""
    if part.kind == "parameters":
        return math.inf  # the longest part of the full grid
    if part.kind == "hyperparams":
        return 0.0
    s = part.setting
    conv = 4.0 if s.base.model in ("cnn", "cnn1d") else 1.0
    return conv * s.base.rounds * len(s.algos) * len(part.grid.seeds)


def _run(part: Part, runner: Runner) -> Any:
    if part.kind == "setting":
        return run_setting(part.setting, part.grid.seeds, runner)
    if part.kind == "parameters":
        return run_parameters(part.grid, runner)
    if part.kind == "hyperparams":
        return run_hyperparams(part.grid, runner)
    raise ValueError(f"part: unknown kind {part.kind!r}")


def _work(part: Part, verbose: bool, threads: int) -> tuple[Any, int, float]:
    torch.set_num_threads(threads)
    runner = Runner(verbose=verbose)
    return _run(part, runner), runner.runs, runner.seconds


def run_parts(parts: list[Part], runner: Runner, jobs: int = 1,
              threads: int | None = None) -> list[Any]:
    """The results of ``parts``, in order; ``jobs > 1`` runs them in that many processes.

    With ``jobs == 1`` everything runs in this process on ``runner`` (its data cache is
    shared); otherwise each part gets a fresh :class:`Runner` in a worker, and the
    workers' run counts and seconds are added to ``runner``'s.
    """
    if jobs < 1:
        raise ValueError(f"--jobs: expected >= 1, got {jobs}")
    if jobs == 1:
        return [_run(p, runner) for p in parts]
    threads = threads or torch.get_num_threads()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        order = sorted(range(len(parts)), key=lambda i: -_weight(parts[i]))
        futures = dict.fromkeys(range(len(parts)))
        for i in order:
            futures[i] = pool.submit(_work, parts[i], runner.verbose, threads)
        out = []
        for f in futures.values():
            result, runs, seconds = f.result()
            runner.runs += runs
            runner.seconds += seconds
            out.append(result)
    return out
