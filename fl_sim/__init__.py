"""A compact, fast, deterministic federated-learning simulator.

``fl_sim.run(SimConfig(...)) -> History``; ``python -m fl_sim --help`` for the CLI.
"""

from .algorithms import ALGORITHMS, make_algorithm
from .config import SimConfig
from .history import History, RoundRecord
from .simulator import Observer, Simulation, run, setup

__all__ = ["ALGORITHMS", "History", "Observer", "RoundRecord", "SimConfig", "Simulation",
           "make_algorithm", "run", "setup"]
