"""The untimed runs of the experiments in worker processes (``--jobs N``).

The communication settings, the parameter sweeps and the hyperparameter grid are cut
into small independent parts: one algorithm of one setting (over its seeds), one sweep,
one method of the grid. Every run is seeded by its config (``fl_sim/rng.py``), so the
numbers do not depend on ``N`` or on the order; :func:`untimed` assembles the sections
exactly as a single process would. Timed parts (the compact model's inference time,
the engines' seconds per round) are not run here: ``python -m experiments`` runs them
afterwards in the main process, alone. Workers are started with ``spawn`` (no torch
thread pool is inherited across a fork) and set ``torch.set_num_threads(threads)``.

Each finished part is also written to ``cache/<part>.pkl`` with the commit that made it
(``fl_sim.report.code_version``); a run given the same folder again reuses the parts of
the same commit, so a run that was stopped resumes where it stopped.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from fl_sim.report import code_version

from .communication import run_algo, run_setting
from .hyperparams import HP_METHODS, assemble_hyperparams, run_hp_method
from .parameters import PARAMETER_PARTS, assemble_parameters, run_parameter_part
from .runner import Runner
from .settings import Algo, Grid, Setting

__all__ = ["Part", "part_key", "parts_of", "run_parts", "stored_commits", "untimed"]


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


# the parts whose numbers the report's verdicts and targets rest on run first
_FIRST = ("silo20_digits", "mlp_dirichlet-1.0", "mnist1d_mlp", "silo20_mnist1d")


def _priority(part: Part) -> tuple[int, float]:
    name = part.setting.name if part.setting is not None else part.kind
    rank = next((i for i, p in enumerate(_FIRST) if name.startswith(p)), len(_FIRST))
    return rank, -_weight(part)


def part_key(part: Part) -> str:
    """A file name for ``part``: grid, kind, setting, algorithm or sweep."""
    bits = [part.grid.name, part.kind, part.setting.name if part.setting else "",
            part.algo.label if part.algo else "", part.name]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(b for b in bits if b))


def _load(cache: Path | None, part: Part, commit: str | None) -> tuple[bool, Any]:
    """``(True, result)`` if ``part`` is stored by ``commit`` (``None``: by any commit)."""
    path = None if cache is None else cache / f"{part_key(part)}.pkl"
    if path is None or not path.exists():
        return False, None
    with path.open("rb") as f:
        stored = pickle.load(f)
    if commit is not None and stored.get("commit") != commit:
        return False, None
    return True, stored["result"]


def stored_commits(cache: Path) -> set[str]:
    """The commits that made the parts stored in ``cache``."""
    out = set()
    for path in sorted(cache.glob("*.pkl")):
        with path.open("rb") as f:
            out.add(pickle.load(f).get("commit", "unknown"))
    return out


def _store(cache: Path | None, part: Part, commit: str, result: Any) -> None:
    if cache is None:
        return
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{part_key(part)}.pkl"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as f:
        pickle.dump({"commit": commit, "result": result}, f)
    tmp.replace(path)  # atomic: a stopped run leaves whole files only


def _run(part: Part, runner: Runner) -> Any:
    if part.kind == "algo":
        return run_algo(part.setting, part.algo, part.grid.seeds, runner)
    if part.kind == "parameters":
        return run_parameter_part(part.name, part.grid, runner)
    if part.kind == "hyperparams":
        return run_hp_method(part.name, part.grid, runner)
    raise ValueError(f"part: unknown kind {part.kind!r}")


def _work(part: Part, verbose: bool, threads: int, cache: Path | None,
          commit: str) -> tuple[Any, int, float]:
    torch.set_num_threads(threads)
    runner = Runner(verbose=verbose)
    result = _run(part, runner)
    _store(cache, part, commit, result)
    return result, runner.runs, runner.seconds


def run_parts(parts: list[Part], runner: Runner, jobs: int = 1, threads: int | None = None,
              cache: Path | None = None, stored_only: bool = False) -> list[Any]:
    """The results of ``parts``, in order; ``jobs > 1`` runs them in that many processes.

    With ``jobs == 1`` everything runs in this process on ``runner`` (its data cache is
    shared); otherwise each part gets a fresh :class:`Runner` in a worker, and the
    workers' run counts and seconds are added to ``runner``'s. With ``cache``, parts
    stored there by the same commit are reused and new ones are stored. ``stored_only``
    runs nothing: the parts stored by any commit, ``None`` for the others.
    """
    if jobs < 1:
        raise ValueError(f"--jobs: expected >= 1, got {jobs}")
    commit = code_version()
    out: dict[int, Any] = {}
    for i, p in enumerate(parts):
        hit, result = _load(cache, p, None if stored_only else commit)
        if hit:
            out[i] = result
    if stored_only:
        return [out.get(i) for i in range(len(parts))]
    todo = sorted((i for i in range(len(parts)) if i not in out),
                  key=lambda i: _priority(parts[i]))
    if out and runner.verbose:
        print(f"reusing {len(out)} of {len(parts)} parts from {cache}", flush=True)
    if jobs == 1:
        for i in todo:
            out[i] = _run(parts[i], runner)
            _store(cache, parts[i], commit, out[i])
        return [out[i] for i in range(len(parts))]
    threads = threads or torch.get_num_threads()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {i: pool.submit(_work, parts[i], runner.verbose, threads, cache, commit)
                   for i in todo}
        for i, f in futures.items():
            result, runs, seconds = f.result()
            runner.runs += runs
            runner.seconds += seconds
            out[i] = result
    return [out[i] for i in range(len(parts))]


def untimed(grid: Grid, runner: Runner, jobs: int = 1, threads: int | None = None,
            cache: Path | None = None, partial: bool = False) -> dict:
    """``communication``, ``parameters`` and ``hyperparams`` sections of the results.

    ``partial`` runs nothing and assembles the parts stored in ``cache``: a setting
    without its FedAvg rows, the parameters without one of their sweeps and the grid
    without its FedAvg cells are left out, as are the rows not stored yet;
    ``"parts"`` says how many parts were found.
    """
    parts = parts_of(grid)
    done = run_parts(parts, runner, jobs=jobs, threads=threads, cache=cache,
                     stored_only=partial)
    by_setting: dict[str, dict] = {}
    params, hp = {}, {}
    for p, r in zip(parts, done, strict=True):
        if r is None:
            continue
        if p.kind == "algo":
            by_setting.setdefault(p.setting.name, {})[p.algo.label] = r
        elif p.kind == "parameters":
            params[p.name] = r
        else:
            hp[p.name] = r
    settings = [replace(s, algos=tuple(a for a in s.algos if a.label in by_setting[s.name]))
                if partial else s for s in grid.settings()
                if not partial or "fedavg" in by_setting.get(s.name, {})]
    return {"communication": [run_setting(s, grid.seeds, runner, by_setting.get(s.name))
                              for s in settings],
            "parameters": (assemble_parameters(grid, params)
                           if set(params) == set(PARAMETER_PARTS) else None),
            "hyperparams": assemble_hyperparams(grid, hp) if "fedavg" in hp else None,
            "parts": f"{sum(r is not None for r in done)} of {len(parts)}"}
