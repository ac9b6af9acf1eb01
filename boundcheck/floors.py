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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tabulate import tabulate

import fl_sim
from fl_sim import SimConfig
from theory.bounds import constant_step_round, fixed_point
from theory.quadratic import (
    LeastSquaresClients,
    enclosure_radii,
    floor_enclosure,
    round_maps,
)

from .check import check
from .problems import PARAM, Problem
from .report import BoundReport

__all__ = ["FloorBounds", "FloorComparison", "floor_bounds", "floor_ordering", "ordering_agrees"]


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


def ordering_agrees(a: Sequence[float], b: Sequence[float], rtol: float = 1e-9) -> bool:
    """Every pair is ordered the same way in ``a`` and ``b`` (strictly).

    ``rtol``: pairs whose values differ by at most ``rtol`` times the larger are ties in
    that sequence (two policies with the same floor, e.g. ``none`` and an ``energy`` policy
    that sends dense, differ in the runs by rounding only and must not count as ordered).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = a.size

    def sign(x: np.ndarray, i: int, j: int) -> float:
        diff = x[i] - x[j]
        return 0.0 if abs(diff) <= rtol * max(abs(x[i]), abs(x[j])) else float(np.sign(diff))

    return all(sign(a, i, j) == sign(b, i, j) for i in range(n) for j in range(i + 1, n))


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


@dataclass(frozen=True)
class FloorBounds:
    """A-priori floor bounds (docs/theory.md §12.4) against full-batch runs, per policy."""

    policies: list[str]  # both sides; "none" is FedAvg
    floor_bound: list[float]  # upper bound on the floor of E||w - w*||^2 (before any run)
    floor_lower: list[float]  # the enclosure's lower end
    basin_radius: list[float]  # r_max: trajectories within it of the center are covered
    jacobian_norm: list[float]  # ||J|| of the compressed map at the center
    entry_round: list[list[int | None]]  # per policy and seed: first round inside the basin
    round_bound: list[list[float | None]]  # per policy and seed: bound at the last round
    measured: list[list[float]]  # per policy and seed: ||w_R - w*||^2 at the last round
    local_steps: int
    rounds: int
    seeds: list[int]

    def covered(self, i: int) -> list[float]:
        """Last-round values of policy ``i``'s runs that entered the basin (the bound's runs)."""
        return [m for m, b in zip(self.measured[i], self.round_bound[i], strict=True)
                if b is not None]

    @property
    def ratio(self) -> list[float]:
        """floor bound / mean last round of the covered runs (nan: no run entered)."""
        return [b / float(np.mean(self.covered(i))) if self.covered(i) else math.nan
                for i, b in enumerate(self.floor_bound)]

    @property
    def all_entered(self) -> bool:
        """Every run entered its policy's basin (else it converged elsewhere, or slowly)."""
        return all(b is not None for bs in self.round_bound for b in bs)

    @property
    def holds(self) -> bool:
        """Every run that entered the basin ends below its round bound (and one entered)."""
        return all(b is None or m <= b for bs, ms in zip(self.round_bound, self.measured,
                                                         strict=True)
                   for b, m in zip(bs, ms, strict=True)) and all(
            any(b is not None for b in bs) for bs in self.round_bound)

    @property
    def same_ordering(self) -> bool:
        return ordering_agrees(self.floor_bound, [float(np.mean(m)) for m in self.measured],
                               rtol=1e-6)

    def to_dict(self) -> dict:
        return {"policies": self.policies, "floor_bound": self.floor_bound,
                "floor_lower": self.floor_lower, "basin_radius": self.basin_radius,
                "jacobian_norm": self.jacobian_norm, "entry_round": self.entry_round,
                "round_bound": self.round_bound, "measured_per_seed": self.measured,
                "ratio_bound_over_measured": self.ratio, "holds": self.holds,
                "all_entered": self.all_entered,
                "same_ordering": self.same_ordering, "local_steps": self.local_steps,
                "rounds": self.rounds, "seeds": self.seeds,
                "method": "verified enclosure of the limit of the full-batch compressed map "
                          "(theory.quadratic.floor_enclosure, docs/theory.md §12.4): holds for "
                          "every trajectory that enters the basin; entry checked per run"}


def floor_bounds(problem: Problem, policies: Sequence[str], local_steps: int = 5,
                 rounds: int = 150, seeds: Sequence[int] = (0, 1, 2)) -> FloorBounds:
    """A-priori floor bound of each policy (both sides) against full-batch FedDLR runs.

    The bound (:func:`theory.quadratic.floor_enclosure`) uses the problem alone. Each run
    (full batch, full participation, constant step ``1/(4L)``) is checked: the first round
    its model lies within the basin radius of the enclosure's center, and from there the
    bound on its last round (:func:`theory.quadratic.enclosure_radii`), against its
    measured ``||w_R - w*||^2``.
    """
    c = problem.convex
    if c.kind != "ridge":
        raise ValueError(f"problem: floor bounds need ridge, not {c.kind}")
    clients = LeastSquaresClients.from_convex(c)
    base = problem.config(local_steps=local_steps, rounds=rounds, batch_size=None)
    lr = base.lr
    rm = round_maps(clients, [lr] * local_steps, local_steps)[0]
    ws = c.w_star
    fb, fl, rmax, jn, entry, rbound, meas = [], [], [], [], [], [], []
    for pol in policies:
        p = None if pol == "none" else pol
        enc = floor_enclosure(rm, ws, p, p)
        fb.append(float(enc.floor_bound))
        fl.append(float(enc.floor_lower))
        rmax.append(float(enc.r_max))
        jn.append(float(enc.jacobian_norm))
        cfg = base.replace(algorithm="fedavg") if p is None else base.replace(
            algorithm="feddlr", policy_down=p, policy_up=p)
        e_row, b_row, m_row = [], [], []
        for s in seeds:
            models: dict[int, np.ndarray] = {}
            obs = fl_sim.Observer(on_global=lambda r, prm, models=models: models.__setitem__(
                r, prm[PARAM].detach().cpu().double().numpy().T.copy()))
            h = fl_sim.run(cfg.replace(seed=s), data=problem.data,
                           w_star=problem.w_star_params(), observer=obs).history
            dist = [float(np.linalg.norm(models[r] - enc.center)) for r in range(rounds + 1)]
            # no enclosure (r_min infinite): no run is covered, whatever its distance
            inside = [r for r in range(rounds + 1) if dist[r] <= enc.r_max] \
                if math.isfinite(enc.r_min) else []
            r_in = inside[0] if inside else None
            if r_in is None:
                b_row.append(None)
            else:
                R = enclosure_radii(enc, rm, dist[r_in], rounds - r_in)[-1]
                b_row.append(float((enc.center_dist + R) ** 2))
            e_row.append(r_in)
            m_row.append(float(h.column("dist_sq")[-1]))
        entry.append(e_row)
        rbound.append(b_row)
        meas.append(m_row)
    return FloorBounds(list(policies), fb, fl, rmax, jn, entry, rbound, meas, local_steps,
                       rounds, list(seeds))
