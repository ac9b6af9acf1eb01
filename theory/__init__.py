"""Convergence bounds and approximation-error terms of FedDLR (reconstructed).

The derivation is in docs/theory.md: Li et al. (ICLR 2020)'s one-step lemma inside
a round, Minkowski's inequality for the two compression errors, the a-priori
variants from the rank policies, the constant-step fixed point (error floor).
Numeric modules use numpy/scipy; :mod:`theory.symbolic` derives the same with
sympy. This package never imports ``fl_sim`` (see ``boundcheck`` for the glue).
"""

from .approximation import (
    contraction_delta,
    hmt_expected_error_bound,
    model_error_bound,
    policy_error_bound,
    policy_relative_error_bound,
    spectral_tail,
    tail_energy,
)
from .bounds import (
    B_constant,
    LiSteps,
    a_priori_recursion,
    fixed_point,
    fixed_point_relative,
    li_step_sizes,
    li_theorem1,
    participation_C,
    recursion_bound,
    rounds_to_target,
)
from .constants import ConvexProblem, logistic_problem, ridge_problem
from .costs import factorized_flops, layer_nbytes, round_bytes

__all__ = [
    "B_constant", "ConvexProblem", "LiSteps", "a_priori_recursion", "contraction_delta",
    "factorized_flops", "fixed_point", "fixed_point_relative", "hmt_expected_error_bound",
    "layer_nbytes", "li_step_sizes", "li_theorem1", "logistic_problem", "model_error_bound",
    "participation_C", "policy_error_bound", "policy_relative_error_bound", "recursion_bound",
    "ridge_problem", "round_bytes", "rounds_to_target", "spectral_tail", "tail_energy",
]
