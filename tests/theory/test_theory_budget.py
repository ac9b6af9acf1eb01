"""theory.budget: forecasts of the compressed map and the library's policy choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from theory.bounds import best_policy_under_budget
from theory.budget import choose_policy, forecast_policy
from theory.constants import logistic_problem, ridge_problem
from theory.costs import round_bytes
from theory.quadratic import LeastSquaresClients, compressed_run, round_maps


@pytest.fixture(scope="module")
def ridge():
    rng = np.random.default_rng(0)
    teacher = rng.normal(size=(6, 4)) * 0.5 ** np.arange(4)
    clients = []
    for _ in range(3):
        x = rng.normal(size=(12, 6))
        clients.append((x, x @ (teacher + 0.3 * rng.normal(size=teacher.shape))))
    return ridge_problem(clients, lam=0.1)


def test_exact_forecast_is_the_compressed_map_with_its_bytes(ridge):
    eta, E = 1 / (4 * ridge.L), 3
    W0 = np.random.default_rng(1).normal(size=ridge.shape)
    fc = forecast_policy(ridge, "fixed:1", W0, eta, E, budget_bytes=5_000)
    rm = round_maps(LeastSquaresClients.from_convex(ridge), [eta] * E, E)[0]
    R = fc.dist_sq.size - 1
    run = compressed_run(rm, W0, R, "fixed:1", "fixed:1")
    assert fc.dist_sq == pytest.approx(np.sum((run.W - ridge.w_star) ** 2, axis=(1, 2)),
                                       rel=1e-12)
    per = [round_bytes([(4, 6)], [d], [[u] for u in up], 3, 8).total
           for d, up in zip(run.ranks_down, run.ranks_up, strict=True)]
    assert np.array_equal(fc.cumulative_bytes, np.concatenate([[0], np.cumsum(per)]))
    assert fc.cumulative_bytes[-1] > 5_000 >= fc.cumulative_bytes[-2]  # stops past the budget


def test_choice_is_the_brute_force_best_and_li_reads_forecasts(ridge):
    eta, E, budget = 1 / (4 * ridge.L), 2, 20_000
    W0 = np.zeros(ridge.shape)
    pols = ["none", "fixed:1", "fixed:2", "fixed:3"]
    ch = choose_policy(ridge, pols, W0, eta, E, budget)
    at_budget = {}
    for p in pols:  # brute force: walk each forecast to the last round whose bytes fit
        fc = ch.forecasts[p]
        r = 0
        while r + 1 < fc.cumulative_bytes.size and fc.cumulative_bytes[r + 1] <= budget:
            r += 1
        at_budget[p] = float(fc.dist_sq[r])
    assert min(at_budget.values()) < 0.1 * max(at_budget.values())  # a real choice
    assert ch.best == min(at_budget, key=at_budget.get)
    target_sq = 1.5 * at_budget[ch.best]  # reached within the budget by the best at least
    cheap = choose_policy(ridge, pols, W0, eta, E, budget, target_sq=target_sq)
    costs = {}
    for p in pols:  # brute force: walk every forecast
        fc = cheap.forecasts[p]
        hit = [r for r in range(fc.dist_sq.size) if fc.dist_sq[r] <= target_sq]
        if hit and fc.cumulative_bytes[hit[0]] <= budget:
            costs[p] = fc.cumulative_bytes[hit[0]]
    assert cheap.best == min(costs, key=costs.get)
    best, evaluated = best_policy_under_budget(pols, lambda p: cheap.forecasts[p], None, 0.0,
                                               math.sqrt(target_sq), budget)
    assert best.candidate == cheap.best and best.total_bytes == costs[cheap.best]


def test_linearised_forecast_is_the_linearised_map():
    """Without compression the linearised forecast is the affine map of theory.linearised."""
    from theory.linearised import linearise, linearised_round

    rng = np.random.default_rng(2)
    clients = [(rng.normal(size=(10, 3)), rng.integers(0, 3, size=10)) for _ in range(3)]
    prob = logistic_problem(clients, 3, 0.5)
    W0 = prob.w_star + 0.3 * rng.normal(size=prob.shape)
    eta, E = 1 / prob.L, 3
    li = forecast_policy(prob, None, W0, eta, E, 2_000, predictor="linearised")
    lin = linearise(prob)
    traj = linearised_round(lin, eta, E).trajectory(lin.to_vec(W0), li.dist_sq.size - 1)
    assert li.dist_sq == pytest.approx(np.sum(traj**2, axis=(1, 2)), rel=1e-9)
    ex = forecast_policy(prob, None, W0, eta, E, 2_000)
    assert ex.predictor == "exact" and not np.allclose(ex.dist_sq[1:], li.dist_sq[1:])
    with pytest.raises(ValueError, match="predictor"):
        forecast_policy(prob, None, W0, eta, 3, 1, predictor="li")
