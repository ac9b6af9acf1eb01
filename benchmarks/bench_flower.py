"""fl_sim against Flower's simulation engine on one workload (a script, not a test).

    .venv/bin/python benchmarks/bench_flower.py [--rounds R] [--clients N] [--quick]
                                                [--threads T] [--json PATH]
                                                [--method ALG [ALG ...]]
                                                [--truncation exact|subspace|...]

For FedAvg and FedDLR (ratio:0.25 on both links, classifier dense), or the algorithms
named by ``--method`` (any of ``fl_sim.algorithms.ALGORITHMS``, one at a time to time it
alone), with the truncation ``--truncation`` (``SimConfig.method``; default the
config's, ``exact``), on
``fl_sim.presets.BENCH_CONFIG`` (digits IID, MLP 64-200-200-10, E = 10 steps of B = 10,
full participation; 100 clients unless ``--clients``), runs ``fl_sim.run`` and
``fl_sim.flower.simulation.simulate`` (via ``experiments.flower_engine.run_flower``) and
prints, per engine and algorithm: the median wall time per round over rounds 2..R (both
record ``RoundRecord.seconds``: from sending to aggregating, evaluation excluded), the
ratio Flower / fl_sim, whether the payload bytes agree round by round, the final
accuracies, and Flower's envelope overhead (serialized message bytes over payload bytes).
Ray's start-up is excluded from the per-round times and shown as the whole run's time.

Requires the ``flower`` extra (``pip install -e ".[flower]"``); prints why and exits 0
without it. The numbers depend on the machine and its load (printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

import torch
from tabulate import tabulate

from fl_sim import run
from fl_sim.algorithms import ALGORITHMS as REGISTRY
from fl_sim.json_file import write_json
from fl_sim.presets import BENCH_CONFIG
from fl_sim.report import code_version

ALGORITHMS = ("fedavg", "feddlr")  # the default --method
TRUNCATIONS = ("exact", "randomized", "power", "subspace")  # SimConfig.method


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--clients", type=int, default=BENCH_CONFIG.num_clients)
    ap.add_argument("--quick", action="store_true", help="20 clients, 3 rounds")
    ap.add_argument("--json", default=None, help="also write the numbers to this file")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of this process (fl_sim and Flower's ServerApp; "
                         "default 1: Ray runs each ClientApp on 1 CPU, and on a shared "
                         "machine several intra-op threads of fl_sim mostly wait for each "
                         "other); 0 keeps torch's default")
    ap.add_argument("--method", nargs="+", default=list(ALGORITHMS), choices=sorted(REGISTRY),
                    metavar="ALG", help="algorithms to time, in order (default: fedavg feddlr); "
                                        f"any of {', '.join(sorted(REGISTRY))}")
    ap.add_argument("--truncation", default=BENCH_CONFIG.method, choices=TRUNCATIONS,
                    help="SimConfig.method of the compressing algorithms (default "
                         f"{BENCH_CONFIG.method}; subspace: the warm-started fast path)")
    args = ap.parse_args(argv)
    if importlib.util.find_spec("flwr") is None:
        print("flwr is not installed: pip install -e '.[flower]' to run this benchmark")
        return 0
    from experiments.flower_engine import run_flower

    rounds, clients = (3, 20) if args.quick else (args.rounds, args.clients)
    if rounds < 2:
        ap.error("--rounds: needs >= 2 (round 1 is warm-up)")
    if args.threads:
        torch.set_num_threads(args.threads)
    base = BENCH_CONFIG.replace(num_clients=clients, rounds=rounds, device="cpu",
                                method=args.truncation)
    print(f"commit {code_version()}; command: python benchmarks/bench_flower.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    load_start = list(os.getloadavg())
    print(f"workload: BENCH_CONFIG with {clients} clients, {rounds} rounds, truncation "
          f"{args.truncation}, CPU, "
          f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average "
          f"{load_start[0]:.1f} at start\n")
    rows, results = [], {}
    for algo in args.method:
        cfg = base.replace(algorithm=algo)
        t0 = time.perf_counter()
        ours = run(cfg).history
        ours_total = time.perf_counter() - t0
        theirs = run_flower(cfg, rounds)
        ours_s = statistics.median(ours.column("seconds")[1:])
        theirs_s = statistics.median(theirs["seconds_per_round"][1:])
        same_bytes = (ours.column("bytes_up") == theirs["bytes_up"]
                      and ours.column("bytes_down") == theirs["bytes_down"])
        payload = sum(theirs["bytes_up"]) + sum(theirs["bytes_down"])
        wire = sum(theirs["wire_up"]) + sum(theirs["wire_down"])
        results[algo] = {"fl_sim_median_s": ours_s, "flower_median_s": theirs_s,
                         "ratio": theirs_s / ours_s, "same_payload_bytes": same_bytes,
                         "fl_sim_final_acc": ours.column("test_accuracy")[-1],
                         "flower_final_acc": theirs["accuracy"][-1],
                         "envelope_overhead": wire / payload - 1,
                         "fl_sim_total_s": ours_total, "flower_total_s": theirs["total_seconds"],
                         "flwr_version": theirs["flwr_version"]}
        r = results[algo]
        rows.append([algo, f"{ours_s:.3f}", f"{theirs_s:.3f}", f"{r['ratio']:.1f}x",
                     "yes" if same_bytes else "NO", f"{r['fl_sim_final_acc']:.4f}",
                     f"{r['flower_final_acc']:.4f}", f"{100 * r['envelope_overhead']:.2f}%",
                     f"{ours_total:.1f} / {theirs['total_seconds']:.1f}"])
    print(tabulate(rows, headers=["algorithm", "fl_sim s/round", "Flower s/round",
                                  "Flower / fl_sim", "same payload bytes", "fl_sim acc",
                                  "Flower acc", "envelope", "whole run s (fl_sim / Flower)"],
                   tablefmt="github", disable_numparse=True))
    load_end = os.getloadavg()
    print(f"\nload average at the end: {load_end[0]:.1f} (1 min), {load_end[1]:.1f} (5 min), "
          f"{load_end[2]:.1f} (15 min)")
    print(f"(median over rounds 2..{rounds}; Flower {results[args.method[0]]['flwr_version']}, "
          f"simulation engine with Ray, 1 CPU per ClientApp; envelope = Flower's serialized "
          f"message bytes / payload bytes - 1)")
    if args.json:
        write_json(args.json, {"commit": code_version(), "clients": clients, "rounds": rounds,
                               "truncation": args.truncation,
                               "load_start": load_start, "load_end": list(load_end),
                               "torch_threads": torch.get_num_threads(),
                               "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
