"""Time and memory of a round against participants and population (a script, not a test).

    .venv/bin/python benchmarks/bench_scaling.py [--device auto|cpu|cuda] [--threads N]
                                                 [--plot docs/benchmarks_scaling.png]
                                                 [--json PATH] [--quick]

Workload: small synthetic data (``ridge``: 8 samples of dimension 16 per client, 6 for
training), an MLP 16-64-64-10 (5,898 parameters), E = 5 local steps of B = 4 samples,
``scheme2`` participation (K of N clients drawn uniformly each round); FedAvg and
FedDLR with the fast ``subspace`` method (ratio:0.25 on both links, output layer dense),
participants processed ``chunk_size`` (64) at a time.

Configurations, each in a fresh subprocess: participants K = 1,000 and 10,000 out of
N = 10,000 clients; population N = 10,000 and 100,000 clients with K = 1,000. Prints, per
configuration, the median wall time of rounds 2..4 (and the process's CPU time, which
other processes on a shared machine inflate less) and the growth of the resident set
over the rounds (``VmHWM`` after them minus ``VmRSS`` before the first, ``VmHWM`` reset
to the current RSS after setup so that setup's own peak does not count; on CUDA,
``max_memory_allocated`` growth), and the ratios that the targets read: time and
memory x10 participants (target: <= ~10x, linear) and x10 population (target: ~1x,
flat). ``--plot`` draws CPU time and memory (log-log) into a PNG. The CPU time is split
into user and system time (``getrusage``) with the minor page faults of each round: the
system time is the kernel's, mostly zeroing fresh pages (what made FedAvg superlinear in
K until the trainer reused its output stack, docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from round_probe import (
    code_version,
    load,
    one_round,
    prepare,
    proc_status_kb,
    reset_peak_rss,
    stack_bytes,
)

from fl_sim import SimConfig
from fl_sim.device import resolve_device

BASE = SimConfig(dataset="ridge", model="mlp", model_kwargs={"hidden": [64, 64]},
                 dataset_kwargs={"samples_per_client": 8, "dim": 16, "out_dim": 10},
                 test_fraction=0.25, local_steps=5, batch_size=4, lr=0.05,
                 participation="scheme2", clients_per_round=1000, eval_every=1000,
                 policy_down="ratio:0.25", policy_up="ratio:0.25",
                 policy_overrides={"*out*": None})
ALGORITHMS = {"fedavg": {"algorithm": "fedavg"},
              "feddlr subspace": {"algorithm": "feddlr", "method": "subspace"}}
POINTS = [(10_000, 1_000), (10_000, 10_000), (100_000, 1_000)]  # (N, K)
QUICK_POINTS = [(1_000, 100), (1_000, 1_000), (10_000, 100)]  # --quick: a tenth of each
ROUNDS = 4


def child(spec: str, device: torch.device) -> None:
    """``ROUNDS`` rounds of one configuration; prints JSON (run in a subprocess)."""
    args = json.loads(spec)
    cfg = BASE.replace(num_clients=args["n"], clients_per_round=args["k"], device=str(device),
                       **ALGORITHMS[args["algorithm"]])
    sim, state = prepare(cfg)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cuda_before = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    # the rounds' own peak: setup's (e.g. building 100,000 clients' data) is not a round's
    reset = reset_peak_rss()
    rss_before = proc_status_kb("VmRSS")
    seconds, cpu_seconds, user, system, faults = [], [], [], [], []
    for r in range(ROUNDS):
        c0, u0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        state, _, secs = one_round(sim, state, r)
        c1, u1 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        cpu_seconds.append(c1 - c0)
        user.append(u1.ru_utime - u0.ru_utime)
        system.append(u1.ru_stime - u0.ru_stime)
        faults.append(u1.ru_minflt - u0.ru_minflt)
        seconds.append(secs)
    cuda = (torch.cuda.max_memory_allocated(device) - cuda_before
            if device.type == "cuda" else None)
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "user_seconds": user,
                      "system_seconds": system, "minor_faults": faults, "hwm_reset": reset,
                      "rss_before_kb": rss_before,
                      "vm_hwm_kb": proc_status_kb("VmHWM"), "cuda_growth": cuda,
                      "stack_bytes": stack_bytes(sim, args["k"]),
                      "data_bytes": sim.data.train_x.nbytes + sim.data.train_y.nbytes}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plot", default=None, help="write the plot to this PNG")
    parser.add_argument("--json", default=None, help="write the measurements to this file")
    parser.add_argument("--quick", action="store_true",
                        help=f"a tenth of every size: (N, K) = {QUICK_POINTS} (a smoke test)")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    points = QUICK_POINTS if args.quick else POINTS
    device = resolve_device(args.device)  # the device, chosen once
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args._child is not None:
        child(args._child, device)
        return
    t_start = time.perf_counter()
    print(f"torch {torch.__version__}, device {device}, torch.get_num_threads() = "
          f"{torch.get_num_threads()}, commit {code_version()}; load average at start "
          f"{load()}")
    print(f"ridge 8 x 16 per client, MLP 16-64-64-10, E = 5, B = 4, scheme2, chunk_size "
          f"{BASE.chunk_size}; median of rounds 2..{ROUNDS}; memory = growth over the rounds")
    results: dict[str, dict] = {}
    for name in ALGORITHMS:
        for n, k in points:
            spec = json.dumps({"algorithm": name, "n": n, "k": k})
            cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", spec,
                   "--device", str(device), "--threads", str(torch.get_num_threads())]
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True)
                             .stdout.strip().splitlines()[-1])
            out["round_s"] = statistics.median(out["seconds"][1:])
            out["round_cpu_s"] = statistics.median(out["cpu_seconds"][1:])
            out["round_user_s"] = statistics.median(out["user_seconds"][1:])
            out["round_system_s"] = statistics.median(out["system_seconds"][1:])
            out["round_faults"] = statistics.median(out["minor_faults"][1:])
            out["growth_mb"] = (out["vm_hwm_kb"] - out["rss_before_kb"]) / 1024
            results[f"{name}|{n}|{k}"] = out
            cuda = "" if out["cuda_growth"] is None else \
                f", CUDA growth {out['cuda_growth'] / 2**20:.1f} MB"
            print(f"  {name:16s} N {n:>7,}  K {k:>6,}: round {out['round_s'] * 1e3:8.1f} ms "
                  f"(CPU {out['round_cpu_s'] * 1e3:8.1f} ms = user "
                  f"{out['round_user_s'] * 1e3:.1f} + system {out['round_system_s'] * 1e3:.1f}; "
                  f"{out['round_faults']:,.0f} page faults), "
                  f"memory growth {out['growth_mb']:7.1f} MB (stack of the K models "
                  f"{out['stack_bytes'] / 2**20:.1f} MB){cuda}", flush=True)
    print("ratios (x10 participants: linear is <= 10x; x10 population: flat is ~1x); "
          "time = wall (CPU time of the process)")
    (n0, k0), (_, k1), (n2, _) = points
    along_k, along_n = f"K {k0:,} -> {k1:,}", f"N {n0:,} -> {n2:,}"
    for name in ALGORITHMS:
        a, b, c = (results[f"{name}|{n}|{k}"] for n, k in points)
        print(f"  {name:16s} {along_k}: time {b['round_s'] / a['round_s']:5.2f}x "
              f"({b['round_cpu_s'] / a['round_cpu_s']:5.2f}x), memory "
              f"{b['growth_mb'] / a['growth_mb']:5.2f}x;  {along_n}: time "
              f"{c['round_s'] / a['round_s']:5.2f}x ({c['round_cpu_s'] / a['round_cpu_s']:5.2f}x),"
              f" memory {c['growth_mb'] / a['growth_mb']:5.2f}x")
        print(f"  {'':16s} {along_k}: user CPU {b['round_user_s'] / a['round_user_s']:5.2f}x, "
              f"system CPU {b['round_system_s'] * 1e3:.1f} ms vs "
              f"{a['round_system_s'] * 1e3:.1f} ms, minor page faults "
              f"{b['round_faults']:,.0f} vs {a['round_faults']:,.0f} per round")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot, points)
        print(f"plot written to {args.plot}")
    print(f"load average at end {load()}; total {time.perf_counter() - t_start:.0f} s")


def plot(results: dict[str, dict], path: str,
         points: list[tuple[int, int]] | None = None) -> None:
    """Time and memory per round against K (N = 10k) and against N (K = 1k), log-log
    (against the first two and the first and third of ``points``, default
    :data:`POINTS`)."""
    (n0, k0), (_, k1), (n2, _) = points or POINTS
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for name in ALGORITHMS:
        for (label, pts, style) in ((f"vs K (N = {n0:,})", [(n0, k0), (n0, k1)], "-o"),
                                    (f"vs N (K = {k0:,})", [(n0, k0), (n2, k0)], "--s")):
            xs = [k if "K" in label[:4] else n for n, k in pts]
            rs = [results[f"{name}|{n}|{k}"] for n, k in pts]
            # CPU time: on a shared machine the wall time is mostly the other processes'
            axes[0].plot(xs, [r["round_cpu_s"] for r in rs], style, label=f"{name}, {label}")
            axes[1].plot(xs, [r["growth_mb"] for r in rs], style, label=f"{name}, {label}")
    for ax, ylabel in zip(axes, ("CPU seconds per round", "memory growth per round (MB)"),
                          strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("participants K, or population N")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("fl_sim round cost against participants K and population N")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
