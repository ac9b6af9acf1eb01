"""experiments.parallel: the same numbers in worker processes, resume from stored parts,
and a partial report's assembly (tiny grid: one cross-silo setting, 1 round, 1 seed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

import experiments.parallel as parallel
from experiments.parallel import part_key, parts_of, run_parts, untimed
from experiments.runner import Runner
from experiments.settings import ALGOS, LOWRANK_ALGOS, QUICK

TINY = replace(QUICK, seeds=(0,), comm_rounds=1, mlp_partitions=(), cnn_partitions=(),
               mnist1d_models=(), silo_datasets=("digits",),
               silo_algos=(ALGOS[0], LOWRANK_ALGOS[1]))


def _summary(histories):
    return [(h.column("test_accuracy"), h.cumulative_bytes) for h in histories]


@pytest.mark.timeout(600)  # two spawned workers import torch
def test_workers_give_the_same_numbers_and_a_stopped_run_resumes(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "code_version", lambda: "c0")  # HEAD moves in a shared tree
    parts = [p for p in parts_of(TINY) if p.kind == "algo"]
    assert [p.algo.label for p in parts] == ["fedavg", "feddlr_ef fixed:8"]
    alone = run_parts(parts, Runner(verbose=False), jobs=1)
    cache = tmp_path / "parts"
    workers = Runner(verbose=False)
    both = run_parts(parts, workers, jobs=2, threads=1, cache=cache)
    assert workers.runs == 2
    assert [_summary(h) for h in both] == [_summary(h) for h in alone]
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{part_key(p)}.pkl" for p in parts)

    (cache / f"{part_key(parts[1])}.pkl").unlink()  # as if the run stopped before it
    again = Runner(verbose=False)
    resumed = run_parts(parts, again, jobs=1, cache=cache)
    assert again.runs == 1  # only the missing part ran
    assert [_summary(h) for h in resumed] == [_summary(h) for h in alone]

    monkeypatch.setattr(parallel, "code_version", lambda: "c1")  # another commit: no reuse
    other = Runner(verbose=False)
    run_parts(parts[:1], other, jobs=1, cache=cache)
    assert other.runs == 1

    (cache / f"{part_key(parts[1])}.pkl").unlink()
    res = untimed(TINY, Runner(verbose=False), cache=cache, partial=True)  # runs nothing
    assert res["parts"] == f"1 of {len(parts_of(TINY))}"
    [setting] = res["communication"]
    assert [r["algorithm"] for r in setting["rows"]] == ["fedavg"]
    assert res["parameters"] is None and res["hyperparams"] is None
