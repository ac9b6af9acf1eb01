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
"""

from __future__ import annotations

import numpy as np

from theory.bounds import RecursionBound, RoundMap, check_step_sizes, round_coefficients

__all__ = ["recursion_bound_rounds"]


def recursion_bound_rounds(d0: float, etas, E: int, mu: float, L: float, B, e_s, e_c,
                           C=0.0) -> RecursionBound:
    """``d_{r+1} = sqrt(rho_r (d_r + e_s,r)^2 + beta_r(B_r) + eta_last^2 C_r) + e_c,r``.

    Parameters as in :func:`theory.bounds.recursion_bound`, except that ``B`` and ``C``
    may be arrays of length ``R`` (one per round).
    """
    eta = check_step_sizes(etas, L, E)
    if eta.size % E:
        raise ValueError(f"etas: length {eta.size} is not a multiple of E = {E}")
    rounds = eta.reshape(-1, E)
    R = rounds.shape[0]
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
        rho[r], beta[r] = round_coefficients(rounds[r], mu, B[r])
        step = RoundMap(rho[r], beta[r], e_s=es[r], e_c=ec[r],
                        sync_var=rounds[r, -1] ** 2 * C[r])
        d[r + 1] = step(d[r])
    return RecursionBound(d, rho, beta, es, ec, float(L))
