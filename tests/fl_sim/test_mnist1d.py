"""MNIST-1D generated offline by the mnist1d package (fl_sim.generated_data.mnist1d)."""
# ruff: noqa: NPY002  (the test sets numpy's legacy global state on purpose)

from __future__ import annotations

import random

import numpy as np
import pytest

pytest.importorskip("mnist1d")

from fl_sim.federated_data import build_federated_data  # noqa: E402
from fl_sim.generated_data import mnist1d  # noqa: E402


def test_mnist1d_is_deterministic_balanced_and_leaves_global_state_alone():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    x, y = mnist1d(200, seed=7)
    assert np.random.rand() == expected_np and random.random() == expected_py
    assert x.shape == (200, 40) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [20] * 10
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-4  # standardized
    x2, y2 = mnist1d(200, seed=7)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    x3, _ = mnist1d(200, seed=8)
    assert not np.array_equal(x, x3)


def test_mnist1d_federated_view():
    data = build_federated_data("mnist1d", num_clients=4, partition="iid", seed=0,
                                num_samples=200)
    assert data.input_shape == (40,) and data.num_outputs == 10
    assert data.num_train + data.test_x.shape[0] == 200
    with pytest.raises(ValueError, match="num_samples"):
        mnist1d(5)
