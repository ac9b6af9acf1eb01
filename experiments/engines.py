"""Experiment 4: simulator performance, fl_sim against Flower's simulation engine.

The workload of benchmarks/bench_simulator.py: digits (IID), MLP 64-200-200-10, 100
clients, full participation, E = 10 local SGD steps of B = 10 samples. Both engines
run FedAvg and FedDLR (:mod:`fl_sim.flower`: the same data, model, minibatches and
algorithm object on Flower's Message API). The median wall time per round drops
round 1 (warm-up) on both engines.
"""

from __future__ import annotations

import importlib.util
import statistics
import traceback

from fl_sim.presets import BENCH_CONFIG

from .runner import Runner

__all__ = ["run_engines"]

ALGORITHMS = ("fedavg", "feddlr")


def run_engines(rounds: int, runner: Runner, flower: bool = True) -> dict:
    """Seconds per round of fl_sim and (when installed and asked) Flower, per algorithm.

    ``out["flower"]`` is Flower's FedAvg (with ``ratio_to_fl_sim``), and
    ``out["flower_by_algorithm"]`` holds every algorithm's.
    """
    print(f"[engines] fl_sim vs Flower, {rounds} rounds", flush=True)
    out: dict = {"rounds": rounds, "fl_sim": {}}
    for algo in ALGORITHMS:
        h = runner(BENCH_CONFIG.replace(algorithm=algo, rounds=rounds)).history
        secs = [r.seconds for r in h.records[1:]]
        out["fl_sim"][algo] = {"median_s": statistics.median(secs), "seconds": secs,
                               "final_acc": h.column("test_accuracy")[-1]}
    if not flower:
        out["flower"] = {"status": "skipped (--quick or --no-flower)"}
        return out
    if importlib.util.find_spec("flwr") is None:
        out["flower"] = {"status": "not installed: pip install -e '.[flower]' "
                                   "(flwr[simulation]) to run it"}
        return out
    try:
        from .flower_engine import run_flower

        by_algo = {}
        for algo in ALGORITHMS:
            res = run_flower(BENCH_CONFIG.replace(algorithm=algo), rounds)
            res["median_s"] = statistics.median(res["seconds_per_round"][1:])
            res["ratio_to_fl_sim"] = res["median_s"] / out["fl_sim"][algo]["median_s"]
            res["status"] = "ran"
            by_algo[algo] = res
        out["flower"] = by_algo["fedavg"]
        out["flower_by_algorithm"] = by_algo
    except Exception as exc:  # report why Flower could not run, do not fail the report
        out["flower"] = {"status": f"failed: {type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=5)}
    return out
