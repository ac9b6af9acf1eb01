"""Benchmarks of the lowrank SVD paths (a script, not a test).

    .venv/bin/python benchmarks/bench_lowrank.py [--threads N] [--repeats N]
                                                 [--device auto|cpu|cuda]

Prints, from one run:

1. batched exact SVD of 100 matrices 200 x 200 against a Python loop of single SVDs
   (target: batched >= 2x faster), for ``torch.linalg.svd`` and for
   ``lowrank.compress_matrix`` (which adds rank selection and a float64 error check),
   and ``torch.linalg.svd`` against ``compress_matrix`` on the same batch;
2. randomized SVD (rank 32, oversampling p = 10, q = 2 power iterations) against the
   exact SVD on 1024 x 1024 (target: >= 5x faster), with the relative Frobenius error
   of each, on a matrix with a decaying spectrum and on a Gaussian matrix;
3. the finiteness check of 100 x 200 x 200 floats (a layer of 100 clients' models):
   ``torch.isfinite(x).all()`` against ``lowrank._validation.all_finite`` (one
   summation), whole and per client (``--only 3`` runs this section alone).

Timing: ``time.perf_counter``, warm-up runs first, then the best (minimum) of
``--repeats`` runs, which is the least disturbed by other processes on the machine.
The number of intra-op threads is set with ``torch.set_num_threads`` (``--threads``;
default: leave torch's default) and printed. The matrices live on the device chosen
once at the top of :func:`main` (``--device``; CUDA when present), and every timed call
ends with ``torch.cuda.synchronize`` there.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from collections.abc import Callable

import torch

from fl_sim.device import resolve_device
from lowrank import FixedRank, compress_matrix
from lowrank._validation import all_finite

DEVICE = torch.device("cpu")  # set once in main()


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def best_of(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Minimum wall time of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def decaying_matrix(n: int, decay: float, gen: torch.Generator) -> torch.Tensor:
    """``n x n`` float32 matrix with singular values ``s_i = i ** -decay``."""
    u, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    s = torch.arange(1, n + 1, dtype=torch.float64) ** -decay
    return ((u * s) @ v.T).float().to(DEVICE)


def verdict(ratio: float, target: float) -> str:
    return f"{'MET' if ratio >= target else 'NOT MET'} (target >= {target:g}x)"


def bench_batched(repeats: int) -> None:
    print("\n[1] exact SVD: one batched call vs a Python loop, 100 matrices 200 x 200, float32")
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(100, 200, 200, generator=gen).to(DEVICE)
    policy = FixedRank(32)

    t_svd_batched = best_of(lambda: torch.linalg.svd(a, full_matrices=False), repeats)
    t_svd_loop = best_of(lambda: [torch.linalg.svd(x, full_matrices=False) for x in a], repeats)
    t_cm_batched = best_of(lambda: compress_matrix(a, policy), repeats)
    t_cm_loop = best_of(lambda: [compress_matrix(x, policy) for x in a], repeats)

    # sanity: the batched and looped results agree
    fb = compress_matrix(a, policy)
    fl = [compress_matrix(x, policy) for x in a[:5]]
    diff = max(float((fb.to_dense()[i] - f.to_dense()).abs().max()) for i, f in enumerate(fl))

    print(f"  torch.linalg.svd    batched {t_svd_batched * 1e3:9.1f} ms   "
          f"loop {t_svd_loop * 1e3:9.1f} ms   loop/batched {t_svd_loop / t_svd_batched:5.2f}x")
    print(f"  compress_matrix     batched {t_cm_batched * 1e3:9.1f} ms   "
          f"loop {t_cm_loop * 1e3:9.1f} ms   loop/batched {t_cm_loop / t_cm_batched:5.2f}x")
    print(f"  compress_matrix batched / torch.linalg.svd batched: "
          f"{t_cm_batched / t_svd_batched:5.2f}x (overhead of rank selection + error check)")
    print(f"  max |batched - looped| of the rank-32 reconstructions (first 5): {diff:.1e}")
    print(f"  target batched >= 2x faster: torch.linalg.svd "
          f"{verdict(t_svd_loop / t_svd_batched, 2)}; compress_matrix "
          f"{verdict(t_cm_loop / t_cm_batched, 2)}")


def bench_randomized(repeats: int) -> None:
    print("\n[2] randomized SVD (rank 32, p = 10, q = 2) vs exact SVD, 1024 x 1024, float32")
    gen = torch.Generator().manual_seed(1)
    n, k = 1024, 32
    matrices = {
        "decaying s_i = i^-1": decaying_matrix(n, 1.0, gen),
        "Gaussian": torch.randn(n, n, generator=gen).to(DEVICE),
    }
    policy = FixedRank(k)
    for label, a in matrices.items():
        s = torch.linalg.svdvals(a.double())
        optimum = math.sqrt(float(s[k:].square().sum() / s.square().sum()))

        def exact(a=a):
            return compress_matrix(a, policy, "exact")

        def randomized(a=a):
            return compress_matrix(a, policy, "randomized", oversampling=10, power_iters=2,
                                   generator=torch.Generator(DEVICE).manual_seed(2))

        t_exact = best_of(exact, repeats)
        t_rand = best_of(randomized, repeats)
        t_torch = best_of(lambda a=a: torch.linalg.svd(a, full_matrices=False), repeats)
        e_exact = math.sqrt(float(exact().relative_sq_error))
        e_rand = math.sqrt(float(randomized().relative_sq_error))
        print(f"  {label}:")
        print(f"    exact      {t_exact * 1e3:9.1f} ms   rel. error {e_exact:.6f}"
              f"   (torch.linalg.svd alone {t_torch * 1e3:.1f} ms)")
        print(f"    randomized {t_rand * 1e3:9.1f} ms   rel. error {e_rand:.6f}"
              f"   ({e_rand / optimum:.4f}x the Eckart-Young optimum {optimum:.6f})")
        print(f"    speed-up exact/randomized {t_exact / t_rand:6.1f}x: "
              f"{verdict(t_exact / t_rand, 5)}")


def bench_finite(repeats: int) -> None:
    print("\n[3] finiteness check of 100 x 200 x 200 float32 (one layer of 100 clients' models)")
    x = torch.randn(100, 200, 200, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    rows = x.reshape(100, -1)
    for label, ref, fast in (
            ("whole tensor", lambda: bool(torch.isfinite(x).all()), lambda: bool(all_finite(x))),
            ("per client  ", lambda: torch.isfinite(rows).all(dim=1),
             lambda: all_finite(rows, dim=1))):
        t_ref, t_fast = best_of(ref, repeats * 2), best_of(fast, repeats * 2)
        print(f"  {label}  isfinite(x).all() {t_ref * 1e3:7.2f} ms   all_finite {t_fast * 1e3:6.2f}"
              f" ms   {t_ref / t_fast:5.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N); default: torch's own default")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (best is kept)")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda")
    parser.add_argument("--only", nargs="+", type=int, default=None,
                        help="run only these sections (1-3)")
    args = parser.parse_args()
    only = set(args.only or (1, 2, 3))
    global DEVICE
    DEVICE = resolve_device(args.device)  # the device, chosen once
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, python {platform.python_version()}, "
          f"{platform.machine()}, os.cpu_count() = {os.cpu_count()}, "
          f"torch.get_num_threads() = {torch.get_num_threads()}, device {DEVICE}")
    print(f"best of {args.repeats} after 1 warm-up; load average at start "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if 1 in only:
        bench_batched(args.repeats)
    if 2 in only:
        bench_randomized(args.repeats)
    if 3 in only:
        bench_finite(args.repeats)
    print(f"\nload average at end {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
