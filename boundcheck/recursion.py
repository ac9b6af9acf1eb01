"""The a-posteriori recursion with round-wise constants ``B_r`` and ``C_r``.

``theory.bounds.recursion_bound`` takes one ``B`` for the whole run. Li et al.'s
Lemmas 1-3 (and 5) are statements about the steps of one round: step ``t`` of round
``r`` uses ``sigma_k^2`` at the iterates of step ``t`` and ``G^2`` at the gradients of
round ``r`` since its common start (docs/theory.md, §1, §4). So the unrolled round
inequality of §2 holds with constants that bound A3/A4 on round ``r`` only:
``B_r = sum_k p_k^2 sigma_{k,r}^2 + 6 L Gamma + 8 (E-1)^2 G_r^2``, ``C_r`` from ``G_r^2``.
This module composes the same pieces the theory uses (``round_coefficients``,
``RoundMap``, ``check_step_sizes``); with constant ``B``, ``C`` it equals
``recursion_bound`` exactly (tested).

``B`` may also be one value per *step*, an ``(R, E)`` array: the a-posteriori drift of
docs/theory.md §11.1 replaces Lemma 3's ``8 (E-1)^2 G^2`` by ``2 D_t / eta_t^2`` with the
measured divergence ``D_t``, so the additive term of step ``j`` of round ``r`` is
``eta_j^2 B_{r,j}`` and ``beta_r = sum_j eta_j^2 B_{r,j} prod_{i>j} (1 - mu eta_i)``
(:func:`round_coefficients_steps`).
"""

from __future__ import annotations

import numpy as np

from theory.bounds import RecursionBound, RoundMap, check_step_sizes, round_coefficients

__all__ = ["recursion_bound_rounds", "round_coefficients_steps"]


def round_coefficients_steps(etas_round, mu: float, B_steps) -> tuple[float, float]:
    """``(rho, beta)`` of one round with a step-dependent ``B_j``.

    ``rho = prod_j (1 - mu eta_j)``, ``beta = sum_j eta_j^2 B_j prod_{i>j} (1 - mu eta_i)``
    (docs/theory.md §2 with ``B`` replaced by ``B_j``, §11.1). With every ``B_j = B`` it is
    :func:`theory.bounds.round_coefficients` to the last bit (same operations, same order).
    """
    eta = np.asarray(etas_round, dtype=np.float64)
    b = np.asarray(B_steps, dtype=np.float64)
    if b.shape != eta.shape:
        raise ValueError(f"B_steps: expected shape {eta.shape}, got {b.shape}")
    if not (np.isfinite(mu) and mu > 0):
        raise ValueError(f"mu: must be finite and > 0, got {mu}")
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError("B_steps: must be finite and >= 0")
    rho, beta = 1.0, 0.0
    for e, bj in zip(eta, b, strict=True):
        rho *= 1.0 - mu * e
        beta = (1.0 - mu * e) * beta + bj * e**2
    return rho, beta


def recursion_bound_rounds(d0: float, etas, E: int, mu: float, L: float, B, e_s, e_c,
                           C=0.0) -> RecursionBound:
    """``d_{r+1} = sqrt(rho_r (d_r + e_s,r)^2 + beta_r(B_r) + eta_last^2 C_r) + e_c,r``.

    Parameters as in :func:`theory.bounds.recursion_bound`, except that ``B`` and ``C``
    may be arrays of length ``R`` (one per round), and ``B`` may be an ``(R, E)`` array
    (one per local step: ``beta_r = sum_j eta_j^2 B_{r,j} prod_{i>j} (1 - mu eta_i)``).
    """
    eta = check_step_sizes(etas, L, E)
    if eta.size % E:
        raise ValueError(f"etas: length {eta.size} is not a multiple of E = {E}")
    rounds = eta.reshape(-1, E)
    R = rounds.shape[0]
    B_steps = None
    if np.ndim(B) == 2:
        B_steps = np.asarray(B, dtype=np.float64)
        if B_steps.shape != rounds.shape:
            raise ValueError(f"B: a per-step B must have shape (R, E) = {rounds.shape}, "
                             f"got {B_steps.shape}")
        if not np.all(np.isfinite(B_steps)) or np.any(B_steps < 0):
            raise ValueError("B: must be finite and >= 0")
        B = 0.0
    arrays = []
    for name, v in (("B", B), ("C", C), ("e_s", e_s), ("e_c", e_c)):
        a = np.broadcast_to(np.asarray(v, dtype=np.float64), (R,)).copy()
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"{name}: must be finite and >= 0")
        arrays.append(a)
    B, C, es, ec = arrays
    if not (np.isfinite(d0) and d0 >= 0):
        raise ValueError(f"d0: must be finite and >= 0, got {d0}")
    d = np.empty(R + 1)
    rho, beta = np.empty(R), np.empty(R)
    d[0] = d0
    for r in range(R):
        if B_steps is None:
            rho[r], beta[r] = round_coefficients(rounds[r], mu, B[r])
        else:
            rho[r], beta[r] = round_coefficients_steps(rounds[r], mu, B_steps[r])
        step = RoundMap(rho[r], beta[r], e_s=es[r], e_c=ec[r],
                        sync_var=rounds[r, -1] ** 2 * C[r])
        d[r + 1] = step(d[r])
    return RecursionBound(d, rho, beta, es, ec, float(L))
