"""A compact, fast, deterministic federated-learning simulator.

``fl_sim.run(SimConfig(...)) -> RunResult`` (``.history``, ``.params``, ``.model``);
``python -m fl_sim --help`` for the CLI; map of the package: docs/architecture.md.
"""

from .algorithms import ALGORITHMS, make_algorithm
from .config import SimConfig
from .history import History, RoundRecord
from .simulator import Observer, RunResult, Simulation, run, setup

__all__ = ["ALGORITHMS", "History", "Observer", "RoundRecord", "RunResult", "SimConfig",
           "Simulation", "make_algorithm", "run", "setup"]
