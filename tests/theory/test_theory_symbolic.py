"""Tests of theory.symbolic against the numeric bounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from theory import symbolic as S
from theory.bounds import constant_step_round, fixed_point, round_coefficients


@pytest.fixture(scope="module")
def fp():
    return S.fixed_point_expr()


def test_lambdified_fixed_point_equals_numeric():
    f = S.lambdify_fixed_point()
    rng = np.random.default_rng(0)
    for _ in range(200):
        rho, beta = rng.uniform(0, 0.999), rng.uniform(0, 5)
        es, ec = rng.uniform(0, 2), rng.uniform(0, 2)
        assert f(rho, beta, es, ec) == pytest.approx(fixed_point(rho, beta, es, ec), rel=1e-10)


def test_fixed_point_solves_the_recursion(fp):
    m = S.recursion_expr()
    rng = np.random.default_rng(1)
    for _ in range(20):
        vals = {S.rho: rng.uniform(0.01, 0.99), S.beta: rng.uniform(0.01, 3),
                S.e_s: rng.uniform(0, 1), S.e_c: rng.uniform(0, 1)}
        d_val = float(fp.subs(vals))
        assert float(m.subs(vals).subs(S.d, d_val)) == pytest.approx(d_val, rel=1e-12)
    # and the spurious root of the squared equation lies below e_c
    roots = sp.solve(sp.Eq((S.d - S.e_c) ** 2, S.rho * (S.d + S.e_s) ** 2 + S.beta), S.d)
    vals = {S.rho: 0.3, S.beta: 1.0, S.e_s: 0.2, S.e_c: 0.4}
    other = [r for r in roots if sp.simplify(r - fp) != 0]
    assert len(other) == 1 and float(other[0].subs(vals)) < 0.4


def test_zero_error_limit():
    lim = S.limits()
    # compare squares: sympy cannot pull sqrt(1/(1 - rho)) apart without knowing rho < 1
    assert sp.simplify(lim["zero_errors"] ** 2 - S.beta / (1 - S.rho)) == 0
    assert sp.simplify(lim["zero_errors_constant_step"] ** 2 - S.B * S.eta / S.mu) == 0
    assert sp.simplify(lim["d_inf_d_e_s"] - S.rho / (1 - S.rho)) == 0
    assert sp.simplify(lim["d_inf_d_e_c"] - 1 / (1 - S.rho)) == 0
    vals = {S.rho: 0.6, S.beta: 0.7, S.e_s: 0.0, S.e_c: 0.0}
    assert float(lim["zero_errors"].subs(vals)) == pytest.approx(math.sqrt(0.7 / 0.4))
    # the first-order expansion undershoots by at most rho c^2 / (2 (1-rho) sqrt((1-rho) beta))
    # (sqrt(A + x) <= sqrt(A) + x / (2 sqrt(A))), c = e_s + e_c
    for c_scale in [1e-4, 1e-2, 0.3]:
        small = {S.rho: 0.6, S.beta: 0.7, S.e_s: c_scale, S.e_c: 2 * c_scale}
        gap = fixed_point(0.6, 0.7, c_scale, 2 * c_scale) - float(lim["first_order"].subs(small))
        c = 3 * c_scale
        assert -1e-15 <= gap <= 0.6 * c**2 / (2 * 0.4 * math.sqrt(0.4 * 0.7)) + 1e-15


def test_constant_step_coefficients_match_numeric():
    rho_e, beta_e = S.constant_step_coefficients()
    assert sp.simplify(beta_e - S.B * S.eta * (1 - (1 - S.mu * S.eta) ** S.E) / S.mu) == 0
    for E in [1, 2, 7]:
        vals = {S.mu: 0.3, S.eta: 0.2, S.E: E, S.B: 2.5}
        rho_n, beta_n = round_coefficients(np.full(E, 0.2), 0.3, 2.5)
        assert float(rho_e.subs(vals)) == pytest.approx(rho_n, rel=1e-14)
        assert float(beta_e.subs(vals)) == pytest.approx(beta_n, rel=1e-13)


def test_E_equals_1_case():
    one = S.limits()["E_equals_1"]
    rho, beta = constant_step_round(0.5, 0.1, 1, 2.0)
    vals = {S.mu: 0.5, S.eta: 0.1, S.B: 2.0, S.e_s: 0.3, S.e_c: 0.1}
    assert float(one.subs(vals)) == pytest.approx(fixed_point(rho, beta, 0.3, 0.1), rel=1e-12)


def test_to_latex():
    tex = S.to_latex(S.recursion_expr())
    assert "\\sqrt" in tex and "\\rho" in tex and "\\beta" in tex
