"""Helpers shared by the benchmark scripts: timing, load, memory, one simulated round.

Not a benchmark itself; ``bench_simulator.py`` and ``bench_scaling.py`` import it (the
scripts' folder is on ``sys.path`` when they run).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

import fl_sim
from fl_sim.algorithms import RoundContext, ServerState
from fl_sim.participation import sample_participants


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall times are complete."""
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


def load() -> str:
    """The 1, 5 and 15 minute load averages, formatted."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def proc_status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` field in kB (``VmRSS``, ``VmHWM``; Linux), else None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ``clear_refs`` 5).

    So that ``VmHWM - VmRSS`` after some work is that work's own peak. False where the
    kernel does not offer it (then ``VmHWM`` is the peak since the process started).
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def stack_bytes(sim: fl_sim.Simulation, k: int) -> int:
    """Bytes of ``k`` stacked copies of the model (what ``k`` participants hold)."""
    return k * sum(p.numel() * p.element_size() for p in sim.model.parameters())


def prepare(config: fl_sim.SimConfig, data=None) -> tuple[fl_sim.Simulation, ServerState]:
    """``fl_sim.setup`` plus the initial state (the trainer chunked as the config says)."""
    sim = fl_sim.setup(config, data)
    return sim, sim.algorithm.init(sim.initial_params(), sim.data.num_clients)


def one_round(sim: fl_sim.Simulation, state: ServerState, r: int):
    """Round ``r`` (from 0) as ``fl_sim.run`` makes it: participants, training, algorithm.

    Returns the new state, the round's comms and its wall time (device synchronized).
    """
    cfg = sim.config
    t0 = time.perf_counter()
    p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
    part = sample_participants(p, cfg.participation, cfg.clients_per_round, sim.streams.sampling)

    def train(start, clients):
        return sim.trainer.train(start, clients, r, sim.streams.batches)[0]

    ctx = RoundContext(part, train, sim.streams.compression, sim.data.num_clients)
    state, comms = sim.algorithm.round(state, ctx)
    sync(sim.device)
    return state, comms, time.perf_counter() - t0
