"""Check the theory's bounds against simulator runs (the glue of theory and fl_sim).

This is the only package that imports both :mod:`theory` and :mod:`fl_sim`.
``boundcheck.check(config, problem)`` runs a configuration over several seeds on a
strongly convex problem, evaluates every constant of the bound for exactly that run
(docs/theory.md, §9-§10), and returns a :class:`BoundReport`: the a-posteriori bound
of docs/theory.md §3-§4 round by round against the measured ``E||w_r - w*||^2``.
``python -m boundcheck --help`` for the command line.
"""

from .check import check, step_sizes, validate_config
from .floors import FloorComparison, floor_ordering
from .problems import Problem, problem_from_data, ridge_problem, synthetic_problem
from .report import BoundReport
from .trajectory import TrajectoryRecorder, constants_at_points

__all__ = [
    "BoundReport", "FloorComparison", "Problem", "TrajectoryRecorder", "check",
    "constants_at_points", "floor_ordering", "problem_from_data", "ridge_problem",
    "step_sizes", "synthetic_problem", "validate_config",
]
