"""Benchmarks of the federated simulator (a script, not a test).

    .venv/bin/python benchmarks/bench_simulator.py [--quick] [--device auto|cpu|cuda]
                                                   [--threads N]

Prints, from one run, for the workload ``fl_sim.presets.BENCH_CONFIG`` with hidden
layers [200, 200] (100 clients on digits, MLP 64-200-200-10, E = 10 local steps of
B = 10 samples, full participation):

1. local training of one round (``sim.trainer.train`` called directly): the fused MLP
   trainer (the default, ``LocalTrainer.fused``), ``torch.func.vmap`` of autograd
   (``fused=False``) and sequential (a Python loop over clients), and whole FedAvg
   rounds (``RoundRecord.seconds`` from ``fl_sim.run``), vectorized and sequential
   (target: vectorized >= 5x faster);
2. the round's FLOP count (computed from the layer shapes) against the machine's matmul
   rate measured in the same run (one 1024 x 1024 ``torch.mm``, and batched ``torch.bmm``
   of the workload's own shapes): ``bound_seconds = FLOPs / rate`` and
   ``measured / bound`` (target: within 1.5x of the bound at the workload's bmm rate);
3. the share of a FedDLR round spent compressing (``compress_seconds / seconds`` of the
   round records; ratio:0.25 on both sides, classifier sent dense) with the exact SVD,
   the randomized SVD and the warm-started ``subspace`` method (target <= 10%), the
   last also with the autograd trainer, and the floor of ``subspace``: its matrix
   products alone;
4. peak memory of one round with 1,000 participants for every algorithm, each in a
   fresh subprocess, against one stack of the 1,000 models (target <= 3x), chunked
   (``SimConfig.chunk_size``, default) and all at once; and a round of an
   update-compression algorithm with N = 3,000 clients of whom 10 take part;
5. the compression options on one round's local models: truncation error against the
   Eckart-Young optimum (target: mean excess <= 1%) and time, for the exact SVD, the
   subspace iteration from the broadcast factors (1 and 2 iterations), from a random
   start, the randomized SVD, Gram + eigh, and the server's matrix warm-started from
   the previous round's basis;
6. fl_sim against Flower's simulation engine, only when ``flwr`` is installed.

Timing: ``time.perf_counter`` (after ``torch.cuda.synchronize`` on CUDA), or with
``--clock cpu`` the process's CPU time (``round_probe.use_clock``: on a shared machine,
with ``--threads 1``), warm-up calls first, then the median of several repeats (fewer
with ``--quick``); the number of
intra-op threads and the load average are printed. The device is chosen once, at the
top of :func:`main` (CUDA when present unless ``--device`` says otherwise).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from round_probe import (
    code_version,
    load,
    one_round,
    prepare,
    proc_status_kb,
    reset_peak_rss,
    stack_bytes,
    timed,
    use_clock,
)

import fl_sim
from fl_sim.algorithms.base import broadcast
from fl_sim.device import resolve_device
from fl_sim.local_training import LocalTrainer
from fl_sim.presets import BENCH_CONFIG
from lowrank import compress_matrix, compress_state, randomized_svd
from lowrank.svd import cholesky_orthonormalize

HIDDEN = [200, 200]
WORKLOAD = BENCH_CONFIG.replace(model_kwargs={"hidden": HIDDEN})  # FedAvg; FedDLR below
FEDDLR = {"algorithm": "feddlr"}  # ratio:0.25 on both links, *out* dense (the preset's)
METHODS = ("exact", "randomized", "subspace")
# --dataset: digits (the benchmark's, from scikit-learn) or generated data of the same
# shapes (64 features, 10 classes; FedProx synthetic, IID, at most 200 rows per client),
# for a machine without scikit-learn (the GPU box)
DATASETS = {"digits": {},
            "synthetic": {"dataset": "synthetic",
                          "dataset_kwargs": {"dim": 64, "iid": True,
                                             "max_samples_per_client": 200}}}


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
    print(f"\n[1] local training, {WORKLOAD.num_clients} clients x {WORKLOAD.local_steps} steps "
          f"x batch {WORKLOAD.batch_size}, MLP 64-200-200-10, fedavg, iid {WORKLOAD.dataset}")
    cfg = WORKLOAD.replace(algorithm="fedavg", device=str(device))
    k = cfg.num_clients
    clients = torch.arange(k)
    out = {}
    for label, changes, repeats in (
            ("fused (default)", {}, 5 if quick else 9),
            ("vmap of autograd", {"fused": False}, 5 if quick else 9),
            ("sequential (loop)", {"vectorized": False}, 2 if quick else 3)):
        sim = fl_sim.setup(cfg.replace(vectorized=changes.get("vectorized", True)))
        sim.trainer = dataclasses.replace(sim.trainer, **changes)
        start = broadcast(sim.initial_params(), k)

        def train(sim=sim, start=start):
            # the same minibatches on every call
            return sim.trainer.train(start, clients, 0, torch.Generator().manual_seed(0))

        times = timed(train, device, repeats)
        out[label] = statistics.median(times)
        print(f"  trainer.train  {label:18s} median {ms(out[label])}  "
              f"(min {ms(min(times))}, {repeats} runs after 1 warm-up)")
    speedup = out["sequential (loop)"] / out["fused (default)"]
    print(f"  speed-up sequential/fused: {speedup:.2f}x  {verdict(speedup >= 5, '>= 5x')}; "
          f"vmap of autograd / fused: {out['vmap of autograd'] / out['fused (default)']:.2f}x")

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
    return {"train_vectorized": out["fused (default)"], "train_autograd": out["vmap of autograd"],
            "train_sequential": out["sequential (loop)"], "round_vectorized": rounds[True],
            "speedup": speedup}


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


def bench_flop_bound(device: torch.device, quick: bool, measured: dict[str, float],
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
    for label, rate, target in (("1024x1024 mm rate", rate_mm, None),
                                ("workload bmm rate", rate_step, 1.5)):
        bound = nominal / rate
        for trainer, key in (("fused", "train_vectorized"), ("vmap of autograd",
                                                             "train_autograd")):
            ratio = measured[key] / bound
            end = "" if target is None or key != "train_vectorized" else "  " + verdict(
                ratio <= target, f"<= {target}x")
            print(f"  bound at the {label}: bound_seconds = {bound * 1e3:.1f} ms; measured "
                  f"{trainer} {measured[key] * 1e3:.1f} ms = {ratio:.2f}x the bound{end}")


# --------------------------------------------------------------------------- [3]

def bench_compression_share(device: torch.device, quick: bool) -> None:
    n = 4 if quick else 6
    print(f"\n[3] share of a feddlr round spent compressing (ratio:0.25 down and up, "
          f"*out* dense; rounds 2..{n})")
    base = WORKLOAD.replace(device=str(device), rounds=n, eval_every=n, **FEDDLR)
    for method, fused in [(m, True) for m in METHODS] + [("subspace", False)]:
        if fused:
            h = fl_sim.run(base.replace(method=method)).history
        else:  # the same run with the autograd trainer (LocalTrainer.fused=False)
            with mock.patch.object(fl_sim.simulator, "LocalTrainer",
                                   functools.partial(LocalTrainer, fused=False)):
                h = fl_sim.run(base.replace(method=method)).history
            print("  with the vmap-of-autograd trainer (LocalTrainer.fused=False):")
        recs = h.records[1:]  # round 1 is the warm-up (and "subspace" starts from exact)
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
              f"median {share * 100:.1f}%  {verdict(share <= 0.10, '<= 10%')}")
        print(f"             ranks sent up {ranks}; err_client last round "
              f"{recs[-1].err_client:.5f}")
        if method == "subspace" and fused:
            rest = statistics.median(r.seconds - r.compress_seconds for r in recs)
            floor = products_floor(device, base.num_clients, recs[-1].ranks_up,
                                   fl_sim.setup(base.replace(rounds=1)), 3 if quick else 7)
            print(f"             floor: the matrix products alone (W V0, W^T Z, W V per "
                  f"client, the aggregate [U] [V]^T), random matrices of the same shapes: "
                  f"{ms(floor)} = {floor / (floor + rest) * 100:.1f}% of a round with this "
                  f"run's training + aggregation")


def products_floor(device: torch.device, k: int, ranks_up: dict, sim: fl_sim.Simulation,
                   repeats: int) -> float:
    """Median time of the matrix products one ``subspace`` upload needs, nothing else.

    Per compressed layer ``(m, n)`` at rank ``r`` for ``k`` clients: ``Z = W V0`` (``V0``
    shared), ``Y = W^T Z``, ``U = W V`` and the aggregate ``[U_1..U_k] [V_1..V_k]^T``:
    ``4 * 2 m n r k`` FLOPs, which no warm-started full iteration avoids.
    """
    gen = torch.Generator().manual_seed(0)
    shapes = {n: p.shape for n, p in sim.model.named_parameters()}
    ops = []
    for name, r in ranks_up.items():
        r = sorted(set(r))[0] if isinstance(r, list) else r
        m, n = shapes[name]
        w = torch.randn(k, m, n, generator=gen).to(device)
        v = torch.randn(n, r, generator=gen).to(device)
        ops.append((w, v))

    def run():
        for w, v0 in ops:
            kk, m, _ = w.shape
            r = v0.shape[-1]
            y = w.mT @ (w @ v0)
            u = w @ y  # (y stands in for V: the same shapes)
            _ = u.permute(1, 0, 2).reshape(m, kk * r) @ y.permute(1, 0, 2).reshape(-1, kk * r).mT

    return statistics.median(timed(run, device, repeats))


# --------------------------------------------------------------------------- [4]

MEMORY_RUNS = [  # (label, config changes, participants K)
    ("fedavg", {"algorithm": "fedavg"}, 1000),
    ("fedavg, chunk_size=None", {"algorithm": "fedavg", "chunk_size": None}, 1000),
    ("feddlr exact", {**FEDDLR, "method": "exact"}, 1000),
    ("feddlr exact, chunk_size=None", {**FEDDLR, "method": "exact", "chunk_size": None}, 1000),
    ("feddlr subspace", {**FEDDLR, "method": "subspace"}, 1000),
    ("feddlr_up", {"algorithm": "feddlr_up"}, 1000),
    ("topk_ef", {"algorithm": "topk_ef"}, 1000),
    ("lowrank_update", {"algorithm": "lowrank_update"}, 1000),
    ("qsgd", {"algorithm": "qsgd"}, 1000),
]


def memory_child(spec: str, device: torch.device) -> None:
    """Rounds of one configuration; prints time and memory as JSON (run in a subprocess).

    ``spec`` is JSON: ``{"changes": {...}, "num_clients": N, "k": K, "rounds": R}``;
    K < N uses scheme2 participation. Memory: the growth of the resident set over the
    rounds (``VmHWM`` at the end minus ``VmRSS`` before the first round), and on CUDA
    ``max_memory_allocated`` minus what was allocated before.
    """
    args = json.loads(spec)
    n, k = args["num_clients"], args["k"]
    part = {} if k == n else {"participation": "scheme2", "clients_per_round": k}
    # 1,000+ clients of digits hold 1 or 2 training rows each: full-batch steps
    # (setup refuses a batch larger than every client's data)
    batch = None if WORKLOAD.dataset == "digits" else WORKLOAD.batch_size
    cfg = WORKLOAD.replace(num_clients=n, test_fraction=0.1, device=str(device),
                           batch_size=batch, **part, **args["changes"])
    sim, state = prepare(cfg)
    seconds, growth_kb, cuda = [], [], []
    for r in range(args["rounds"]):
        # each round's own peak: VmHWM reset to the current RSS before it
        reset = reset_peak_rss()
        rss_before = proc_status_kb("VmRSS")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            cuda_before = torch.cuda.memory_allocated(device)
        state, comms, secs = one_round(sim, state, r)
        seconds.append(secs)
        growth_kb.append(proc_status_kb("VmHWM") - rss_before)
        if device.type == "cuda":
            cuda.append(torch.cuda.max_memory_allocated(device) - cuda_before)
    print(json.dumps({"growth_kb": growth_kb, "hwm_reset": reset,
                      "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "cuda_growth": cuda or None, "stack_bytes": stack_bytes(sim, k),
                      "seconds": seconds, "compress_seconds": comms.compress_seconds}))


def child(spec: dict, device: torch.device, threads: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", json.dumps(spec),
           "--device", str(device), "--threads", str(threads),
           "--local-steps", str(WORKLOAD.local_steps), "--dataset", WORKLOAD.dataset]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure_memory(device: torch.device, threads: int, quick: bool) -> dict[str, dict]:
    """Run the memory configurations, each in a fresh subprocess.

    Called before any other work: on Linux a child's ``ru_maxrss`` starts from the
    parent's peak RSS (it is carried over fork and exec), so the parent must still be
    small when the children start; ``VmHWM`` of the child's own address space is what
    is reported.
    """
    out = {}
    runs = MEMORY_RUNS[:5] if quick else MEMORY_RUNS
    for label, changes, k in runs:
        # update compression allocates its N-client memory in round 1: show round 2 too
        rounds = 2 if changes["algorithm"] in ("topk_ef", "lowrank_update", "qsgd") else 1
        out[label] = child({"changes": changes, "num_clients": k, "k": k, "rounds": rounds},
                           device, threads)
    out["topk_ef, N = 1600, K = 10"] = child(
        {"changes": {"algorithm": "topk_ef"}, "num_clients": 1600, "k": 10, "rounds": 4},
        device, threads)
    return out


def report_memory(results: dict[str, dict]) -> None:
    print(f"\n[4] memory of a round with 1,000 participants ({WORKLOAD.dataset} iid, "
          "test_fraction 0.1, full-batch steps on each client's 1-2 rows of digits), fresh "
          "subprocess each; growth = "
          "VmHWM after the round - VmRSS before it (VmHWM reset before each round)")
    for label, r in results.items():
        if label.startswith("topk_ef, N"):
            continue
        stack = r["stack_bytes"] / 2**20
        for i, kb in enumerate(r["growth_kb"]):
            growth = kb / 1024
            first = "" if len(r["growth_kb"]) == 1 else (
                " (allocates the clients' memory)" if i == 0 else " (steady state)")
            line = (f"  {label:30s} round {i + 1}{first}: growth {growth:7.1f} MB = "
                    f"{growth / stack:4.2f}x the stack of {stack:.1f} MB  "
                    f"{verdict(growth <= 3 * stack, '<= 3x')}; {r['seconds'][i]:.2f} s")
            if r["cuda_growth"] is not None:
                cuda = r["cuda_growth"][i] / 2**20
                line += f"; CUDA max_memory_allocated growth {cuda:.1f} MB = {cuda / stack:.2f}x"
            print(line)
        if not r["hwm_reset"]:
            print("  (VmHWM could not be reset: growth is the peak since the child started)")
    r = results["topk_ef, N = 1600, K = 10"]
    print(f"  topk_ef, N = 1600 clients (digits holds 1,621 rows), K = 10 per round: rounds "
          f"{', '.join(f'{s * 1e3:.1f} ms' for s in r['seconds'])} (memory rows written in "
          f"place: no copy of the 1600 clients' residuals per round)")


# --------------------------------------------------------------------------- [5]

def bench_options(device: torch.device, quick: bool) -> None:
    print("\n[5] compression options on one round's local models (feddlr, round 4 of the "
          "workload; excess = error / Eckart-Young optimum - 1, per matrix)")
    cfg = WORKLOAD.replace(device=str(device), eval_every=3, **FEDDLR)
    prev = fl_sim.run(cfg.replace(rounds=2)).params
    res = fl_sim.run(cfg.replace(rounds=3))
    sim, w = res.simulation, res.params
    alg = sim.algorithm
    sent = compress_state(w, alg.down, overrides=alg.overrides)
    k = cfg.num_clients
    local, _ = sim.trainer.train(broadcast(sent.decompress(), k), torch.arange(k), 3,
                                 torch.Generator().manual_seed(0))
    repeats = 2 if quick else 5
    gen = torch.Generator(device).manual_seed(0)
    prev_sent = compress_state(prev, alg.down, overrides=alg.overrides)
    for name in ("net.fc2.weight", "net.fc1.weight"):
        layer_options(name, local[name], sent.entries[name].factors.V, w[name],
                      prev_sent.entries[name].factors.V, device, repeats, gen)


def layer_options(name: str, wk: torch.Tensor, v0: torch.Tensor, ws: torch.Tensor,
                  vs: torch.Tensor, device: torch.device, repeats: int,
                  gen: torch.Generator) -> None:
    """[5] for one layer: clients' matrices ``wk`` with the broadcast basis ``v0``, the
    server's matrix ``ws`` with the previous round's basis ``vs``."""
    k = wk.shape[0]
    r = v0.shape[-1]
    s = torch.linalg.svdvals(wk.double())
    opt = s[..., r:].square().sum(-1)
    energy = s.square().sum(-1)
    print(f"  {name}: {k} matrices {tuple(wk.shape[1:])}, rank {r}; optimum "
          f"||W - W_r||^2 / ||W||^2 mean {float((opt / energy).mean()):.2e}")

    def row(label, fn, made):
        t = statistics.median(timed(fn, device, repeats))
        ex = made / opt - 1
        print(f"    {label:34s} {ms(t)}  excess mean {float(ex.mean()):9.2e}  "
              f"max {float(ex.max()):9.2e}")
        return t

    def direct(u, v):
        return (wk.double() - u.double() @ v.double().mT).square().sum(dim=(-2, -1))

    exact = compress_matrix(wk, f"fixed:{r}")
    t_exact = row("exact SVD (compress_matrix)", lambda: compress_matrix(wk, f"fixed:{r}"),
                  direct(exact.U, exact.V))
    for it in (1, 2):
        f = compress_matrix(wk, f"fixed:{r}", "subspace", warm_start=v0, power_iters=it)
        t = row(f"subspace, broadcast V, {it} iter.",
                lambda it=it: compress_matrix(wk, f"fixed:{r}", "subspace", warm_start=v0,
                                              power_iters=it), direct(f.U, f.V))
        formula = (f.sq_error / direct(f.U, f.V) - 1).abs().max()
        print(f"      {'':32s} {t_exact / t:5.1f}x faster than exact; error from "
              f"||W||^2 - ||WV||^2 vs direct: max rel. diff {float(formula):.1e}")
    p = cholesky_orthonormalize(wk @ v0)  # half an iteration: W ~ P P^T W
    row("half iteration P P^T W, broadcast V", lambda: cholesky_orthonormalize(wk @ v0),
        direct(p, wk.mT @ p))
    rand = torch.randn(v0.shape, generator=gen, device=device)
    for it in (1, 2):
        f = compress_matrix(wk, f"fixed:{r}", "subspace", warm_start=rand, power_iters=it)
        row(f"subspace, random start, {it} iter.",
            lambda it=it: compress_matrix(wk, f"fixed:{r}", "subspace", warm_start=rand,
                                          power_iters=it), direct(f.U, f.V))
    f = randomized_svd(wk, r, generator=torch.Generator(device).manual_seed(1))
    row("randomized SVD (p = 10, q = 2)",
        lambda: randomized_svd(wk, r, generator=torch.Generator(device).manual_seed(1)),
        direct(f.U * f.S.unsqueeze(-2), f.V))
    lam = torch.linalg.eigvalsh(wk.mT @ wk)  # ascending
    tail = lam[..., : lam.shape[-1] - r].double().sum(-1)
    t = statistics.median(timed(lambda: torch.linalg.eigh(wk.mT @ wk), device, repeats))
    print(f"    {'Gram + eigh (float32)':34s} {ms(t)}  tail of the eigenvalues vs the "
          f"optimum: max rel. diff {float((tail / opt - 1).abs().max()):.1e}")
    # the server: its single matrix, from the previous round's broadcast basis
    t_se = statistics.median(timed(lambda: compress_matrix(ws, f"fixed:{r}"), device,
                                   repeats * 4))
    t_sw = statistics.median(timed(lambda: compress_matrix(ws, f"fixed:{r}", "subspace",
                                                           warm_start=vs, power_iters=1),
                                   device, repeats * 4))
    ss = torch.linalg.svdvals(ws.double())
    fw = compress_matrix(ws, f"fixed:{r}", "subspace", warm_start=vs, power_iters=1)
    made = (ws.double() - fw.U.double() @ fw.V.double().mT).square().sum()
    so = ss[r:].square().sum()
    print(f"    server, exact {ms(t_se)}; warm-started from last round's basis, 1 iter. "
          f"{ms(t_sw)}, excess {float(made / so - 1):.2e} (optimum "
          f"{float(so / ss.square().sum()):.1e} of ||W||^2)")


# --------------------------------------------------------------------------- [6]

def bench_flower(device: torch.device, quick: bool) -> None:
    print("\n[6] fl_sim against Flower's simulation engine")
    if importlib.util.find_spec("flwr") is None:
        print("  flwr is not installed: skipped (pip install -e '.[flower]' to run it; the "
              "Flower engine, experiments/flower_engine.py, runs FedAvg only)")
        return
    from experiments.flower_engine import run_flower_fedavg

    rounds = 3 if quick else 5
    cfg = WORKLOAD.replace(device=str(device), rounds=rounds, eval_every=rounds)
    ours = statistics.median(r.seconds for r in fl_sim.run(cfg).history.records[1:])
    try:
        theirs = statistics.median(run_flower_fedavg(cfg, rounds)["seconds_per_round"][1:])
    except Exception as exc:  # Flower/Ray could not run here: say why, keep the record
        print(f"  Flower did not run: {type(exc).__name__}: {exc} (cause: "
              f"{type(exc.__cause__).__name__}: {exc.__cause__})")
        return
    print(f"  fedavg round: fl_sim {ms(ours)}, Flower {ms(theirs)}: fl_sim "
          f"{theirs / ours:.1f}x faster  {verdict(theirs / ours >= 20, '>= 20x')}")


# --------------------------------------------------------------------------- main

def main() -> None:
    global WORKLOAD  # --local-steps changes it for every section
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and rounds")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N); default: torch's own default")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="wall time, or the process's CPU time (shared machine, "
                             "--threads 1, CPU device)")
    parser.add_argument("--only", nargs="+", type=int, default=None,
                        help="run only these sections (1-6)")
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASETS),
                        help="digits (default; needs scikit-learn) or synthetic (generated, "
                             "the same layer shapes)")
    parser.add_argument("--local-steps", type=int, default=None,
                        help=f"E of the workload (default {WORKLOAD.local_steps}): how the "
                             "compression share falls as local work grows")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    WORKLOAD = WORKLOAD.replace(**DATASETS[args.dataset])
    if args.local_steps is not None:
        WORKLOAD = WORKLOAD.replace(local_steps=args.local_steps)
    # the device, chosen once
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    use_clock(args.clock)
    if args._child is not None:
        memory_child(args._child, device)
        return
    only = set(args.only or range(1, 7))
    t_start = time.perf_counter()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(f"torch {torch.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
          f"torch.get_num_threads() = {torch.get_num_threads()}, device {device}{gpu}, "
          f"commit {code_version()}")
    print(f"workload: {WORKLOAD.dataset}, E = {WORKLOAD.local_steps} local steps of B = "
          f"{WORKLOAD.batch_size}, "
          f"{WORKLOAD.num_clients} clients, MLP 64-{'-'.join(map(str, HIDDEN))}-10")
    print(f"{'--quick, ' if args.quick else ''}median of repeats after warm-up, "
          f"{'CPU time of the process' if args.clock == 'cpu' else 'wall time'}; load average "
          f"at start {load()}")
    memory = measure_memory(device, torch.get_num_threads(), args.quick) if 4 in only else None
    shapes = layer_shapes(fl_sim.setup(WORKLOAD.replace(device=str(device))))
    if 1 in only or 2 in only:
        r1 = bench_vectorization(device, args.quick)
        if 2 in only:
            bench_flop_bound(device, args.quick, r1, shapes)
    if 3 in only:
        bench_compression_share(device, args.quick)
    if memory is not None:
        report_memory(memory)
    if 5 in only:
        bench_options(device, args.quick)
    if 6 in only:
        bench_flower(device, args.quick)
    print(f"\nload average at end {load()}; total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
