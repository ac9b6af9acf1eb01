"""Named configurations the toolkit runs again and again: the demo and the benchmark.

Each preset is a :class:`SimConfig`; derive variants with ``.replace(...)``.
"""

from __future__ import annotations

from .config import SimConfig

__all__ = ["DEMO_CONFIG", "BENCH_CONFIG"]

# The demo (``python -m fl_sim demo``, notebooks 02, 03, 06, 07): a small non-IID
# setting that runs in a few minutes on 2 CPU cores. FedDLR keeps rank
# ceil(0.25 min(m, n)) of each hidden layer on both links; the classifier goes dense.
DEMO_CONFIG = SimConfig(
    algorithm="fedavg", dataset="digits", model="mlp", num_clients=20, partition="dirichlet",
    dirichlet_alpha=0.5, rounds=60, local_steps=10, batch_size=10, lr=0.2,
    policy_down="ratio:0.25", policy_up="ratio:0.25", policy_overrides={"*out*": None}, seed=0,
)

# The simulator benchmark's workload (benchmarks/bench_simulator.py, experiments/engines.py):
# digits IID over 100 clients, MLP 64-200-200-10, full participation, E = 10, B = 10.
BENCH_CONFIG = DEMO_CONFIG.replace(num_clients=100, partition="iid")
