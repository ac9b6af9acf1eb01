"""Equal quality of the fast compression path (a script, not a test).

    .venv/bin/python benchmarks/bench_quality.py [--seeds 0 1 2] [--device auto|cpu|cuda]
                                                [--threads N] [--rounds R]

Runs FedDLR in the demo setting (``fl_sim.presets.DEMO_CONFIG`` with
``algorithm="feddlr"``: 20 clients, Dirichlet(0.5), MLP 64-200-200-10, ratio:0.25 on
both links, classifier dense, 60 rounds) with ``method="exact"`` and
``method="subspace"`` for each seed, and prints the final test accuracy of each and
their difference (target: within 0.3 points, mean over seeds), with the final-round
client and server errors. ``--dataset synthetic`` runs the same setting on generated
data of the same shapes (FedProx synthetic(1, 1), 64 features, at most 200 rows per
client) for a machine without scikit-learn; the target is stated for digits.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from round_probe import code_version

import fl_sim
from fl_sim.device import resolve_device
from fl_sim.presets import DEMO_CONFIG


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=DEMO_CONFIG.rounds)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dataset", default="digits", choices=("digits", "synthetic"),
                        help="digits (the demo's; needs scikit-learn) or synthetic")
    args = parser.parse_args()
    device = resolve_device(args.device)  # chosen once
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, device {device}, torch.get_num_threads() = "
          f"{torch.get_num_threads()}, commit {code_version()}; load average at start "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = DEMO_CONFIG.replace(algorithm="feddlr", rounds=args.rounds, device=str(device),
                               eval_every=args.rounds)
    if args.dataset == "synthetic":
        base = base.replace(dataset="synthetic", dataset_kwargs={
            "dim": 64, "max_samples_per_client": 200})
    print(f"feddlr, demo setting on {args.dataset}, {args.rounds} rounds; final test accuracy "
          "per seed")
    diffs = []
    for seed in args.seeds:
        acc = {}
        for method in ("exact", "subspace"):
            h = fl_sim.run(base.replace(seed=seed, method=method)).history
            last = h.records[-1]
            acc[method] = last.test_accuracy
            print(f"  seed {seed}  {method:9s} accuracy {last.test_accuracy:.4f}  "
                  f"err_client {last.err_client:.5f}  err_server {last.err_server:.5f}  "
                  f"compress {statistics.median(r.compress_seconds for r in h.records) * 1e3:.1f}"
                  f" ms/round")
        diffs.append((acc["subspace"] - acc["exact"]) * 100)
        print(f"  seed {seed}  subspace - exact: {diffs[-1]:+.2f} points")
    mean = statistics.mean(diffs)
    worst = max(abs(d) for d in diffs)
    print(f"mean difference {mean:+.2f} points, largest |difference| {worst:.2f} points: "
          f"{'MET' if abs(mean) <= 0.3 else 'NOT MET'} (target |mean| <= 0.3 points)")
    print(f"load average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
