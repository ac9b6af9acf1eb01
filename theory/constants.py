"""Constants L, mu, w*, F*, F_k*, Gamma, sigma_k^2 and G^2 of concrete convex problems.

Two federated problems, each client ``k`` holding ``(X_k, Y_k)``:

- ridge (matrix) regression,
  ``F_k(W) = ||X_k W - Y_k||_F^2 / (2 n_k) + lam/2 ||W||_F^2``;
- multinomial logistic regression, logits ``X_k W``,
  ``F_k(W) = mean_i CE(softmax(W^T x_i), y_i) + lam/2 ||W||_F^2``.

Parameter convention: ``W`` has shape ``(d, out)`` (``out`` targets or classes) and
predictions are ``X W``. A torch ``nn.Linear`` weight has shape ``(out, d)``: the
caller passes ``weight.T`` (and appends a column of ones to ``X`` for a bias).
Everything is float64 numpy; derivations in docs/theory.md, §9.

Per-sample losses carry the regularizer, ``f_i(W) = l_i(W) + lam/2 ||W||^2`` with
mean ``F_k``; a minibatch gradient is the mean of ``grad f_i`` over the batch.
Its data part is ``x_i r_i(W)^T`` with residual ``r_i = W^T x_i - y_i`` (ridge)
or ``softmax(W^T x_i) - y_i`` (logistic).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special

__all__ = [
    "BallConstants",
    "ConvexProblem",
    "PointwiseConstants",
    "logistic_problem",
    "ridge_problem",
]


@dataclass(frozen=True)
class PointwiseConstants:
    """sigma_k^2 and G^2 maximized over a finite set of points (e.g. a run's iterates)."""

    sigma2: np.ndarray  # (K,): max over the points of the minibatch variance of client k
    G2: float  # max over points and clients of E||g_k||^2
    num_points: int  # points examined
    batch_size: int  # minibatch size the constants are for
    replace: bool  # sampling with replacement?


@dataclass(frozen=True)
class BallConstants:
    """Bounds on sigma_k^2 and G^2 valid at every ``W`` with ``||W - center|| <= radius``."""

    radius: float  # R
    sigma2: np.ndarray  # (K,): sup over the ball of the minibatch variance of client k
    G2: float  # sup over the ball and the clients of E||g_k||^2
    batch_size: int
    replace: bool


def _validate_clients(clients, kind: str, num_classes: int | None):
    if len(clients) == 0:
        raise ValueError("clients: need at least one client")
    xs, ys = [], []
    for k, pair in enumerate(clients):
        try:
            x, y = pair
        except (TypeError, ValueError) as exc:
            raise ValueError(f"clients[{k}]: expected a pair (X_k, Y_k)") from exc
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 1:
            raise ValueError(f"clients[{k}]: X_k must have shape (n_k, d) with n_k >= 1")
        y = np.asarray(y)
        if kind == "logistic":
            if y.ndim == 1:
                if not np.issubdtype(y.dtype, np.integer):
                    raise ValueError(f"clients[{k}]: integer labels expected, got {y.dtype}")
                if y.min() < 0 or y.max() >= num_classes:
                    raise ValueError(
                        f"clients[{k}]: labels must lie in [0, num_classes={num_classes})"
                    )
                y = np.eye(num_classes)[y]
            y = np.asarray(y, dtype=np.float64)
            if y.shape[-1] != num_classes or np.any(y < 0) or not np.allclose(y.sum(1), 1.0):
                raise ValueError(
                    f"clients[{k}]: Y_k must be labels or probability rows of length {num_classes}"
                )
        else:
            y = np.asarray(y, dtype=np.float64)
            if y.ndim == 1:
                y = y[:, None]
        if y.ndim != 2 or y.shape[0] != x.shape[0]:
            raise ValueError(f"clients[{k}]: X_k and Y_k must have the same number of rows")
        if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
            raise ValueError(f"clients[{k}]: data must be finite")
        xs.append(x)
        ys.append(y)
    if len({x.shape[1] for x in xs}) != 1 or len({y.shape[1] for y in ys}) != 1:
        raise ValueError("clients: all clients must share d (columns of X) and out (of Y)")
    return tuple(xs), tuple(ys)


def _weights(weights, sizes: np.ndarray) -> np.ndarray:
    if weights is None:
        return sizes / sizes.sum()
    p = np.asarray(weights, dtype=np.float64)
    if p.shape != sizes.shape or np.any(p < 0) or not math.isclose(p.sum(), 1.0, rel_tol=1e-12):
        raise ValueError("weights: need one non-negative weight per client, summing to 1")
    return p


@dataclass(frozen=True, eq=False)
class ConvexProblem:
    """A federated strongly convex problem with its constants (docs/theory.md, §9).

    Build with :func:`ridge_problem` or :func:`logistic_problem`. ``W`` has shape
    ``(d, out)``; a torch ``nn.Linear`` weight is ``(out, d)``, so pass its transpose.
    """

    kind: str  # "ridge" or "logistic"
    X: tuple[np.ndarray, ...]  # per client (n_k, d)
    Y: tuple[np.ndarray, ...]  # per client (n_k, out): targets or one-hot labels
    lam: float  # l2 regularization
    p: np.ndarray  # (K,) weights p_k of F = sum_k p_k F_k
    L_k: np.ndarray  # (K,) smoothness of each F_k
    mu_k: np.ndarray  # (K,) strong convexity of each F_k
    w_star: np.ndarray  # (d, out) minimizer of F (numerical for logistic)
    F_star: float  # F(w_star): an upper bound on min F, tight to rounding / solver tol
    w_k_star: tuple[np.ndarray, ...]  # minimizers of the F_k
    F_k_star: np.ndarray  # (K,) certified lower bounds F_k(w_k) - ||grad F_k(w_k)||^2/(2 mu_k)
    grad_norm_at_w_star: float  # ||grad F(w_star)||, achieved

    @property
    def L(self) -> float:
        """``max_k L_k``: every F_k (and F) is L-smooth (assumption A1)."""
        return float(self.L_k.max())

    @property
    def mu(self) -> float:
        """``min_k mu_k``: every F_k is mu-strongly convex (assumption A2)."""
        return float(self.mu_k.min())

    @property
    def Gamma(self) -> float:
        """``F* - sum_k p_k F_k*``, an upper bound: F(w_star) minus certified lower bounds."""
        return float(max(0.0, self.F_star - self.p @ self.F_k_star))

    @property
    def w_star_error_bound(self) -> float:
        """``||w_star - w*|| <= ||grad F(w_star)|| / mu`` (strong convexity)."""
        return self.grad_norm_at_w_star / self.mu

    @property
    def num_clients(self) -> int:
        return len(self.X)

    @property
    def shape(self) -> tuple[int, int]:
        """``(d, out)`` of ``W``."""
        return self.w_star.shape

    # ----------------------------------------------------------------- losses
    def _W(self, W) -> np.ndarray:
        W = np.asarray(W, dtype=np.float64)
        if W.shape != self.shape:
            raise ValueError(
                f"W: expected shape {self.shape} (d, out); a torch Linear weight (out, d) "
                "must be transposed"
            )
        return W

    def _k(self, k: int) -> int:
        if isinstance(k, bool) or int(k) != k or not (0 <= k < self.num_clients):
            raise ValueError(f"k: must be a client index in [0, {self.num_clients}), got {k!r}")
        return int(k)

    def _residuals(self, k: int, W: np.ndarray) -> np.ndarray:
        z = self.X[k] @ W
        if self.kind == "ridge":
            return z - self.Y[k]
        return scipy.special.softmax(z, axis=1) - self.Y[k]

    def _data_losses(self, k: int, W: np.ndarray) -> np.ndarray:
        z = self.X[k] @ W
        if self.kind == "ridge":
            return 0.5 * np.sum((z - self.Y[k]) ** 2, axis=1)
        return scipy.special.logsumexp(z, axis=1) - np.sum(self.Y[k] * z, axis=1)

    def F_k(self, k: int, W) -> float:
        """Local objective ``F_k(W)``."""
        k, W = self._k(k), self._W(W)
        return float(self._data_losses(k, W).mean() + 0.5 * self.lam * np.sum(W * W))

    def F(self, W) -> float:
        """Global objective ``F(W) = sum_k p_k F_k(W)``."""
        return float(sum(pk * self.F_k(k, W) for k, pk in enumerate(self.p)))

    def grad_k(self, k: int, W) -> np.ndarray:
        """``grad F_k(W)``, shape ``(d, out)``."""
        k, W = self._k(k), self._W(W)
        return self.X[k].T @ self._residuals(k, W) / self.X[k].shape[0] + self.lam * W

    def grad(self, W) -> np.ndarray:
        """``grad F(W)``, shape ``(d, out)``."""
        return sum(pk * self.grad_k(k, W) for k, pk in enumerate(self.p))

    def sample_grads_k(self, k: int, W) -> np.ndarray:
        """Per-sample gradients ``grad f_i(W)`` of client ``k``, shape ``(n_k, d, out)``."""
        k, W = self._k(k), self._W(W)
        r = self._residuals(k, W)
        return self.X[k][:, :, None] * r[:, None, :] + self.lam * W

    def hessian_k(self, k: int, W) -> np.ndarray:
        """Hessian of ``F_k`` at ``W`` w.r.t. ``W.ravel()`` (row-major), ``(d out, d out)``."""
        k, W = self._k(k), self._W(W)
        x, n = self.X[k], self.X[k].shape[0]
        d, o = self.shape
        if self.kind == "ridge":
            h = np.kron(x.T @ x / n, np.eye(o))
        else:
            prob = scipy.special.softmax(x @ W, axis=1)
            s = -prob[:, :, None] * prob[:, None, :]
            s[:, np.arange(o), np.arange(o)] += prob
            h4 = np.empty((d, o, d, o))
            for c in range(o):
                for c2 in range(o):
                    h4[:, c, :, c2] = x.T @ (s[:, c, c2, None] * x) / n
            h = h4.reshape(d * o, d * o)
        return h + self.lam * np.eye(d * o)

    # ------------------------------------------------------- noise constants
    def _batch_factor(self, k: int, batch_size: int, replace: bool) -> float:
        n = self.X[k].shape[0]
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
        if replace:
            return 1.0 / batch_size
        if batch_size > n:
            raise ValueError(
                f"batch_size: {batch_size} exceeds n_k = {n} of client {k} (without replacement)"
            )
        return 0.0 if n == 1 else (n - batch_size) / (batch_size * (n - 1))

    def sigma2_k_at(self, k: int, W, batch_size: int, replace: bool = True) -> float:
        """Exact variance ``E||g_k - grad F_k(W)||^2`` of the minibatch gradient at ``W``.

        With ``S = mean_i ||grad f_i(W) - grad F_k(W)||^2`` (population variance of
        the per-sample gradients): ``S / b`` for ``b`` samples drawn uniformly with
        replacement, ``S / b * (n_k - b)/(n_k - 1)`` without replacement (finite
        population correction). docs/theory.md, §9. Assumption A3 needs this at
        every point client ``k`` visits.

        Parameters
        ----------
        k : int
            Client index.
        W : array_like
            Point, shape ``(d, out)``.
        batch_size : int
            Minibatch size ``b``.
        replace : bool
            Sampling with (True) or without (False) replacement.

        Returns
        -------
        float
        """
        k, W = self._k(k), self._W(W)
        factor = self._batch_factor(k, batch_size, replace)
        r = self._residuals(k, W)
        x = self.X[k]
        centered = x[:, :, None] * r[:, None, :] - (x.T @ r / x.shape[0])[None]
        return float(factor * np.mean(np.sum(centered**2, axis=(1, 2))))

    def G2_k_at(self, k: int, W, batch_size: int, replace: bool = True) -> float:
        """``E||g_k||^2 = ||grad F_k(W)||^2 + sigma_k^2(W)`` (assumption A4 at ``W``)."""
        g = self.grad_k(k, W)
        return float(np.sum(g * g) + self.sigma2_k_at(k, W, batch_size, replace))

    def G2_at(self, W, batch_size: int, replace: bool = True) -> float:
        """``max_k E||g_k(W)||^2``: A4 must hold for every client."""
        return max(self.G2_k_at(k, W, batch_size, replace) for k in range(self.num_clients))

    def sup_over_points(
        self, points: Iterable, batch_size: int, replace: bool = True
    ) -> PointwiseConstants:
        """sigma_k^2 (per client) and G^2 maximized over the given points.

        Valid constants for a run only if the points include every iterate every
        client visits (local models included), docs/theory.md, §9.

        Parameters
        ----------
        points : iterable of array_like
            Points ``W`` of shape ``(d, out)``.
        batch_size : int
            Minibatch size.
        replace : bool
            Sampling with replacement?

        Returns
        -------
        PointwiseConstants
        """
        sigma2 = np.zeros(self.num_clients)
        g2, count = 0.0, 0
        for W in points:
            count += 1
            for k in range(self.num_clients):
                s2 = self.sigma2_k_at(k, W, batch_size, replace)
                g = self.grad_k(k, W)
                sigma2[k] = max(sigma2[k], s2)
                g2 = max(g2, float(np.sum(g * g)) + s2)
        if count == 0:
            raise ValueError("points: need at least one point")
        return PointwiseConstants(sigma2, g2, count, int(batch_size), bool(replace))

    def ball_bound(
        self, radius: float, batch_size: int, replace: bool = True, center=None
    ) -> BallConstants:
        """Bounds on sigma_k^2 and G^2 over the ball ``||W - center|| <= radius``.

        With ``a_i(W) = x_i r_i(W)^T`` the data part of ``grad f_i``, Lipschitz in
        ``W`` with constant ``l_i = c ||x_i||^2`` (``c = 1`` ridge, ``1/2`` logistic),
        and ``c0 = mean_i a_i(center)``:

        - ``sigma_k^2(W) <= factor * mean_i (||a_i(center) - c0|| + l_i R)^2``
          (the variance is at most the second moment about the fixed ``c0``);
        - ``E||g_k(W)||^2 <= (||grad F_k(center)|| + L_k R)^2 + sup sigma_k^2``

        with ``factor = 1/b`` (with replacement) or ``(n_k - b)/(b (n_k - 1))``.
        Derived in docs/theory.md, §9. Valid for a run only if every iterate stays
        in the ball.

        Parameters
        ----------
        radius : float
            ``R >= 0``.
        batch_size : int
            Minibatch size.
        replace : bool
            Sampling with replacement?
        center : array_like, optional
            Centre of the ball; defaults to ``w_star``.

        Returns
        -------
        BallConstants
        """
        if not math.isfinite(radius) or radius < 0:
            raise ValueError(f"radius: must be finite and >= 0, got {radius}")
        center = self.w_star if center is None else self._W(center)
        c = 1.0 if self.kind == "ridge" else 0.5
        sigma2 = np.empty(self.num_clients)
        g2 = 0.0
        for k in range(self.num_clients):
            factor = self._batch_factor(k, batch_size, replace)
            x = self.X[k]
            r = self._residuals(k, center)
            centered = x[:, :, None] * r[:, None, :] - (x.T @ r / x.shape[0])[None]
            dev = np.sqrt(np.sum(centered**2, axis=(1, 2)))
            lip = c * np.sum(x * x, axis=1)
            sigma2[k] = factor * np.mean((dev + lip * radius) ** 2)
            gnorm = float(np.linalg.norm(self.grad_k(k, center)))
            g2 = max(g2, (gnorm + float(self.L_k[k]) * radius) ** 2 + sigma2[k])
        return BallConstants(float(radius), sigma2, g2, int(batch_size), bool(replace))


def _check_lam(lam: float, strict: bool) -> float:
    lam = float(lam)
    if not math.isfinite(lam) or lam < 0 or (strict and lam == 0):
        cond = "> 0 (mu = lam is the strong-convexity constant)" if strict else ">= 0"
        raise ValueError(f"lam: must be finite and {cond}, got {lam}")
    return lam


def _eig_range(x: np.ndarray) -> tuple[float, float]:
    ev = scipy.linalg.eigvalsh(x.T @ x / x.shape[0])
    return float(ev[0]), float(ev[-1])


def _finish(kind, xs, ys, lam, p, L_k, mu_k, w_star, w_k) -> ConvexProblem:
    proto = ConvexProblem(kind, xs, ys, lam, p, L_k, mu_k, w_star, 0.0, tuple(w_k),
                          np.zeros(len(xs)), 0.0)
    f_k_low = np.array([
        proto.F_k(k, w) - float(np.sum(proto.grad_k(k, w) ** 2)) / (2 * mu_k[k])
        for k, w in enumerate(w_k)
    ])
    gnorm = float(np.linalg.norm(proto.grad(w_star)))
    return ConvexProblem(kind, xs, ys, lam, p, L_k, mu_k, w_star, proto.F(w_star), tuple(w_k),
                         f_k_low, gnorm)


def ridge_problem(
    clients: Sequence[tuple], lam: float, weights: Sequence[float] | None = None
) -> ConvexProblem:
    """Federated ridge regression with every constant in closed form.

    ``F_k(W) = ||X_k W - Y_k||_F^2/(2 n_k) + lam/2 ||W||_F^2``; the Hessian of ``F_k`` is
    ``(X_k^T X_k/n_k + lam I) kron I_out``, so ``L_k = lambda_max(X_k^T X_k/n_k) + lam``,
    ``mu_k = lambda_min(X_k^T X_k/n_k) + lam``; ``w* = (sum_k p_k A_k)^{-1} sum_k p_k
    X_k^T Y_k/n_k`` with ``A_k = X_k^T X_k/n_k + lam I``; ``w_k* = A_k^{-1} X_k^T Y_k/n_k``.
    docs/theory.md, §9.

    Parameters
    ----------
    clients : sequence of (X_k, Y_k)
        ``X_k (n_k, d)``, ``Y_k (n_k, out)`` (or ``(n_k,)``).
    lam : float
        Regularization, ``>= 0``; every ``mu_k`` must come out positive.
    weights : sequence of float, optional
        ``p_k``; default ``n_k / n``.

    Returns
    -------
    ConvexProblem
    """
    lam = _check_lam(lam, strict=False)
    xs, ys = _validate_clients(clients, "ridge", None)
    p = _weights(weights, np.array([x.shape[0] for x in xs], dtype=np.float64))
    ranges = [_eig_range(x) for x in xs]
    mu_k = np.array([lo for lo, _ in ranges]) + lam
    L_k = np.array([hi for _, hi in ranges]) + lam
    if np.any(mu_k <= 0):
        bad = int(np.argmin(mu_k))
        raise ValueError(
            f"lam: F_{bad} is not strongly convex (lambda_min(X^T X/n) + lam = {mu_k[bad]:.3g}); "
            "increase lam"
        )
    d = xs[0].shape[1]
    a = [x.T @ x / x.shape[0] + lam * np.eye(d) for x in xs]
    b = [x.T @ y / x.shape[0] for x, y in zip(xs, ys, strict=True)]
    w_k = [scipy.linalg.solve(ak, bk, assume_a="pos") for ak, bk in zip(a, b, strict=True)]
    w_star = scipy.linalg.solve(sum(pk * ak for pk, ak in zip(p, a, strict=True)),
                                sum(pk * bk for pk, bk in zip(p, b, strict=True)), assume_a="pos")
    return _finish("ridge", xs, ys, lam, p, L_k, mu_k, w_star, w_k)


def _minimize(problem: ConvexProblem, which: int | None, x0: np.ndarray, tol: float, what: str):
    """L-BFGS to ``||grad|| <= tol``, Newton steps if L-BFGS stalls; warn if not met."""
    shape = problem.shape

    def fg(v):
        W = v.reshape(shape)
        if which is None:
            return problem.F(W), problem.grad(W).ravel()
        return problem.F_k(which, W), problem.grad_k(which, W).ravel()

    def hess(v):
        W = v.reshape(shape)
        if which is None:
            return sum(pk * problem.hessian_k(k, W) for k, pk in enumerate(problem.p))
        return problem.hessian_k(which, W)

    res = scipy.optimize.minimize(
        fg, x0.ravel(), jac=True, method="L-BFGS-B",
        options={"gtol": tol / (10 * math.sqrt(x0.size)), "ftol": 0.0, "maxiter": 20000,
                 "maxcor": 30},
    )
    v = res.x
    f, g = fg(v)
    for _ in range(50):
        if np.linalg.norm(g) <= tol:
            break
        step = scipy.linalg.solve(hess(v), -g, assume_a="pos")
        t = 1.0
        while t > 1e-8:
            f_new, g_new = fg(v + t * step)
            if f_new <= f + 1e-4 * t * float(g @ step) or np.linalg.norm(g_new) < np.linalg.norm(g):
                break
            t *= 0.5
        v, f, g = v + t * step, f_new, g_new
    gnorm = float(np.linalg.norm(g))
    if gnorm > tol:
        warnings.warn(
            f"logistic_problem: {what} reached ||grad|| = {gnorm:.3g} > tol = {tol:.3g}; "
            "constants derived from it are correspondingly inexact",
            RuntimeWarning, stacklevel=3,
        )
    return v.reshape(shape)


def logistic_problem(
    clients: Sequence[tuple],
    num_classes: int,
    lam: float,
    tol: float = 1e-10,
    weights: Sequence[float] | None = None,
) -> ConvexProblem:
    """Federated multinomial logistic regression; optima by a convex solver.

    ``F_k(W) = mean_i CE(softmax(W^T x_i), y_i) + lam/2 ||W||_F^2`` with ``W (d, C)``.
    The per-sample CE Hessian is ``x_i x_i^T kron (diag(p) - p p^T)`` and
    ``diag(p) - p p^T <= I/2`` (Gershgorin: row sums ``2 p_c (1 - p_c) <= 1/2``), so
    ``L_k = lambda_max(X_k^T X_k/n_k)/2 + lam`` (Boehning's bound, Boehning 1992);
    the CE Hessian is singular along ``W = v 1^T`` so ``mu = lam`` exactly.
    ``w*`` and each ``w_k*`` by L-BFGS with the analytic gradient to
    ``||grad|| <= tol`` (Newton polishing if needed; a RuntimeWarning if not met).
    ``F_k_star`` holds certified lower bounds and ``Gamma`` is an upper bound.
    docs/theory.md, §9.

    Parameters
    ----------
    clients : sequence of (X_k, y_k)
        ``X_k (n_k, d)``; ``y_k`` integer labels ``(n_k,)`` or probability rows ``(n_k, C)``.
    num_classes : int
        ``C >= 2``.
    lam : float
        Regularization, ``> 0``.
    tol : float
        Target Euclidean norm of the gradient at the computed optima.
    weights : sequence of float, optional
        ``p_k``; default ``n_k / n``.

    Returns
    -------
    ConvexProblem
    """
    lam = _check_lam(lam, strict=True)
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"num_classes: must be an integer >= 2, got {num_classes!r}")
    if not (tol > 0):
        raise ValueError(f"tol: must be > 0, got {tol}")
    xs, ys = _validate_clients(clients, "logistic", int(num_classes))
    p = _weights(weights, np.array([x.shape[0] for x in xs], dtype=np.float64))
    L_k = np.array([_eig_range(x)[1] / 2 for x in xs]) + lam
    mu_k = np.full(len(xs), lam)
    zero = np.zeros((xs[0].shape[1], int(num_classes)))
    proto = ConvexProblem("logistic", xs, ys, lam, p, L_k, mu_k, zero, 0.0, (), np.zeros(0), 0.0)
    w_star = _minimize(proto, None, zero, tol, "w*")
    w_k = [_minimize(proto, k, w_star, tol, f"w_{k}*") for k in range(len(xs))]
    return _finish("logistic", xs, ys, lam, p, L_k, mu_k, w_star, w_k)
