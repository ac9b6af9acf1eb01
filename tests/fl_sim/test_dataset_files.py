"""Tests of fl_sim.dataset_files: offline loaders (digits, MNIST IDX, CIFAR-10)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from fl_sim.dataset_files import load_cifar10, load_digits, load_mnist_idx, read_idx

# --------------------------------------------------------------------------- writers for tiny files


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array in IDX format by hand (independent of the reader)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def write_mnist(folder: Path, n_train: int, n_test: int, seed: int = 0, compress: bool = False):
    """Tiny MNIST-format files; returns the raw arrays written."""
    rng = np.random.default_rng(seed)
    out = {}
    for kind, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, compress)
        out[kind] = (images, labels)
    return out


def write_cifar(folder: Path, n_per_batch: int, seed: int = 0):
    """Tiny CIFAR-10 python batches; returns the raw arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {"train": [], "test": []}
    names = [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]
    for name, kind in names:
        data = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        with (folder / name).open("wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, fh)
        out[kind].append((data, np.asarray(labels)))
    return {k: (np.concatenate([d for d, _ in v]), np.concatenate([y for _, y in v]))
            for k, v in out.items()}


# --------------------------------------------------------------------------- digits


def test_load_digits_shapes_and_range():
    x, y = load_digits()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_load_digits_images_match_flat_and_raw_scale():
    x_flat, y_flat = load_digits()
    x_img, y_img = load_digits(as_images=True)
    assert x_img.shape == (1797, 1, 8, 8)
    np.testing.assert_array_equal(x_img.reshape(1797, 64), x_flat)
    np.testing.assert_array_equal(y_img, y_flat)
    x_raw, _ = load_digits(normalize=False)
    assert x_raw.max() == 16.0
    np.testing.assert_allclose(x_raw / 16.0, x_flat)


# --------------------------------------------------------------------------- MNIST IDX


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_idx_reads_files_back(tmp_path, compress):
    written = write_mnist(tmp_path, n_train=5, n_test=3, compress=compress)
    for kind in ("train", "test"):
        x, y = load_mnist_idx(tmp_path, kind)
        images, labels = written[kind]
        assert x.shape == (images.shape[0], 1, 28, 28) and x.dtype == np.float32
        np.testing.assert_array_equal(np.rint(x[:, 0] * 255).astype(np.uint8), images)
        np.testing.assert_array_equal(y, labels.astype(np.int64))
        assert y.dtype == np.int64


def test_read_idx_rejects_bad_magic(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((2, 3, 3), np.uint8))
    raw = bytearray(path.read_bytes())
    raw[0] = 0x12
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="bad IDX magic number 0x12000803"):
        read_idx(path)


def test_read_idx_rejects_truncated_and_wrong_ndim(tmp_path):
    path = write_idx(tmp_path / "x", np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    np.testing.assert_array_equal(read_idx(path), np.arange(24).reshape(2, 3, 4))
    with pytest.raises(ValueError, match="1 dimensions"):
        read_idx(path, expected_ndim=1)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(path)
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="truncated IDX header"):
        read_idx(path)


def test_load_mnist_idx_missing_folder_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="manually"):
        load_mnist_idx(tmp_path / "nowhere")
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path)
    with pytest.raises(ValueError, match="kind"):
        load_mnist_idx(tmp_path, "validation")


def test_load_mnist_idx_count_mismatch(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(2, np.uint8))
    with pytest.raises(ValueError, match="3 images but 2 labels"):
        load_mnist_idx(tmp_path)


# --------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("nested", [False, True])
def test_load_cifar10_reads_batches_back(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    written = write_cifar(folder, n_per_batch=2)
    for kind, n in (("train", 10), ("test", 2)):
        x, y = load_cifar10(tmp_path, kind)
        data, labels = written[kind]
        assert x.shape == (n, 3, 32, 32) and x.dtype == np.float32
        assert 0.0 <= x.min() and x.max() <= 1.0
        np.testing.assert_array_equal(np.rint(x * 255).astype(np.uint8).reshape(n, 3072), data)
        np.testing.assert_array_equal(y, labels)
        assert y.dtype == np.int64


def test_load_cifar10_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="manually"):
        load_cifar10(tmp_path / "nowhere")
    write_cifar(tmp_path, n_per_batch=1)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10(tmp_path)
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": np.zeros((1, 100), np.uint8), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        load_cifar10(tmp_path, "test")


class _Evil:
    def __reduce__(self):
        return (print, ("this must not run",))


def test_load_cifar10_refuses_arbitrary_pickled_code(tmp_path, capsys):
    write_cifar(tmp_path, n_per_batch=1)
    with (tmp_path / "test_batch").open("wb") as fh:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match="refusing to load global builtins.print"):
        load_cifar10(tmp_path, "test")
    assert "this must not run" not in capsys.readouterr().out
