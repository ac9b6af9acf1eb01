"""theory.quadratic: the exact affine map of FedAvg on least squares, and its moments.

Float64 exactness against closed forms, and the second moment against a numpy Monte
Carlo of the same algorithm (tolerance: 4 standard errors of the Monte Carlo mean).
"""

from __future__ import annotations

import numpy as np
import pytest

from theory.quadratic import (
    AffineRound,
    LeastSquaresClients,
    aggregation_weights,
    bias,
    compression_deviation,
    exact_moments,
    last_step_mean,
    mean_square_contraction,
    mean_square_operator,
    modal_deviation,
    propagated_noise,
    round_maps,
)


def _clients(seed=0, N=3, n=6, d=3, c=2, lam=0.1, same_x=False, sizes=None):
    rng = np.random.default_rng(seed)
    sizes = sizes or [n] * N
    x0 = rng.normal(size=(n, d))
    X = tuple(x0.copy() if same_x else rng.normal(size=(s, d)) * (1 + k)
              for k, s in enumerate(sizes))
    Y = tuple(rng.normal(size=(x.shape[0], c)) + k for k, x in enumerate(X))
    p = np.array(sizes, dtype=np.float64) / sum(sizes)
    return LeastSquaresClients(X, Y, lam, p)


def _eta(cl):
    return 0.5 / float(np.max(np.linalg.eigvalsh(cl.A)))


def test_fixed_point_equals_the_closed_form_and_is_a_fixed_point():
    cl = _clients()
    E, eta = 4, _eta(cl)
    rm = round_maps(cl, np.full(E, eta), E)[0]
    fix = rm.fixed_point()
    np.testing.assert_allclose(rm(fix), fix, rtol=0, atol=1e-13)
    A, ws = cl.A, cl.w_star_clients
    Q = np.stack([np.eye(3) - np.linalg.matrix_power(np.eye(3) - eta * a, E) for a in A])
    closed = np.linalg.solve(np.tensordot(cl.p, Q, 1), np.einsum("k,kde,kec->dc", cl.p, Q, ws))
    np.testing.assert_allclose(fix, closed, rtol=1e-12, atol=1e-13)
    # P_k is the E-th power of I - eta A_k, c_k = Q_k W_k*
    np.testing.assert_allclose(rm.P_clients[1], np.linalg.matrix_power(np.eye(3) - eta * A[1], E),
                               atol=1e-14)
    np.testing.assert_allclose(rm.c_clients[1], Q[1] @ ws[1], atol=1e-12)


def test_bias_vanishes_with_equal_hessians_and_not_otherwise():
    same = _clients(same_x=True)  # equal A_k, very different targets (gradients at w*)
    rm = round_maps(same, np.full(5, _eta(same)), 5)[0]
    assert np.linalg.norm(same.grad_at(same.w_star)) > 1.0
    assert np.linalg.norm(bias(rm, same.w_star)) < 1e-12
    diff = _clients()
    rm = round_maps(diff, np.full(5, _eta(diff)), 5)[0]
    assert np.linalg.norm(bias(rm, diff.w_star)) > 1e-3
    one = round_maps(diff, np.full(1, _eta(diff)), 1)[0]  # E = 1 is gradient descent on F
    assert np.linalg.norm(bias(one, diff.w_star)) < 1e-12


def test_trajectory_closed_form_equals_iteration_and_contraction():
    cl = _clients(seed=1)
    E, eta = 3, _eta(cl)
    rm = round_maps(cl, np.full(E, eta), E)[0]
    W = np.random.default_rng(2).normal(size=(3, 2))
    traj = rm.trajectory(W, 25)
    for r in range(26):
        np.testing.assert_allclose(traj[r], W, rtol=1e-12, atol=1e-12)
        W = rm(W)
    mu = np.linalg.eigvalsh(cl.A)[:, 0]
    assert rm.contraction <= float(cl.p @ (1 - eta * mu) ** E) + 1e-15
    assert rm.contraction == pytest.approx(np.linalg.norm(rm.P, 2), rel=1e-12)


def test_rounds_to_target_constant_step():
    cl = _clients(seed=3)
    rm = round_maps(cl, np.full(2, _eta(cl)), 2)[0]
    W0 = np.zeros((3, 2))
    b = np.linalg.norm(bias(rm, cl.w_star))
    traj = rm.trajectory(W0, 400)
    dist = np.linalg.norm(traj - cl.w_star, axis=(1, 2))
    target = b + 0.5 * (dist[0] - b) * 0.01
    r = rm.rounds_to_target(W0, cl.w_star, target)
    assert r is not None and dist[r] <= target < dist[r - 1]
    assert rm.rounds_to_target(W0, cl.w_star, 0.99 * b) is None


def _monte_carlo(cl, etas, E, W0, b, scheme, K, reps, rng):
    """numpy simulation of local SGD (minibatch with replacement) with client sampling."""
    N = cl.num_clients
    W = np.broadcast_to(W0, (reps, *W0.shape)).copy()
    out = [np.sum((W - cl.w_star) ** 2, axis=(1, 2))]
    for eta_r in np.asarray(etas).reshape(-1, E):
        if scheme == "full":
            ids = np.broadcast_to(np.arange(N), (reps, N))
            wts = np.broadcast_to(cl.p, (reps, N))
        elif scheme == "scheme1":
            ids = rng.choice(N, size=(reps, K), p=cl.p)
            wts = np.full((reps, K), 1.0 / K)
        else:
            ids = np.argsort(rng.random((reps, N)), axis=1)[:, :K]
            wts = cl.p[ids] * N / K
        new = np.zeros_like(W)
        for s in range(ids.shape[1]):
            w = W.copy()
            for e in eta_r:
                g = np.empty_like(w)
                for k in range(N):
                    sel = ids[:, s] == k
                    if not sel.any():
                        continue
                    x, y = cl.X[k], cl.Y[k]
                    idx = rng.integers(0, x.shape[0], size=(int(sel.sum()), b))
                    xb, yb = x[idx], y[idx]  # (m, b, d), (m, b, c)
                    r = np.einsum("mbd,mdc->mbc", xb, w[sel]) - yb
                    g[sel] = np.einsum("mbd,mbc->mdc", xb, r) / b
                w = w - e * (g + cl.lam * w)
            new += wts[:, s, None, None] * w
        W = new
        out.append(np.sum((W - cl.w_star) ** 2, axis=(1, 2)))
    return np.array(out)  # (R+1, reps)


@pytest.mark.parametrize("scheme,K", [("full", None), ("scheme1", 2), ("scheme2", 2)])
def test_second_moment_matches_monte_carlo(scheme, K):
    cl = _clients(seed=4, sizes=[5, 7, 6])
    E, b, R = 3, 2, 4
    etas = np.full(R * E, 0.7 * _eta(cl))
    W0 = np.random.default_rng(5).normal(size=(3, 2))
    exact = exact_moments(cl, etas, E, W0, b, scheme, K).dist_sq
    mc = _monte_carlo(cl, etas, E, W0, b, scheme, K, 10000, np.random.default_rng(6))
    se = mc.std(axis=1, ddof=1) / np.sqrt(mc.shape[1])
    assert exact[0] == pytest.approx(mc[0, 0], rel=1e-14)
    assert np.all(np.abs(mc.mean(axis=1)[1:] - exact[1:]) <= 4 * se[1:]), (
        mc.mean(axis=1), exact, se)


def test_full_batch_moments_are_the_affine_trajectory():
    cl = _clients(seed=7)
    E = 2
    etas = np.full(10 * E, _eta(cl))
    W0 = np.stack([np.zeros((3, 2)), np.ones((3, 2))])
    mom = exact_moments(cl, etas, E, W0, None)
    rm = round_maps(cl, etas[:E], E)[0]
    direct = np.mean([np.sum((rm.trajectory(w, 10) - cl.w_star) ** 2, axis=(1, 2)) for w in W0],
                     axis=0)
    np.testing.assert_allclose(mom.dist_sq, direct, rtol=1e-12)
    assert np.all(mom.cov_trace == 0.0)


def test_mean_square_contraction():
    cl = _clients(seed=8)
    E = 3
    eta_r = np.full(E, _eta(cl))
    rm = round_maps(cl, eta_r, E)[0]
    assert mean_square_contraction(cl, eta_r, None) == pytest.approx(rm.contraction, rel=1e-12)
    # noise and sampling make the random linear part larger in mean square
    assert mean_square_contraction(cl, eta_r, 2) > rm.contraction
    assert mean_square_contraction(cl, eta_r, None, "scheme1", 2) > rm.contraction
    # Monte Carlo of E||M x||^2 for the coupled difference of two copies on the same draws
    rho = mean_square_contraction(cl, eta_r, 2, "scheme2", 2)
    x = np.random.default_rng(9).normal(size=(3, 1))
    zero = LeastSquaresClients(cl.X, tuple(np.zeros_like(y[:, :1]) for y in cl.Y), cl.lam, cl.p)
    mc = _monte_carlo(zero, eta_r, E, x, 2, "scheme2", 2, 10000, np.random.default_rng(10))
    # w* of the zero-target problem is 0, so mc[-1] = ||M x||^2
    assert mc[-1].mean() <= rho**2 * float(np.sum(x * x)) + 4 * mc[-1].std() / np.sqrt(10000)


def test_compression_deviation_recursion_and_validation():
    D = compression_deviation([0.5, 0.5], [1.0, 0.0], [0.2, 0.2])
    np.testing.assert_allclose(D, [0.0, 0.7, 0.55])
    with pytest.raises(ValueError, match="rho, e_s, e_c"):
        compression_deviation([0.5], [-1.0], [0.0])


def test_invalid_inputs_name_the_parameter():
    cl = _clients()
    with pytest.raises(ValueError, match="participation"):
        exact_moments(cl, np.full(2, 0.01), 2, np.zeros((3, 2)), participation="x")
    with pytest.raises(ValueError, match="clients_per_round"):
        exact_moments(cl, np.full(2, 0.01), 2, np.zeros((3, 2)), participation="scheme1")
    with pytest.raises(ValueError, match="etas"):
        round_maps(cl, np.full(3, 0.01), 2)
    assert isinstance(round_maps(cl, np.full(2, 0.01), 2)[0], AffineRound)


def test_mean_square_operator_generalises_the_contraction():
    cl = _clients(seed=11)
    eta_r = np.full(2, _eta(cl))
    P = round_maps(cl, eta_r, 2)[0].P
    np.testing.assert_allclose(mean_square_operator(cl, eta_r, None), P @ P, atol=1e-14)
    u = np.linalg.qr(np.random.default_rng(12).normal(size=(3, 3)))[0]
    for b, scheme, K in [(2, "full", None), (None, "scheme1", 2), (3, "scheme2", 2)]:
        parts = sum(mean_square_operator(cl, eta_r, b, scheme, K, np.outer(u[:, i], u[:, i]))
                    for i in range(3))  # sum_i E[M^T u_i u_i^T M] = E[M^T M]
        T = mean_square_operator(cl, eta_r, b, scheme, K)
        np.testing.assert_allclose(parts, T, rtol=1e-12, atol=1e-14)
        assert np.max(np.linalg.eigvalsh(T - P @ P)) > 1e-6  # randomness adds mean square


def test_last_step_mean_matches_monte_carlo_and_full_batch():
    cl = _clients(seed=12, sizes=[5, 7, 6])
    rng = np.random.default_rng(13)
    ids = np.array([0, 2, 2])
    a = aggregation_weights(cl.p, ids, "scheme1", 3)
    np.testing.assert_allclose(a, [1 / 3] * 3)
    np.testing.assert_allclose(aggregation_weights(cl.p, [1, 2], "scheme2", 2), cl.p[[1, 2]] * 1.5)
    np.testing.assert_allclose(aggregation_weights(cl.p, [0, 1, 2], "full", None), cl.p)
    W_prev = rng.normal(size=(3, 3, 2))
    eta, b, reps = 0.05, 2, 20000
    mean = last_step_mean(cl, W_prev, ids, a, eta)
    agg = np.zeros((reps, 3, 2))
    full = np.zeros((3, 2))
    for w, k, ak in zip(W_prev, ids, a, strict=True):
        x, y = cl.X[k], cl.Y[k]
        idx = rng.integers(0, x.shape[0], size=(reps, b))
        xb, yb = x[idx], y[idx]
        g = np.einsum("mbd,mbc->mdc", xb, np.einsum("mbd,dc->mbc", xb, w) - yb) / b
        agg += ak * (w - eta * (g + cl.lam * w))
        full += ak * (w - eta * (x.T @ (x @ w - y) / x.shape[0] + cl.lam * w))
    np.testing.assert_allclose(mean, full, rtol=1e-12)  # full batch: the step itself
    se = agg.std(axis=0) / np.sqrt(reps)
    assert np.all(np.abs(agg.mean(axis=0) - mean) <= 5 * se)


def test_modal_deviation_recursion_and_validation():
    P = [np.diag([0.5, 0.4])] * 2
    xi = np.array([[[0.7], [0.2]], [[0.2], [0.2]]])  # (R=2, d=2, c=1)
    a = modal_deviation(P, xi)
    np.testing.assert_allclose(a[1, :, 0], [0.7, 0.2])
    np.testing.assert_allclose(a[2, :, 0], [0.55, 0.28])
    rot = np.array([[0.0, 1.0], [1.0, 0.0]])  # the basis swaps the coordinates
    np.testing.assert_allclose(modal_deviation(P, xi, rot)[2, :, 0], [0.48, 0.30])
    with pytest.raises(ValueError, match="xi: must be >= 0"):
        modal_deviation(P, -xi)
    with pytest.raises(ValueError, match="P, xi"):
        modal_deviation(P[:1], xi)


def test_modal_deviation_bounds_a_deterministic_compressed_run():
    from theory.quadratic import compressed_trajectory, truncate

    cl = _clients(seed=17, d=4, c=3)
    E = 2
    rm = round_maps(cl, np.full(E, _eta(cl)), E)[0]
    _, V = np.linalg.eigh(rm.P)
    W0 = np.random.default_rng(18).normal(size=(4, 3))
    R = 8
    W = compressed_trajectory(rm, W0, R, "fixed:1", "fixed:2")
    v = rm.trajectory(W0, R)
    xi = []
    for r in range(R):
        start = truncate(W[r], "fixed:1")
        ybar = np.tensordot(cl.p, rm.P_clients @ start + rm.c_clients, 1)
        xi.append(np.abs(V.T @ (rm.P @ (start - W[r]) + W[r + 1] - ybar)))
    a = modal_deviation([rm.P] * R, np.array(xi), V)
    gap = np.abs(np.einsum("di,rdc->ric", V, W - v))
    assert np.all(gap <= a + 1e-12) and np.max(gap[1]) > 0.1
    np.testing.assert_allclose(gap[1], a[1], rtol=1e-10)  # one round: exact


def test_propagated_noise_is_the_covariance_recursion():
    rng = np.random.default_rng(19)
    P = [np.diag([0.5, 0.9]), np.array([[0.6, 0.1], [0.1, 0.7]])]
    B = rng.normal(size=(2, 1, 1, 2, 2))
    cov = B @ np.swapaxes(B, -1, -2)  # (R=2, S=1, c=1, 2, 2) PSD
    out = propagated_noise(P, cov)
    sig1 = cov[0, 0, 0]
    sig2 = P[1] @ sig1 @ P[1].T + cov[1, 0, 0]
    np.testing.assert_allclose(out[1, 0, :, 0], np.diag(sig1))
    np.testing.assert_allclose(out[2, 0, :, 0], np.diag(sig2))
    assert np.all(out[0] == 0.0)
    with pytest.raises(ValueError, match="P, cov"):
        propagated_noise(P[:1], cov)


def test_moments_by_coordinate_add_up_to_the_distance():
    cl = _clients(seed=14)
    E = 2
    etas = np.full(4 * E, _eta(cl))
    V = np.linalg.qr(np.random.default_rng(15).normal(size=(3, 3)))[0]
    W0 = np.random.default_rng(16).normal(size=(2, 3, 2))
    mom = exact_moments(cl, etas, E, W0, 2, "scheme2", 2, basis=V)
    np.testing.assert_allclose(mom.dist_sq_modes.sum(axis=(1, 2)), mom.dist_sq, rtol=1e-12)
    tr = np.einsum("scdd->", mom.cov) / 2  # mean over the 2 starts of tr Cov after the last round
    assert tr == pytest.approx(mom.cov_trace[-1], rel=1e-12)


# ------------------------------------- the a-priori floor enclosure (docs/theory.md §12.4)
def test_truncation_derivative_and_its_constants():
    from theory.quadratic import _truncation_terms, truncate, truncation_derivative

    rng = np.random.default_rng(3)
    Y = rng.normal(size=(7, 4)) * np.array([3.0, 2.0, 1.0, 0.5])
    s = np.linalg.svd(Y, compute_uv=False)
    V, kappa, K = _truncation_terms(Y, "fixed:2", 0.0)
    assert kappa == pytest.approx(s[1] / (s[1] - s[2]), rel=1e-12)
    worst = 0.0
    for _ in range(20):
        E = rng.normal(size=Y.shape)
        E /= np.linalg.norm(E)
        h = 1e-6
        fd = (truncate(Y + h * E, "fixed:2") - truncate(Y - h * E, "fixed:2")) / (2 * h)
        d = truncation_derivative(Y, V, E)
        np.testing.assert_allclose(d, fd, atol=1e-7)
        worst = max(worst, float(np.linalg.norm(d)))
        for t in (1e-3, 1e-2, 3e-2):  # second-order remainder within the resolvent bound
            rem = truncate(Y + t * E, "fixed:2") - truncate(Y, "fixed:2") - t * d
            _, _, K_t = _truncation_terms(Y, "fixed:2", t)
            assert np.linalg.norm(rem) <= K_t * t**2
    assert worst <= kappa * (1 + 1e-9)
    # along the worst direction (u_2 v_3^T + u_3 v_2^T) the derivative attains kappa
    U, s, Vt = np.linalg.svd(Y, full_matrices=False)
    E = (np.outer(U[:, 1], Vt[2]) + np.outer(U[:, 2], Vt[1])) / np.sqrt(2)
    assert np.linalg.norm(truncation_derivative(Y, V, E)) == pytest.approx(kappa, rel=1e-9)


def test_floor_enclosure_contains_the_limit_and_fedavg_is_global():
    from theory.quadratic import compressed_trajectory, floor_enclosure

    cl = _clients(N=3, d=6, c=3, seed=5)
    rm = round_maps(cl, [0.1] * 3, 3)[0]
    enc = floor_enclosure(rm, cl.w_star, None, None)
    assert enc.r_max == np.inf  # the affine map contracts everywhere
    assert enc.floor_bound == pytest.approx(float(np.sum(bias(rm, cl.w_star) ** 2)), rel=1e-6)
    enc = floor_enclosure(rm, cl.w_star, "fixed:1", "fixed:1")
    assert 0 < enc.r_min < enc.r_max < np.inf and enc.jacobian_norm < 1
    rng = np.random.default_rng(0)
    start = enc.center + 0.9 * enc.r_max * rng.normal(size=enc.center.shape) / np.sqrt(
        enc.center.size) / 2
    limit = compressed_trajectory(rm, start, 300, "fixed:1", "fixed:1")[-1]
    assert np.linalg.norm(limit - enc.center) <= enc.r_min
    dist_sq = float(np.sum((limit - cl.w_star) ** 2))
    assert enc.floor_lower <= dist_sq <= enc.floor_bound
