"""FedAvg on quadratics, exactly: the affine round map, its fixed point, and moments.

Our derivation (docs/theory.md §12, after the exact characterisations of local
methods on quadratics by Charles & Konečný 2021, Malinovsky et al. 2020 and Pathak &
Wainwright 2020). Client ``k`` minimises the least-squares objective

    F_k(W) = ||X_k W - Y_k||_F^2 / (2 n_k) + lam/2 ||W||_F^2,   grad F_k(W) = A_k W - G_k

with ``A_k = X_k^T X_k / n_k + lam I`` and ``G_k = X_k^T Y_k / n_k``; ``W`` is
``(d, c)`` and everything acts column by column. One local GD step with step ``eta``
is ``W -> (I - eta A_k) W + eta G_k``; ``E`` steps give ``W -> P_k W + c_k`` with
``P_k = prod_j (I - eta_j A_k)`` (the factors commute). With weights ``p_k``, a round of
full-batch FedAvg with full participation is the affine map ``W -> P W + c``,
``P = sum_k p_k P_k``, ``c = sum_k p_k c_k`` (:class:`AffineRound`). Its fixed point,
trajectory, contraction ``||P||_2`` and bias at the optimum are exact.

With minibatch SGD (``b`` samples drawn with replacement, as ``fl_sim`` does) and
unbiased client sampling the *mean* follows the same map, and the covariance follows
a closed linear recursion because the gradient noise of least squares is quadratic in
``W`` (:func:`exact_moments`). :func:`mean_square_contraction` gives the mean-square
Lipschitz constant of the random round map, used by the a-posteriori compression bound
(:func:`compression_deviation`, docs/theory.md §12.3).

All arrays are float64 numpy. This module never imports ``fl_sim``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "AffineRound",
    "LeastSquaresClients",
    "Moments",
    "compression_deviation",
    "exact_moments",
    "mean_square_contraction",
    "mean_square_operator",
    "round_maps",
]

PARTICIPATION = ("full", "scheme1", "scheme2")


def _nonneg(name: str, v: float) -> float:
    v = float(v)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: must be finite and >= 0, got {v}")
    return v


@dataclass(frozen=True, eq=False)
class LeastSquaresClients:
    """Per-client data of a federated ridge problem: ``A_k``, ``G_k`` and the samples."""

    X: tuple[np.ndarray, ...]  # per client (n_k, d)
    Y: tuple[np.ndarray, ...]  # per client (n_k, c)
    lam: float  # l2 weight
    p: np.ndarray  # (N,) weights p_k, summing to 1

    def __post_init__(self) -> None:
        if len(self.X) != len(self.Y) or len(self.X) != np.asarray(self.p).size:
            raise ValueError("clients: X, Y and p must have one entry per client")
        d = self.X[0].shape[1]
        for k, (x, y) in enumerate(zip(self.X, self.Y, strict=True)):
            if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[1] != d:
                raise ValueError(f"clients[{k}]: X_k (n_k, d) and Y_k (n_k, c) do not match")
        _nonneg("lam", self.lam)

    @classmethod
    def from_convex(cls, convex) -> LeastSquaresClients:
        """From a ridge :class:`theory.constants.ConvexProblem` (same arrays, same ``p``)."""
        if convex.kind != "ridge":
            raise ValueError(f"convex: the exact map needs a ridge problem, got {convex.kind!r}")
        return cls(tuple(convex.X), tuple(convex.Y), float(convex.lam),
                   np.asarray(convex.p, dtype=np.float64))

    @property
    def num_clients(self) -> int:
        return len(self.X)

    @property
    def dim(self) -> int:
        return self.X[0].shape[1]

    @property
    def A(self) -> np.ndarray:
        """(N, d, d) Hessians ``A_k = X_k^T X_k / n_k + lam I``."""
        eye = np.eye(self.dim)
        return np.stack([x.T @ x / x.shape[0] + self.lam * eye for x in self.X])

    @property
    def G(self) -> np.ndarray:
        """(N, d, c) ``G_k = X_k^T Y_k / n_k`` (``grad F_k(W) = A_k W - G_k``)."""
        return np.stack([x.T @ y / x.shape[0] for x, y in zip(self.X, self.Y, strict=True)])

    @property
    def w_star_clients(self) -> np.ndarray:
        """(N, d, c) client minimisers ``W_k* = A_k^{-1} G_k``."""
        return np.linalg.solve(self.A, self.G)

    @property
    def w_star(self) -> np.ndarray:
        """(d, c) ``W* = (sum p_k A_k)^{-1} sum p_k G_k``."""
        return np.linalg.solve(np.tensordot(self.p, self.A, 1), np.tensordot(self.p, self.G, 1))

    def grad_at(self, W: np.ndarray) -> np.ndarray:
        """(N, d, c) client gradients ``A_k W - G_k``."""
        return self.A @ W - self.G


def _participation(scheme: str, K: int | None, N: int) -> None:
    if scheme not in PARTICIPATION:
        raise ValueError(f"participation: expected one of {PARTICIPATION}, got {scheme!r}")
    if scheme != "full":
        if K is None or K < 1:
            raise ValueError(f"clients_per_round: {scheme} needs K >= 1, got {K}")
        if scheme == "scheme2" and K > N:
            raise ValueError(f"clients_per_round: K={K} exceeds N={N}")


# ------------------------------------------------------------- the round map
@dataclass(frozen=True, eq=False)
class AffineRound:
    """One round of full-batch FedAvg on least squares: ``W -> P W + c`` (docs/theory.md §12.1).

    ``P_k = prod_j (I - eta_j A_k)``, ``c_k`` the image of 0 under client ``k``'s ``E``
    steps, ``P = sum_k p_k P_k``, ``c = sum_k p_k c_k``. Exact for full-batch local GD
    with full participation; the map of the *mean* for minibatch SGD and for unbiased
    client sampling (scheme1, scheme2).
    """

    P_clients: np.ndarray  # (N, d, d), symmetric
    c_clients: np.ndarray  # (N, d, c)
    p: np.ndarray  # (N,)

    @property
    def P(self) -> np.ndarray:
        return np.tensordot(self.p, self.P_clients, 1)

    @property
    def c(self) -> np.ndarray:
        return np.tensordot(self.p, self.c_clients, 1)

    def __call__(self, W: np.ndarray) -> np.ndarray:
        """``P W + c``."""
        return self.P @ W + self.c

    @property
    def contraction(self) -> float:
        """``rho = ||P||_2`` (``P`` is symmetric: its largest ``|eigenvalue|``)."""
        return float(np.max(np.abs(np.linalg.eigvalsh(self.P))))

    def fixed_point(self) -> np.ndarray:
        """``W~ = (I - P)^{-1} c = (sum p_k Q_k)^{-1} sum p_k Q_k W_k*`` (``Q_k = I - P_k``)."""
        d = self.P.shape[0]
        return np.linalg.solve(np.eye(d) - self.P, self.c)

    def trajectory(self, W0: np.ndarray, rounds: int) -> np.ndarray:
        """(R+1, d, c) closed form ``W_r = W~ + P^r (W_0 - W~)`` (eigendecomposition of P)."""
        lam, V = np.linalg.eigh(self.P)
        fix = self.fixed_point()
        z = V.T @ (np.asarray(W0, dtype=np.float64) - fix)
        powers = lam[None, :] ** np.arange(rounds + 1)[:, None]  # (R+1, d)
        return fix[None] + np.einsum("de,re,ec->rdc", V, powers, z)

    def rounds_to_target(self, W0: np.ndarray, w_star: np.ndarray, target: float,
                         max_rounds: int = 1_000_000) -> int | None:
        """First ``r`` with ``||W_r - W*|| <= target``; None if the limit ``||W~ - W*||`` is above.

        Exact for a constant step (the distance is computed from the closed form).
        """
        target = float(target)
        W = np.asarray(W0, dtype=np.float64)
        if np.linalg.norm(W - w_star) <= target:
            return 0
        if np.linalg.norm(self.fixed_point() - w_star) >= target:
            return None
        P, c = self.P, self.c
        for r in range(1, max_rounds + 1):
            W = P @ W + c
            if np.linalg.norm(W - w_star) <= target:
                return r
        raise ValueError(f"max_rounds: target not reached within {max_rounds} rounds")


def round_maps(clients: LeastSquaresClients, etas, E: int) -> list[AffineRound]:
    """The affine map of every round for step sizes ``etas`` (length ``R E``)."""
    eta = np.asarray(etas, dtype=np.float64)
    if E < 1 or eta.ndim != 1 or eta.size % E:
        raise ValueError(f"etas: length {eta.size} is not a positive multiple of E = {E}")
    A, G = clients.A, clients.G
    eye = np.eye(clients.dim)
    out = []
    for eta_r in eta.reshape(-1, E):
        P = np.broadcast_to(eye, A.shape).copy()
        c = np.zeros_like(G)
        for e in eta_r:
            M = eye - e * A
            P = M @ P
            c = M @ c + e * G
        out.append(AffineRound(P, c, clients.p))
    return out


def bias(round_map: AffineRound, w_star: np.ndarray) -> np.ndarray:
    """``W~ - W*``: the bias at the optimum (zero when all ``A_k`` are equal)."""
    return round_map.fixed_point() - w_star


__all__.append("bias")


# ------------------------------------------------------------ exact moments
@dataclass(frozen=True)
class Moments:
    """Exact moments of the global model over rounds (columns independent)."""

    mean: np.ndarray  # (R+1, d, J) E W_r
    cov_trace: np.ndarray  # (R+1,) sum over columns of tr Cov(w_j)
    dist_sq: np.ndarray  # (R+1,) E||W_r - W*||^2 (mean over the starts)
    dist_sq_starts: np.ndarray  # (R+1, S) E||W_r - W*||^2 from each start
    # (R+1, d, c) E (u_i^T (W_r - W*) e_j)^2 in the columns u_i of ``basis`` (mean over the
    # starts); None unless exact_moments was given a basis
    dist_sq_modes: np.ndarray | None = None
    cov: np.ndarray | None = None  # (S, c, d, d) covariance of each column after the last round


def _outer(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(J, d, d) column-wise outer products of (d, J) arrays."""
    return a.T[:, :, None] * b.T[:, None, :]


def _step_moments(x: np.ndarray, y: np.ndarray, lam: float, eta: float, nu: float,
                  m: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One local SGD step on (mean ``m`` (d, J), covariances ``C`` (J, d, d)).

    ``w' = M w + eta g`` with ``M = (1 - eta lam) I - eta H``, ``H`` and ``g`` the means of
    ``x_i x_i^T`` and ``x_i y_i`` over ``b`` samples drawn with replacement (``nu = 1/b``;
    ``nu = 0``: full batch). docs/theory.md §12.2.
    """
    n, d = x.shape
    Abar = x.T @ x / n
    gbar = x.T @ y / n
    Mbar = (1.0 - eta * lam) * np.eye(d) - eta * Abar
    m_new = Mbar @ m + eta * gbar
    C_new = Mbar @ C @ Mbar
    if nu > 0.0:
        resid = y - x @ m  # (n, J): r_i(m) for each column
        xCx = np.sum((x @ C) * x, axis=2)  # (J, n): x_i^T C_j x_i
        q = resid.T**2 + xCx  # E (y_i - x_i^T w)^2
        second = (x.T[None] * q[:, None, :]) @ x / n
        zbar = gbar - Abar @ m  # (d, J): mean of x_i (y_i - x_i^T m)
        first = _outer(zbar, zbar) + Abar @ C @ Abar
        C_new = C_new + eta**2 * nu * (second - first)
    return m_new, C_new


def exact_moments(clients: LeastSquaresClients, etas, E: int, W0: np.ndarray,
                  batch_size: int | None = None, participation: str = "full",
                  K: int | None = None, w_star: np.ndarray | None = None,
                  basis: np.ndarray | None = None) -> Moments:
    """Exact ``E W_r`` and ``E||W_r - W*||^2`` of FedAvg (local SGD) on least squares.

    Our derivation, docs/theory.md §12.2: the mean follows :func:`round_maps`; the
    covariance of each column follows a linear recursion (local steps: the gradient
    noise is quadratic in ``w``; aggregation: clients are independent given the common
    start; sampling: scheme1 draws ``K`` clients with replacement with probabilities
    ``p_k`` and averages, scheme2 draws ``K`` of ``N`` uniformly and weights ``p_k N/K``).

    Parameters
    ----------
    clients : LeastSquaresClients
    etas : array_like
        The ``R E`` step sizes.
    E : int
        Local steps.
    W0 : array_like
        ``(d, c)`` start, or ``(S, d, c)`` several starts (e.g. one per seed): the result
        is the mean over the starts of each start's exact expectation.
    batch_size : int or None
        ``b`` (with replacement); None for full-batch GD.
    participation : {"full", "scheme1", "scheme2"}
    K : int, optional
        Clients per round (sampling schemes).
    w_star : array_like, optional
        Defaults to ``clients.w_star``.
    basis : array_like, optional
        ``(d, d)`` orthonormal columns ``u_i``: also return the second moment of every
        coordinate ``u_i^T (W_r - W*) e_j`` (``Moments.dist_sq_modes``).

    Returns
    -------
    Moments
    """
    N = clients.num_clients
    _participation(participation, K, N)
    nu = 0.0 if batch_size is None else 1.0 / int(batch_size)
    W0 = np.asarray(W0, dtype=np.float64)
    starts = W0[None] if W0.ndim == 2 else W0
    S, d, c = starts.shape
    J = S * c
    ws = clients.w_star if w_star is None else np.asarray(w_star, dtype=np.float64)
    # columns are (start, output) pairs: data columns tiled over the starts
    m = np.transpose(starts, (1, 0, 2)).reshape(d, J)
    Ys = [np.tile(y, (1, S)) for y in clients.Y]
    ws_cols = np.tile(ws, (1, S))
    C = np.zeros((J, d, d))
    maps = round_maps(clients, etas, E)
    eta = np.asarray(etas, dtype=np.float64).reshape(-1, E)
    p = clients.p

    def dist(m_, C_):
        per_col = np.sum((m_ - ws_cols) ** 2, axis=0) + np.einsum("jdd->j", C_)
        return per_col.reshape(S, c).sum(axis=1)  # (S,)

    V = None if basis is None else np.asarray(basis, dtype=np.float64)
    modes = []

    def modal(m_, C_):
        if V is None:
            return
        sq = (V.T @ (m_ - ws_cols)) ** 2 + np.einsum("di,jde,ei->ij", V, C_, V)  # (d, J)
        modes.append(sq.reshape(d, S, c).mean(axis=1))

    modal(m, C)
    means, traces, dists = [m.copy()], [float(np.einsum("jdd->", C))], [dist(m, C)]
    for r, rm in enumerate(maps):
        mu_k, Ck = [], []
        for k in range(N):
            mk, Ckk = m, C
            for e in eta[r]:
                mk, Ckk = _step_moments(clients.X[k], Ys[k], clients.lam, float(e), nu, mk, Ckk)
            mu_k.append(mk)
            Ck.append(Ckk)
        mu_k, Ck = np.stack(mu_k), np.stack(Ck)  # (N, d, J), (N, J, d, d)
        Pk = rm.P_clients
        PCP_k = Pk[:, None] @ C[None] @ Pk[:, None]  # (N, J, d, d): P_k C P_k
        m_new = np.tensordot(p, mu_k, 1)
        if participation == "full":
            P = rm.P
            C = P @ C @ P + np.tensordot(p**2, Ck - PCP_k, 1)
        elif participation == "scheme1":
            P = rm.P
            spread = np.stack([_outer(mu_k[k] - m_new, mu_k[k] - m_new) for k in range(N)])
            C = (np.tensordot(p, Ck + spread, 1) / K
                 + (1.0 - 1.0 / K) * (P @ C @ P))
        else:  # scheme2
            a = p * N / K
            pi1 = K / N
            pi2 = K * (K - 1) / (N * (N - 1)) if N > 1 else 0.0
            Pa = np.tensordot(a, Pk, 1)
            ma = np.tensordot(a, mu_k, 1)
            own = np.stack([_outer(mu_k[k], mu_k[k]) for k in range(N)])
            S2 = (pi1 * np.tensordot(a**2, Ck + own, 1)
                  + pi2 * (_outer(ma, ma) + Pa @ C @ Pa
                           - np.tensordot(a**2, own + PCP_k, 1)))
            C = S2 - _outer(m_new, m_new)
        m = m_new
        modal(m, C)
        means.append(m.copy())
        traces.append(float(np.einsum("jdd->", C)))
        dists.append(dist(m, C))
    mean = np.stack(means).reshape(len(means), d, S, c).mean(axis=2)
    starts_dist = np.array(dists)
    return Moments(mean, np.array(traces) / S, starts_dist.mean(axis=1), starts_dist,
                   None if V is None else np.stack(modes), C.reshape(S, c, d, d))


# ----------------------------------------------- compression on top (a posteriori)
def mean_square_operator(clients: LeastSquaresClients, etas_round, batch_size: int | None,
                         participation: str = "full", K: int | None = None,
                         H: np.ndarray | None = None) -> np.ndarray:
    """``E[M^T H M]`` for the random linear part ``M`` of one round (``H`` symmetric, default I).

    ``M = sum_k a_k prod_j M_{k,j}`` with ``M_{k,j} = (1 - eta_j lam) I - eta_j H_{k,j}`` the
    minibatch step matrices and ``a_k`` the aggregation weights of the participation
    scheme. Per client a backward recursion ``H -> Mbar H Mbar + eta^2/b [mean_i (x_i^T H
    x_i) x_i x_i^T - Abar H Abar]`` gives ``E[M_k^T H M_k]``; distinct clients are
    independent, so ``E[M_k^T H M_l] = P_k H P_l``. docs/theory.md §12.3.
    """
    N = clients.num_clients
    _participation(participation, K, N)
    nu = 0.0 if batch_size is None else 1.0 / int(batch_size)
    eta_r = np.asarray(etas_round, dtype=np.float64)
    d = clients.dim
    eye = np.eye(d)
    Hf = eye if H is None else np.asarray(H, dtype=np.float64)
    Hs, Pk = [], []
    for x in clients.X:
        n = x.shape[0]
        Abar = x.T @ x / n
        Hk, P = Hf.copy(), eye.copy()
        for e in eta_r[::-1]:  # E[M_1^T ... M_E^T H M_E ... M_1], innermost last step
            Mbar = (1.0 - e * clients.lam) * eye - e * Abar
            new = Mbar @ Hk @ Mbar
            if nu > 0:
                xHx = np.einsum("nd,de,ne->n", x, Hk, x)
                new = new + e**2 * nu * ((x.T * xHx) @ x / n - Abar @ Hk @ Abar)
            Hk = new
            P = Mbar @ P
        Hs.append(Hk)
        Pk.append(P)
    Hs, Pk = np.stack(Hs), np.stack(Pk)
    p = clients.p
    PtP = Pk @ Hf[None] @ Pk  # P_k H P_k (P_k symmetric)
    if participation == "full":
        P = np.tensordot(p, Pk, 1)
        T = P @ Hf @ P + np.tensordot(p**2, Hs - PtP, 1)
    elif participation == "scheme1":
        P = np.tensordot(p, Pk, 1)
        T = np.tensordot(p, Hs, 1) / K + (1.0 - 1.0 / K) * P @ Hf @ P
    else:
        a = p * N / K
        pi1 = K / N
        pi2 = K * (K - 1) / (N * (N - 1)) if N > 1 else 0.0
        Pa = np.tensordot(a, Pk, 1)
        T = pi1 * np.tensordot(a**2, Hs, 1) + pi2 * (Pa @ Hf @ Pa - np.tensordot(a**2, PtP, 1))
    return (T + T.T) / 2


def mean_square_contraction(clients: LeastSquaresClients, etas_round, batch_size: int | None,
                            participation: str = "full", K: int | None = None) -> float:
    """``rho~ = sqrt(lambda_max(E[M^T M]))`` of the random linear part ``M`` of one round.

    Two copies of the round run with the *same* minibatches and clients from starts
    ``u`` and ``v`` differ by ``M (u - v)``, ``M = sum_k a_k prod_j M_{k,j}``. For ``x``
    independent of the round's draws, ``E||M x||^2 <= rho~^2 E||x||^2``. Full batch with
    full participation gives ``rho~ = ||P||_2``. docs/theory.md §12.3.
    """
    T = mean_square_operator(clients, etas_round, batch_size, participation, K)
    return float(math.sqrt(max(0.0, float(np.max(np.linalg.eigvalsh(T))))))


def compression_deviation(rho: Sequence[float], e_s: Sequence[float], e_c: Sequence[float],
                          d0: float = 0.0) -> np.ndarray:
    """``D_{r+1} = rho~_r (D_r + e_s,r) + e_c,r``: RMS distance to the uncompressed run.

    Our derivation (docs/theory.md §12.3): couple the compressed run with an
    uncompressed one on the same draws; the difference obeys
    ``Delta_{r+1} = M_r (Delta_r + e^s_r) + e^c_r`` and Minkowski's inequality in L2 gives
    the recursion, with ``rho~`` from :func:`mean_square_contraction` and ``e`` the RMS
    compression errors (measured, or a policy's a-priori bound).

    Returns
    -------
    numpy.ndarray
        ``(R+1,)`` bounds ``D_0 .. D_R``.
    """
    rho = np.asarray(rho, dtype=np.float64)
    es = np.broadcast_to(np.asarray(e_s, dtype=np.float64), rho.shape)
    ec = np.broadcast_to(np.asarray(e_c, dtype=np.float64), rho.shape)
    if np.any(rho < 0) or np.any(es < 0) or np.any(ec < 0):
        raise ValueError("rho, e_s, e_c: must be >= 0")
    D = np.empty(rho.size + 1)
    D[0] = _nonneg("d0", d0)
    for r in range(rho.size):
        D[r + 1] = rho[r] * (D[r] + es[r]) + ec[r]
    return D


# ------------------------------- compression on top, coordinate by coordinate (a posteriori)
def aggregation_weights(p: np.ndarray, clients, participation: str, K: int | None) -> np.ndarray:
    """``a_k`` of the listed participants, as ``fl_sim/participation.py`` defines them.

    full: ``p_k``; scheme1: ``1/K`` per draw; scheme2: ``p_k N / K``.
    """
    p = np.asarray(p, dtype=np.float64)
    ids = np.asarray(clients, dtype=np.int64)
    _participation(participation, K, p.size)
    if participation == "full":
        return p[ids]
    if participation == "scheme1":
        return np.full(ids.size, 1.0 / K)
    return p[ids] * (p.size / K)


def last_step_mean(clients: LeastSquaresClients, W_prev: np.ndarray, ids, weights,
                   eta: float) -> np.ndarray:
    """``sum_k a_k ybar_k``: the aggregate of the clients' *expected* last local step.

    ``ybar_k = (I - eta A_k) W_k + eta G_k`` from the iterate ``W_k`` (``W_prev[i]`` of client
    ``ids[i]``) before the last local step. Full batch: the uncompressed aggregate itself.
    """
    A, G = clients.A, clients.G
    out = np.zeros_like(np.asarray(W_prev[0], dtype=np.float64))
    for w, k, a in zip(W_prev, ids, weights, strict=True):
        out += a * (w - eta * (A[k] @ w - G[k]))
    return out


def modal_deviation(P: Sequence[np.ndarray], xi: np.ndarray,
                    basis: np.ndarray | None = None) -> np.ndarray:
    """``(R+1, d, c)``: coordinate bounds ``a_r`` of ``sum_{s<r} P_{r-1}...P_{s+1} xi_s``.

    ``a_0 = 0``, ``a_{r+1} = |U^T P_r U| a_r + xi_r`` (entrywise absolute values; in the
    eigenbasis of a constant-step ``P`` the matrix is ``diag(|lambda_i|)``) with ``xi_r``
    the L2 norms of the coordinates ``u_i^T (.) e_j`` of the per-round error vectors
    (Minkowski's inequality coordinate by coordinate; docs/theory.md §12.3, ours).

    Parameters
    ----------
    P : sequence of numpy.ndarray
        ``R`` mean maps ``P_r`` (``(d, d)``).
    xi : numpy.ndarray
        ``(R, d, c)``, ``>= 0``.
    basis : numpy.ndarray, optional
        ``(d, d)`` orthonormal ``U``; default the identity.
    """
    xi = np.asarray(xi, dtype=np.float64)
    if xi.ndim != 3 or len(P) != xi.shape[0]:
        raise ValueError(f"P, xi: need R maps and (R, d, c) errors, got {len(P)} and "
                         f"{xi.shape}")
    if np.any(xi < 0):
        raise ValueError("xi: must be >= 0")
    V = np.eye(xi.shape[1]) if basis is None else np.asarray(basis, dtype=np.float64)
    a = np.zeros((xi.shape[0] + 1, *xi.shape[1:]))
    for r, Pr in enumerate(P):
        a[r + 1] = np.abs(V.T @ np.asarray(Pr, dtype=np.float64) @ V) @ a[r] + xi[r]
    return a


def propagated_noise(P: Sequence[np.ndarray], cov: np.ndarray,
                     basis: np.ndarray | None = None) -> np.ndarray:
    """``(R+1, S, d, c)`` variances of the coordinates of ``sum_{s<r} P_{r-1}...P_{s+1} z_s``.

    ``z_s`` are martingale differences (zero mean given the past) with conditional
    covariances at most ``cov[s]`` (``(R, S, c, d, d)``: per start and column), so the
    covariance follows ``Sigma_{r+1} = P_r Sigma_r P_r^T + cov[r]`` exactly (the cross terms
    vanish). docs/theory.md §12.3.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 5 or len(P) != cov.shape[0]:
        raise ValueError(f"P, cov: need R maps and (R, S, c, d, d) covariances, got {len(P)} "
                         f"and {cov.shape}")
    R, S, c, d, _ = cov.shape
    V = np.eye(d) if basis is None else np.asarray(basis, dtype=np.float64)
    sig = np.zeros((S, c, d, d))
    out = [np.zeros((S, d, c))]
    for r, Pr in enumerate(P):
        Pr = np.asarray(Pr, dtype=np.float64)
        sig = Pr @ sig @ Pr.T + cov[r]
        out.append(np.einsum("di,sjde,ei->sij", V, sig, V))
    return np.stack(out)


__all__ += ["aggregation_weights", "last_step_mean", "modal_deviation", "propagated_noise"]


# ------------------------------------------ compressed map (deterministic prediction)
def truncate_rank(W: np.ndarray, policy, min_compression_rate: float = 1.0
                  ) -> tuple[np.ndarray, int | None]:
    """:func:`truncate` and the rank sent (None: the matrix travels dense)."""
    if policy is None:
        return W, None
    import torch

    from lowrank.accounting import sends_factors
    from lowrank.policies import parse_policy

    pol = parse_policy(policy)
    d, c = W.shape
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    r = int(pol.select(torch.from_numpy(s.copy()), c, d))
    if not bool(sends_factors(c, d, r, min_compression_rate)):
        return W, None
    return (U[:, :r] * s[:r]) @ Vt[:r], r


def truncate(W: np.ndarray, policy, min_compression_rate: float = 1.0) -> np.ndarray:
    """The model a rank policy sends for ``W`` (theory layout ``(d, c)``), as ``lowrank`` does.

    The weight of the simulator's linear model is ``W^T`` (``m, n = c, d``); the policy picks
    the rank from the singular values, and the matrix goes dense (no error) where the
    factors are not smaller (:func:`lowrank.accounting.sends_factors`). None: dense.
    """
    return truncate_rank(W, policy, min_compression_rate)[0]


__all__ += ["truncate", "truncate_rank"]


@dataclass(frozen=True)
class CompressedRun:
    """Full-batch FedDLR with full participation, iterated in theory (docs/theory.md §12.4)."""

    W: np.ndarray  # (R+1, d, c) global models
    ranks_down: list[int | None]  # (R,) rank broadcast each round (None: dense)
    ranks_up: list[list[int | None]]  # (R, N) rank each client uploads


def compressed_round(local_models: Callable[[np.ndarray], np.ndarray], p: np.ndarray,
                     W: np.ndarray, down=None, up=None
                     ) -> tuple[np.ndarray, int | None, list[int | None]]:
    """One full-batch FedDLR round with full participation, whatever the local training.

    ``W -> sum_k p_k C_u(local_k(C_d(W)))`` with ``local_models(start) -> (N, d, c)`` the
    clients' models after their local steps from ``start``; returns the new global model,
    the rank broadcast and the ranks uploaded (None: dense).
    """
    start, r_down = truncate_rank(W, down)
    sent = [truncate_rank(y, up) for y in local_models(start)]
    return np.tensordot(p, np.stack([y for y, _ in sent]), 1), r_down, [r for _, r in sent]


def compressed_run(round_map: AffineRound, W0: np.ndarray, rounds: int, down=None,
                   up=None) -> CompressedRun:
    """:func:`compressed_trajectory` with the ranks sent each round (for byte counts)."""
    W = np.asarray(W0, dtype=np.float64)
    out, rd, ru = [W], [], []
    for _ in range(int(rounds)):
        W, r_down, r_up = compressed_round(
            lambda start: round_map.P_clients @ start + round_map.c_clients, round_map.p, W,
            down, up)
        out.append(W)
        rd.append(r_down)
        ru.append(r_up)
    return CompressedRun(np.stack(out), rd, ru)


def compressed_trajectory(round_map: AffineRound, W0: np.ndarray, rounds: int, down=None,
                          up=None) -> np.ndarray:
    """(R+1, d, c) full-batch FedDLR, full participation: ``W -> sum_k p_k C_u(P_k C_d(W) + c_k)``.

    A deterministic map (no randomness with full batches and full participation), so its
    iterates are the simulator's to rounding (and ties of singular values). Its limit is
    the error floor of the policy pair, computable before any run (docs/theory.md §12.4).
    """
    return compressed_run(round_map, W0, rounds, down, up).W


__all__ += ["CompressedRun", "compressed_round", "compressed_run", "compressed_trajectory"]


# ------------------------------- a-priori floor bound: a verified enclosure of the limit
def _policy_ranks_in_ball(s: np.ndarray, policy, shape: tuple[int, int], eps: float,
                          min_compression_rate: float = 1.0) -> set[int | None]:
    """Ranks the policy may send for any matrix within ``eps`` (Frobenius) of one with
    singular values ``s`` (None: the matrix travels dense, no truncation).

    Mirsky: the singular-value vector moves by at most ``eps`` in the 2-norm, so every
    partial norm ``||s_{<=r}||`` and tail norm ``||s_{>r}||`` moves by at most ``eps``.
    FixedRank and RankRatio do not look at ``s``; EnergyThreshold keeps the smallest ``r``
    with ``||s_{>r}||^2 <= (1 - tau') ||s||^2`` (``tau'`` its threshold with the slack of
    ``lowrank``), decided for every matrix in the ball by margins on those norms.
    """
    from lowrank.accounting import sends_factors
    from lowrank.policies import EnergyThreshold, FixedRank, RankRatio, parse_policy

    if policy is None:
        return {None}
    pol = parse_policy(policy)
    d, c = shape
    k = s.size

    def eff(r: int) -> int | None:
        return r if bool(sends_factors(c, d, r, min_compression_rate)) else None

    if isinstance(pol, FixedRank | RankRatio):
        return {eff(min(pol.requested_rank(c, d), k))}
    if not isinstance(pol, EnergyThreshold):
        raise ValueError(f"policy: the floor enclosure covers fixed, ratio and energy policies, "
                         f"not {policy!r}")
    tau = float(pol.tau) * (1.0 - 4 * np.finfo(np.float64).eps)
    ratio = math.sqrt((1.0 - tau) / tau)  # tail <= ratio * head  <=>  head^2 >= tau total
    possible: set[int | None] = set()
    for r in range(1, k + 1):
        head, tail = float(np.linalg.norm(s[:r])), float(np.linalg.norm(s[r:]))
        surely_ok = tail + eps <= ratio * max(head - eps, 0.0)
        surely_not = tail - eps > ratio * (head + eps)
        if not surely_not:
            possible.add(eff(r))
        if surely_ok:
            break
    return possible


def _truncation_terms(Y: np.ndarray, policy, eps: float) -> tuple[np.ndarray | None, float, float]:
    """``(V_r or None, kappa, K)`` of the policy's truncation ``T`` on the ball ``B(Y, eps)``.

    ``kappa`` bounds ``||DT_X||`` (Frobenius operator norm) for every ``X`` in the ball and
    ``K`` bounds the second-order remainder, ``||T(Y + E) - T(Y) - DT_Y[E]|| <= K ||E||^2``
    for ``||E|| <= eps`` (docs/theory.md §12.4; infinite where the rank may change or the gap
    closes). ``V_r`` are the top-``r`` right singular vectors of ``Y`` (None: ``T`` is the
    identity on the ball).
    """
    _, s, Vt = np.linalg.svd(Y, full_matrices=False)
    ranks = _policy_ranks_in_ball(s, policy, Y.shape, eps)
    if ranks == {None}:
        return None, 1.0, 0.0
    if len(ranks) != 1:
        return Vt, math.inf, math.inf
    r = ranks.pop()
    if r >= s.size:
        return None, 1.0, 0.0
    sr, sn, s1 = float(s[r - 1]), float(s[r]), float(s[0])
    if sr - sn - 2 * eps <= 0:
        return Vt[:r].T, math.inf, math.inf
    kappa = (sr - eps) / (sr - sn - 2 * eps)
    g = (sr - eps) ** 2 - (sn + eps) ** 2  # gap of the Gram matrix's spectrum on the ball
    hi = s1 + eps
    radius = ((hi**2 + g / 2) - ((sr - eps) ** 2 + (sn + eps) ** 2) / 2) / 2  # contour circle
    K = 0.5 * radius * hi * (24.0 / g**2 + 64.0 * hi**2 / g**3)
    return Vt[:r].T, kappa, K


def truncation_derivative(Y: np.ndarray, V: np.ndarray | None, E: np.ndarray) -> np.ndarray:
    """``DT_Y[E]`` of the rank-``r`` truncation ``T(X) = X Pi(X^T X)`` at ``Y`` (``V``: top-``r``
    right singular vectors; None: ``T`` is the identity).

    ``Pi`` is the spectral projector of the Gram matrix onto its top ``r`` eigenvalues
    ``lambda_i = s_i^2``; ``DPi[H] = sum_{i<=r<j} (v_i^T H v_j)/(lambda_i - lambda_j)
    (v_i v_j^T + v_j v_i^T)`` with ``H = Y^T E + E^T Y``, and ``DT_Y[E] = E Pi + Y DPi[H]``.
    """
    if V is None:
        return E
    r = V.shape[1]
    _, s, Vt = np.linalg.svd(Y, full_matrices=True)
    lam = np.zeros(Vt.shape[0])
    lam[:s.size] = s**2
    Vf = Vt.T
    H = Y.T @ E + E.T @ Y
    Hv = Vf.T @ H @ Vf
    coef = np.zeros_like(Hv)
    coef[:r, r:] = Hv[:r, r:] / (lam[:r, None] - lam[None, r:])
    dPi = Vf @ (coef + coef.T) @ Vf.T
    Pi = Vf[:, :r] @ Vf[:, :r].T
    return E @ Pi + Y @ dPi


@dataclass(frozen=True)
class FloorEnclosure:
    """A verified enclosure of the error floor of full-batch FedDLR (docs/theory.md §12.4).

    ``Phi(W) = sum_k p_k T_u(P_k T_d(W) + c_k)``. With ``J`` its derivative at ``center``
    and ``K(R)`` a bound on the second-order remainder on ``B(center, R)``, every iterate
    in ``B(center, R_t)`` is mapped into ``B(center, R_{t+1})``,
    ``R_{t+1} = F(R_t) = residual + rounding + ||J|| R_t + K(R_t) R_t^2``. ``F(R) <= R`` on
    ``[r_min, r_max]``: a trajectory that enters ``B(center, r_max)`` stays, and every
    later round lies within ``R_t -> r_min`` of ``center``.
    """

    center: np.ndarray  # (d, c) the map iterated from W_0 = 0 (no run)
    center_dist: float  # ||center - W*||_F
    residual: float  # ||Phi(center) - center||_F
    rounding: float  # allowance per round for the simulator's float64 rounding
    jacobian_norm: float  # ||J||, Frobenius operator norm
    r_min: float
    r_max: float  # inf: the whole space (affine map); with r_min inf: no enclosure, no run covered
    policy_down: str | None
    policy_up: str | None

    @property
    def floor_bound(self) -> float:
        """Upper bound on ``limsup ||W_r - W*||^2`` of every trajectory entering the basin."""
        return (self.center_dist + self.r_min) ** 2

    @property
    def floor_lower(self) -> float:
        return max(self.center_dist - self.r_min, 0.0) ** 2

    def to_dict(self) -> dict:
        return {"center_dist_sq": self.center_dist**2, "residual": self.residual,
                "rounding": self.rounding, "jacobian_norm": self.jacobian_norm,
                "r_min": self.r_min, "r_max": self.r_max, "floor_bound": self.floor_bound,
                "floor_lower": self.floor_lower}


class _Enclosure:
    """The radius map ``F(R)`` of :class:`FloorEnclosure` (internal)."""

    def __init__(self, round_map: AffineRound, center: np.ndarray, down, up,
                 residual: float, rounding: float):
        self.rm, self.center, self.down, self.up = round_map, center, down, up
        self.res, self.rounding = residual, rounding
        self.Pnorm = np.array([np.linalg.norm(P, 2) for P in round_map.P_clients])
        self.Vd, self.kd0, _ = _truncation_terms(center, down, 0.0)
        self.Td = truncate(center, down)
        self.Y = round_map.P_clients @ self.Td + round_map.c_clients
        self.Vu, self.ku0 = [], []
        for y in self.Y:
            V, k0, _ = _truncation_terms(y, up, 0.0)
            self.Vu.append(V)
            self.ku0.append(k0)
        self.J = self._jacobian()
        self.Jnorm = float(np.linalg.norm(self.J, 2))

    def _jacobian(self) -> np.ndarray:
        d, c = self.center.shape
        n = d * c
        J = np.zeros((n, n))
        for i in range(n):
            E = np.zeros(n)
            E[i] = 1.0
            dd = truncation_derivative(self.center, self.Vd, E.reshape(d, c))
            out = np.zeros((d, c))
            for k, (P, y, V) in enumerate(zip(self.rm.P_clients, self.Y, self.Vu, strict=True)):
                out += self.rm.p[k] * truncation_derivative(y, V, P @ dd)
            J[:, i] = out.ravel()
        return J

    def K(self, R: float) -> float:
        _, kd, Kd = _truncation_terms(self.center, self.down, R)
        if not math.isfinite(kd):
            return math.inf
        total = 0.0
        for k, y in enumerate(self.Y):
            eps = self.Pnorm[k] * kd * R
            _, _, Ku = _truncation_terms(y, self.up, eps)
            if not math.isfinite(Ku):
                return math.inf
            total += self.rm.p[k] * (self.ku0[k] * self.Pnorm[k] * Kd
                                     + Ku * self.Pnorm[k] ** 2 * kd**2)
        return total

    def F(self, R: float) -> float:
        K = self.K(R)
        return self.res + self.rounding + self.Jnorm * R + (K * R * R if K else 0.0)


def floor_enclosure(round_map: AffineRound, w_star: np.ndarray, down=None, up=None,
                    rounds: int = 400, rounding_rel: float = 1e-9) -> FloorEnclosure:
    """A-priori bound on the error floor of a policy pair (full batch, full participation).

    Our derivation, docs/theory.md §12.4. ``center``: the compressed map iterated ``rounds``
    times from ``W_0 = 0`` (the problem alone); then a second-order (Newton–Kantorovich-type)
    argument with the exact derivative of the truncations at the center, their gap-based
    Lipschitz constants and a resolvent bound on their second-order remainder gives the
    radii ``r_min`` (where every trajectory in the basin ends) and ``r_max`` (the basin).

    Parameters
    ----------
    round_map : AffineRound
        The constant-step FedAvg round.
    w_star : numpy.ndarray
        ``(d, c)`` the optimum.
    down, up : str or None
        Rank policies (None: dense).
    rounds : int
        Iterations of the map for the center.
    rounding_rel : float
        Allowance per round, relative to ``||center||``, for the difference between the
        simulator's float64 round and the exact map (an assumption; the simulator
        reproduces the map to 1e-10 relative over whole trajectories).
    """
    W = np.zeros_like(np.asarray(w_star, dtype=np.float64))
    tr = compressed_trajectory(round_map, W, rounds, down, up)
    center = tr[-1]
    nxt = compressed_trajectory(round_map, center, 1, down, up)[-1]
    res = float(np.linalg.norm(nxt - center))
    rounding = rounding_rel * float(np.linalg.norm(center))
    enc = _Enclosure(round_map, center, down, up, res, rounding)
    if enc.Jnorm >= 1 or not math.isfinite(enc.K(0.0)):
        r_min = r_max = math.inf
    else:
        R = 0.0
        for _ in range(100_000):
            R_new = enc.F(R)
            if R_new <= R * (1 + 1e-15):
                break
            R = R_new
        r_min = R
        if enc.K(r_min) == 0.0 and enc.K(1e6) == 0.0:
            r_max = math.inf
        else:
            lo, hi = r_min, max(2 * r_min, 1e-12)
            while enc.F(hi) <= hi and hi < 1e6:
                lo, hi = hi, 2 * hi
            if hi >= 1e6:  # F(R) <= R verified up to lo only: claim no more than that
                r_max = lo
            else:
                for _ in range(200):
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if enc.F(mid) <= mid else (lo, mid)
                r_max = lo
    return FloorEnclosure(center, float(np.linalg.norm(center - w_star)), res, rounding,
                          enc.Jnorm, r_min, r_max, down, up)


def enclosure_radii(enclosure: FloorEnclosure, round_map: AffineRound, R0: float,
                    rounds: int) -> np.ndarray:
    """``(rounds+1,)`` radii ``R_t``: a trajectory within ``R0 <= r_max`` of the center at some
    round lies within ``R_t`` of it ``t`` rounds later (``R_{t+1} = F(R_t)``)."""
    if R0 > enclosure.r_max:
        raise ValueError(f"R0: {R0} is outside the basin radius {enclosure.r_max}")
    enc = _Enclosure(round_map, enclosure.center, enclosure.policy_down, enclosure.policy_up,
                     enclosure.residual, enclosure.rounding)
    out = [float(R0)]
    for _ in range(int(rounds)):
        out.append(min(out[-1], enc.F(out[-1])) if out[-1] >= enclosure.r_min else
                   enclosure.r_min)
    return np.array(out)


__all__ += ["FloorEnclosure", "enclosure_radii", "floor_enclosure", "truncation_derivative"]
