"""Symbolic form of the per-round recursion and its error floor (sympy).

The per-round map of docs/theory.md, §3, with constant errors,
``d -> sqrt(rho (d + e_s)^2 + beta) + e_c``, its fixed point (the error floor of
docs/theory.md, §6), the constant-step coefficients ``rho = (1 - mu eta)^E`` and
``beta = B eta (1 - rho)/mu``, and limits. The numeric counterparts are in
:mod:`theory.bounds`.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

__all__ = [
    "B",
    "E",
    "beta",
    "constant_step_coefficients",
    "d",
    "e_c",
    "e_s",
    "eta",
    "fixed_point_expr",
    "lambdify_fixed_point",
    "limits",
    "mu",
    "recursion_expr",
    "rho",
    "to_latex",
]

d = sp.Symbol("d", nonnegative=True)  # RMS distance to w* at the start of a round
rho = sp.Symbol("rho", positive=True)  # per-round contraction, in (0, 1)
beta = sp.Symbol("beta", positive=True)  # per-round noise term
e_s = sp.Symbol("e_s", nonnegative=True)  # server compression error (RMS)
e_c = sp.Symbol("e_c", nonnegative=True)  # client compression error (RMS)
mu = sp.Symbol("mu", positive=True)  # strong convexity
eta = sp.Symbol("eta", positive=True)  # constant step size, mu eta < 1
E = sp.Symbol("E", positive=True, integer=True)  # local steps per round
B = sp.Symbol("B", positive=True)  # Li et al.'s B (plus C for partial participation)

_j = sp.Symbol("j", integer=True, nonnegative=True)
_SAMPLE = {rho: sp.Rational(1, 2), beta: sp.Rational(3, 7), e_s: sp.Rational(1, 5),
           e_c: sp.Rational(1, 3)}


def recursion_expr() -> sp.Expr:
    """The per-round map ``sqrt(rho (d + e_s)^2 + beta) + e_c`` (docs/theory.md, §3).

    Returns
    -------
    sympy.Expr
        In the symbols ``d, rho, beta, e_s, e_c`` of this module.
    """
    return sp.sqrt(rho * (d + e_s) ** 2 + beta) + e_c


def fixed_point_expr() -> sp.Expr:
    """Fixed point ``d_inf`` of :func:`recursion_expr`, derived by sympy.

    Squaring ``d - e_c = sqrt(rho (d + e_s)^2 + beta)`` gives a quadratic in ``d``
    whose roots have ``d - e_c`` of opposite signs (their product, shifted by
    ``e_c``, is ``-(rho c^2 + beta)/(1 - rho) < 0`` with ``c = e_s + e_c``). The
    square root is non-negative, so the root with ``d >= e_c`` is the fixed point
    and the other one is spurious (created by squaring). The selection is done
    and checked on a sample point. Result (docs/theory.md, §6)::

        d_inf = (e_c + rho e_s + sqrt(rho (e_s + e_c)^2 + (1 - rho) beta)) / (1 - rho)

    Assumes ``0 < rho < 1``, ``beta > 0``, ``e_s, e_c >= 0``.

    Returns
    -------
    sympy.Expr
    """
    roots = sp.solve(sp.Eq((d - e_c) ** 2, rho * (d + e_s) ** 2 + beta), d)
    chosen = [r for r in roots if (r - e_c).subs(_SAMPLE) >= 0]
    if len(chosen) != 1:  # pragma: no cover - guards against a change in sympy's output
        raise RuntimeError(f"fixed_point_expr: expected one admissible root, got {roots}")
    root = sp.simplify(chosen[0])
    residual = (recursion_expr().subs(d, root) - root).subs(_SAMPLE)
    if abs(float(sp.N(residual, 30))) > 1e-25:  # pragma: no cover
        raise RuntimeError("fixed_point_expr: the selected root does not solve the equation")
    return root


def constant_step_coefficients() -> tuple[sp.Expr, sp.Expr]:
    """``(rho, beta)`` of one round with a constant step ``eta`` (docs/theory.md, §6).

    ``rho = prod_{j<E} (1 - mu eta) = (1 - mu eta)^E`` and
    ``beta = B sum_{j<E} eta^2 (1 - mu eta)^{E-1-j}``; the geometric sum is done by
    sympy (the branch ``mu eta != 0``) and simplifies to ``B eta (1 - (1 - mu eta)^E)/mu``.

    Returns
    -------
    (sympy.Expr, sympy.Expr)
    """
    a = sp.Symbol("a", positive=True)
    geometric = sp.summation(a ** (E - 1 - _j), (_j, 0, E - 1))
    if isinstance(geometric, sp.Piecewise) or geometric.has(sp.Piecewise):
        geometric = geometric.replace(
            lambda x: isinstance(x, sp.Piecewise), lambda x: x.args[-1][0]
        )  # the a != 1 branch: mu eta > 0
    rho_expr = (1 - mu * eta) ** E
    beta_expr = sp.simplify(B * eta**2 * geometric.subs(a, 1 - mu * eta))
    return rho_expr, beta_expr


def limits() -> dict[str, sp.Expr]:
    """Limits and special cases of the fixed point (docs/theory.md, §6).

    Returns
    -------
    dict of str to sympy.Expr
        - ``"zero_errors"``: ``e_s, e_c -> 0``: ``sqrt(beta/(1 - rho))``;
        - ``"zero_errors_constant_step"``: the same with the constant-step
          coefficients: ``sqrt(B eta/mu)`` (independent of ``E`` except through B);
        - ``"E_equals_1"``: the fixed point with one local step (``rho = 1 - mu eta``,
          ``beta = B eta^2``);
        - ``"first_order"``: first-order expansion in the errors,
          ``sqrt(beta/(1-rho)) + (rho e_s + e_c)/(1 - rho)``;
        - ``"d_inf_d_e_s"``, ``"d_inf_d_e_c"``: partial derivatives at zero errors.
    """
    fp = fixed_point_expr()
    zero = sp.simplify(sp.limit(sp.limit(fp, e_s, 0), e_c, 0))
    rho_c, beta_c = constant_step_coefficients()
    constant = sp.simplify(sp.powsimp(zero.subs({beta: beta_c}).subs({rho: rho_c}), force=True))
    constant = sp.simplify(sp.factor(constant))
    one = sp.simplify(fp.subs({beta: beta_c.subs(E, 1), rho: rho_c.subs(E, 1)}))
    t = sp.Symbol("t", nonnegative=True)
    scaled = fp.subs({e_s: t * e_s, e_c: t * e_c})
    slope = sp.simplify(sp.diff(scaled, t).subs(t, 0))
    return {
        "zero_errors": zero,
        "zero_errors_constant_step": constant,
        "E_equals_1": one,
        "first_order": zero + slope,
        "d_inf_d_e_s": sp.simplify(sp.diff(fp, e_s).subs({e_s: 0, e_c: 0})),
        "d_inf_d_e_c": sp.simplify(sp.diff(fp, e_c).subs({e_s: 0, e_c: 0})),
    }


def to_latex(expr: sp.Expr) -> str:
    """LaTeX of an expression (for docs and notebooks)."""
    return sp.latex(expr)


def lambdify_fixed_point() -> Callable:
    """Numpy function ``f(rho, beta, e_s, e_c) -> d_inf`` from :func:`fixed_point_expr`."""
    return sp.lambdify((rho, beta, e_s, e_c), fixed_point_expr(), "numpy")
