"""Does the bound's error floor order the ranks of FixedRank like the runs do?

With a constant step the recursion converges to the fixed point of
``d -> sqrt(rho (d + e_s)^2 + beta) + e_c`` (docs/theory.md, §6; ``theory.bounds.
fixed_point``), which grows with the compression errors. For each rank ``r`` of
``FixedRank(r)`` on both sides we run a check, feed the fixed point with the errors
measured over the last rounds (RMS over seeds and rounds) and compare its ordering
across ranks with the measured floors (mean of ``||w_r - w*||^2`` over the last
rounds and the seeds). One ``B`` serves every rank: the largest per-round ``B_r``
over the tail rounds of all the runs (valid for each run's tail, since a larger
constant stays valid), so the predicted floors differ only through the measured errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tabulate import tabulate

from fl_sim import SimConfig
from theory.bounds import constant_step_round, fixed_point

from .check import check
from .problems import Problem
from .report import BoundReport

__all__ = ["FloorComparison", "floor_ordering", "ordering_agrees"]


@dataclass(frozen=True)
class FloorComparison:
    """Predicted vs measured error floors across ranks."""

    ranks: list[int]
    predicted_dist_sq: list[float]  # fixed point d_inf^2 of the bound, per rank
    measured_dist_sq: list[float]  # mean over the tail rounds and seeds of ||w_r - w*||^2
    e_s: list[float]  # RMS over seeds and tail rounds of the server error
    e_c: list[float]
    B: float  # the common B
    tail_rounds: int  # rounds averaged
    reports: list[BoundReport] = field(default_factory=list, repr=False)

    @property
    def predicted_order(self) -> list[int]:
        """Ranks sorted by predicted floor, largest floor first."""
        return [self.ranks[i] for i in np.argsort(self.predicted_dist_sq, kind="stable")[::-1]]

    @property
    def measured_order(self) -> list[int]:
        return [self.ranks[i] for i in np.argsort(self.measured_dist_sq, kind="stable")[::-1]]

    @property
    def agrees(self) -> bool:
        """Same ordering of the ranks by floor (predicted vs measured)."""
        return ordering_agrees(self.predicted_dist_sq, self.measured_dist_sq)

    def to_dict(self) -> dict:
        return {"ranks": self.ranks, "predicted_dist_sq": self.predicted_dist_sq,
                "measured_dist_sq": self.measured_dist_sq, "e_s": self.e_s, "e_c": self.e_c,
                "B": self.B, "tail_rounds": self.tail_rounds,
                "predicted_order": self.predicted_order, "measured_order": self.measured_order,
                "agrees": self.agrees}

    def markdown(self) -> str:
        """One row per rank (a GitHub markdown table), then whether the orderings agree."""
        headers = ["rank", "e_s (RMS)", "e_c (RMS)", "predicted floor d_inf^2",
                   "measured floor", "bound/measured"]
        rows = [[str(r), f"{es:.3g}", f"{ec:.3g}", f"{p:.4g}", f"{m:.4g}", f"{p / m:.3g}"]
                for r, es, ec, p, m in zip(self.ranks, self.e_s, self.e_c,
                                           self.predicted_dist_sq, self.measured_dist_sq,
                                           strict=True)]
        lines = [tabulate(rows, headers, tablefmt="github", disable_numparse=True), ""]
        lines.append(f"Ordering (largest floor first): predicted {self.predicted_order}, "
                     f"measured {self.measured_order}: "
                     f"{'agree' if self.agrees else 'DISAGREE'}.")
        return "\n".join(lines)


def ordering_agrees(a: Sequence[float], b: Sequence[float]) -> bool:
    """Every pair is ordered the same way in ``a`` and ``b`` (strictly)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = a.size
    return all(np.sign(a[i] - a[j]) == np.sign(b[i] - b[j])
               for i in range(n) for j in range(i + 1, n))


def floor_ordering(
    problem: Problem,
    config: SimConfig,
    ranks: Sequence[int] = (1, 2, 3, 5),
    seeds: int | Sequence[int] = 5,
    tail_fraction: float = 0.25,
) -> FloorComparison:
    """Predicted (bound fixed point) vs measured floors for ``FixedRank(r)`` on both sides.

    Parameters
    ----------
    problem : Problem
        The problem.
    config : SimConfig
        Base run, with a constant step (``lr_schedule="constant"``) and enough rounds
        to reach the floor; ``algorithm``/``policy_*`` are set per rank.
    ranks : sequence of int
        Ranks to compare.
    seeds : int or sequence of int
        As in :func:`boundcheck.check`.
    tail_fraction : float
        Share of the last rounds averaged for the measured floor and the errors.
    """
    if config.lr_schedule != "constant":
        raise ValueError("lr_schedule: the fixed point needs a constant step")
    if not 0 < tail_fraction <= 1:
        raise ValueError(f"tail_fraction: must be in (0, 1], got {tail_fraction}")
    reports = [check(config.replace(algorithm="feddlr", policy_down=f"fixed:{r}",
                                    policy_up=f"fixed:{r}"), problem, seeds)
               for r in ranks]
    tail = max(1, int(round(tail_fraction * config.rounds)))
    # B of the stationary regime: the largest per-round B over the tail rounds of every rank
    B = max(max(rep.constants["B_rounds"][-tail:]) for rep in reports)
    c = problem.convex
    rho, beta = constant_step_round(c.mu, config.lr, config.local_steps, B)
    pred, meas, es, ec = [], [], [], []
    for rep in reports:
        e_s = float(np.sqrt(np.mean(rep.e_s[-tail:] ** 2)))
        e_c = float(np.sqrt(np.mean(rep.e_c[-tail:] ** 2)))
        pred.append(fixed_point(rho, beta, e_s, e_c) ** 2)
        meas.append(float(np.mean(rep.measured_dist_sq[-tail:])))
        es.append(e_s)
        ec.append(e_c)
    return FloorComparison(list(ranks), pred, meas, es, ec, float(B), tail, reports)
