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
from theory.linearised import linearise, linearised_round
from theory.quadratic import (
    LeastSquaresClients,
    compressed_trajectory,
    exact_moments,
    round_maps,
)

from .check import step_sizes
from .floors import ordering_agrees
from .problems import PARAM, Problem

__all__ = ["BudgetPrediction", "FloorPrediction", "LocalStepsPrediction", "predict_budget",
           "predict_floors", "predict_local_steps"]


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


@dataclass(frozen=True)
class LocalStepsPrediction:
    """Rounds to reach ``E||w_r - w*||^2 <= target_sq`` against E: exact theory vs runs."""

    local_steps: list[int]
    predicted_rounds: list[int | None]  # None: not within max_rounds (or never)
    measured_rounds: list[int | None]
    predicted_dist_sq: list[list[float]]  # per E, rounds 0..max_rounds
    measured_dist_sq: list[list[float]]
    target_sq: float
    batch_size: int | None
    max_rounds: int
    seeds: list[int]
    method: str = ("exact E||w_r - w*||^2 of FedAvg (theory.quadratic.exact_moments) from the "
                   "runs' own w_0; measured: mean over seeds")
    problem: str = "ridge"
    lr: float | None = None

    @staticmethod
    def _best(rounds: list[int | None], Es: list[int]) -> int | None:
        ok = [(r, E) for r, E in zip(rounds, Es, strict=True) if r is not None]
        return min(ok)[1] if ok else None

    @property
    def predicted_best_E(self) -> int | None:
        """The E that reaches the target in the fewest rounds (smallest E on ties)."""
        return self._best(self.predicted_rounds, self.local_steps)

    @property
    def measured_best_E(self) -> int | None:
        return self._best(self.measured_rounds, self.local_steps)

    def to_dict(self) -> dict:
        return {"local_steps": self.local_steps, "predicted_rounds": self.predicted_rounds,
                "measured_rounds": self.measured_rounds,
                "predicted_best_E": self.predicted_best_E,
                "measured_best_E": self.measured_best_E, "target_sq": self.target_sq,
                "batch_size": self.batch_size, "max_rounds": self.max_rounds,
                "seeds": self.seeds, "predicted_dist_sq": self.predicted_dist_sq,
                "measured_dist_sq": self.measured_dist_sq, "method": self.method,
                "problem": self.problem, "lr": self.lr}


def _first_below(values, target: float) -> int | None:
    hit = np.nonzero(np.asarray(values) <= target)[0]
    return int(hit[0]) if hit.size else None


def predict_local_steps(problem: Problem, local_steps: Sequence[int] = (1, 2, 5, 10, 20),
                        target_sq: float = 4e-3, max_rounds: int = 60,
                        seeds: Sequence[int] = (0, 1, 2),
                        batch_size: int | None = 5,
                        lr: float | None = None) -> LocalStepsPrediction:
    """Rounds of FedAvg to reach ``target_sq`` for each E: the theory vs the runs.

    Ridge: the exact moments (:func:`theory.quadratic.exact_moments`). Logistic: the
    linearisation at ``w*`` (:mod:`theory.linearised`; full batch only), an asymptotic
    predictor. The theory starts from the runs' own ``w_0`` (the only thing taken from the
    runs). ``lr``: constant step (default the problem's ``1/(4L)``).
    """
    c = problem.convex
    logistic = c.kind != "ridge"
    if logistic and batch_size is not None:
        raise ValueError("batch_size: the linearised (logistic) prediction covers full-batch "
                         "local GD only; pass batch_size=None")
    lin = linearise(c) if logistic else None
    clients = None if logistic else LeastSquaresClients.from_convex(c)
    pr, mr, pd, md = [], [], [], []
    for E in local_steps:
        kw = {} if lr is None else {"lr": float(lr)}
        cfg = problem.config(algorithm="fedavg", local_steps=E, rounds=max_rounds,
                             batch_size=batch_size, **kw)
        w0s, dist = [], []
        for s in seeds:
            first = {}
            obs = fl_sim.Observer(on_global=lambda r, p, first=first: first.setdefault(
                r, p["linear.weight"].detach().cpu().double().numpy().T.copy()))
            h = fl_sim.run(cfg.replace(seed=s), data=problem.data,
                           w_star=problem.w_star_params(), observer=obs).history
            w0s.append(first[0])
            dist.append([h.initial["dist_sq"]] + h.column("dist_sq"))
        measured = np.mean(dist, axis=0)
        if logistic:
            rm = linearised_round(lin, cfg.lr, E)
            theory = np.mean([np.sum(rm.trajectory(lin.to_vec(w), max_rounds) ** 2,
                                     axis=(1, 2)) for w in w0s], axis=0)
        else:
            theory = exact_moments(clients, step_sizes(cfg), E, np.stack(w0s), batch_size,
                                   w_star=c.w_star).dist_sq
        pr.append(_first_below(theory, target_sq))
        mr.append(_first_below(measured, target_sq))
        pd.append(theory.tolist())
        md.append(measured.tolist())
    method = ("FedAvg linearised at w* (theory.linearised: Hessians and gradients of every "
              "F_k at w*; asymptotic, not a bound) from the runs' own w_0; measured: mean "
              "over seeds") if logistic else LocalStepsPrediction.method
    return LocalStepsPrediction(list(local_steps), pr, mr, pd, md, float(target_sq),
                                batch_size, max_rounds, list(seeds), method, problem.name,
                                None if lr is None else float(lr))


@dataclass(frozen=True)
class BudgetPrediction:
    """The best rank policy under a byte budget: predicted before any run vs measured."""

    policies: list[str]  # both sides; "none" is FedAvg
    budget_bytes: int
    predicted_dist_sq: list[float]  # ||w_r - w*||^2 at the last affordable round (mean of seeds)
    measured_dist_sq: list[float]
    predicted_rounds: list[float]  # affordable rounds (mean over seeds)
    measured_rounds: list[float]
    bytes_match: bool  # predicted bytes (theory.costs) == the runs' bytes, every round and seed
    local_steps: int
    seeds: list[int]
    itemsize: int
    predictor: str = "exact"  # "exact" (the compressed map) or "linearised" (at w*)
    problem: str = "ridge"
    lr: float | None = None

    @staticmethod
    def _best(values: list[float], policies: list[str]) -> str:
        return policies[int(np.argmin(values))]

    @property
    def predicted_best(self) -> str:
        return self._best(self.predicted_dist_sq, self.policies)

    @property
    def measured_best(self) -> str:
        return self._best(self.measured_dist_sq, self.policies)

    def to_dict(self) -> dict:
        return {"policies": self.policies, "budget_bytes": self.budget_bytes,
                "predicted_dist_sq": self.predicted_dist_sq,
                "measured_dist_sq": self.measured_dist_sq,
                "predicted_rounds": self.predicted_rounds,
                "measured_rounds": self.measured_rounds, "bytes_match": self.bytes_match,
                "predicted_best": self.predicted_best, "measured_best": self.measured_best,
                "same_ordering": ordering_agrees(self.predicted_dist_sq, self.measured_dist_sq),
                "local_steps": self.local_steps, "seeds": self.seeds, "itemsize": self.itemsize,
                "predictor": self.predictor, "problem": self.problem, "lr": self.lr,
                "method": "iterate the compressed round map (theory.budget.forecast_policy; "
                          + ("the map itself" if self.predictor == "exact" else
                             "linearised at w*, asymptotic")
                          + ") from each seed's w_0 (fl_sim.setup, no training), count each "
                          "round's bytes with theory.costs.round_bytes from the ranks it "
                          "sends, stop at the budget (docs/theory.md §12.4, §13.5); measured: "
                          "simulator runs, the runs' own byte counts"}


def _affordable(cumulative: np.ndarray, budget: int) -> int:
    """The last round ``r`` whose cumulative bytes (``cumulative[r]``, 0 at r = 0) fit."""
    return int(np.nonzero(cumulative <= budget)[0][-1])


def predict_budget(problem: Problem, policies: Sequence[str], budget_bytes: int,
                   local_steps: int = 5, seeds: Sequence[int] = (0, 1, 2),
                   predictor: str = "auto", lr: float | None = None) -> BudgetPrediction:
    """Which policy gets closest to ``w*`` within ``budget_bytes`` (both directions, all clients)?

    Full batch, full participation. Each policy's compressed round map is iterated from each
    seed's ``w_0`` (``fl_sim.setup``: the initialisation only, no training) by
    :func:`theory.budget.forecast_policy`, which counts every round's bytes with
    :mod:`theory.costs`: ``predictor="exact"`` (``"auto"``) is the map itself (ridge: the
    affine map of docs/theory.md §12.4; logistic: the clients' gradient steps), and
    ``"linearised"`` the map linearised at ``w*`` (§12.5; asymptotic for logistic). Then
    simulator runs measure the same. ``lr``: constant step (default ``1/(4L)``).
    """
    from theory.budget import forecast_policy

    c = problem.convex
    budget = int(budget_bytes)
    kw = {} if lr is None else {"lr": float(lr)}
    base = problem.config(local_steps=local_steps, rounds=1, batch_size=None, **kw)
    itemsize = 8 if base.dtype == "float64" else 4
    lin = linearise(c) if predictor == "linearised" else None
    w0 = {s: fl_sim.setup(base.replace(seed=s), problem.data).initial_params()[PARAM]
          .detach().cpu().double().numpy().T.copy() for s in seeds}
    pred, meas, pr_rounds, mr_rounds, match = [], [], [], [], True
    for pol in policies:
        p = None if pol == "none" else pol
        pd, prd, cums = [], [], {}
        for s in seeds:
            fc = forecast_policy(c, p, w0[s], base.lr, local_steps, budget,
                                 predictor=predictor, itemsize=itemsize, lin=lin)
            r = fc.last_round_within(budget)
            pd.append(float(fc.dist_sq[r]))
            prd.append(r)
            cums[s] = fc.cumulative_bytes
        cfg = base.replace(rounds=max(prd) + 1)
        cfg = cfg.replace(algorithm="fedavg") if p is None else cfg.replace(
            algorithm="feddlr", policy_down=p, policy_up=p)
        md, mrd = [], []
        for s in seeds:
            h = fl_sim.run(cfg.replace(seed=s), data=problem.data,
                           w_star=problem.w_star_params()).history
            per = np.array(h.column("bytes_up")) + np.array(h.column("bytes_down"))
            cum = np.concatenate([[0], np.cumsum(per)])
            n = min(cum.size, cums[s].size)
            match &= bool(np.array_equal(cum[:n], cums[s][:n]))
            r = _affordable(cum, budget)
            dist = [h.initial["dist_sq"]] + h.column("dist_sq")
            md.append(float(dist[r]))
            mrd.append(r)
        pred.append(float(np.mean(pd)))
        meas.append(float(np.mean(md)))
        pr_rounds.append(float(np.mean(prd)))
        mr_rounds.append(float(np.mean(mrd)))
    used = "exact" if predictor == "auto" else predictor
    return BudgetPrediction(list(policies), budget, pred, meas, pr_rounds, mr_rounds, match,
                            local_steps, list(seeds), itemsize, used, problem.name,
                            float(base.lr))
