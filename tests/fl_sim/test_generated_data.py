"""Tests of fl_sim.generated_data: the FedProx synthetic benchmark and the ridge teacher."""

from __future__ import annotations

import numpy as np
import pytest

from fl_sim.generated_data import ridge_teacher, synthetic_fedprox

# --------------------------------------------------------------------------- FedProx synthetic


def test_synthetic_shapes_sizes_and_dtypes():
    clients = synthetic_fedprox(1.0, 1.0, num_clients=7, seed=3)
    assert len(clients) == 7
    for x, y in clients:
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.ndim == 2 and x.shape[1] == 60 and x.shape[0] >= 50
        assert y.shape == (x.shape[0],)
        assert y.min() >= 0 and y.max() < 10


def test_synthetic_is_deterministic_by_seed():
    a = synthetic_fedprox(0.5, 0.5, num_clients=4, seed=11)
    b = synthetic_fedprox(0.5, 0.5, num_clients=4, seed=11)
    c = synthetic_fedprox(0.5, 0.5, num_clients=4, seed=12)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0][:50], c[0][0][:50])


def test_synthetic_cap_keeps_a_prefix_of_each_client():
    full = synthetic_fedprox(1.0, 1.0, num_clients=6, seed=5)
    capped = synthetic_fedprox(1.0, 1.0, num_clients=6, seed=5, max_samples_per_client=60)
    for (xf, yf), (xc, yc) in zip(full, capped, strict=True):
        assert xc.shape[0] == min(60, xf.shape[0])
        np.testing.assert_array_equal(xc, xf[: xc.shape[0]])
        np.testing.assert_array_equal(yc, yf[: xc.shape[0]])


def test_synthetic_iid_covariance_is_j_to_minus_1_2():
    clients = synthetic_fedprox(0.0, 0.0, num_clients=20, seed=0, iid=True,
                                max_samples_per_client=400)
    x = np.concatenate([c[0] for c in clients]).astype(np.float64)
    assert x.shape[0] > 2000
    expected = np.arange(1, 61) ** -1.2
    np.testing.assert_allclose(x.var(axis=0), expected, rtol=0.15)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.1)


def test_synthetic_beta_spreads_client_means():
    def spread(beta: float) -> float:
        clients = synthetic_fedprox(0.0, beta, num_clients=12, seed=1, max_samples_per_client=100)
        return float(np.std([x.mean() for x, _ in clients]))

    assert spread(5.0) > 3 * spread(0.0)


def test_synthetic_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_clients: must be >= 1, got 0"):
        synthetic_fedprox(1.0, 1.0, num_clients=0, seed=0)
    with pytest.raises(ValueError, match="alpha"):
        synthetic_fedprox(-1.0, 1.0, num_clients=2, seed=0)
    with pytest.raises(TypeError, match="seed"):
        synthetic_fedprox(1.0, 1.0, num_clients=2, seed=1.5)


def test_synthetic_labels_are_invariant_to_alpha_as_in_the_reference():
    """u_k shifts all logits equally (see the docstring): labels do not depend on alpha."""
    low = synthetic_fedprox(0.0, 1.0, num_clients=3, seed=2, max_samples_per_client=80)
    high = synthetic_fedprox(10.0, 1.0, num_clients=3, seed=2, max_samples_per_client=80)
    for (xl, yl), (xh, yh) in zip(low, high, strict=True):
        np.testing.assert_array_equal(xl, xh)
        np.testing.assert_array_equal(yl, yh)
    assert len(np.unique(np.concatenate([y for _, y in low]))) > 1


# --------------------------------------------------------------------------- ridge teacher


def test_ridge_teacher_spectrum_and_tail_energy():
    spectrum = [0.5, 3.0, 1.0, 0.25]
    t = ridge_teacher(3, 40, dim=6, out_dim=4, spectrum=spectrum, noise_std=0.0, seed=0)
    assert t.w_true.shape == (6, 4) and t.w_true.dtype == np.float64
    np.testing.assert_allclose(np.linalg.svd(t.w_true, compute_uv=False), [3.0, 1.0, 0.5, 0.25],
                               atol=1e-12)
    assert t.tail_energy(0) == pytest.approx(9 + 1 + 0.25 + 0.0625)
    assert t.tail_energy(2) == pytest.approx(0.25 + 0.0625)
    assert t.tail_energy(4) == 0.0 and t.tail_energy(10) == 0.0


def test_ridge_teacher_noiseless_targets_are_linear():
    t = ridge_teacher(2, [30, 50], dim=5, out_dim=3, spectrum=[1, 1, 1], noise_std=0.0, seed=4)
    assert [x.shape for x, _ in t.clients] == [(30, 5), (50, 5)]
    for x, y in t.clients:
        assert x.dtype == np.float32 and y.dtype == np.float32 and y.shape[1] == 3
        np.testing.assert_allclose(y, x.astype(np.float64) @ t.w_true, atol=1e-5)


def test_ridge_teacher_noise_and_heterogeneity():
    t = ridge_teacher(4, 2000, dim=8, out_dim=4, spectrum=[2, 1, 1, 1], noise_std=0.3, seed=1,
                      heterogeneity=0.5)
    norm = np.linalg.norm(t.w_true)
    rel = [np.linalg.norm(w - t.w_true) / norm for w in t.client_weights]
    assert all(0.2 < r < 1.0 for r in rel)
    x, y = t.clients[0]
    resid = y - x.astype(np.float64) @ t.client_weights[0]
    assert resid.std() == pytest.approx(0.3, rel=0.05)
    homog = ridge_teacher(2, 10, dim=8, out_dim=4, spectrum=[2, 1, 1, 1], noise_std=0.0, seed=1)
    for w in homog.client_weights:
        np.testing.assert_array_equal(w, homog.w_true)


def test_ridge_teacher_is_deterministic_and_validates():
    kw = dict(dim=4, out_dim=2, spectrum=[1.0, 0.1], noise_std=0.1)
    a, b = ridge_teacher(2, 10, seed=9, **kw), ridge_teacher(2, 10, seed=9, **kw)
    np.testing.assert_array_equal(a.w_true, b.w_true)
    np.testing.assert_array_equal(a.clients[1][1], b.clients[1][1])
    with pytest.raises(ValueError, match="spectrum"):
        ridge_teacher(2, 10, dim=4, out_dim=2, spectrum=[1.0], noise_std=0.0, seed=0)
    with pytest.raises(ValueError, match="samples_per_client"):
        ridge_teacher(3, [5, 5], dim=4, out_dim=2, spectrum=[1, 1], noise_std=0.0, seed=0)
    with pytest.raises(ValueError, match=r"samples_per_client\[1\]"):
        ridge_teacher(2, [5, 0], dim=4, out_dim=2, spectrum=[1, 1], noise_std=0.0, seed=0)
