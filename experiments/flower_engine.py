"""A config on Flower's simulation engine, timed (optional: needs the ``flower`` extra).

Runs :func:`fl_sim.flower.simulation.simulate` (Flower's Message API: ServerApp,
ClientApp, :class:`fl_sim.flower.strategy.FlSimStrategy`) on the same data, initial
model, minibatches and algorithm object as ``fl_sim.run`` of the config, and returns
its per-round wall times (``RoundRecord.seconds``, the same definition as fl_sim's:
from sending to aggregating, evaluation excluded) with the accuracies and bytes.

Only imported when ``flwr`` is installed (``pip install -e ".[flower]"``).
"""

from __future__ import annotations

import tempfile
import time

from fl_sim import SimConfig

__all__ = ["run_flower", "run_flower_fedavg"]


def run_flower(cfg: SimConfig, rounds: int, num_cpus_per_client: float = 1.0) -> dict:
    """Run ``cfg`` for ``rounds`` rounds on Flower's simulation engine (CPU).

    Returns
    -------
    dict
        ``flwr_version``, ``algorithm``, ``rounds``, ``seconds_per_round``, ``accuracy``,
        ``bytes_up``/``bytes_down`` (payload, per round), ``wire_up``/``wire_down``
        (Flower's serialized messages, per round), ``total_seconds`` (Ray start-up
        included), ``num_cpus_per_client``.
    """
    from fl_sim.flower.simulation import simulate

    with tempfile.TemporaryDirectory(prefix="flower_engine_") as out:
        run_cfg = cfg.replace(rounds=rounds, device="cpu", output_dir=out)
        t0 = time.perf_counter()
        history, ledger = simulate(run_cfg, num_cpus_per_client=num_cpus_per_client)
        total = time.perf_counter() - t0
    return {"flwr_version": ledger.flwr_version, "algorithm": cfg.algorithm, "rounds": rounds,
            "seconds_per_round": history.column("seconds"),
            "accuracy": history.column("test_accuracy"),
            "bytes_up": history.column("bytes_up"), "bytes_down": history.column("bytes_down"),
            "wire_up": [sum(r.wire_up) for r in ledger.rounds],
            "wire_down": [sum(r.wire_down) for r in ledger.rounds],
            "total_seconds": total, "num_cpus_per_client": num_cpus_per_client}


def run_flower_fedavg(cfg: SimConfig, rounds: int, num_cpus_per_client: float = 1.0) -> dict:
    """:func:`run_flower` of ``cfg`` with ``algorithm="fedavg"``."""
    return run_flower(cfg.replace(algorithm="fedavg"), rounds, num_cpus_per_client)
