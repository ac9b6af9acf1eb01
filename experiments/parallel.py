"""The untimed runs of the experiments in worker processes (``--jobs N``).

The communication settings, the parameter sweeps and the hyperparameter grid are cut
into small independent parts: one algorithm of one setting (over its seeds), one sweep,
one method of the grid. Every run is seeded by its config (``fl_sim/rng.py``), so the
numbers do not depend on ``N`` or on the order; :func:`untimed` assembles the sections
exactly as a single process would. Timed parts (the compact model's inference time,
the engines' seconds per round) are not run here: ``python -m experiments`` runs them
afterwards in the main process, alone. Workers are started with ``spawn`` (no torch
thread pool is inherited across a fork) and set ``torch.set_num_threads(threads)``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from .communication import run_algo, run_setting
from .hyperparams import HP_METHODS, assemble_hyperparams, run_hp_method
from .parameters import PARAMETER_PARTS, assemble_parameters, run_parameter_part
from .runner import Runner
from .settings import Algo, Grid, Setting

__all__ = ["Part", "parts_of", "run_parts", "untimed"]


@dataclass(frozen=True)
class Part:
    """One independent piece of work.

    ``kind`` is ``"algo"`` (``algo`` of ``setting`` over the grid's seeds), ``"parameters"``
    (the sweep ``name`` of :data:`experiments.parameters.PARAMETER_PARTS`) or
    ``"hyperparams"`` (the method ``name`` of the grid, or ``"fedavg"``).
    """

    kind: str
    grid: Grid
    setting: Setting | None = None
    algo: Algo | None = None
    name: str = ""


def parts_of(grid: Grid) -> list[Part]:
    """Every untimed part of ``grid``, in the order a single process runs them."""
    parts = [Part("algo", grid, s, a) for s in grid.settings() for a in s.algos]
    parts += [Part("parameters", grid, name=n) for n in PARAMETER_PARTS]
    parts += [Part("hyperparams", grid, name=m) for m in ("fedavg", *HP_METHODS)]
    return parts


def _weight(part: Part) -> float:
    """A rough cost, to start the longest parts first (the results keep their order)."""
    g = part.grid
    if part.kind == "algo":
        conv = 5.0 if part.setting.base.model in ("cnn", "cnn1d") else 1.0
        return conv * part.setting.base.rounds * len(g.seeds)
    if part.kind == "parameters":
        runs = {"policy": 1 + len(g.policies), "E": 2 * len(g.local_steps),
                "NK": 2 * len(g.clients), "alpha": 2 * len(g.alphas), "convex": 0.5}[part.name]
        return runs * g.param_rounds * len(g.param_seeds)
    return 6 * g.hp_rounds * len(g.hp_seeds)


def _run(part: Part, runner: Runner) -> Any:
    if part.kind == "algo":
        return run_algo(part.setting, part.algo, part.grid.seeds, runner)
    if part.kind == "parameters":
        return run_parameter_part(part.name, part.grid, runner)
    if part.kind == "hyperparams":
        return run_hp_method(part.name, part.grid, runner)
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
        futures: dict[int, Any] = {}
        for i in sorted(range(len(parts)), key=lambda i: -_weight(parts[i])):
            futures[i] = pool.submit(_work, parts[i], runner.verbose, threads)
        out = []
        for i in range(len(parts)):
            result, runs, seconds = futures[i].result()
            runner.runs += runs
            runner.seconds += seconds
            out.append(result)
    return out


def untimed(grid: Grid, runner: Runner, jobs: int = 1, threads: int | None = None) -> dict:
    """``communication``, ``parameters`` and ``hyperparams`` sections of the results."""
    parts = parts_of(grid)
    done = run_parts(parts, runner, jobs=jobs, threads=threads)
    by_setting: dict[str, dict] = {}
    params, hp = {}, {}
    for p, r in zip(parts, done, strict=True):
        if p.kind == "algo":
            by_setting.setdefault(p.setting.name, {})[p.algo.label] = r
        elif p.kind == "parameters":
            params[p.name] = r
        else:
            hp[p.name] = r
    return {"communication": [run_setting(s, grid.seeds, runner, by_setting[s.name])
                              for s in grid.settings()],
            "parameters": assemble_parameters(grid, params),
            "hyperparams": assemble_hyperparams(grid, hp)}
