"""``--bound local``: the drift-at-the-optimum bound of docs/theory.md §13 against runs.

The glue between :mod:`theory.local_sgd` (the bound and its constants) and the runs a
check already made (:class:`boundcheck.check.SeedRuns`): the measured compression errors
``e_s,r``, ``e_c,r`` (RMS over seeds) feed the round maps, the bound starts at the RMS
``d_0`` of the seeds, and it bounds ``||w_r - w*_hat||`` with ``w*_hat`` the problem's
computed optimum (the reference point of §13, so the solver's error does not enter the
distance). Li et al.'s bound stays in the JSON as a column (``constants.li``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from fl_sim import SimConfig
from theory.local_sgd import LocalSteps, local_recursion, local_steps

from .check import BoundVariant, SeedRuns
from .problems import Problem
from .report import BoundReport

__all__ = ["local_report", "local_variant"]


def _round_constants(problem: Problem, config: SimConfig, etas: np.ndarray) -> list[LocalSteps]:
    E, R = config.local_steps, config.rounds
    rounds = etas.reshape(R, E)
    out: list[LocalSteps] = []
    for r in range(R):
        if r and np.array_equal(rounds[r], rounds[r - 1]):
            out.append(out[-1])  # constant step: one computation
        else:
            out.append(local_steps(problem.convex, rounds[r], config.batch_size))
    return out


def local_variant(runs: SeedRuns, config: SimConfig, problem: Problem, etas: np.ndarray,
                  exact: bool = True) -> tuple[BoundVariant, list[LocalSteps]]:
    """The bound of docs/theory.md §13 with the runs' measured compression errors.

    ``exact=True``: the drift at the optimum computed exactly (full batch); ``False``: its
    a-priori bound from ``zeta_k`` (and ``sigma_k`` at the optimum for minibatches).
    """
    c = problem.convex
    scheme = config.participation
    K = None if scheme == "full" else int(config.clients_per_round)
    consts = _round_constants(problem, config, etas)
    maps = [ls.round_map(scheme, K, float(es), float(ec), exact=exact)
            for ls, es, ec in zip(consts, runs.e_s, runs.e_c, strict=True)]
    rec = local_recursion(runs.d0, maps, c.L)
    delta = c.w_star_error_bound  # excess against the true w*: L/2 (d + delta)^2
    name = "local exact drift" if exact else "local a-priori drift"
    return (BoundVariant.compare(name, rec.d**2, 0.5 * c.L * (rec.d + delta) ** 2, runs,
                                 c.F_star, rec), consts)


def local_report(rep: BoundReport, runs: SeedRuns, config: SimConfig, problem: Problem,
                 etas: np.ndarray, li_main: BoundVariant) -> BoundReport:
    """``rep`` (Li et al.'s check) with the §13 bound as the main bound; Li's as a column."""
    exact = config.batch_size is None
    main, consts = local_variant(runs, config, problem, etas, exact=exact)
    prior = local_variant(runs, config, problem, etas, exact=False)[0] if exact else None
    first = consts[0]
    extra: dict[str, Any] = {
        "bound": "local",
        "local": main.brief() | {
            "method": ("d_{r+1} = sqrt((rho (d_r + e_s,r) + b)^2 + (c (d_r + e_s,r) + v)^2) "
                       "+ e_c,r with the drift at the optimum b "
                       + ("computed exactly (full batch)" if exact else
                          "bounded from zeta_k and sigma_k at the optimum (minibatch)")
                       + " (docs/theory.md §13)"),
            "rho_first": first.rho, "drift_first": first.drift,
            "drift_bound_first": first.drift_bound,
            "heterogeneity_at_optimum": first.heterogeneity_at_optimum,
            "zeta_k": first.zeta_k.tolist(), "sigma2_k_at_optimum": first.sigma2_k.tolist(),
            "L_k_step_map": first.L_k.tolist(), "mu_k_step_map": first.mu_k.tolist(),
            "floor_first_round_map": maps_floor(first, config),
            "a_priori_drift": None if prior is None else prior.brief(),
        },
        "li": li_main.brief(),
        "tightness_li": float(li_main.ratio[-1]),
        "li_max_ratio": float(np.max(li_main.ratio)),
    }
    return dataclasses.replace(rep, constants=rep.constants | extra,
                               bound_dist_sq=main.bound_dist_sq, ratio=main.ratio,
                               bound_excess=main.bound_excess)


def maps_floor(ls: LocalSteps, config: SimConfig) -> float:
    """``d^2`` at the fixed point of the first round's map without compression errors."""
    scheme = config.participation
    K = None if scheme == "full" else int(config.clients_per_round)
    return ls.round_map(scheme, K, exact=config.batch_size is None).floor() ** 2
