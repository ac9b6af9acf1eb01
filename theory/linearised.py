"""Smooth strongly convex problems near the optimum: FedAvg linearised at ``w*``.

An *asymptotic predictor*, not a bound (docs/theory.md §12.5, our derivation). Near
``w*`` client ``k``'s gradient is ``grad F_k(w) = g_k + H_k (w - w*) + O(||w - w*||^2)``
with ``g_k = grad F_k(w*)`` (the heterogeneity at the optimum: ``sum_k p_k g_k = 0``) and
``H_k`` the Hessian of ``F_k`` at ``w*``. Dropping the remainder, a round of full-batch
FedAvg with full participation is the affine map of :mod:`theory.quadratic` in the
coordinates ``x = vec(W - w*)`` (row-major ``vec`` of ``W (d, c)``, the layout of
:meth:`theory.constants.ConvexProblem.hessian_k`):

    x -> sum_k p_k [(I - eta H_k)^E x - H_k^{-1} (I - (I - eta H_k)^E) g_k]

(constant step). Its fixed point is the linearised bias at the optimum, its contraction
the linearised rate. For ridge the linearisation is exact (``H_k = A_k (x) I_c``). For
logistic regression it is accurate once ``||w - w*||`` is small against the scale on
which the Hessians change.

This module never imports ``fl_sim``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .quadratic import AffineRound

__all__ = ["Linearisation", "linearise", "linearised_round"]


@dataclass(frozen=True, eq=False)
class Linearisation:
    """Gradients and Hessians of every client objective at ``w*`` (``vec`` row-major)."""

    H: np.ndarray  # (N, D, D) Hessians of F_k at w*
    g: np.ndarray  # (N, D) gradients of F_k at w*
    p: np.ndarray  # (N,) weights
    w_star: np.ndarray  # (d, c)

    @property
    def heterogeneity_at_optimum(self) -> float:
        """``zeta*^2 = sum_k p_k ||grad F_k(w*)||^2``."""
        return float(self.p @ np.sum(self.g**2, axis=1))

    def to_vec(self, W: np.ndarray) -> np.ndarray:
        """``(..., D, 1)`` coordinates ``vec(W - w*)`` of ``(..., d, c)`` models."""
        W = np.asarray(W, dtype=np.float64)
        return (W - self.w_star).reshape(*W.shape[:-2], -1, 1)


def linearise(convex) -> Linearisation:
    """The linearisation of a :class:`theory.constants.ConvexProblem` at its ``w*``."""
    w = convex.w_star
    N = convex.num_clients
    H = np.stack([convex.hessian_k(k, w) for k in range(N)])
    g = np.stack([convex.grad_k(k, w).ravel() for k in range(N)])
    return Linearisation(H, g, np.asarray(convex.p, dtype=np.float64), np.array(w))


def linearised_round(lin: Linearisation, eta: float, E: int) -> AffineRound:
    """The affine round map of the linearised problem for ``E`` steps of size ``eta``.

    In the coordinates ``x = vec(W - w*)`` (``(D, 1)``): ``P_k = (I - eta H_k)^E`` and
    ``c_k = -H_k^{-1} (I - (I - eta H_k)^E) g_k``, from the eigendecomposition of ``H_k``.
    """
    eta = float(eta)
    if E < 1 or not eta > 0:
        raise ValueError(f"eta, E: need eta > 0 and E >= 1, got {eta}, {E}")
    P, c = [], []
    for H, g in zip(lin.H, lin.g, strict=True):
        h, U = np.linalg.eigh((H + H.T) / 2)
        if np.min(h) <= 0:
            raise ValueError("H: a client Hessian at w* is not positive definite (lam > 0?)")
        m = (1.0 - eta * h) ** E
        P.append((U * m) @ U.T)
        c.append(-(U * ((1.0 - m) / h)) @ (U.T @ g))
    return AffineRound(np.stack(P), np.stack(c)[:, :, None], lin.p)
