"""Helpers shared by the benchmark scripts: timing, load, memory, one simulated round.

Not a benchmark itself; ``bench_simulator.py`` and ``bench_scaling.py`` import it (the
scripts' folder is on ``sys.path`` when they run).
"""

from __future__ import annotations

import os
import time
import types
from collections.abc import Callable
from pathlib import Path

import torch

import fl_sim
from fl_sim.algorithms import RoundContext, ServerState
from fl_sim.participation import sample_participants

try:
    from fl_sim.report import code_version
except ImportError:  # fl_sim.report draws with matplotlib, which a bare GPU box may lack

    def code_version() -> str:
        """Stand-in for ``fl_sim.report.code_version`` where it cannot be imported."""
        return "unknown (fl_sim.report not importable here: no matplotlib)"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA), so that wall times are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_clock: Callable[[], float] = time.perf_counter


def use_clock(name: str) -> None:
    """Time with the wall clock (``"wall"``, the default) or the process's CPU time (``"cpu"``).

    On a shared machine other processes stretch wall times several-fold (the load
    average is printed by every script); a single-threaded process's CPU time
    (``time.process_time``, with ``--threads 1``, on a CPU device) is stretched far
    less. ``"cpu"`` also makes the simulator's own timers (``RoundRecord.seconds``,
    ``compress_seconds``) read CPU time, by replacing their module's ``time`` for this
    process.
    """
    global _clock
    if name not in ("wall", "cpu"):
        raise ValueError(f"clock: expected 'wall' or 'cpu', got {name!r}")
    _clock = time.perf_counter if name == "wall" else time.process_time
    if name == "cpu":
        from fl_sim import simulator
        from fl_sim.algorithms import model_compression, update_compression

        cpu = types.SimpleNamespace(perf_counter=time.process_time)
        for module in (simulator, model_compression, update_compression):
            module.time = cpu


def timed(fn: Callable[[], object], device: torch.device, repeats: int,
          warmup: int = 1) -> list[float]:
    """Times of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (:func:`use_clock`)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = _clock()
        fn()
        sync(device)
        times.append(_clock() - t0)
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

    Returns the new state, the round's comms and its time (device synchronized;
    :func:`use_clock`).
    """
    cfg = sim.config
    t0 = _clock()
    p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
    part = sample_participants(p, cfg.participation, cfg.clients_per_round, sim.streams.sampling)

    def train(start, clients):
        return sim.trainer.train(start, clients, r, sim.streams.batches)[0]

    ctx = RoundContext(part, train, sim.streams.compression, sim.data.num_clients)
    state, comms = sim.algorithm.round(state, ctx)
    sync(sim.device)
    return state, comms, _clock() - t0
