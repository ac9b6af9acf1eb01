"""Benchmarks of the federated simulator (a script, not a test).

    .venv/bin/python benchmarks/bench_simulator.py [--quick] [--device auto|cpu|cuda]
                                                   [--threads N]

Prints, from one run, for the workload "100 clients on digits, MLP 64-200-200-10,
E = 10 local steps of B = 10 samples, full participation":

1. local training of one round (``sim.trainer.train`` called directly), vectorized
   (``torch.func.vmap``) against sequential (a Python loop over clients), and whole
   FedAvg rounds (``RoundRecord.seconds`` from ``fl_sim.run``) both ways
   (target: vectorized >= 5x faster);
2. the round's FLOP count (computed from the layer shapes) against the machine's matmul
   rate measured in the same run (one 1024 x 1024 ``torch.mm``, and batched ``torch.bmm``
   of the workload's own shapes): ``bound_seconds = FLOPs / rate`` and
   ``measured / bound`` (target: within 2x);
3. the share of a FedDLR round spent compressing (``compress_seconds / seconds`` of the
   round records; ratio:0.25 on both sides, classifier sent dense), with the exact and
   the randomized SVD (target <= 5%);
4. peak memory of one full-participation round with 1,000 clients (fedavg and feddlr),
   each in a fresh subprocess: peak RSS (``ru_maxrss``) and, on CUDA,
   ``torch.cuda.max_memory_allocated``.

Timing: ``time.perf_counter`` (after ``torch.cuda.synchronize`` on CUDA), warm-up calls
first, then the median of several repeats (fewer with ``--quick``); the number of
intra-op threads is printed (``--threads`` sets it). The device is chosen once, at the
top of :func:`main` (CUDA when present unless ``--device`` says otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

import fl_sim
from fl_sim.algorithms.base import broadcast
from fl_sim.device import resolve_device
from fl_sim.presets import BENCH_CONFIG

HIDDEN = [200, 200]
WORKLOAD = BENCH_CONFIG.replace(model_kwargs={"hidden": HIDDEN})  # FedAvg; FedDLR below
FEDDLR = {"algorithm": "feddlr"}  # ratio:0.25 on both links, *out* dense (the preset's)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int,
          warmup: int = 1) -> list[float]:
    """Wall times of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def verdict(ok: bool, target: str) -> str:
    return f"{'MET' if ok else 'NOT MET'} (target {target})"


def layer_shapes(sim: fl_sim.Simulation) -> list[tuple[int, int]]:
    """``(in, out)`` of every linear layer of the model, in order."""
    return [(m.in_features, m.out_features) for m in sim.model.modules()
            if isinstance(m, torch.nn.Linear)]


# --------------------------------------------------------------------------- [1]

def bench_vectorization(device: torch.device, quick: bool) -> dict:
    print("\n[1] local training, 100 clients x 10 steps x batch 10, MLP 64-200-200-10, "
          "fedavg, iid digits")
    cfg = WORKLOAD.replace(algorithm="fedavg", device=str(device))
    k = cfg.num_clients
    clients = torch.arange(k)
    out = {}
    for vectorized, repeats in ((True, 5 if quick else 9), (False, 2 if quick else 3)):
        sim = fl_sim.setup(cfg.replace(vectorized=vectorized))
        start = broadcast(sim.initial_params(), k)

        def train(sim=sim, start=start):
            # the same minibatches on every call
            return sim.trainer.train(start, clients, 0, torch.Generator().manual_seed(0))

        times = timed(train, device, repeats)
        out[vectorized] = statistics.median(times)
        label = "vectorized (vmap)" if vectorized else "sequential (loop)"
        print(f"  trainer.train  {label:18s} median {ms(out[vectorized])}  "
              f"(min {ms(min(times))}, {repeats} runs after 1 warm-up)")
    speedup = out[False] / out[True]
    print(f"  speed-up sequential/vectorized: {speedup:.2f}x  {verdict(speedup >= 5, '>= 5x')}")

    # whole rounds (training + aggregation; evaluation is outside RoundRecord.seconds)
    rounds = {}
    for vectorized, n in ((True, 4 if quick else 6), (False, 2 if quick else 3)):
        h = fl_sim.run(cfg.replace(vectorized=vectorized, rounds=n, eval_every=n)).history
        secs = [r.seconds for r in h.records[1:]]  # round 1 is the warm-up
        rounds[vectorized] = statistics.median(secs)
        label = "vectorized" if vectorized else "sequential"
        print(f"  fl_sim.run round {label:10s}       median {ms(rounds[vectorized])}  "
              f"(rounds 2..{n})")
    print(f"  whole-round speed-up: {rounds[False] / rounds[True]:.2f}x")
    return {"train_vectorized": out[True], "train_sequential": out[False],
            "round_vectorized": rounds[True], "speedup": speedup}


# --------------------------------------------------------------------------- [2]

def matmul_rate(device: torch.device, shapes: list[tuple[tuple[int, ...], tuple[int, ...]]],
                repeats: int) -> tuple[float, float]:
    """FLOP/s of the given (batched) matmuls run back to back, and their FLOP count."""
    gen = torch.Generator().manual_seed(0)
    ops = []
    flops = 0
    for sa, sb in shapes:
        a = torch.randn(*sa, generator=gen).to(device)
        b = torch.randn(*sb, generator=gen).to(device)
        c = torch.empty(*sa[:-1], sb[-1], device=device)
        ops.append((a, b, c))
        batch = sa[0] if len(sa) == 3 else 1
        flops += 2 * batch * sa[-2] * sa[-1] * sb[-1]

    def run():
        for a, b, c in ops:
            (torch.bmm if a.ndim == 3 else torch.mm)(a, b, out=c)

    t = statistics.median(timed(run, device, repeats, warmup=3))
    return flops / t, flops


def bench_flop_bound(device: torch.device, quick: bool, measured: float,
                     shapes: list[tuple[int, int]]) -> None:
    k, e, b = WORKLOAD.num_clients, WORKLOAD.local_steps, WORKLOAD.batch_size
    macs = sum(i * o for i, o in shapes)
    nominal = k * e * b * 3 * 2 * macs
    # what the trainer actually needs: no gradient w.r.t. the input of the first layer
    needed = nominal - k * e * b * 2 * shapes[0][0] * shapes[0][1]
    print("\n[2] the round against the FLOP bound")
    print(f"  layers {shapes}: {macs} multiply-adds per sample")
    print(f"  FLOPs per round = {k} clients x {e} steps x {b} samples x 3 x 2 x {macs} "
          f"= {nominal:,} ({nominal / 1e9:.3f} GFLOP)")
    print(f"  (without the unused input gradient of the first layer: {needed / 1e9:.3f} GFLOP)")
    repeats = 10 if quick else 30
    rate_mm, _ = matmul_rate(device, [((1024, 1024), (1024, 1024))], repeats)
    fwd = [((k, b, i), (k, i, o)) for i, o in shapes]  # x @ W^T
    wgrad = [((k, i, b), (k, b, o)) for i, o in shapes]  # x^T @ grad_out
    dgrad = [((k, b, o), (k, o, i)) for i, o in shapes]  # grad_out @ W
    rate_fwd, _ = matmul_rate(device, [fwd[1]], repeats * 5)
    rate_step, step_flops = matmul_rate(device, fwd + wgrad + dgrad, repeats * 5)
    print(f"  matmul rate, torch.mm 1024x1024 float32:           {rate_mm / 1e9:7.1f} GFLOP/s")
    print(f"  matmul rate, torch.bmm (100,10,200)@(100,200,200): {rate_fwd / 1e9:7.1f} GFLOP/s")
    print(f"  matmul rate, all bmm of one step (fwd, weight and input grads, "
          f"{step_flops / 1e6:.0f} MFLOP): {rate_step / 1e9:.1f} GFLOP/s")
    for label, rate in (("1024x1024 mm rate", rate_mm), ("workload bmm rate", rate_step)):
        bound = nominal / rate
        ratio = measured / bound
        print(f"  bound at the {label}: bound_seconds = {bound * 1e3:.1f} ms; measured "
              f"vectorized {measured * 1e3:.1f} ms = {ratio:.2f}x the bound  "
              f"{verdict(ratio <= 2, '<= 2x')}")


# --------------------------------------------------------------------------- [3]

def bench_compression_share(device: torch.device, quick: bool) -> None:
    n = 4 if quick else 6
    print(f"\n[3] share of a feddlr round spent compressing (ratio:0.25 down and up, "
          f"*out* dense; rounds 2..{n})")
    base = WORKLOAD.replace(device=str(device), rounds=n, eval_every=n, **FEDDLR)
    for method in ("exact", "randomized"):
        h = fl_sim.run(base.replace(method=method)).history
        recs = h.records[1:]  # round 1 is the warm-up
        shares = [r.compress_seconds / r.seconds for r in recs]
        share = statistics.median(shares)
        ranks = {name: sorted(set(v))[0] if isinstance(v, list) else v
                 for name, v in recs[-1].ranks_up.items()}
        print(f"  {method:10s} round median {ms(statistics.median(r.seconds for r in recs))}"
              f"  compression median "
              f"{ms(statistics.median(r.compress_seconds for r in recs))}  "
              f"training + aggregation median "
              f"{ms(statistics.median(r.seconds - r.compress_seconds for r in recs))}")
        print(f"             share per round {', '.join(f'{x * 100:.1f}%' for x in shares)}; "
              f"median {share * 100:.1f}%  {verdict(share <= 0.05, '<= 5%')}")
        print(f"             ranks sent up {ranks}")


# --------------------------------------------------------------------------- [4]

def memory_child(algorithm: str, device: torch.device) -> None:
    """One round with 1,000 clients; prints peak memory as JSON (run in a subprocess)."""
    extra = FEDDLR if algorithm == "feddlr" else {"algorithm": algorithm}
    cfg = WORKLOAD.replace(num_clients=1000, test_fraction=0.1, **extra, device=str(device),
                           rounds=1)
    data = fl_sim.setup(cfg).data
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    h = fl_sim.run(cfg, data=data).history
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cuda = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    print(json.dumps({"rss_before_kb": before, "rss_peak_kb": peak, "vm_hwm_kb": vm_hwm_kb(),
                      "cuda_peak": cuda,
                      "min_client_size": int(data.client_sizes.min()),
                      "num_clients": data.num_clients, "round_seconds": h.records[0].seconds,
                      "run_seconds": wall}))


def vm_hwm_kb() -> int | None:
    """Peak RSS of this process's own address space (``VmHWM``, Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def measure_memory(device: torch.device, threads: int) -> dict[str, dict]:
    """Run the 1,000-client rounds, each in a fresh subprocess.

    Called before any other work: on Linux a child's ``ru_maxrss`` starts from the
    parent's peak RSS (it is carried over fork and exec), so the parent must still be
    small when the children start. ``VmHWM`` (peak of the child's own address space)
    is printed next to it as a check.
    """
    out = {}
    for algorithm in ("fedavg", "feddlr"):
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory", algorithm,
               "--device", str(device), "--threads", str(threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        out[algorithm] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def report_memory(results: dict[str, dict], shapes: list[tuple[int, int]],
                  parent_kb: int) -> None:
    print("\n[4] peak memory, one round, 1,000 clients, full participation "
          "(iid digits, test_fraction 0.1), fresh subprocess each")
    n_params = sum(i * o + o for i, o in shapes)
    print(f"  one stack of 1,000 models: {1000 * n_params * 4 / 2**20:.1f} MB "
          f"({n_params} float32 parameters each); parent's peak RSS when the children "
          f"started: {parent_kb / 1024:.1f} MB")
    for algorithm, r in results.items():
        hwm = "" if r["vm_hwm_kb"] is None else f", VmHWM {r['vm_hwm_kb'] / 1024:.1f} MB"
        line = (f"  {algorithm:7s} peak RSS (ru_maxrss) {r['rss_peak_kb'] / 1024:7.1f} MB"
                f"{hwm}; after setup, before the round: {r['rss_before_kb'] / 1024:.1f} MB; "
                f"round {r['round_seconds']:.2f} s; {r['num_clients']} clients with "
                f">= {r['min_client_size']} training samples each")
        if r["cuda_peak"] is not None:
            line += f"; torch.cuda.max_memory_allocated {r['cuda_peak'] / 2**20:.1f} MB"
        print(line)


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and rounds")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N); default: torch's own default")
    parser.add_argument("--_memory", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # the device, chosen once
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args._memory is not None:
        memory_child(args._memory, device)
        return
    t_start = time.perf_counter()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"torch {torch.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
          f"torch.get_num_threads() = {torch.get_num_threads()}, device {device}{gpu}")
    print(f"{'--quick, ' if args.quick else ''}median of repeats after warm-up; load average "
          f"at start {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    parent_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    memory = measure_memory(device, torch.get_num_threads())  # first: see its docstring
    shapes = layer_shapes(fl_sim.setup(WORKLOAD.replace(device=str(device))))
    r1 = bench_vectorization(device, args.quick)
    bench_flop_bound(device, args.quick, r1["train_vectorized"], shapes)
    bench_compression_share(device, args.quick)
    report_memory(memory, shapes, parent_kb)
    print(f"\nload average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
