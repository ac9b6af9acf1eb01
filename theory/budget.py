"""Choosing a rank policy under a byte budget with the best predictor available.

A *forecast* of a policy pair is the predicted ``||w_r - w*||^2`` of full-batch FedDLR with
full participation, round by round, with the bytes each round sends (counted by
:func:`theory.costs.round_bytes` from the ranks the predicted run sends). Predictors
(docs/theory.md §12.4, §12.5, §13.5):

- ``"exact"``: the deterministic compressed round map itself. Ridge: the affine map of
  :mod:`theory.quadratic` (``W -> sum_k p_k C_u(P_k C_d(W) + c_k)``); logistic: every
  client's ``E`` full-batch gradient steps (:func:`theory.local_sgd.local_gd`) between the
  truncations. Exact for full batch and full participation, up to rounding.
- ``"linearised"``: the map linearised at ``w*`` (:mod:`theory.linearised`): an asymptotic
  predictor for smooth non-quadratic problems (exact for ridge).

:func:`choose_policy` is the library's choice (the closest to ``w*`` when the budget is
spent, or the cheapest to reach a target); ``"auto"`` picks ``"exact"``. Li et al.'s
ranking (a-priori bound, docs/theory.md §6) stays available as
:func:`theory.bounds.best_policy_under_budget` fed with Li's :class:`theory.bounds.RoundMap` s;
that function also accepts these forecasts. This module never imports ``fl_sim``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .constants import ConvexProblem
from .costs import round_bytes
from .linearised import Linearisation, linearise, linearised_round
from .local_sgd import local_gd
from .quadratic import LeastSquaresClients, compressed_round, round_maps

__all__ = ["PREDICTORS", "PolicyChoice", "PolicyForecast", "choose_policy", "forecast_policy"]

PREDICTORS = ("auto", "exact", "linearised")


@dataclass(frozen=True)
class PolicyForecast:
    """Predicted ``||w_r - w*||^2`` and cumulative bytes, ``r = 0..R`` (bytes 0 at ``r = 0``)."""

    policy: str | None  # both sides; None: FedAvg
    dist_sq: np.ndarray  # (R+1,)
    cumulative_bytes: np.ndarray  # (R+1,)
    predictor: str  # "exact" or "linearised"
    ranks_down: list[int | None]  # (R,) rank broadcast each round (None: dense)

    def rounds_to(self, target_sq: float) -> int | None:
        """First ``r`` with ``dist_sq[r] <= target_sq`` within the forecast (None: not reached)."""
        hit = np.nonzero(self.dist_sq <= float(target_sq))[0]
        return int(hit[0]) if hit.size else None

    def last_round_within(self, budget: float) -> int:
        """The last round whose cumulative bytes fit ``budget``."""
        return int(np.nonzero(self.cumulative_bytes <= float(budget))[0][-1])

    def dist_sq_at_budget(self, budget: float) -> float:
        """``||w_r - w*||^2`` at :meth:`last_round_within`."""
        return float(self.dist_sq[self.last_round_within(budget)])


def _client_maps(convex: ConvexProblem, eta: float, E: int, predictor: str,
                 lin: Linearisation | None):
    """``f(start) -> (N, d, c)`` the clients' models after one round from ``start``."""
    if predictor == "exact" and convex.kind == "ridge":
        rm = round_maps(LeastSquaresClients.from_convex(convex), [eta] * E, E)[0]
        return lambda W: rm.P_clients @ W + rm.c_clients
    if predictor == "exact":
        etas = [eta] * E
        return lambda W: np.stack([local_gd(convex, k, W, etas)
                                   for k in range(convex.num_clients)])
    lin = linearise(convex) if lin is None else lin
    rm = linearised_round(lin, eta, E)
    shape = convex.shape

    def step(W):
        x = lin.to_vec(W)  # (D, 1)
        y = rm.P_clients @ x + rm.c_clients  # (N, D, 1)
        return lin.w_star + y.reshape(-1, *shape)

    return step


def forecast_policy(convex: ConvexProblem, policy: str | None, W0, eta: float, E: int,
                    budget_bytes: float, *, predictor: str = "auto", itemsize: int = 8,
                    lin: Linearisation | None = None, max_rounds: int = 100_000
                    ) -> PolicyForecast:
    """Iterate the compressed round map from ``W0`` until ``budget_bytes`` is spent.

    Parameters
    ----------
    convex : ConvexProblem
        Ridge or logistic regression; the model is the bias-free linear layer ``W^T``.
    policy : str or None
        Rank policy of both sides (None or ``"none"``: FedAvg).
    W0 : array_like
        ``(d, c)`` initial model (e.g. the simulator's initialisation, transposed).
    eta, E : float, int
        Constant step and local steps (full-batch local GD, full participation).
    budget_bytes : float
        Bytes of both directions, all clients; the forecast stops at the first round that
        exceeds it (or after ``max_rounds``).
    predictor : {"auto", "exact", "linearised"}
        See the module docstring; ``"auto"`` is ``"exact"``.
    itemsize : int
        Bytes per number (8 for float64 runs).
    lin : Linearisation, optional
        Reused across policies (``"linearised"``).

    Returns
    -------
    PolicyForecast
    """
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor: expected one of {PREDICTORS}, got {predictor!r}")
    predictor = "exact" if predictor == "auto" else predictor
    pol = None if policy in (None, "none") else policy
    step = _client_maps(convex, float(eta), int(E), predictor, lin)
    d, c = convex.shape
    shape = (c, d)  # the linear layer's weight (out, d)
    N = convex.num_clients
    W = np.array(W0, dtype=np.float64)
    dist, cum, ranks = [float(np.sum((W - convex.w_star) ** 2))], [0.0], []
    for _ in range(int(max_rounds)):
        W, r_down, r_up = compressed_round(step, convex.p, W, pol, pol)
        cum.append(cum[-1] + round_bytes([shape], [r_down], [[r] for r in r_up], N,
                                         itemsize).total)
        dist.append(float(np.sum((W - convex.w_star) ** 2)))
        ranks.append(r_down)
        if cum[-1] > budget_bytes:
            break
    return PolicyForecast(pol, np.array(dist), np.array(cum), predictor, ranks)


@dataclass(frozen=True)
class PolicyChoice:
    """:func:`choose_policy`'s answer and every forecast behind it."""

    best: str  # "none" for FedAvg
    forecasts: dict[str, PolicyForecast]
    criterion: str  # "closest at budget" or "cheapest to target"


def choose_policy(convex: ConvexProblem, policies: Sequence[str], W0, eta: float, E: int,
                  budget_bytes: float, *, target_sq: float | None = None,
                  predictor: str = "auto", itemsize: int = 8) -> PolicyChoice:
    """The library's choice of a rank policy under a byte budget (docs/theory.md §13.5).

    Without ``target_sq``: the policy whose forecast is closest to ``w*`` when the budget is
    spent (ties: the earlier policy). With ``target_sq``: the one that reaches
    ``||w - w*||^2 <= target_sq`` with the fewest bytes within the budget (None-like
    ``"none reaches"`` is never returned: a ValueError says no policy reaches it).
    """
    lin = linearise(convex) if predictor == "linearised" else None
    fc = {p: forecast_policy(convex, p, W0, eta, E, budget_bytes, predictor=predictor,
                             itemsize=itemsize, lin=lin) for p in policies}
    if target_sq is None:
        best = min(policies, key=lambda p: fc[p].dist_sq_at_budget(budget_bytes))
        return PolicyChoice(best, fc, "closest at budget")
    cost = {}
    for p in policies:
        r = fc[p].rounds_to(target_sq)
        if r is not None and fc[p].cumulative_bytes[r] <= budget_bytes:
            cost[p] = float(fc[p].cumulative_bytes[r])
    if not cost:
        raise ValueError(f"target_sq: no policy reaches {target_sq:g} within "
                         f"{budget_bytes:g} bytes")
    return PolicyChoice(min(cost, key=cost.get), fc, "cheapest to target")
