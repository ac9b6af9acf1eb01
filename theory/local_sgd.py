"""Local GD / SGD on smooth strongly convex objectives: drift measured AT THE OPTIMUM.

Our derivation (docs/theory.md §13). Li et al.'s drift term ``8 (E-1)^2 G^2`` is a sup of
gradient norms over the whole trajectory; here the only heterogeneity that enters is
that at a reference point ``w°`` (the optimum ``w*``): ``zeta_k = ||grad F_k(w°)||``,
``zeta*^2 = sum_k p_k zeta_k^2``. Assumptions: every ``F_k`` is twice continuously
differentiable with ``mu_k I <= Hess F_k <= L_k I`` (ridge and L2-regularised multinomial
logistic regression are), and every local step ``eta_j <= 2 / (mu_k + L_k)``.

One round of full-batch FedAvg maps the server model ``w`` to ``T(w) = sum_k a_k T_k(w)``,
``T_k`` client ``k``'s ``E`` gradient steps. Each step is a ``(1 - eta mu_k)``-contraction
(mean-value theorem with the Hessian), so

    ||T(w) - w°|| <= rho ||w - w°|| + ||T(w°) - w°||,   rho = sum_k p_k prod_j (1 - eta_j mu_k),

and the *drift at the optimum* ``b = ||sum_k p_k (T_k(w°) - w°)||`` is computed exactly
(:func:`client_drifts`: ``E`` gradient steps from ``w°`` on every client) or bounded a
priori by ``L eta^2 E (E-1)/2 zeta*`` (constant step; :func:`drift_bound`). With the two
compression errors (Minkowski) this gives the per-round map :class:`LocalRoundMap`,
driven by :func:`theory.bounds.iterate_maps`. Client sampling and minibatch SGD (noise at
the optimum ``sigma*_k^2``) are in docs/theory.md §13.3-§13.4.

Everything is float64 numpy; the problem is a :class:`theory.constants.ConvexProblem`.
This module never imports ``fl_sim``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .bounds import RecursionBound, _fixed_point_of, iterate_maps
from .constants import ConvexProblem

__all__ = ["LocalRoundMap", "LocalSteps", "client_drifts", "drift_bound", "local_gd",
           "local_recursion", "local_steps", "sample_smoothness", "sampling_factor"]

_SCHEMES = ("full", "scheme1", "scheme2")


def _etas(etas) -> np.ndarray:
    eta = np.asarray(etas, dtype=np.float64).reshape(-1)
    if eta.size < 1 or not np.all(np.isfinite(eta)) or np.any(eta <= 0):
        raise ValueError("etas: need at least one finite step size > 0")
    return eta


def local_gd(convex: ConvexProblem, k: int, W, etas) -> np.ndarray:
    """``T_k(W)``: client ``k``'s full-batch gradient steps ``W <- W - eta_j grad F_k(W)``."""
    W = np.array(W, dtype=np.float64)
    for eta in _etas(etas):
        W = W - eta * convex.grad_k(k, W)
    return W


def client_drifts(convex: ConvexProblem, etas, reference=None) -> np.ndarray:
    """``(N, d, out)`` drift of every client from the reference: ``T_k(w°) - w°``.

    ``reference`` defaults to the problem's ``w_star``.
    """
    ref = convex.w_star if reference is None else convex._W(reference)
    return np.stack([local_gd(convex, k, ref, etas) - ref for k in range(convex.num_clients)])


def sample_smoothness(convex: ConvexProblem) -> np.ndarray:
    """``(N,)`` smoothness of any minibatch loss of client ``k``: ``lam + c max_i ||x_i||^2``.

    A minibatch loss is a mean of per-sample losses ``f_i`` whose Hessians are
    ``x_i x_i^T (x) I + lam I`` (ridge, ``c = 1``) or ``x_i x_i^T (x) S_i + lam I`` with
    ``S_i <= I/2`` (logistic, ``c = 1/2``; docs/theory.md §9), so every batch mean is
    ``lam``-strongly convex and ``(lam + c max_i ||x_i||^2)``-smooth.
    """
    c = 1.0 if convex.kind == "ridge" else 0.5
    return np.array([convex.lam + c * float(np.max(np.sum(x * x, axis=1))) for x in convex.X])


def sampling_factor(scheme: str, K: int | None, N: int) -> float:
    """``c^2`` with ``Var(sum_k a_k v_k) <= c^2 sum_k p_k ||v_k||^2`` for the scheme's weights.

    ``full``: 0; ``scheme1`` (``K`` draws with probabilities ``p_k``, weights ``1/K``):
    ``1/K``; ``scheme2`` (``K`` of ``N`` uniformly, balanced ``p_k = 1/N``):
    ``(N - K) / (K (N - 1))`` (docs/theory.md §13.3).
    """
    if scheme not in _SCHEMES:
        raise ValueError(f"participation: expected one of {_SCHEMES}, got {scheme!r}")
    if scheme == "full":
        return 0.0
    if K is None or isinstance(K, bool) or int(K) != K or not (1 <= K <= N or scheme == "scheme1"):
        raise ValueError(f"clients_per_round: {scheme} needs an integer K in [1, N={N}], got {K}")
    if scheme == "scheme1":
        return 1.0 / K
    return 0.0 if N == 1 else (N - K) / (K * (N - 1))


def _sampling_variance(p: np.ndarray, v: np.ndarray, scheme: str, K: int | None) -> float:
    """Exact ``E||sum_k a_k v_k - sum_k p_k v_k||^2`` for fixed vectors ``v`` (N, ...)."""
    N = v.shape[0]
    flat = v.reshape(N, -1)
    mean = p @ flat
    spread = float(p @ np.sum((flat - mean) ** 2, axis=1))  # sum_k p_k ||v_k - vbar||^2
    return sampling_factor(scheme, K, N) * spread  # exact for fixed vectors (§13.3)


@dataclass(frozen=True)
class LocalSteps:
    """The constants of one round of ``E`` local steps on a concrete problem (§13).

    Built by :func:`local_steps`. ``mu_k``, ``L_k`` are those the step map contracts with:
    the client objectives' (full batch) or the per-sample losses' (minibatch).
    """

    etas: np.ndarray  # (E,) step sizes of the round
    batch_size: int | None  # None: full-batch local GD
    p: np.ndarray  # (N,) weights
    mu_k: np.ndarray  # (N,) strong convexity of the step map's objective
    L_k: np.ndarray  # (N,) its smoothness
    contraction_k: np.ndarray  # (N,) prod_j (1 - eta_j mu_k): Lipschitz constant of T_k
    zeta_k: np.ndarray  # (N,) ||grad F_k(w°)||: heterogeneity at the reference
    sigma2_k: np.ndarray  # (N,) minibatch variance at w° (0 for full batch)
    grad_norm: float  # ||grad F(w°)|| (0 up to the solver's tolerance at w*)
    drifts: np.ndarray | None  # (N, d, out) exact T_k(w°) - w° (full batch), else None

    @property
    def heterogeneity_at_optimum(self) -> float:
        """``zeta*^2 = sum_k p_k ||grad F_k(w°)||^2``."""
        return float(self.p @ self.zeta_k**2)

    @property
    def rho(self) -> float:
        """``sum_k p_k prod_j (1 - eta_j mu_k)``: Lipschitz constant of ``sum_k p_k T_k``."""
        return float(self.p @ self.contraction_k)

    @property
    def rho_max(self) -> float:
        """``max_k prod_j (1 - eta_j mu_k)``: Lipschitz constant of any average of the ``T_k``."""
        return float(np.max(self.contraction_k))

    @property
    def centred_contraction(self) -> float:
        """``prod_j (1 - eta_j mu) - prod_j (1 - eta_j (L + mu)/2)`` (global ``mu``, ``L``).

        ``||(T_k(x) - T_k(y)) - a (x - y)|| <= this * ||x - y||`` for every client with the
        common ``a = prod_j (1 - eta_j (L + mu)/2)`` (docs/theory.md §13.3): how much the
        clients' round maps can differ from one another.
        """
        mu, L = float(np.min(self.mu_k)), float(np.max(self.L_k))
        return float(np.prod(1.0 - self.etas * mu) - np.prod(1.0 - self.etas * (L + mu) / 2))

    def distance_bounds(self) -> np.ndarray:
        """``(N, E+1)`` ``s_{k,j}`` with ``||y^k_j - w°||_{L2} <= s_{k,j}`` (from ``y_0 = w°``).

        ``s_{k,j+1} = (1 - eta_j mu_k) s_{k,j} + eta_j sqrt(zeta_k^2 + sigma_k^2)``,
        ``s_{k,0} = 0``.
        """
        s = np.zeros((self.p.size, self.etas.size + 1))
        g = np.sqrt(self.zeta_k**2 + self.sigma2_k)
        for j, eta in enumerate(self.etas):
            s[:, j + 1] = (1.0 - eta * self.mu_k) * s[:, j] + eta * g
        return s

    @property
    def drift(self) -> float:
        """``b``: exact ``||sum_k p_k (T_k(w°) - w°)||`` (full batch), else :meth:`drift_bound`."""
        if self.drifts is None:
            return self.drift_bound
        return float(np.linalg.norm(np.tensordot(self.p, self.drifts, 1)))

    @property
    def drift_bound(self) -> float:
        """A-priori bound on ``||sum_k p_k (Phi_k(w°) - w°)||_{L2}`` from ``zeta_k``, ``sigma_k``.

        ``sum_j eta_j (sum_k p_k L_k s_{k,j} + ||grad F(w°)||) + sqrt(sum_j eta_j^2 sum_k p_k^2
        sigma_k^2)`` (§13.2, §13.4); for a constant step and full batch at most
        ``L eta^2 E (E-1)/2 sum_k p_k zeta_k + E eta ||grad F(w°)||``.
        """
        s = self.distance_bounds()
        lip = float(np.sum(self.etas * (self.p * self.L_k @ s[:, :-1])))
        return lip + float(np.sum(self.etas)) * self.grad_norm + self.noise

    @property
    def noise(self) -> float:
        """``sqrt(sum_j eta_j^2 sum_k p_k^2 sigma_k^2)``: RMS of the round's noise at ``w°``."""
        return math.sqrt(float(np.sum(self.etas**2)) * float(self.p**2 @ self.sigma2_k))

    @property
    def noise_cross(self) -> float:
        """``c' sum_k p_k^2 sqrt(sum_j eta_j^2) sigma_k``: the contraction-noise cross term (§13.4).

        ``c' = prod_j (1 - eta_j mu) - prod_j (1 - eta_j (L + mu)/2)`` with the step map's
        ``mu``, ``L`` (:attr:`centred_contraction`); 0 for full batch.
        """
        n_k = math.sqrt(float(np.sum(self.etas**2))) * np.sqrt(self.sigma2_k)
        return self.centred_contraction * float(self.p**2 @ n_k)

    def sampling_std(self, scheme: str, K: int | None, exact: bool = True) -> float:
        """``sqrt(Var_a(sum_k a_k (T_k(w°) - w°)))``.

        Exact from the drifts (full batch), else ``c sqrt(sum_k p_k s_{k,E}^2)``.
        """
        if scheme == "full":
            return 0.0
        if exact and self.drifts is not None:
            return math.sqrt(_sampling_variance(self.p, self.drifts, scheme, K))
        c2 = sampling_factor(scheme, K, self.p.size)
        return math.sqrt(c2 * float(self.p @ self.distance_bounds()[:, -1] ** 2))

    def round_map(self, scheme: str = "full", K: int | None = None, e_s: float = 0.0,
                  e_c: float = 0.0, exact: bool = True) -> LocalRoundMap:
        """The round's :class:`LocalRoundMap` with compression errors ``e_s``, ``e_c``.

        ``exact=True`` uses the exact drift at the optimum (full batch); ``False`` the a-priori
        bound from ``zeta_k`` (and ``sigma_k``). Minibatch steps need full participation.
        """
        if scheme not in _SCHEMES:
            raise ValueError(f"participation: expected one of {_SCHEMES}, got {scheme!r}")
        if self.batch_size is not None and scheme != "full":
            raise ValueError("participation: the minibatch bound (docs/theory.md §13.4) is "
                             "derived for full participation only")
        if scheme == "scheme2" and not np.allclose(self.p, 1.0 / self.p.size, rtol=1e-9,
                                                   atol=0.0):
            raise ValueError("participation: scheme2's sampling factor (docs/theory.md §13.3) "
                             "needs balanced client weights p_k = 1/N; use scheme1")
        c = math.sqrt(sampling_factor(scheme, K, self.p.size))
        if self.batch_size is not None:  # §13.4: the noise at w° enters the square once
            b = self.drift_bound
            return LocalRoundMap(self.rho, b, e_s=e_s, e_c=e_c,
                                 cross=self.rho * (b - self.noise) + self.noise_cross)
        return LocalRoundMap(self.rho, self.drift if exact else self.drift_bound,
                             c * self.centred_contraction, self.sampling_std(scheme, K, exact),
                             e_s, e_c, self.rho if scheme == "full" else self.rho_max)


def local_steps(convex: ConvexProblem, etas, batch_size: int | None = None,
                reference=None) -> LocalSteps:
    """The constants of one round of ``len(etas)`` local steps on ``convex`` (docs/theory.md §13).

    Parameters
    ----------
    convex : ConvexProblem
        Ridge or L2-regularised logistic regression (``lam > 0`` for logistic).
    etas : array_like
        The round's step sizes ``eta_0, ..., eta_{E-1}``.
    batch_size : int or None
        None: full-batch local GD (drift computed exactly). An integer: minibatches of that
        size drawn with replacement (the simulator's), constants of the per-sample losses.
    reference : array_like, optional
        ``w°``, default ``convex.w_star``; the bound is on ``||w_r - w°||``.

    Returns
    -------
    LocalSteps

    Raises
    ------
    ValueError
        If a step exceeds ``2 / (mu_k + L_k)`` (the step map would not contract).
    """
    eta = _etas(etas)
    ref = convex.w_star if reference is None else convex._W(reference)
    N = convex.num_clients
    if batch_size is None:
        mu_k, L_k = np.asarray(convex.mu_k, np.float64), np.asarray(convex.L_k, np.float64)
        sigma2 = np.zeros(N)
    else:
        mu_k, L_k = np.full(N, float(convex.lam)), sample_smoothness(convex)
        sigma2 = np.array([convex.sigma2_k_at(k, ref, batch_size, replace=True)
                           for k in range(N)])
    limit = 2.0 / (mu_k + L_k)
    if np.max(eta) > np.min(limit) * (1 + 1e-12):
        k = int(np.argmin(limit))
        raise ValueError(f"etas: step {np.max(eta):.6g} > 2/(mu_k + L_k) = {limit[k]:.6g} of "
                         f"client {k} (docs/theory.md §13.1); use a smaller lr")
    contraction = np.prod(1.0 - np.outer(mu_k, eta), axis=1)
    zeta = np.array([float(np.linalg.norm(convex.grad_k(k, ref))) for k in range(N)])
    gnorm = float(np.linalg.norm(convex.grad(ref)))
    drifts = client_drifts(convex, eta, ref) if batch_size is None else None
    return LocalSteps(eta, None if batch_size is None else int(batch_size),
                      np.asarray(convex.p, np.float64), mu_k, L_k, contraction, zeta, sigma2,
                      gnorm, drifts)


def drift_bound(L: float, zeta_star: float, eta: float, E: int) -> float:
    """``L eta^2 E (E-1)/2 zeta*``: the a-priori drift at the optimum, constant step, full batch.

    (``sum_k p_k zeta_k <= zeta*`` by Jensen; docs/theory.md §13.2.)
    """
    return float(L) * float(eta) ** 2 * E * (E - 1) / 2.0 * float(zeta_star)


@dataclass(frozen=True)
class LocalRoundMap:
    """One round of the bound of docs/theory.md §13 (our derivation); with ``s = d + e_s``::

        d -> min(sqrt((rho s + b)^2 + (c s + v)^2), rho_max s + sqrt(b^2 + v^2),
                 sqrt(rho_max^2 s^2 + 2 k s + b^2 + v^2)) + e_c,   k = rho b + c v

    (minibatches, §13.4: ``k = rho (b - n) + c' sum_k p_k^2 n_k`` with ``n`` the noise part
    of ``b``; ``cross`` holds ``k`` when given.)

    ``rho``: contraction of the averaged round map ``sum_k p_k T_k``; ``b``: drift at the
    optimum; ``c`` (``sqrt(c^2)`` times :attr:`LocalSteps.centred_contraction`) and ``v``:
    client sampling's Lipschitz and standard-deviation terms (0 with full participation);
    ``rho_max``: contraction of any sampled average (None: ``rho``); ``e_s``, ``e_c``: the
    RMS compression errors. Each branch is a bound (§13.3), so is their minimum. The
    interface (``rho``, ``beta``, ``errors``) is the one :func:`theory.bounds.iterate_maps`
    drives.
    """

    rho: float
    drift: float  # b
    sampling_lipschitz: float = 0.0  # c
    sampling_std: float = 0.0  # v
    e_s: float = 0.0
    e_c: float = 0.0
    rho_max: float | None = None  # None: rho
    cross: float | None = None  # coefficient of 2 s in the cross branch; None: rho b + c v

    def __post_init__(self) -> None:
        for name in ("rho", "rho_max"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= 1.0):
                raise ValueError(f"{name}: must lie in [0, 1], got {v}")
        for name in ("drift", "sampling_lipschitz", "sampling_std", "e_s", "e_c"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: must be finite and >= 0, got {v}")

    @property
    def beta(self) -> float:
        """``b^2 + v^2`` (what the map adds at ``d + e_s = 0``, squared)."""
        return self.drift**2 + self.sampling_std**2

    @property
    def lipschitz(self) -> float:
        """The map's slope as ``d -> inf``: the smaller branch slope."""
        rmax = self.rho if self.rho_max is None else self.rho_max
        return min(math.hypot(self.rho, self.sampling_lipschitz), rmax)

    def __call__(self, d):
        s = d + self.e_s
        rmax = self.rho if self.rho_max is None else self.rho_max
        quad = np.hypot(self.rho * s + self.drift, self.sampling_lipschitz * s + self.sampling_std)
        lin = rmax * s + math.sqrt(self.beta)
        k = (self.rho * self.drift + self.sampling_lipschitz * self.sampling_std
             if self.cross is None else self.cross)
        cross = np.sqrt(rmax**2 * s * s + 2.0 * k * s + self.beta)
        return np.minimum(np.minimum(quad, lin), cross) + self.e_c

    def errors(self, d: float) -> tuple[float, float]:
        return self.e_s, self.e_c

    def floor(self) -> float:
        """The fixed point ``d = map(d)`` (the error floor of a constant round); inf if none.

        Solved by the one fixed-point routine of :mod:`theory.bounds` (the map's slope is
        at most :attr:`lipschitz`).
        """
        try:
            return _fixed_point_of(self).d
        except ValueError:
            return math.inf


def local_recursion(d0: float, maps, L: float) -> RecursionBound:
    """``d_{r+1} = maps[r](d_r)`` through the one driver :func:`theory.bounds.iterate_maps`."""
    return iterate_maps(d0, list(maps), L)
