"""Tests of theory.bounds: Li et al.'s recursion, compression errors, fixed points."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.bounds import (
    B_constant,
    RoundMap,
    a_priori_recursion,
    best_policy_under_budget,
    check_step_sizes,
    constant_step_round,
    fixed_point,
    fixed_point_relative,
    li_distance_bound,
    li_step_sizes,
    li_theorem1,
    participation_C,
    recursion_bound,
    round_coefficients,
    rounds_to_target,
)
from theory.constants import ridge_problem

PARAMS = [  # (L, mu, E, B, d0^2)
    (1.0, 0.1, 5, 2.0, 4.0),
    (10.0, 1.0, 1, 0.5, 100.0),
    (4.0, 0.01, 20, 10.0, 1.0),
    (2.0, 1.0, 3, 0.0, 9.0),
    (1.0, 1.0, 50, 3.0, 0.0),
]


def _li_steps(mu, L, E, T):
    return li_step_sizes(mu, L, E, T).etas


# ----------------------------------------------------------------- Li et al.
def test_li_step_sizes_satisfy_the_lemma_conditions():
    for L, mu, E, _, _ in PARAMS:
        s = li_step_sizes(mu, L, E, 500)
        assert s.kappa == L / mu and s.gamma == max(8 * L / mu, E)
        assert s.etas[0] <= 1 / (4 * L) * (1 + 1e-15)
        assert np.all(np.diff(s.etas) < 0)
        assert np.all(s.etas[:-E] <= 2 * s.etas[E:])
        check_step_sizes(s.etas, L, E)


@pytest.mark.parametrize("L, mu, E, B, dist0_sq", PARAMS)
def test_zero_error_recursion_is_li_step_by_step(L, mu, E, B, dist0_sq):
    R = 40
    etas = _li_steps(mu, L, E, R * E)
    bound = recursion_bound(math.sqrt(dist0_sq), etas, E, mu, L, B, 0.0, 0.0)
    delta = dist0_sq
    per_step = [delta]
    for eta in etas:
        delta = (1 - mu * eta) * delta + eta**2 * B
        per_step.append(delta)
    np.testing.assert_allclose(bound.dist_sq, per_step[::E], rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("L, mu, E, B, dist0_sq", PARAMS)
def test_recursion_is_never_looser_than_theorem_1(L, mu, E, B, dist0_sq):
    R = 60
    etas = _li_steps(mu, L, E, R * E)
    bound = recursion_bound(math.sqrt(dist0_sq), etas, E, mu, L, B, 0.0, 0.0)
    T = np.arange(R + 1) * E
    induction = li_distance_bound(mu, L, B, E, T, dist0_sq)
    assert np.all(bound.dist_sq <= induction * (1 + 1e-12))
    for r in range(1, R + 1):
        closed = li_theorem1(L, mu, B, E, int(T[r]), dist0_sq)
        assert bound.excess[r] <= L / 2 * induction[r] * (1 + 1e-12)
        assert L / 2 * induction[r] <= closed * (1 + 1e-12)


def test_theorem1_formula():
    L, mu, B, E, T, dd = 4.0, 0.5, 3.0, 10, 100, 2.0
    kappa, gamma = 8.0, 64.0
    assert li_theorem1(L, mu, B, E, T, dd) == pytest.approx(
        kappa / (gamma + T - 1) * (2 * B / mu + mu * gamma / 2 * dd)
    )


def test_B_and_C():
    p = np.array([0.5, 0.25, 0.25])
    s2 = np.array([1.0, 2.0, 4.0])
    assert B_constant(p, s2, 2.0, 0.5, 3, 1.5) == pytest.approx(
        0.25 + 0.125 + 0.25 + 6 * 2 * 0.5 + 8 * 4 * 1.5
    )
    assert participation_C(5, 2.0, 4) == pytest.approx(4 * 25 * 2 / 4)
    assert participation_C(5, 2.0, 4, scheme="scheme1") == pytest.approx(4 * 25 * 2 / 4)
    assert participation_C(5, 2.0, 4, N=10, scheme="scheme2") == pytest.approx(6 / 9 * 50)
    assert participation_C(5, 2.0, 10, N=10, scheme="scheme2") == 0.0
    with pytest.raises(ValueError, match="N"):
        participation_C(5, 2.0, 4, scheme="scheme2")
    with pytest.raises(ValueError, match="K"):
        participation_C(5, 2.0, 11, N=10, scheme="scheme2")
    with pytest.raises(ValueError, match="p"):
        B_constant([0.5, 0.6], s2[:2], 1.0, 0.0, 1, 1.0)
    with pytest.raises(ValueError, match="Gamma"):
        B_constant(p, s2, 1.0, -0.1, 1, 1.0)


@pytest.mark.parametrize("scheme", ["I", "II", "full", "III"])
def test_participation_C_accepts_only_the_simulator_spelling(scheme):
    with pytest.raises(ValueError, match=r"^scheme: must be 'scheme1' or 'scheme2'.*got "
                                         + repr(scheme) + "$"):
        participation_C(5, 2.0, 4, N=10, scheme=scheme)


def test_scheme_names_match_the_simulator():
    from fl_sim.participation import SCHEMES

    assert set(SCHEMES) == {"full", "scheme1", "scheme2"}
    for scheme in SCHEMES[1:]:
        assert participation_C(5, 2.0, 4, N=10, scheme=scheme) > 0


def test_li_step_sizes_returns_LiSteps():
    import theory
    from theory.bounds import LiSteps

    s = li_step_sizes(0.5, 2.0, 5, 20)
    assert isinstance(s, LiSteps) and theory.LiSteps is LiSteps
    assert s.kappa == 4.0 and s.gamma == 32.0 and s.etas.shape == (20,)


# ------------------------------------------------------------ the recursion
@settings(max_examples=60, deadline=None)
@given(
    es=st.lists(st.floats(0, 2), min_size=6, max_size=6),
    ec=st.lists(st.floats(0, 2), min_size=6, max_size=6),
    bump=st.floats(0, 1),
    where=st.integers(0, 5),
    side=st.booleans(),
)
def test_recursion_is_monotone_in_the_errors(es, ec, bump, where, side):
    L, mu, E = 2.0, 0.2, 4
    etas = _li_steps(mu, L, E, 6 * E)
    base = recursion_bound(1.0, etas, E, mu, L, 1.0, es, ec)
    es2, ec2 = list(es), list(ec)
    (es2 if side else ec2)[where] += bump
    more = recursion_bound(1.0, etas, E, mu, L, 1.0, es2, ec2)
    assert np.all(more.d >= base.d)
    assert np.all(base.d[1:] >= recursion_bound(1.0, etas, E, mu, L, 1.0, 0, 0).d[1:])


def test_partial_participation_placement():
    L, mu, E, B, C = 1.0, 0.1, 5, 2.0, 7.0
    etas = _li_steps(mu, L, E, 20 * E)
    full = recursion_bound(2.0, etas, E, mu, L, B, 0.1, 0.1)
    sync = recursion_bound(2.0, etas, E, mu, L, B, 0.1, 0.1, C=C)
    conservative = recursion_bound(2.0, etas, E, mu, L, B + C, 0.1, 0.1)
    assert np.all(sync.d[1:] > full.d[1:])
    assert np.all(sync.d[1:] <= conservative.d[1:])


def test_step_conditions_are_enforced():
    L, mu, E = 1.0, 0.1, 2
    with pytest.raises(ValueError, match="1/\\(4L\\)"):
        recursion_bound(1.0, [0.3, 0.2], E, mu, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="non-increasing"):
        recursion_bound(1.0, [0.1, 0.2], E, mu, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="2 eta_"):
        recursion_bound(1.0, [0.2, 0.2, 0.05, 0.05], E, mu, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="multiple of E"):
        recursion_bound(1.0, [0.1, 0.1, 0.1], E, mu, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="e_s"):
        recursion_bound(1.0, [0.1, 0.1], E, mu, L, 1.0, -0.1, 0)
    with pytest.raises(ValueError, match="e_c"):
        recursion_bound(1.0, [0.1, 0.1], E, mu, L, 1.0, 0, [np.nan])
    with pytest.raises(ValueError, match="mu"):
        recursion_bound(1.0, [0.1, 0.1], E, 0.0, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="L"):
        recursion_bound(1.0, [0.1, 0.1], E, 2.0, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="E"):
        recursion_bound(1.0, [0.1, 0.1], 0, mu, L, 1.0, 0, 0)
    with pytest.raises(ValueError, match="etas"):
        check_step_sizes([0.1, -0.1], L, E)


def test_a_priori_reduces_to_a_posteriori_and_reports_its_errors():
    L, mu, E, B = 1.0, 0.1, 3, 1.0
    etas = np.full(10 * E, 0.2)
    plain = recursion_bound(3.0, etas, E, mu, L, B, 0, 0)
    np.testing.assert_allclose(
        a_priori_recursion(3.0, etas, E, mu, L, B, 0, 0, 5.0, 2.0).d, plain.d, rtol=1e-14
    )
    ap = a_priori_recursion(3.0, etas, E, mu, L, B, 0.1, 0.05, 5.0, 2.0)
    np.testing.assert_allclose(ap.e_s, 0.1 * (5.0 + ap.d[:-1]))
    # feeding its own error bounds to the a-posteriori recursion reproduces it
    replay = recursion_bound(3.0, etas, E, mu, L, B, ap.e_s, ap.e_c)
    np.testing.assert_allclose(replay.d, ap.d, rtol=1e-12)


# ------------------------------------------------------------ fixed points
@settings(max_examples=80, deadline=None)
@given(
    rho=st.floats(0, 0.999),
    # squares of values below ~1e-154 underflow; beta is 0 or a representable square
    beta=st.one_of(st.just(0.0), st.floats(1e-100, 10)),
    es=st.floats(0, 3),
    ec=st.floats(0, 3),
)
def test_fixed_point_solves_the_equation(rho, beta, es, ec):
    d = fixed_point(rho, beta, es, ec)
    assert d == pytest.approx(math.sqrt(rho * (d + es) ** 2 + beta) + ec, rel=1e-12, abs=1e-12)
    fp = fixed_point_relative(rho, beta, 0, 0, 0)
    assert fp.d == pytest.approx(math.sqrt(beta / (1 - rho)), rel=1e-12, abs=1e-300)


def test_constant_step_iteration_converges_to_the_fixed_point():
    L, mu, E, B, eta = 2.0, 0.5, 4, 3.0, 0.1
    rho, beta = constant_step_round(mu, eta, E, B)
    r2, b2 = round_coefficients(np.full(E, eta), mu, B)
    assert (rho, beta) == pytest.approx((r2, b2), rel=1e-14)
    R = 400
    for d0 in [0.0, 50.0]:
        bound = recursion_bound(d0, np.full(R * E, eta), E, mu, L, B, 0.3, 0.2)
        target = fixed_point(rho, beta, 0.3, 0.2)
        assert bound.d[-1] == pytest.approx(target, rel=1e-10)
        diffs = np.diff(bound.d)
        assert np.all(diffs >= -1e-12) if d0 == 0 else np.all(diffs <= 1e-12)


def test_relative_fixed_point_matches_a_priori_iteration():
    L, mu, E, B, eta, G2 = 1.0, 0.2, 10, 2.0, 0.25, 1.5
    rho, beta = constant_step_round(mu, eta, E, B)
    q_s, q_c, W = 0.05, 0.08, 4.0
    fp = fixed_point_relative(rho, beta, q_s, q_c, W, drift_sq=E * G2 * E * eta**2)
    m = RoundMap(rho, beta, q_s=q_s, q_c=q_c, w_star_norm=W, drift_sq=E * G2 * E * eta**2)
    assert float(m(fp.d)) == pytest.approx(fp.d, rel=1e-13)
    assert fp.lipschitz < 1
    ap = a_priori_recursion(10.0, np.full(300 * E, eta), E, mu, L, B, q_s, q_c, W, G2)
    assert ap.d[-1] == pytest.approx(fp.d, rel=1e-10)
    # errors only raise the floor
    assert fp.d > fixed_point_relative(rho, beta, 0.0, 0.0, W).d


def test_fixed_point_grows_with_errors_and_shrinks_with_mu_eta_E():
    B, mu, eta = 1.0, 0.5, 0.1
    floors = []
    for E in [1, 2, 5, 20]:
        rho, beta = constant_step_round(mu, eta, E, B)
        floors.append(fixed_point(rho, beta, 0.1, 0.1))
        # without errors the floor sqrt(B eta/mu) does not depend on E
        assert fixed_point(rho, beta, 0, 0) == pytest.approx(math.sqrt(B * eta / mu))
    assert np.all(np.diff(floors) < 0)
    rho, beta = constant_step_round(mu, eta, 5, B)
    assert fixed_point(rho, beta, 0.2, 0.1) > fixed_point(rho, beta, 0.1, 0.1)
    assert fixed_point(rho, beta, 0.1, 0.2) > fixed_point(rho, beta, 0.1, 0.1)


def test_no_fixed_point_without_contraction():
    with pytest.raises(ValueError, match="contraction"):
        fixed_point_relative(0.9, 0.01, 0.05, 0.05, 1.0)
    with pytest.raises(ValueError, match="rho"):
        fixed_point(1.0, 1.0, 0, 0)
    m = RoundMap(0.9, 0.01, q_s=0.05, q_c=0.05, w_star_norm=1.0)
    assert m.lipschitz >= 1
    assert rounds_to_target(m, 5.0, 1.0) is None
    # and the iterates indeed run away
    d = 5.0
    for _ in range(200):
        d = float(m(d))
    assert d > 100


def test_rounds_to_target_is_consistent_with_the_recursion():
    L, mu, E, B, eta = 2.0, 0.5, 4, 3.0, 0.1
    rho, beta = constant_step_round(mu, eta, E, B)
    m = RoundMap(rho, beta, e_s=0.1, e_c=0.05)
    floor = fixed_point(rho, beta, 0.1, 0.05)
    bound = recursion_bound(20.0, np.full(500 * E, eta), E, mu, L, B, 0.1, 0.05)
    for target in [floor * 1.01, floor * 1.5, 5.0, 19.0]:
        r = rounds_to_target(m, 20.0, target)
        assert r == bound.first_round_below(target)
        assert bound.d[r] <= target < bound.d[r - 1]
    assert rounds_to_target(m, 20.0, floor * 0.99) is None
    assert rounds_to_target(m, 20.0, 25.0) == 0
    assert bound.first_round_below(floor * 0.99) is None


def test_best_policy_under_budget():
    mu, eta, E, B = 0.5, 0.1, 4, 1.0
    rho, beta = constant_step_round(mu, eta, E, B)
    # candidates: (name, relative error q, bytes per round)
    cands = [("coarse", 0.2, 10.0), ("medium", 0.05, 40.0), ("fine", 0.01, 100.0),
             ("dense", 0.0, 400.0)]

    def round_map(c):
        return RoundMap(rho, beta, q_s=c[1], q_c=c[1], w_star_norm=2.0)

    def nbytes(c):
        return c[2]

    target = 1.0
    best, evaluated = best_policy_under_budget(cands, round_map, nbytes, 10.0, target, 1e9)
    assert [c.candidate for c in evaluated] == cands
    feasible = [c for c in evaluated if c.feasible]
    assert best == min(feasible, key=lambda c: c.total_bytes)
    assert not evaluated[0].feasible  # coarse floor above the target
    assert evaluated[0].floor > target
    for c in feasible:
        assert c.total_bytes == c.rounds * c.bytes_per_round
        assert c.rounds == rounds_to_target(round_map(c.candidate), 10.0, target)
    tight, _ = best_policy_under_budget(cands, round_map, nbytes, 10.0, target, 1.0)
    assert tight is None


# ------------------------------------------------- a real run stays below
def _svd_truncate(w, r):
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r]


@pytest.mark.parametrize(
    "iid, E, R, batch, lam",
    [(False, 3, 8, 2, 0.2),  # heterogeneous clients, local steps: Li's B is large
     (True, 1, 30, 1, 1.0)],  # identical clients (Gamma = 0), one step: a tighter B
)
def test_a_simulated_run_stays_below_both_bounds(iid, E, R, batch, lam):
    """Monte Carlo FedDLR on ridge regression: measured distances never exceed the bounds.

    sigma_k^2 and G^2 are the maxima over every point where a gradient was taken, so
    A3 and A4 hold along these runs; the errors fed to the a-posteriori bound are the
    measured RMS errors.
    """
    rng = np.random.default_rng(0)
    d, out, runs, rank = 6, 4, 60, 3
    clients = []
    for k, n in enumerate([25, 15, 20]):
        x = rng.standard_normal((n, d)) + 0.3 * k
        clients.append((x, x @ rng.standard_normal((d, out)) + 0.5 * rng.standard_normal((n, out))))
    if iid:
        clients = [clients[0]] * 3
    prob = ridge_problem(clients, lam=lam)
    eta = 1 / (4 * prob.L)
    K = prob.num_clients
    dist_sq, excess = np.zeros(R + 1), np.zeros(R + 1)
    es_sq, ec_sq = np.zeros(R), np.zeros(R)
    visited = [[] for _ in range(K)]
    for _ in range(runs):
        w = np.zeros((d, out))
        dist_sq[0] += np.sum((w - prob.w_star) ** 2)
        excess[0] += prob.F(w) - prob.F_star
        for r in range(R):
            w_hat = _svd_truncate(w, rank)
            es_sq[r] += np.sum((w_hat - w) ** 2)
            uploads, finals = [], []
            for k in range(K):
                wk = w_hat.copy()
                for _ in range(E):
                    visited[k].append(wk.copy())
                    grads = prob.sample_grads_k(k, wk)
                    wk = wk - eta * grads[rng.integers(0, grads.shape[0], batch)].mean(axis=0)
                finals.append(wk)
                uploads.append(_svd_truncate(wk, rank))
            err = sum(pk * (u - f) for pk, u, f in zip(prob.p, uploads, finals, strict=True))
            ec_sq[r] += np.sum(err**2)
            w = sum(pk * u for pk, u in zip(prob.p, uploads, strict=True))
            dist_sq[r + 1] += np.sum((w - prob.w_star) ** 2)
            excess[r + 1] += prob.F(w) - prob.F_star
    d_meas = np.sqrt(dist_sq / runs)
    sigma2 = np.array([max(prob.sigma2_k_at(k, W, batch) for W in visited[k]) for k in range(K)])
    G2 = max(prob.G2_k_at(k, W, batch) for k in range(K) for W in visited[k])
    B = B_constant(prob.p, sigma2, prob.L, prob.Gamma, E, G2)
    etas = np.full(R * E, eta)
    post = recursion_bound(d_meas[0], etas, E, prob.mu, prob.L, B,
                           np.sqrt(es_sq / runs), np.sqrt(ec_sq / runs))
    assert np.all(d_meas <= post.d * (1 + 1e-12))
    assert np.all(excess / runs <= post.excess * (1 + 1e-12))
    q = math.sqrt(1 - rank / min(d, out))
    prior = a_priori_recursion(d_meas[0], etas, E, prob.mu, prob.L, B, q, q,
                               float(np.linalg.norm(prob.w_star)), G2)
    assert np.all(d_meas <= prior.d * (1 + 1e-12))
    assert np.all(np.sqrt(es_sq / runs) <= prior.e_s * (1 + 1e-12))
    assert np.all(np.sqrt(ec_sq / runs) <= prior.e_c * (1 + 1e-12))


def test_per_step_B_equals_round_B_and_rejects_wrong_shape():
    eta = np.array([0.1, 0.08, 0.05])
    assert round_coefficients(eta, 0.3, np.full(3, 2.5)) == round_coefficients(eta, 0.3, 2.5)
    rho, beta = round_coefficients(eta, 0.3, [1.0, 0.0, 0.0])
    assert beta == pytest.approx(0.1**2 * (1 - 0.3 * 0.08) * (1 - 0.3 * 0.05), rel=1e-14)
    with pytest.raises(ValueError, match="shape"):
        round_coefficients(eta, 0.3, np.ones(2))


def test_rounds_to_target_for_any_constant_step_map():
    # a plain affine contraction d -> 0.5 d + 1 (floor 2): not a RoundMap
    def m(d):
        return 0.5 * d + 1.0

    assert rounds_to_target(m, 10.0, 3.0) == 3  # 10 -> 6 -> 4 -> 3
    assert rounds_to_target(m, 10.0, 1.9) is None  # below the floor: stalls
    assert rounds_to_target(m, 1.0, 3.0) == 0
