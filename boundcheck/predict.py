"""Predictions made before any run, checked against runs (``python -m boundcheck predict``).

``floors``: the error floor of each rank policy on the ridge teacher, predicted by
iterating the deterministic compressed round map of docs/theory.md §12.4
(:func:`theory.quadratic.compressed_trajectory`, from ``W_0 = 0``: no run is used) and
measured as the mean over seeds of ``||w_R - w*||^2`` of simulator runs. With full
batches the prediction is the simulator's own map; with minibatches the prediction adds
the exact stationary variance of uncompressed FedAvg (:func:`theory.quadratic.exact_moments`),
an approximation (labelled so in the output): compression and noise do not simply add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import fl_sim
from theory.quadratic import (
    LeastSquaresClients,
    compressed_trajectory,
    exact_moments,
    round_maps,
)

from .check import step_sizes
from .floors import ordering_agrees
from .problems import Problem

__all__ = ["FloorPrediction", "predict_floors"]


@dataclass(frozen=True)
class FloorPrediction:
    """Predicted (before any run) vs measured error floors, one entry per policy."""

    policies: list[str]  # "none" is FedAvg
    predicted: list[float]  # floor of E||w - w*||^2 predicted from the problem alone
    measured: list[float]  # mean over seeds of ||w_R - w*||^2
    measured_se: list[float]  # its standard error over seeds
    batch_size: int | None
    local_steps: int
    rounds: int
    seeds: list[int]
    exact_map: bool  # True: full batch, the prediction is the simulator's map itself

    @property
    def ratio(self) -> list[float]:
        """predicted / measured."""
        return [p / m for p, m in zip(self.predicted, self.measured, strict=True)]

    @property
    def same_ordering(self) -> bool:
        return ordering_agrees(self.predicted, self.measured)

    def to_dict(self) -> dict:
        return {"policies": self.policies, "predicted": self.predicted,
                "measured": self.measured, "measured_se": self.measured_se,
                "ratio": self.ratio, "same_ordering": self.same_ordering,
                "batch_size": self.batch_size, "local_steps": self.local_steps,
                "rounds": self.rounds, "seeds": self.seeds, "exact_map": self.exact_map,
                "method": "iterate the compressed round map from W_0 = 0 (docs/theory.md "
                          "§12.4)" + ("" if self.exact_map else " + exact stationary "
                                      "variance of uncompressed FedAvg (approximation)")}


def predict_floors(problem: Problem, policies: Sequence[str], local_steps: int = 5,
                   rounds: int = 60, seeds: Sequence[int] = (0, 1, 2),
                   batch_size: int | None = None) -> FloorPrediction:
    """Predict each policy's floor from the problem alone, then measure it.

    Parameters
    ----------
    problem : Problem
        A ridge problem.
    policies : sequence of str
        Rank policies applied on both sides (``"none"``: FedAvg).
    local_steps, rounds : int
        ``E`` and the rounds of the runs (and of the prediction's iteration).
    seeds : sequence of int
        Runs to average.
    batch_size : int or None
        Minibatch size; None for full batch.
    """
    c = problem.convex
    if c.kind != "ridge":
        raise ValueError(f"problem: floors are predicted for ridge, not {c.kind}")
    clients = LeastSquaresClients.from_convex(c)
    base = problem.config(local_steps=local_steps, rounds=rounds, batch_size=batch_size)
    etas = step_sizes(base)
    if np.ptp(etas) != 0:
        raise ValueError("lr_schedule: a floor needs a constant step")
    rm = round_maps(clients, etas[:local_steps], local_steps)[0]
    W0 = np.zeros(c.shape)
    noise = 0.0
    if batch_size is not None:
        noise = float(exact_moments(clients, etas, local_steps, W0, batch_size,
                                    w_star=c.w_star).cov_trace[-1])
    pred, meas, se = [], [], []
    for pol in policies:
        p = None if pol == "none" else pol
        tr = compressed_trajectory(rm, W0, rounds, p, p)
        pred.append(float(np.sum((tr[-1] - c.w_star) ** 2)) + noise)
        cfg = base.replace(algorithm="fedavg") if p is None else base.replace(
            algorithm="feddlr", policy_down=p, policy_up=p)
        last = [fl_sim.run(cfg.replace(seed=s), data=problem.data,
                           w_star=problem.w_star_params()).history.column("dist_sq")[-1]
                for s in seeds]
        meas.append(float(np.mean(last)))
        se.append(float(np.std(last, ddof=1) / np.sqrt(len(last))) if len(last) > 1 else 0.0)
    return FloorPrediction(list(policies), pred, meas, se, batch_size, local_steps, rounds,
                           list(seeds), batch_size is None)
