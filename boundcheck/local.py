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
from dataclasses import dataclass
from typing import Any

import numpy as np

from fl_sim import SimConfig
from theory.bounds import RecursionBound
from theory.local_sgd import LocalSteps, local_recursion, local_steps

from .problems import Problem
from .report import BoundReport

__all__ = ["LocalBound", "local_report", "local_variant"]

# ``runs`` below is a :class:`boundcheck.check.SeedRuns` and ``li_main`` a
# :class:`boundcheck.check.BoundVariant`; they are not imported (check.py dispatches here).


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


@dataclass(frozen=True)
class LocalBound:
    """The §13 bound for a check's runs, round by round."""

    name: str  # "local exact drift" or "local a-priori drift"
    bound_dist_sq: np.ndarray  # (R+1,) bound on E||w_r - w*_hat||^2
    bound_excess: np.ndarray  # (R+1,) L/2 (d_r + delta)^2 (true w*)
    ratio: np.ndarray  # (R+1,) bound / measured
    holds: bool  # bound >= measured at every round (distance and excess)
    recursion: RecursionBound

    def brief(self) -> dict[str, Any]:
        """Tightness summary for the JSON."""
        return {"tightness": float(self.ratio[-1]), "max_ratio": float(np.max(self.ratio)),
                "min_ratio_after_0": float(np.min(self.ratio[1:])), "holds": self.holds,
                "bound_dist_sq": self.bound_dist_sq.tolist()}


def local_variant(runs: Any, config: SimConfig, problem: Problem, etas: np.ndarray,
                  exact: bool = True, consts: list[LocalSteps] | None = None
                  ) -> tuple[LocalBound, list[LocalSteps]]:
    """The bound of docs/theory.md §13 with the runs' measured compression errors.

    ``exact=True``: the drift at the optimum computed exactly (full batch); ``False``: its
    a-priori bound from ``zeta_k`` (and ``sigma_k`` at the optimum for minibatches).
    ``consts``: the rounds' constants when already computed (they do not depend on ``exact``).
    """
    c = problem.convex
    scheme = config.participation
    K = None if scheme == "full" else int(config.clients_per_round)
    consts = _round_constants(problem, config, etas) if consts is None else consts
    maps = [ls.round_map(scheme, K, float(es), float(ec), exact=exact)
            for ls, es, ec in zip(consts, runs.e_s, runs.e_c, strict=True)]
    rec = local_recursion(runs.d0, maps, c.L)
    delta = c.w_star_error_bound  # excess against the true w*: L/2 (d + delta)^2
    bound, excess = rec.d**2, 0.5 * c.L * (rec.d + delta) ** 2
    measured = runs.measured_dist_sq
    with np.errstate(divide="ignore"):
        ratio = bound / measured
    ok = bool(np.all(bound >= measured) and np.all(excess >= runs.measured_excess(c.F_star)))
    name = "local exact drift" if exact else "local a-priori drift"
    return LocalBound(name, bound, excess, ratio, ok, rec), consts


def local_report(rep: BoundReport, runs: Any, config: SimConfig, problem: Problem,
                 etas: np.ndarray, li_main: Any) -> BoundReport:
    """``rep`` (Li et al.'s check) with the §13 bound as the main bound; Li's as a column."""
    exact = config.batch_size is None
    main, consts = local_variant(runs, config, problem, etas, exact=exact)
    prior = (local_variant(runs, config, problem, etas, exact=False, consts=consts)[0]
             if exact else None)
    first = consts[0]
    extra: dict[str, Any] = {
        "bound": "local",
        "local": main.brief() | {
            "method": ("d_{r+1} = the smallest valid branch of docs/theory.md §13.2-§13.4 "
                       "(full participation: rho (d_r + e_s,r) + b + e_c,r; client sampling: "
                       "min of the linear, quadrature sqrt((rho (d_r + e_s,r) + b)^2 + "
                       "(c (d_r + e_s,r) + v)^2) and cross branches, + e_c,r; minibatch: the "
                       "§13.4 cross coefficient) with the drift at the optimum b "
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
