"""Tests of fl_sim.federated_data: the federated view and its builder."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from fl_sim.federated_data import DATASETS, FederatedData, build_federated_data

SMALL = {  # keyword arguments that keep every dataset small
    "digits": {},
    "digits_images": {},
    "synthetic": {"max_samples_per_client": 120},
    "ridge": {"samples_per_client": 30, "dim": 6, "out_dim": 3},
    "mnist1d": {"num_samples": 200},
}


def _idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    return tmp_path


@pytest.fixture
def cifar_dir(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (8, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, 8).tolist()}
        with (tmp_path / name).open("wb") as fh:
            pickle.dump(batch, fh)
    return tmp_path


def check_consistent(fd: FederatedData) -> None:
    """Invariants every FederatedData must satisfy."""
    sizes = fd.client_sizes
    assert sizes.dtype == torch.int64 and fd.client_offsets.dtype == torch.int64
    assert int(sizes.min()) >= 1 and int(sizes.sum()) == fd.train_x.shape[0] == fd.num_train
    assert fd.client_offsets[0] == 0
    assert torch.equal(fd.client_offsets[1:], torch.cumsum(sizes, 0)[:-1])
    assert fd.train_x.dtype == torch.float32 and fd.test_x.dtype == torch.float32
    assert tuple(fd.train_x.shape[1:]) == fd.input_shape == tuple(fd.test_x.shape[1:])
    assert fd.weights.dtype == np.float64 and fd.weights.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(fd.weights, sizes.numpy() / sizes.sum().item())
    rebuilt = torch.cat([fd.client_x(k) for k in range(fd.num_clients)])
    assert torch.equal(rebuilt, fd.train_x)
    assert len(fd.client_test_x) == len(fd.client_test_y) == fd.num_clients
    for tx, ty in zip(fd.client_test_x, fd.client_test_y, strict=True):
        assert tuple(tx.shape[1:]) == fd.input_shape and tx.shape[0] == ty.shape[0]
    if fd.task == "classification":
        assert fd.train_y.dtype == torch.int64 and fd.train_y.ndim == 1
        assert 0 <= int(fd.train_y.min()) and int(fd.train_y.max()) < fd.num_outputs
    else:
        assert fd.train_y.dtype == torch.float32 and fd.train_y.shape[1] == fd.num_outputs


def assert_same(a: FederatedData, b: FederatedData) -> None:
    for f in ("train_x", "train_y", "client_sizes", "test_x", "test_y"):
        assert torch.equal(getattr(a, f), getattr(b, f)), f


@pytest.mark.parametrize("name", sorted(SMALL))
def test_builtin_datasets_build_consistently(name):
    fd = build_federated_data(name, 6, partition="iid", seed=0, **SMALL[name])
    assert fd.name == name and fd.num_clients == 6
    check_consistent(fd)
    assert fd.test_x.shape[0] > 0


def test_file_datasets_build(mnist_dir, cifar_dir):
    mnist = build_federated_data("mnist", 4, partition="iid", data_dir=mnist_dir)
    check_consistent(mnist)
    assert mnist.input_shape == (1, 28, 28) and mnist.num_train == 40
    assert mnist.test_x.shape[0] == 10  # the official test file is the global test set
    cifar = build_federated_data("cifar10", 5, partition="shards", data_dir=cifar_dir,
                                 partition_kwargs={"shards_per_client": 2})
    check_consistent(cifar)
    assert cifar.input_shape == (3, 32, 32) and cifar.num_train == 40


def test_every_listed_name_is_tested():
    assert set(DATASETS) == set(SMALL) | {"mnist", "cifar10"}


def test_file_datasets_need_data_dir():
    with pytest.raises(ValueError, match="data_dir: required for 'mnist'"):
        build_federated_data("mnist", 2)


@pytest.mark.parametrize("name", ["digits", "synthetic", "ridge"])
def test_same_seed_identical_different_seed_different(name):
    a = build_federated_data(name, 5, seed=3, **SMALL[name])
    b = build_federated_data(name, 5, seed=3, **SMALL[name])
    c = build_federated_data(name, 5, seed=4, **SMALL[name])
    assert_same(a, b)
    assert not torch.equal(a.train_x[:20], c.train_x[:20])


def test_digits_split_sizes_add_up_and_test_is_stratified():
    fd = build_federated_data("digits", 8, seed=0, test_fraction=0.2, client_test_fraction=0.25)
    check_consistent(fd)
    n_client_test = sum(t.shape[0] for t in fd.client_test_x)
    assert fd.num_train + n_client_test + fd.test_x.shape[0] == 1797
    assert n_client_test > 0
    from fl_sim.dataset_files import load_digits

    _, y = load_digits()
    expected = np.floor(0.2 * np.bincount(y)).astype(np.int64)
    np.testing.assert_array_equal(np.bincount(fd.test_y.numpy(), minlength=10), expected)


def test_digits_rows_are_a_disjoint_cover_of_the_dataset():
    from fl_sim.dataset_files import load_digits

    x, _ = load_digits()
    fd = build_federated_data("digits", 5, partition="shards", seed=1, client_test_fraction=0.1)
    rows = torch.cat([fd.train_x, fd.test_x, *fd.client_test_x]).numpy()
    order = np.lexsort(rows.T)
    np.testing.assert_array_equal(rows[order], x[np.lexsort(x.T)])


def test_natural_split_global_test_is_union_of_client_tests():
    fd = build_federated_data("synthetic", 7, seed=2, test_fraction=0.25, fedprox_alpha=0.5,
                              beta=0.5, max_samples_per_client=200)
    check_consistent(fd)
    assert torch.equal(fd.test_x, torch.cat(fd.client_test_x))
    assert torch.equal(fd.test_y, torch.cat(fd.client_test_y))
    for k in range(7):
        n = fd.client_x(k).shape[0] + fd.client_test_x[k].shape[0]
        assert fd.client_test_x[k].shape[0] == int(np.floor(0.25 * n))


def test_synthetic_alpha_and_beta_reach_the_generator():
    kw = {"max_samples_per_client": 60}
    a = build_federated_data("synthetic", 3, seed=0, fedprox_alpha=0.0, beta=1.0, **kw)
    b = build_federated_data("synthetic", 3, seed=0, fedprox_alpha=3.0, beta=1.0, **kw)
    c = build_federated_data("synthetic", 3, seed=0, fedprox_alpha=0.0, beta=4.0, **kw)
    with pytest.raises(ValueError, match="beta"):
        build_federated_data("synthetic", 3, beta=-1.0)
    # As in FedProx's generator, u_k ~ N(0, alpha^2) adds the same value to every logit,
    # so for a fixed seed alpha leaves inputs and labels unchanged ...
    assert_same(a, b)
    # ... while beta moves the clients' input means.
    assert not torch.equal(a.train_x, c.train_x)


def test_ridge_targets_follow_the_teacher_and_bias_feature():
    fd = build_federated_data("ridge", 3, seed=0, noise_std=0.0, add_bias_feature=True,
                              samples_per_client=20, dim=5, out_dim=2, spectrum=[1.0, 0.5])
    check_consistent(fd)
    assert fd.task == "regression" and fd.input_shape == (6,) and fd.w_true.shape == (6, 2)
    np.testing.assert_array_equal(fd.w_true[-1], 0.0)
    np.testing.assert_allclose(np.linalg.svd(fd.w_true, compute_uv=False), [1.0, 0.5])
    x = fd.train_x.double().numpy()
    np.testing.assert_array_equal(x[:, -1], 1.0)
    np.testing.assert_allclose(fd.train_y.numpy(), x @ fd.w_true, atol=1e-5)


def test_bias_feature_needs_flat_inputs():
    flat = build_federated_data("digits", 3, partition="iid", add_bias_feature=True)
    assert flat.input_shape == (65,) and torch.all(flat.test_x[:, -1] == 1)
    with pytest.raises(ValueError, match="add_bias_feature: needs flat inputs"):
        build_federated_data("digits_images", 3, partition="iid", add_bias_feature=True)


def test_builder_argument_errors():
    with pytest.raises(ValueError, match=r"unknown dataset 'emnist'.*'digits'.*'cifar10'"):
        build_federated_data("emnist", 3)
    with pytest.raises(ValueError, match="num_clients: must be >= 1, got 0"):
        build_federated_data("digits", 0)
    with pytest.raises(ValueError, match="test_fraction"):
        build_federated_data("digits", 3, test_fraction=1.0)
    with pytest.raises(ValueError, match="partition: unknown name"):
        build_federated_data("digits", 3, partition="zipf")
    with pytest.raises(ValueError, match="client_test_fraction: not used by 'ridge'"):
        build_federated_data("ridge", 3, client_test_fraction=0.1, **SMALL["ridge"])


def test_alpha_is_ignored_where_unused():
    """Generic callers always pass alpha; it only matters for partition='dirichlet'."""
    assert_same(build_federated_data("digits", 3, partition="iid", alpha=0.01),
                build_federated_data("digits", 3, partition="iid"))
    assert_same(build_federated_data("ridge", 2, alpha=0.01, **SMALL["ridge"]),
                build_federated_data("ridge", 2, **SMALL["ridge"]))


def test_dirichlet_alpha_reaches_the_partitioner():
    def skew(alpha: float) -> float:
        fd = build_federated_data("digits", 5, seed=0, alpha=alpha,
                                  partition_kwargs={"min_size": 5})
        counts = np.stack([np.bincount(fd.client_y(k).numpy(), minlength=10)
                           for k in range(5)])
        return float((counts / counts.sum(1, keepdims=True)).max(1).mean())

    assert skew(0.05) > skew(100.0) + 0.2


def test_federated_data_rejects_empty_client_and_bad_offsets():
    fd = build_federated_data("ridge", 3, seed=0, **SMALL["ridge"])
    sizes = torch.tensor([24, 0, 48])
    with pytest.raises(ValueError, match="client 1: has 0 training samples"):
        dataclasses.replace(fd, client_sizes=sizes, client_offsets=torch.cumsum(sizes, 0) - sizes)
    with pytest.raises(ValueError, match="client_offsets"):
        dataclasses.replace(fd, client_offsets=torch.tensor([0, 1, 2]))
    with pytest.raises(IndexError, match="client 3"):
        fd.client_x(3)


def test_client_parts_and_to_device():
    fd = build_federated_data("digits", 4, partition="iid", seed=0)
    parts = fd.client_parts()
    assert torch.equal(fd.train_x[torch.from_numpy(parts[2])], fd.client_x(2))
    moved = fd.to("meta")
    assert moved.train_x.device.type == "meta" and moved.client_test_x[0].device.type == "meta"
    assert moved.client_offsets.device.type == "cpu"
    assert fd.train_x.device.type == "cpu"  # the original is unchanged
    assert_same(fd.to("cpu"), fd)


def test_seed_may_be_a_generator():
    kw = {"seed": None, **SMALL["ridge"]}
    a = build_federated_data("ridge", 2, **{**kw, "seed": np.random.default_rng(5)})
    b = build_federated_data("ridge", 2, **{**kw, "seed": np.random.default_rng(5)})
    c = build_federated_data("ridge", 2, **{**kw, "seed": np.random.default_rng(6)})
    assert_same(a, b)
    assert not torch.equal(a.train_x, c.train_x)
    with pytest.raises(TypeError, match="seed"):
        build_federated_data("ridge", 2, **kw)
