"""Convergence bounds of dual-side compressed FedAvg (FedDLR, reconstructed).

The per-round recursion of docs/theory.md, §3 (after Li, Huang, Yang, Wang &
Zhang, "On the Convergence of FedAvg on Non-IID Data", ICLR 2020)::

    d_{r+1} <= sqrt(rho_r (d_r + e_s,r)^2 + beta_r + eta_last^2 C) + e_c,r
    E F(w_R) - F* <= (L/2) d_R^2

with ``d_r = sqrt(E||w_r - w*||^2)``, ``rho_r = prod_j (1 - mu eta_j)`` and
``beta_r = B sum_j eta_j^2 prod_{i>j} (1 - mu eta_i)`` over the E steps of round r.
The errors are measured (a posteriori, :func:`recursion_bound`) or bounded by the
rank policies (a priori, :func:`a_priori_recursion`). :class:`RoundMap` is one
round of either kind with constant inputs (constant step); it has a fixed point,
the error floor (docs/theory.md, §6).

All distances are root-mean-square (L2 of the random vector), not squared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.optimize

__all__ = [
    "BudgetChoice",
    "FixedPoint",
    "LiSteps",
    "RecursionBound",
    "RoundMap",
    "B_constant",
    "a_priori_recursion",
    "best_policy_under_budget",
    "check_step_sizes",
    "constant_step_round",
    "fixed_point",
    "fixed_point_relative",
    "iterate_maps",
    "li_distance_bound",
    "li_step_sizes",
    "li_theorem1",
    "participation_C",
    "recursion_bound",
    "round_coefficients",
    "rounds_to_target",
]


# ------------------------------------------------------------------ validation
def _pos(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name}: must be finite and > 0, got {v}")
    return v


def _nonneg(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be finite and >= 0, got {v}")
    return v


def _int_ge(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or int(v) != v or v < lo:
        raise ValueError(f"{name}: must be an integer >= {lo}, got {v!r}")
    return int(v)


def _mu_L(mu: float, L: float) -> tuple[float, float]:
    mu, L = _pos("mu", mu), _pos("L", L)
    if L < mu:
        raise ValueError(f"L: must be >= mu (L-smooth and mu-strongly convex), got L={L} < mu={mu}")
    return mu, L


def _nonneg_array(name: str, v, length: int) -> np.ndarray:
    a = np.broadcast_to(np.asarray(v, dtype=np.float64), (length,)).copy()
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name}: must be finite and >= 0 (errors are norms)")
    return a


def check_step_sizes(etas, L: float, E: int) -> np.ndarray:
    """Validate the step sizes Li et al.'s Lemmas 1 and 3 need.

    Conditions (Li et al. 2020, Lemma 1 and Lemma 3; docs/theory.md, §1):
    ``0 < eta_t <= 1/(4L)``, ``eta_t`` non-increasing, ``eta_t <= 2 eta_{t+E}``.

    Parameters
    ----------
    etas : array_like
        Step sizes ``eta_0, ..., eta_{T-1}``.
    L : float
        Smoothness constant.
    E : int
        Local steps per round.

    Returns
    -------
    numpy.ndarray
        The step sizes as float64.

    Raises
    ------
    ValueError
        Naming the violated condition and the first step that violates it.
    """
    L, E = _pos("L", L), _int_ge("E", E, 1)
    eta = np.asarray(etas, dtype=np.float64)
    if eta.ndim != 1 or eta.size == 0:
        raise ValueError("etas: expected a non-empty 1-D sequence of step sizes")
    if not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise ValueError("etas: step sizes must be finite and > 0")
    over = np.nonzero(eta > 1.0 / (4.0 * L) * (1 + 1e-12))[0]
    if over.size:
        t = int(over[0])
        raise ValueError(f"etas: eta_{t} = {eta[t]:.6g} > 1/(4L) = {1 / (4 * L):.6g} (Lemma 1)")
    up = np.nonzero(np.diff(eta) > 1e-15 * eta[1:])[0]
    if up.size:
        t = int(up[0])
        raise ValueError(f"etas: not non-increasing: eta_{t + 1} > eta_{t} (Lemma 3)")
    if eta.size > E:
        bad = np.nonzero(eta[:-E] > 2.0 * eta[E:] * (1 + 1e-12))[0]
        if bad.size:
            t = int(bad[0])
            raise ValueError(f"etas: eta_{t} > 2 eta_{t + E} (Lemma 3, E = {E})")
    return eta


# ------------------------------------------------------------- Li et al. 2020
@dataclass(frozen=True)
class LiSteps:
    """The step sizes of Li et al. (2020), Theorem 1, with their constants.

    An array holder returned by :func:`li_step_sizes`; the simulator's callable
    schedule of the same steps is ``fl_sim.schedules.LiSchedule``.
    """

    kappa: float  # L / mu
    gamma: float  # max(8 kappa, E)
    etas: np.ndarray  # eta_t = 2 / (mu (gamma + t)), t = 0..T-1


def li_step_sizes(mu: float, L: float, E: int, T: int) -> LiSteps:
    """Step sizes of Li et al. (2020), Theorem 1: ``eta_t = 2/(mu (gamma + t))``.

    ``kappa = L/mu``, ``gamma = max(8 kappa, E)``; then ``eta_0 = 2/(mu gamma) <=
    1/(4L)``, the steps decrease and ``eta_t <= 2 eta_{t+E}`` because
    ``gamma >= E`` (docs/theory.md, §7). The conditions are checked.

    Parameters
    ----------
    mu, L : float
        Strong convexity and smoothness, ``0 < mu <= L``.
    E : int
        Local steps per round.
    T : int
        Number of steps.

    Returns
    -------
    LiSteps
    """
    mu, L = _mu_L(mu, L)
    E, T = _int_ge("E", E, 1), _int_ge("T", T, 1)
    kappa = L / mu
    gamma = max(8.0 * kappa, float(E))
    etas = 2.0 / (mu * (gamma + np.arange(T, dtype=np.float64)))
    check_step_sizes(etas, L, E)
    return LiSteps(kappa, gamma, etas)


def B_constant(p, sigma2, L: float, Gamma: float, E: int, G2: float) -> float:
    """``B = sum_k p_k^2 sigma_k^2 + 6 L Gamma + 8 (E-1)^2 G^2``.

    Li et al. (2020), Theorem 1 (from their Lemmas 1-3); assumptions A1-A4
    (docs/theory.md, §1).

    Parameters
    ----------
    p : array_like
        Client weights, non-negative, summing to 1.
    sigma2 : array_like
        Per-client minibatch gradient variance bounds (A3).
    L : float
        Smoothness (A1).
    Gamma : float
        Heterogeneity ``F* - sum_k p_k F_k* >= 0``.
    E : int
        Local steps per round.
    G2 : float
        Bound on ``E||g_k||^2`` (A4).

    Returns
    -------
    float
    """
    p = np.asarray(p, dtype=np.float64)
    s2 = np.broadcast_to(np.asarray(sigma2, dtype=np.float64), p.shape)
    if p.ndim != 1 or np.any(p < 0) or not math.isclose(float(p.sum()), 1.0, rel_tol=1e-9):
        raise ValueError("p: must be a 1-D array of non-negative weights summing to 1")
    if not np.all(np.isfinite(s2)) or np.any(s2 < 0):
        raise ValueError("sigma2: variances must be finite and >= 0")
    L, Gamma, G2 = _pos("L", L), _nonneg("Gamma", Gamma), _nonneg("G2", G2)
    E = _int_ge("E", E, 1)
    return float(np.sum(p**2 * s2) + 6.0 * L * Gamma + 8.0 * (E - 1) ** 2 * G2)


def participation_C(E: int, G2: float, K: int, N: int | None = None,
                    scheme: str = "scheme1") -> float:
    """Sampling-variance constant ``C`` of partial participation (Li et al. 2020, Lemma 5).

    At a synchronization step the sampled average ``w`` and the full average ``v``
    satisfy ``E||w - v||^2 <= eta_t^2 C`` with (Li et al., Lemma 5; Theorems 2, 3)

    - ``"scheme1"`` (Li et al.'s scheme I: ``K`` clients drawn with replacement with
      probabilities ``p_k``, plain average): ``C = 4 E^2 G^2 / K``;
    - ``"scheme2"`` (their scheme II: ``K`` of ``N`` drawn uniformly without
      replacement, weights ``p_k N/K``; the bound assumes balanced ``p_k = 1/N``):
      ``C = (N - K)/(N - 1) * 4 E^2 G^2 / K``.

    The names are the simulator's (``fl_sim.participation.SCHEMES``, which also has
    ``"full"``, where ``C = 0``), so a ``SimConfig.participation`` other than
    ``"full"`` can be passed as it is. docs/theory.md, §4 explains where ``C``
    enters the recursion.

    Parameters
    ----------
    E : int
        Local steps per round.
    G2 : float
        Bound on ``E||g_k||^2`` (A4).
    K : int
        Clients per round.
    N : int, optional
        Number of clients (``"scheme2"`` only).
    scheme : {"scheme1", "scheme2"}
        Sampling scheme, spelled as in ``fl_sim.participation.SCHEMES``.

    Returns
    -------
    float
        ``C`` (the coefficient of ``eta_t^2``).
    """
    E, K, G2 = _int_ge("E", E, 1), _int_ge("K", K, 1), _nonneg("G2", G2)
    base = 4.0 * E**2 * G2 / K
    if scheme == "scheme1":
        return base
    if scheme == "scheme2":
        if N is None:
            raise ValueError("N: scheme2 needs the number of clients N")
        N = _int_ge("N", N, 1)
        if K > N:
            raise ValueError(f"K: cannot sample K={K} of N={N} clients without replacement")
        return 0.0 if N == 1 else (N - K) / (N - 1) * base
    raise ValueError(f"scheme: must be 'scheme1' or 'scheme2' (Li et al.'s schemes I and II), "
                     f"got {scheme!r}")


def li_theorem1(L: float, mu: float, B: float, E: int, T: int, dist0_sq: float) -> float:
    """Li et al. (2020), Theorem 1: ``kappa/(gamma+T-1) (2B/mu + mu gamma/2 ||w_1 - w*||^2)``.

    Bound on ``E F(w_T) - F*`` for FedAvg with full participation and the steps of
    :func:`li_step_sizes`; assumptions A1-A4. docs/theory.md, §7 shows that after
    ``T`` steps (``eta_0 .. eta_{T-1}``) the induction gives the slightly smaller
    ``kappa/(gamma+T) (...)`` (:func:`li_distance_bound`), so this published form
    is valid, with one index of slack, in our indexing.

    Parameters
    ----------
    L, mu : float
        Smoothness and strong convexity, ``0 < mu <= L``.
    B : float
        :func:`B_constant` (plus :func:`participation_C` for partial participation).
    E : int
        Local steps per round.
    T : int
        Number of SGD steps taken, ``>= 1``.
    dist0_sq : float
        ``||w_1 - w*||^2`` (initial squared distance).

    Returns
    -------
    float
    """
    mu, L = _mu_L(mu, L)
    B, dist0_sq = _nonneg("B", B), _nonneg("dist0_sq", dist0_sq)
    E, T = _int_ge("E", E, 1), _int_ge("T", T, 1)
    kappa = L / mu
    gamma = max(8.0 * kappa, float(E))
    return kappa / (gamma + T - 1) * (2.0 * B / mu + mu * gamma / 2.0 * dist0_sq)


def li_distance_bound(mu: float, L: float, B: float, E: int, t, dist0_sq: float):
    """Li et al.'s induction bound ``E||w_t - w*||^2 <= nu / (gamma + t)``.

    ``nu = max(beta^2 B/(beta mu - 1), gamma ||w_0 - w*||^2)`` with ``beta = 2/mu``,
    i.e. ``nu = max(4B/mu^2, gamma dist0_sq)``; for the steps of
    :func:`li_step_sizes` (proof of Li et al. 2020, Theorem 1; docs/theory.md, §7).

    Parameters
    ----------
    mu, L, B, E, dist0_sq
        As in :func:`li_theorem1`.
    t : int or array_like of int
        Number of steps taken.

    Returns
    -------
    float or numpy.ndarray
        Bound on the squared distance.
    """
    mu, L = _mu_L(mu, L)
    B, dist0_sq, E = _nonneg("B", B), _nonneg("dist0_sq", dist0_sq), _int_ge("E", E, 1)
    gamma = max(8.0 * L / mu, float(E))
    nu = max(4.0 * B / mu**2, gamma * dist0_sq)
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0):
        raise ValueError("t: must be >= 0")
    out = nu / (gamma + t)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------- one round
def round_coefficients(etas_round, mu: float, B) -> tuple[float, float]:
    """``(rho, beta)`` of one round: E one-step inequalities unrolled.

    ``rho = prod_j (1 - mu eta_j)``, ``beta = sum_j eta_j^2 B_j prod_{i>j} (1 - mu eta_i)``
    (docs/theory.md, §2). ``B`` is one constant for the round or one per local step
    (``B_j``: the measured-drift variant of docs/theory.md §11.1). Assumes the step
    conditions of :func:`check_step_sizes`.
    """
    mu = _pos("mu", mu)
    eta = np.asarray(etas_round, dtype=np.float64)
    b = np.asarray(B, dtype=np.float64)
    if b.ndim == 0:
        b = np.full(eta.shape, _nonneg("B", float(b)))
    elif b.shape != eta.shape:
        raise ValueError(f"B: a per-step B must have the round's shape {eta.shape}, got {b.shape}")
    elif not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError("B: must be finite and >= 0")
    rho, beta = 1.0, 0.0
    for e, bj in zip(eta, b, strict=True):
        rho *= 1.0 - mu * e
        beta = (1.0 - mu * e) * beta + bj * e**2
    return rho, beta


def constant_step_round(mu: float, eta: float, E: int, B: float) -> tuple[float, float]:
    """``(rho, beta)`` for a constant step: ``rho = (1 - mu eta)^E``, ``beta = B eta (1-rho)/mu``.

    ``beta = B eta^2 sum_{j<E} (1 - mu eta)^j = B eta^2 (1 - rho)/(mu eta)``
    (geometric sum; docs/theory.md, §6). The caller checks ``eta <= 1/(4L)``.
    """
    mu, eta, B = _pos("mu", mu), _pos("eta", eta), _nonneg("B", B)
    E = _int_ge("E", E, 1)
    if mu * eta >= 1:
        raise ValueError(f"eta: mu * eta must be < 1, got {mu * eta}")
    rho = (1.0 - mu * eta) ** E
    return rho, B * eta * (1.0 - rho) / mu


@dataclass(frozen=True)
class RoundMap:
    """One round of the recursion with constant inputs (docs/theory.md, §3, §5, §6).

    ``d -> sqrt(a2(d) + sync_var) + e_c + q_c (w_star_norm + sqrt(a2(d) + drift_sq))``
    with ``s(d) = d + e_s + q_s (w_star_norm + d)`` and ``a2(d) = rho s(d)^2 + beta``.
    With ``q_s = q_c = 0`` it is the a-posteriori map; with ``e_s = e_c = 0`` the
    a-priori one. ``sync_var = eta_last^2 C`` is partial participation's sampling
    variance; ``drift_sq = E G^2 sum_j eta_j^2`` bounds the client drift.
    """

    rho: float  # prod_j (1 - mu eta_j), in [0, 1)
    beta: float  # B sum_j eta_j^2 prod_{i>j} (1 - mu eta_i)
    e_s: float = 0.0  # server compression error (RMS), absolute
    e_c: float = 0.0  # client compression error (RMS), absolute
    q_s: float = 0.0  # server relative error: ||C_s(w) - w|| <= q_s ||w||
    q_c: float = 0.0  # client relative error: ||C_c(w) - w|| <= q_c ||w||
    w_star_norm: float = 0.0  # ||w*||, used with q_s, q_c
    drift_sq: float = 0.0  # bound on sum_k p_k E||w^k - v||^2 at the round's end
    sync_var: float = 0.0  # eta_last^2 C (partial participation)

    def __post_init__(self) -> None:
        if not (0.0 <= float(self.rho) < 1.0):
            raise ValueError(f"rho: must lie in [0, 1), got {self.rho}")
        for name in ("beta", "e_s", "e_c", "q_s", "q_c", "w_star_norm", "drift_sq", "sync_var"):
            _nonneg(name, getattr(self, name))

    def __call__(self, d):
        """Bound on ``d_{r+1}`` given ``d_r = d`` (scalar or array)."""
        s = d + self.e_s + self.q_s * (self.w_star_norm + d)
        a2 = self.rho * s * s + self.beta
        return (np.sqrt(a2 + self.sync_var) + self.e_c
                + self.q_c * (self.w_star_norm + np.sqrt(a2 + self.drift_sq)))

    def errors(self, d: float) -> tuple[float, float]:
        """``(e_s, e_c)`` the map uses at ``d``: the given errors plus the relative ones."""
        s = d + self.e_s + self.q_s * (self.w_star_norm + d)
        a2 = self.rho * s * s + self.beta
        return (self.e_s + self.q_s * (self.w_star_norm + d),
                self.e_c + self.q_c * (self.w_star_norm + math.sqrt(a2 + self.drift_sq)))

    @property
    def lipschitz(self) -> float:
        """``sqrt(rho)(1 + q_s)(1 + q_c)``: sup of the map's slope (attained as d -> inf)."""
        return math.sqrt(self.rho) * (1.0 + self.q_s) * (1.0 + self.q_c)


@dataclass(frozen=True)
class FixedPoint:
    """The error floor: a fixed point ``d = map(d)`` of a :class:`RoundMap`."""

    d: float  # the fixed point: the floor the recursion converges to from any start
    lipschitz: float  # sup slope of the map, < 1 (a contraction)

    @property
    def dist_sq(self) -> float:
        """``d^2``: the floor of ``E||w - w*||^2``."""
        return self.d**2

    def excess(self, L: float) -> float:
        """``L/2 d^2``: the floor of ``E F(w) - F*``."""
        return 0.5 * _pos("L", L) * self.d**2


def fixed_point(rho: float, beta: float, e_s: float, e_c: float) -> float:
    """Fixed point of ``d = sqrt(rho (d + e_s)^2 + beta) + e_c`` (constant errors).

    With ``c = e_s + e_c``: ``d_inf = e_c + (rho c + sqrt(rho c^2 + (1 - rho) beta))/(1 - rho)``,
    the unique fixed point (the map is a ``sqrt(rho)``-contraction) and the limit of
    the recursion from any start. Derived in docs/theory.md, §6.

    Parameters
    ----------
    rho : float
        In ``[0, 1)``.
    beta : float
        ``>= 0``.
    e_s, e_c : float
        Server and client errors (RMS), ``>= 0``.

    Returns
    -------
    float
    """
    rho = float(rho)
    if not (0.0 <= rho < 1.0):
        raise ValueError(f"rho: must lie in [0, 1) for a finite fixed point, got {rho}")
    beta, e_s, e_c = _nonneg("beta", beta), _nonneg("e_s", e_s), _nonneg("e_c", e_c)
    c = e_s + e_c
    return e_c + (rho * c + math.sqrt(rho * c * c + (1.0 - rho) * beta)) / (1.0 - rho)


def _fixed_point_of(m: RoundMap) -> FixedPoint:
    """The fixed point of a contracting RoundMap; ValueError if the map does not contract.

    ``m(d) >= sqrt(rho)(1 + q_c) s(d) + e_c >= lipschitz * d`` with strict inequality
    unless every constant vanishes, so for ``lipschitz >= 1`` no positive fixed
    point exists and the bound grows without limit (docs/theory.md, §6).
    """
    lip = m.lipschitz
    if lip >= 1.0:
        raise ValueError(
            "no finite fixed point: the round map is not a contraction "
            f"(sqrt(rho)(1+q_s)(1+q_c) = {lip:.6g} >= 1); it lies above the diagonal, so the "
            "bound grows without limit; lower q_s, q_c (keep more rank) or rho (larger mu eta E)"
        )

    def g(d: float) -> float:
        return float(m(d)) - d

    g0 = g(0.0)
    if g0 <= 0.0:  # only when the map vanishes at 0
        return FixedPoint(0.0, lip)
    hi = g0 / (1.0 - lip)  # m(d) <= m(0) + lip d, so the fixed point is <= m(0)/(1 - lip)
    while g(hi) > 0.0:  # only rounding can leave g(hi) > 0
        hi *= 2.0
    d = scipy.optimize.brentq(g, 0.0, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
    return FixedPoint(float(d), lip)


def fixed_point_relative(
    rho: float,
    beta: float,
    q_s: float,
    q_c: float,
    w_star_norm: float,
    drift_sq: float = 0.0,
    sync_var: float = 0.0,
) -> FixedPoint:
    """Error floor of the a-priori recursion with a constant step (docs/theory.md, §6).

    Fixed point of ``d = sqrt(a2 + sync_var) + q_c (||w*|| + sqrt(a2 + drift_sq))``,
    ``a2 = rho ((1 + q_s) d + q_s ||w*||)^2 + beta``. The map is convex and
    increasing with slope below ``lambda = sqrt(rho)(1 + q_s)(1 + q_c)``: for
    ``lambda < 1`` it is a contraction with a unique fixed point, the limit from any
    start. For ``lambda >= 1`` the map lies above ``lambda d >= d``, no finite fixed
    point exists, and a ValueError explains the contraction condition.

    Parameters
    ----------
    rho, beta : float
        Round coefficients (:func:`constant_step_round`).
    q_s, q_c : float
        Square roots of the relative error bounds of the server and client policies
        (:func:`theory.approximation.model_relative_error_bound`).
    w_star_norm : float
        ``||w*||``.
    drift_sq : float
        ``E G^2 sum_j eta_j^2`` (``= E^2 eta^2 G^2`` for a constant step).
    sync_var : float
        ``eta^2 C`` for partial participation.

    Returns
    -------
    FixedPoint
    """
    m = RoundMap(rho=rho, beta=beta, q_s=q_s, q_c=q_c, w_star_norm=w_star_norm,
                 drift_sq=drift_sq, sync_var=sync_var)
    return _fixed_point_of(m)


def rounds_to_target(
    round_map: Callable[[float], float], d0: float, target: float, *,
    max_rounds: int = 1_000_000
) -> int | None:
    """First round ``r`` with ``d_r <= target``, iterating a constant-step map ``d -> m(d)``.

    ``round_map`` is any increasing map of the distance bound with a constant step: a
    :class:`RoundMap` or a scalar map of :mod:`theory.quadratic`. The iterates of an
    increasing map are monotone; when they stop decreasing above ``target`` (the floor
    is at or above the target) None is returned. For a :class:`RoundMap` that does not
    contract None is returned at once; if its floor is at or above the target, too.
    For a time-varying schedule use :meth:`RecursionBound.first_round_below`.
    To target the excess ``E F - F* <= eps`` pass ``target = sqrt(2 eps / L)``.

    Parameters
    ----------
    round_map : callable
        One round, ``d_r -> d_{r+1}`` (increasing).
    d0 : float
        ``d_0 >= 0``.
    target : float
        Target distance ``> 0``.
    max_rounds : int
        Safety cap; a ValueError if reached while the iterates still decrease.

    Returns
    -------
    int or None
    """
    d, target = _nonneg("d0", d0), _pos("target", target)
    if d <= target:
        return 0
    if isinstance(round_map, RoundMap):
        try:
            floor = _fixed_point_of(round_map)
        except ValueError:
            return None
        if floor.d >= target:
            return None
    for r in range(1, _int_ge("max_rounds", max_rounds, 1) + 1):
        nxt = float(round_map(d))
        if nxt <= target:
            return r
        if not nxt < d:  # stalled above the target (or rising): never reached
            return None
        d = nxt
    raise ValueError(f"max_rounds: target not reached within {max_rounds} rounds")


# ------------------------------------------------------------------ recursion
@dataclass(frozen=True)
class RecursionBound:
    """Round-by-round bound of dual-side compressed FedAvg (docs/theory.md, §3)."""

    d: np.ndarray  # (R+1,) bound on sqrt(E||w_r - w*||^2), r = 0..R
    rho: np.ndarray  # (R,) per-round contraction
    beta: np.ndarray  # (R,) per-round noise term
    e_s: np.ndarray  # (R,) server errors used (measured or a-priori bounds)
    e_c: np.ndarray  # (R,) client errors used
    L: float  # smoothness, for the excess

    @property
    def dist_sq(self) -> np.ndarray:
        """Bound on ``E||w_r - w*||^2``."""
        return self.d**2

    @property
    def excess(self) -> np.ndarray:
        """Bound on ``E F(w_r) - F*``: ``L/2 d_r^2`` (L-smoothness, grad F(w*) = 0)."""
        return 0.5 * self.L * self.d**2

    def first_round_below(self, target: float) -> int | None:
        """First ``r`` with ``d_r <= target`` (None if none within the horizon)."""
        hit = np.nonzero(self.d <= _pos("target", target))[0]
        return int(hit[0]) if hit.size else None


def _split_rounds(etas, E: int, L: float, mu: float) -> np.ndarray:
    mu, L = _mu_L(mu, L)
    eta = check_step_sizes(etas, L, E)
    if eta.size % E:
        raise ValueError(f"etas: length {eta.size} is not a multiple of E = {E} (R rounds of E)")
    return eta.reshape(-1, E)


def _per_round(name: str, v, R: int) -> np.ndarray:
    """A scalar or one value per round, as a checked ``(R,)`` array."""
    return _nonneg_array(name, v, R)


def iterate_maps(d0: float, maps: Sequence[RoundMap], L: float) -> RecursionBound:
    """The one recursion driver: ``d_{r+1} = maps[r](d_r)``, recording what each round used.

    Every recursion of this module (a posteriori, a priori, per-round or per-step
    constants) is a sequence of :class:`RoundMap` s fed to this loop.

    Parameters
    ----------
    d0 : float
        ``d_0 >= 0``.
    maps : sequence of RoundMap
        One per round.
    L : float
        Smoothness, kept for the excess.

    Returns
    -------
    RecursionBound
    """
    d0 = _nonneg("d0", d0)
    R = len(maps)
    d = np.empty(R + 1)
    rho, beta, es, ec = (np.empty(R) for _ in range(4))
    d[0] = d0
    for r, m in enumerate(maps):
        rho[r], beta[r] = m.rho, m.beta
        es[r], ec[r] = m.errors(float(d[r]))
        d[r + 1] = m(d[r])
    return RecursionBound(d, rho, beta, es, ec, float(L))


def recursion_bound(
    d0: float,
    etas,
    E: int,
    mu: float,
    L: float,
    B,
    e_s,
    e_c,
    C=0.0,
) -> RecursionBound:
    """A-posteriori bound: the recursion fed with (measured) compression errors.

    ``d_{r+1} = sqrt(rho_r (d_r + e_s,r)^2 + beta_r + eta_{rE+E-1}^2 C_r) + e_c,r``,
    derived in docs/theory.md, §1-§4 from Li et al. (2020), Lemmas 1-3 (and
    Lemmas 4-5 for ``C``). Assumptions: A1-A4 with the constants in ``B``
    (and ``C``) valid on each round; step conditions of :func:`check_step_sizes`
    (checked); ``e_s,r = sqrt(E||C_s(w_r) - w_r||^2)`` and
    ``e_c,r = sqrt(E||sum_k p_k (C_c(w^k) - w^k)||^2)`` (or their Jensen upper
    bound ``sqrt(sum_k p_k E||C_c(w^k) - w^k||^2)``).

    Li et al.'s Lemmas 1-3 (and 5) are statements about the steps of one round, so the
    unrolled inequality of §2 holds with constants that bound A3/A4 on round ``r`` only
    (``B_r``, ``C_r``; docs/theory.md, "Checking the bound against runs"); ``B`` may
    also be one value per *step* (the measured drift of §11.1).

    Parameters
    ----------
    d0 : float
        ``sqrt(E||w_0 - w*||^2)``.
    etas : array_like
        Step sizes of all ``R E`` steps.
    E : int
        Local steps per round.
    mu, L : float
        Strong convexity and smoothness (``L`` enters the step check and the excess).
    B : float or array_like
        :func:`B_constant`: one value, one per round ``(R,)`` or one per step ``(R, E)``.
    e_s, e_c : array_like or float
        Per-round errors (length ``R``; a scalar is broadcast), ``>= 0``.
    C : float or array_like
        :func:`participation_C` (0 for full participation), one value or one per round;
        added at the synchronization step only, which is tighter than adding it to ``B``.

    Returns
    -------
    RecursionBound
    """
    E = _int_ge("E", E, 1)
    rounds = _split_rounds(etas, E, L, mu)
    R = rounds.shape[0]
    if np.ndim(B) == 2:
        B_r = np.asarray(B, dtype=np.float64)
        if B_r.shape != rounds.shape:
            raise ValueError(f"B: a per-step B must have shape (R, E) = {rounds.shape}, "
                             f"got {B_r.shape}")
    else:
        B_r = _per_round("B", B, R)
    C_r, es, ec = _per_round("C", C, R), _nonneg_array("e_s", e_s, R), _nonneg_array("e_c", e_c, R)
    maps = []
    for r in range(R):
        rho, beta = round_coefficients(rounds[r], mu, B_r[r])
        maps.append(RoundMap(rho, beta, e_s=es[r], e_c=ec[r],
                             sync_var=rounds[r, -1] ** 2 * C_r[r]))
    return iterate_maps(d0, maps, L)


def a_priori_recursion(
    d0: float,
    etas,
    E: int,
    mu: float,
    L: float,
    B: float,
    q_s: float,
    q_c: float,
    w_star_norm: float,
    G2: float,
    C: float = 0.0,
) -> RecursionBound:
    """A-priori bound: compression errors bounded by the rank policies (docs/theory.md, §5).

    Per round, with ``W = ||w*||``, ``D_r^2 = E G^2 sum_j eta_j^2`` (client drift at
    the round's end) and ``a_r^2 = rho_r ((1+q_s) d_r + q_s W)^2 + beta_r``::

        e_s,r <= q_s (W + d_r)
        e_c,r <= q_c (W + sqrt(a_r^2 + D_r^2))
        d_{r+1} <= sqrt(a_r^2 + eta_last^2 C) + e_c,r

    Assumptions: those of :func:`recursion_bound`; ``||C_s(w) - w|| <= q_s ||w||``
    and ``||C_c(w) - w|| <= q_c ||w||`` for every model ``w`` (exact truncated SVD;
    ``q^2`` from :func:`theory.approximation.model_relative_error_bound`); ``G2``
    bounds ``E||g_k||^2`` along the run (A4).

    Parameters
    ----------
    d0 : float
        ``sqrt(E||w_0 - w*||^2)``.
    etas : array_like
        Step sizes of all ``R E`` steps.
    E : int
        Local steps per round.
    mu, L, B : float
        As in :func:`recursion_bound`.
    q_s, q_c : float
        Relative (not squared) error factors, ``>= 0``.
    w_star_norm : float
        ``||w*||``.
    G2 : float
        A4 constant.
    C : float
        Partial participation constant.

    Returns
    -------
    RecursionBound
        With ``e_s``, ``e_c`` the error bounds used.
    """
    E = _int_ge("E", E, 1)
    rounds = _split_rounds(etas, E, L, mu)
    B, C, G2 = _nonneg("B", B), _nonneg("C", C), _nonneg("G2", G2)
    q_s, q_c, W = _nonneg("q_s", q_s), _nonneg("q_c", q_c), _nonneg("w_star_norm", w_star_norm)
    maps = []
    for eta_r in rounds:
        rho, beta = round_coefficients(eta_r, mu, B)
        maps.append(RoundMap(rho, beta, q_s=q_s, q_c=q_c, w_star_norm=W,
                             drift_sq=E * G2 * float(np.sum(eta_r**2)),
                             sync_var=eta_r[-1] ** 2 * C))
    return iterate_maps(d0, maps, L)


# ------------------------------------------------------------- policy choice
@dataclass(frozen=True)
class BudgetChoice:
    """One candidate evaluated by :func:`best_policy_under_budget`."""

    candidate: Any  # what the caller passed (e.g. a (server, client) policy pair)
    floor: float  # error floor d_inf of its round map (inf if none)
    rounds: int | None  # rounds the bound needs to reach the target (None: never)
    bytes_per_round: float  # bytes of one round
    total_bytes: float  # rounds * bytes_per_round (inf if never)

    @property
    def feasible(self) -> bool:
        """Reaches the target at all."""
        return self.rounds is not None


def best_policy_under_budget(
    candidates: Sequence[Any],
    round_map_fn: Callable[[Any], Any],
    bytes_per_round_fn: Callable[[Any], float] | None,
    d0: float,
    target: float,
    budget: float,
    *,
    max_rounds: int = 1_000_000,
) -> tuple[BudgetChoice | None, tuple[BudgetChoice, ...]]:
    """Cheapest candidate that reaches ``target`` within a byte budget, by its round map.

    With Li et al.'s :class:`RoundMap` s this is **Li et al.'s ranking** (docs/theory.md §6):
    for each candidate its constant-step map (e.g. built from :func:`constant_step_round`
    and the ``q`` of its policies) gives the rounds to reach ``d_r <= target``
    (:func:`rounds_to_target`) and the floor; the bytes to get there are
    ``rounds * bytes_per_round``. Any increasing scalar map works the same way (e.g.
    :class:`theory.local_sgd.LocalRoundMap`, docs/theory.md §13). ``round_map_fn`` may also
    return a forecast (:class:`theory.budget.PolicyForecast`: the predicted distance and
    the cumulative bytes of every round, from the exact or linearised compressed map);
    then the rounds and bytes are read off it and ``bytes_per_round_fn`` may be None. Among
    candidates with ``total_bytes <= budget`` the one with the fewest bytes wins, ties
    broken by the lower floor. Li et al.'s floors are 10^2-10^5 too high on the convex
    problems of ``boundcheck`` and its choice there is the worst run's: the library's
    choice is :func:`theory.budget.choose_policy` (best predictor available).

    Parameters
    ----------
    candidates : sequence
        Anything; passed to the two functions.
    round_map_fn : callable
        ``candidate -> RoundMap`` (or any increasing scalar map, or a forecast with
        ``dist_sq`` and ``cumulative_bytes`` arrays).
    bytes_per_round_fn : callable or None
        ``candidate -> bytes of one round`` (e.g. ``round_bytes(...).total``); None only
        with forecasts.
    d0 : float
        Initial distance bound.
    target : float
        Target distance (``sqrt(2 eps/L)`` for an excess ``eps``).
    budget : float
        Total bytes allowed.
    max_rounds : int
        Passed to :func:`rounds_to_target`.

    Returns
    -------
    (BudgetChoice or None, tuple of BudgetChoice)
        The winner (None if no candidate fits) and every evaluation, in order.
    """
    budget = _nonneg("budget", budget)
    evaluated = []
    for cand in candidates:
        m = round_map_fn(cand)
        if hasattr(m, "dist_sq") and hasattr(m, "cumulative_bytes"):  # a forecast
            dist, cum = np.asarray(m.dist_sq), np.asarray(m.cumulative_bytes)
            hit = np.nonzero(dist <= _pos("target", target) ** 2)[0]
            rounds = int(hit[0]) if hit.size else None
            nbytes = (float(cum[-1]) / (cum.size - 1) if bytes_per_round_fn is None
                      else _nonneg("bytes_per_round", bytes_per_round_fn(cand)))
            total = math.inf if rounds is None else float(cum[rounds])
            evaluated.append(BudgetChoice(cand, math.sqrt(float(dist[-1])), rounds, nbytes,
                                          total))
            continue
        nbytes = _nonneg("bytes_per_round", bytes_per_round_fn(cand))
        try:
            floor = _fixed_point_of(m).d
        except ValueError:
            floor = math.inf
        rounds = rounds_to_target(m, d0, target, max_rounds=max_rounds)
        total = math.inf if rounds is None else rounds * nbytes
        evaluated.append(BudgetChoice(cand, floor, rounds, nbytes, total))
    fits = [c for c in evaluated if c.total_bytes <= budget]
    best = min(fits, key=lambda c: (c.total_bytes, c.floor)) if fits else None
    return best, tuple(evaluated)
