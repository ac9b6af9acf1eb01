"""sigma_k^2 and G^2 along a run: every local iterate and every global model.

Assumptions A3/A4 (docs/theory.md, §0) must hold at every point where a client takes
a gradient. For ridge and logistic regression they are not global constants, so a
check evaluates them *exactly* (the formulas of ``ConvexProblem.sigma2_k_at`` and
``G2_k_at``, vectorized here over many points) at every point the run visits:

- every local iterate ``w^k_t`` before each local step (``Observer.on_local_step``),
- every global model ``w_r`` (``Observer.on_global``),

and, conservatively, for *every* client at *every* such point (not only client ``k``
at its own iterates). The sup is the constant used: over the whole run, or per
round (the sup over the points of round ``r``, which is all Li et al.'s Lemmas 1-3
and 5 use in that round; docs/theory.md, "Checking the bound against runs"). A ball
bound
(``ConvexProblem.ball_bound``) with the radius of the farthest observed point is the
alternative the recorder also supports.

Under full participation the recorder also measures the divergence of the local
models at every local step, ``D_{r,j} = sum_k p_k ||w^k_{rE+j} - v_{rE+j}||^2`` with
``v = sum_k p_k w^k`` (the term Li et al.'s Lemma 3 bounds; docs/theory.md §11.1).

Caveat (docs/theory.md §4, §10): Li et al.'s partial-participation analysis also
involves the *virtual* local iterates of unsampled clients, which the run never
computes; evaluating every client at every observed point covers points near them
but does not visit them. Also, the sup over the observed seeds is a sup over those
trajectories, not over every trajectory the minibatch noise could produce.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.special
import torch

from fl_sim import Observer
from theory.constants import ConvexProblem

from .problems import PARAM

__all__ = ["Iterates", "TrajectoryRecorder", "TrajectoryStats", "constants_at_points"]

_CHUNK = 1024  # points evaluated per vectorized batch


def constants_at_points(convex: ConvexProblem, points, batch_size: int | None,
                        replace: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``sigma_k^2(W)`` and ``E||g_k(W)||^2`` for every client at many points.

    The same quantities as :meth:`ConvexProblem.sigma2_k_at` and ``G2_k_at``
    (docs/theory.md, §9), vectorized: with residuals ``r_i`` and ``c_0 = X^T R / n``,
    the population variance of the per-sample gradients is
    ``mean_i ||x_i||^2 ||r_i||^2 - ||c_0||^2``.

    Parameters
    ----------
    convex : ConvexProblem
        The problem.
    points : array_like
        ``(M, d, out)`` points ``W`` (theory layout).
    batch_size : int or None
        Minibatch size ``b``; None means full-batch gradients (``sigma_k^2 = 0``).
    replace : bool
        Minibatches drawn with replacement (the simulator's sampling).

    Returns
    -------
    sigma2, G2 : numpy.ndarray
        Both ``(M, N)``.
    """
    P = np.asarray(points, dtype=np.float64)
    if P.ndim != 3 or P.shape[1:] != convex.shape:
        raise ValueError(f"points: expected shape (M, {convex.shape[0]}, {convex.shape[1]}), "
                         f"got {P.shape}")
    M, N = P.shape[0], convex.num_clients
    sigma2, g2 = np.empty((M, N)), np.empty((M, N))
    for k in range(N):
        x, y = convex.X[k], convex.Y[k]
        n = x.shape[0]
        factor = 0.0 if batch_size is None else convex._batch_factor(k, batch_size, replace)
        xsq = np.sum(x * x, axis=1)
        for s in range(0, M, _CHUNK):
            Pc = P[s:s + _CHUNK]
            z = np.matmul(x, Pc)  # (m, n, out)
            r = z - y if convex.kind == "ridge" else scipy.special.softmax(z, axis=2) - y
            c0 = np.matmul(x.T, r) / n  # (m, d, out): mean data gradient
            second = np.sum(r * r, axis=2) @ xsq / n
            var = np.maximum(second - np.sum(c0 * c0, axis=(1, 2)), 0.0)
            s2 = factor * var
            grad = c0 + convex.lam * Pc
            sigma2[s:s + _CHUNK, k] = s2
            g2[s:s + _CHUNK, k] = np.sum(grad * grad, axis=(1, 2)) + s2
    return sigma2, g2


@dataclass(frozen=True)
class Iterates:
    """The iterates one run passed through (theory layout ``(d, out)``), for the exact bound.

    ``globals_[r]`` is ``w_r``, ``starts[r]`` the clients' common start ``C_s(w_r)`` of round
    ``r``, ``last[r]`` the participants' iterates before their last local step of round
    ``r`` and ``last_ids[r]`` their client ids (one entry per draw).
    """

    globals_: np.ndarray  # (R+1, d, out)
    starts: np.ndarray  # (R, d, out)
    last: list[np.ndarray]  # R arrays (K, d, out)
    last_ids: list[np.ndarray]  # R arrays (K,)
    last_step: int  # local step index j of ``last`` (E - 1)


@dataclass
class TrajectoryStats:
    """What one run's recorder saw."""

    sigma2: np.ndarray  # (N,) sup over observed points of sigma_k^2
    G2: float  # sup over observed points and clients of E||g_k||^2
    sigma2_rounds: np.ndarray  # (R+1, N) the sup over the points of round r (w_r included)
    G2_rounds: np.ndarray  # (R+1,) likewise for G^2; row R holds the final model only
    num_points: int  # distinct points evaluated
    max_radius: float  # max ||W - w*|| over observed points
    common_start: bool  # every round's local iterates all started at one point (Lemma 3)
    server_errors: list[float] = field(default_factory=list)  # ||w_hat_r - w_r||, observed
    argmax_G2: tuple[int, int] = (-1, -1)  # (round, local step) where the sup G^2 was seen
    # (R, E) sum_k p_k ||w^k_{rE+j} - v_{rE+j}||^2 before local step j of round r; NaN
    # where not measured (partial participation: the unsampled clients are not run)
    divergence: np.ndarray | None = None
    initial: np.ndarray | None = None  # w_0 (theory layout (d, out)), as observed
    iterates: Iterates | None = None  # every w_r, C_s(w_r) and last local iterate


class TrajectoryRecorder:
    """An :class:`fl_sim.Observer` that evaluates sigma_k^2 and G^2 along a run.

    Use ``rec.observer`` in ``fl_sim.run(..., observer=rec.observer)``; afterwards
    ``rec.stats()``. Points are buffered and evaluated in vectorized chunks.

    Parameters
    ----------
    convex : ConvexProblem
        The problem (theory layout ``W (d, out)``).
    batch_size : int or None
        The run's minibatch size.
    keep_points : bool
        Keep every observed point (``rec.points``), e.g. for tests.
    """

    def __init__(self, convex: ConvexProblem, batch_size: int | None,
                 keep_points: bool = False) -> None:
        self.convex = convex
        self.batch_size = batch_size
        self.keep_points = keep_points
        self.points: list[np.ndarray] = []
        self._buffer: list[np.ndarray] = []
        self._tags: list[tuple[int, int]] = []
        self._buffered = 0
        self._sigma2 = np.zeros(convex.num_clients)
        self._g2, self._argmax = 0.0, (-1, -1)
        self._count = 0
        self._radius = 0.0
        self._common = True
        self._round_sigma2: dict[int, np.ndarray] = {}
        self._round_g2: dict[int, float] = {}
        self._globals: dict[int, np.ndarray] = {}
        self._server_errors: list[float] = []
        self._divergence: dict[tuple[int, int], float] = {}
        self._starts: dict[int, np.ndarray] = {}
        self._last: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self.observer = Observer(on_local_step=self._on_local, on_global=self._on_global)

    @staticmethod
    def _theory_layout(t: torch.Tensor) -> np.ndarray:
        a = t.detach().cpu().double().numpy()
        return np.ascontiguousarray(np.swapaxes(a, -1, -2))

    def _add(self, pts: np.ndarray, tag: tuple[int, int]) -> None:
        self._buffer.append(pts)
        self._tags.extend([tag] * pts.shape[0])
        self._buffered += pts.shape[0]
        if self.keep_points:
            self.points.extend(pts.copy())
        if self._buffered >= 4 * _CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        P = np.concatenate(self._buffer)
        s2, g2 = constants_at_points(self.convex, P, self.batch_size)
        self._sigma2 = np.maximum(self._sigma2, s2.max(axis=0))
        i = int(np.argmax(g2.max(axis=1)))
        if g2[i].max() > self._g2:
            self._g2, self._argmax = float(g2[i].max()), self._tags[i]
        rounds = np.array([t[0] for t in self._tags])
        for r in np.unique(rounds):
            sel = rounds == r
            prev = self._round_sigma2.get(int(r), np.zeros(self.convex.num_clients))
            self._round_sigma2[int(r)] = np.maximum(prev, s2[sel].max(axis=0))
            self._round_g2[int(r)] = max(self._round_g2.get(int(r), 0.0), float(g2[sel].max()))
        dist = np.sqrt(np.sum((P - self.convex.w_star) ** 2, axis=(1, 2)))
        self._radius = max(self._radius, float(dist.max()))
        self._count += P.shape[0]
        self._buffer, self._tags, self._buffered = [], [], 0

    def _on_global(self, r: int, params) -> None:
        self._check_params(params)
        w = self._theory_layout(params[PARAM])
        self._globals[r] = w
        self._add(w[None], (r, -1))

    def _divergence_of(self, stacked: np.ndarray, clients) -> float | None:
        """``sum_k p_k ||w^k - v||^2``, ``v = sum_k p_k w^k``, if every client is present.

        Computed as ``1/2 sum_{k,l} p_k p_l ||w^k - w^l||^2`` (equal when ``sum_k p_k = 1``):
        no cancellation, and exactly 0 when all local models are equal.
        """
        N = self.convex.num_clients
        ids = np.asarray(clients.detach().cpu() if hasattr(clients, "detach") else clients)
        if ids.shape != (N,) or not np.array_equal(ids, np.arange(N)):
            return None  # partial participation: the virtual iterates are not observed
        p = self.convex.p
        X = stacked.reshape(N, -1)
        diff = X[:, None, :] - X[None, :, :]
        return float(0.5 * np.einsum("k,l,kl->", p, p, np.sum(diff * diff, axis=2)))

    def _on_local(self, r: int, j: int, params, clients) -> None:
        self._check_params(params)
        stacked = self._theory_layout(params[PARAM])  # (K, d, out)
        ids = np.asarray(clients.detach().cpu() if hasattr(clients, "detach") else clients)
        if j >= self._last.get(r, (-1,))[0]:
            self._last[r] = (j, stacked.copy(), ids.copy())
        if j == 0:
            self._starts[r] = stacked[0].copy()
        div = self._divergence_of(stacked, clients)
        if div is not None:
            self._divergence[(r, j)] = div
        if j == 0:
            # Lemma 3 needs a common start: every participant begins at w_hat_r = C_s(w_r)
            if not np.array_equal(stacked, np.broadcast_to(stacked[0], stacked.shape)):
                self._common = False
                self._add(stacked, (r, j))
            else:
                self._add(stacked[:1], (r, j))
            w_r = self._globals.get(r)
            if w_r is not None:
                self._server_errors.append(float(np.linalg.norm(stacked[0] - w_r)))
        else:
            self._add(stacked, (r, j))

    @staticmethod
    def _check_params(params) -> None:
        if set(params) != {PARAM}:
            raise ValueError(f"model: expected the single parameter {PARAM!r} of a bias-free "
                             f"linear model, got {sorted(params)}")

    def stats(self) -> TrajectoryStats:
        """The sup of sigma_k^2 and G^2 over everything observed so far."""
        self._flush()
        if self._count == 0:
            raise ValueError("TrajectoryRecorder: no points observed (was it passed to run?)")
        last = max(self._round_g2)
        s2r = np.zeros((last + 1, self.convex.num_clients))
        g2r = np.zeros(last + 1)
        for r, v in self._round_sigma2.items():
            s2r[r], g2r[r] = v, self._round_g2[r]
        div = None
        if self._divergence:
            rows = 1 + max(r for r, _ in self._divergence)
            cols = 1 + max(j for _, j in self._divergence)
            div = np.full((rows, cols), np.nan)
            for (r, j), v in self._divergence.items():
                div[r, j] = v
        return TrajectoryStats(self._sigma2.copy(), self._g2, s2r, g2r, self._count,
                               self._radius, self._common, list(self._server_errors),
                               self._argmax, div, self._globals.get(0), self._iterates())

    def _iterates(self) -> Iterates | None:
        R = len(self._starts)
        if R == 0 or sorted(self._starts) != list(range(R)) or \
                sorted(self._globals) != list(range(R + 1)) or sorted(self._last) != list(range(R)):
            return None
        steps = {self._last[r][0] for r in range(R)}
        if len(steps) != 1:
            return None
        return Iterates(np.stack([self._globals[r] for r in range(R + 1)]),
                        np.stack([self._starts[r] for r in range(R)]),
                        [self._last[r][1] for r in range(R)],
                        [self._last[r][2] for r in range(R)], steps.pop())
