"""Data read from files or shipped packages, as numpy arrays, all offline.

Nothing here downloads. Scikit-learn's handwritten digits ship inside the
scikit-learn wheel (:func:`load_digits`); MNIST-format IDX files
(:func:`load_mnist_idx`, :func:`read_idx`) and CIFAR-10 python batches
(:func:`load_cifar10`, read by an unpickler that only admits numpy arrays) come
from a local folder where the user has placed them. A missing file raises
:class:`FileNotFoundError` naming the path and the expected file names.

Data made by code live in :mod:`fl_sim.generated_data`; :mod:`fl_sim.federated_data`
turns either into the simulator's federated view (see ``docs/architecture.md``,
"Add a dataset").
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_cifar10", "load_digits", "load_mnist_idx", "read_idx"]


def _check_kind(kind: str) -> None:
    """Raise unless ``kind`` is ``"train"`` or ``"test"``."""
    if kind not in ("train", "test"):
        raise ValueError(f"kind: expected 'train' or 'test', got {kind!r}")


def _missing(path: Path, what: str) -> FileNotFoundError:
    """The error for a missing file or folder, saying that nothing is downloaded."""
    return FileNotFoundError(
        f"{what} not found at {path}. This toolkit never downloads data: place the files "
        "there manually (see the docstring of the loader for the expected names)."
    )


def _check_folder(folder: str | Path, what: str) -> Path:
    """``folder`` as an expanded path; raise :class:`FileNotFoundError` if it is not a folder."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise _missing(path, f"{what} folder")
    return path


# --------------------------------------------------------------------------- scikit-learn digits


def load_digits(normalize: bool = True, as_images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scikit-learn's handwritten digits (1,797 images of 8x8 pixels, 10 classes).

    The data ship inside the scikit-learn wheel; nothing is downloaded.

    Parameters
    ----------
    normalize : bool, default True
        Divide the pixel values (integers 0..16) by 16 so that they lie in ``[0, 1]``.
    as_images : bool, default False
        Return ``X`` with shape ``(1797, 1, 8, 8)`` (for a CNN) instead of ``(1797, 64)``.

    Returns
    -------
    X : numpy.ndarray
        float32, ``(1797, 64)`` or ``(1797, 1, 8, 8)``.
    y : numpy.ndarray
        int64 labels in ``0..9``, shape ``(1797,)``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = np.asarray(bunch.data, dtype=np.float32)
    if normalize:
        x = x / np.float32(16.0)
    if as_images:
        x = x.reshape(-1, 1, 8, 8)
    return np.ascontiguousarray(x), np.asarray(bunch.target, dtype=np.int64)


# --------------------------------------------------------------------------- MNIST IDX files

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as fh:
                return fh.read()
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable gzip file ({exc})") from exc
    return path.read_bytes()


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (the MNIST format), optionally gzip-compressed.

    The header is two zero bytes, a type code (``0x08`` for unsigned bytes), the
    number of dimensions, then each dimension as a big-endian 32-bit integer; the
    data follow in C order. MNIST images have magic number ``0x00000803``, labels
    ``0x00000801``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; a name ending in ``.gz`` is decompressed.
    expected_ndim : int, optional
        Raise unless the file has this many dimensions (3 for images, 1 for labels).

    Returns
    -------
    numpy.ndarray
        The array, in native byte order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On a bad magic number, an unexpected number of dimensions, or a file that
        is shorter or longer than its header says.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, "IDX file")
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated IDX file ({len(raw)} bytes, no complete header)")
    zero0, zero1, type_code, ndim = raw[:4]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES:
        magic = int.from_bytes(raw[:4], "big")
        raise ValueError(
            f"{path}: bad IDX magic number 0x{magic:08X} (expected 0x000008NN for unsigned "
            "bytes, e.g. 0x00000803 for images, 0x00000801 for labels)"
        )
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(
            f"{path}: expected an IDX file with {expected_ndim} dimensions "
            f"(magic 0x{0x800 + expected_ndim:08X}), got {ndim}"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} of {header_len} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_code]
    expected = header_len + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX file {problem}: header says shape {shape} ({expected} bytes in all), "
            f"file has {len(raw)} bytes"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def _find_idx(folder: Path, stem: str) -> Path:
    """The IDX file ``stem`` in ``folder``, also as ``stem.gz`` or with ``-idx`` as ``.idx``."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, f"{stem}.gz", dotted, f"{dotted}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise _missing(folder / stem, f"MNIST file {stem!r} (or {stem}.gz)")


def load_mnist_idx(
    folder: str | Path, kind: str = "train", normalize: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load an MNIST-format dataset (MNIST, Fashion-MNIST, ...) from local IDX files.

    Images and labels must be unsigned bytes (IDX type ``0x08``): pixels ``0..255``
    become ``[0, 1]``. Other IDX types (signed bytes, integers, floats), which
    :func:`read_idx` reads, are refused here, naming the file.

    Expects in ``folder`` the files ``train-images-idx3-ubyte`` and
    ``train-labels-idx1-ubyte`` (``kind="train"``) or ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte`` (``kind="test"``), each optionally gzip-compressed
    (``.gz``). Nothing is downloaded.

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder holding the files.
    kind : {"train", "test"}, default "train"
        Which split to read.
    normalize : bool, default True
        Divide pixel values by 255 so that they lie in ``[0, 1]``.

    Returns
    -------
    X : numpy.ndarray
        float32 images ``(N, 1, H, W)`` (``H = W = 28`` for MNIST).
    y : numpy.ndarray
        int64 labels ``(N,)``.

    Raises
    ------
    FileNotFoundError
        If the folder or a file is missing.
    ValueError
        On a malformed file or when images and labels disagree in number.
    """
    _check_kind(kind)
    path = _check_folder(folder, "MNIST")
    image_stem, label_stem = _MNIST_FILES[kind]
    image_file, label_file = _find_idx(path, image_stem), _find_idx(path, label_stem)
    images = read_idx(image_file, expected_ndim=3)
    labels = read_idx(label_file, expected_ndim=1)
    for what, array, file in (("images", images, image_file), ("labels", labels, label_file)):
        if array.dtype != np.uint8:  # MNIST-format files hold unsigned bytes, nothing else
            raise ValueError(
                f"{file}: MNIST {what} must be unsigned bytes (IDX type 0x08, magic "
                f"0x0000080{3 if what == 'images' else 1}), got {array.dtype}"
            )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{path}: {images.shape[0]} images but {labels.shape[0]} labels in the {kind} files"
        )
    x = images.astype(np.float32)[:, None, :, :]
    if normalize:
        x /= np.float32(255.0)
    return x, labels.astype(np.int64)


# --------------------------------------------------------------------------- CIFAR-10 batches

_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}

# The globals a CIFAR-10 batch (pickled by Python 2 or 3, any numpy) may reference.
_PICKLE_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy array reconstruction.

    A pickle can run arbitrary code when loaded; a CIFAR batch needs only numpy
    arrays, lists, dicts, strings and numbers, so anything else is rejected.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: a CIFAR-10 batch only holds "
                "numpy arrays and lists"
            )
        return super().find_class(module, name)


def _load_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as fh:
            batch = _ArrayOnlyUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    batch = {(k.decode() if isinstance(k, bytes) else k): v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: missing key 'data' or 'labels' (has {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"{path}: {data.shape[0]} images but 'labels' has shape {labels.shape}"
        )
    return data, labels


def load_cifar10(folder: str | Path, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from the local python batches (``cifar-10-python.tar.gz``, extracted).

    Expects ``data_batch_1`` .. ``data_batch_5`` (``kind="train"``) or ``test_batch``
    (``kind="test"``) in ``folder`` or in ``folder/cifar-10-batches-py``. Each is a
    pickled dict with ``b"data"`` (uint8 ``(N, 3072)``, channel-major) and
    ``b"labels"``. The pickles are read with an unpickler that only allows numpy
    arrays. Nothing is downloaded.

    Parameters
    ----------
    folder : str or pathlib.Path
        Folder holding the batches.
    kind : {"train", "test"}, default "train"
        Which split to read.

    Returns
    -------
    X : numpy.ndarray
        float32 images ``(N, 3, 32, 32)`` in ``[0, 1]``.
    y : numpy.ndarray
        int64 labels ``(N,)``.

    Raises
    ------
    FileNotFoundError
        If the folder or a batch is missing.
    ValueError
        If a batch is malformed.
    """
    _check_kind(kind)
    path = _check_folder(folder, "CIFAR-10")
    if (path / "cifar-10-batches-py").is_dir():
        path = path / "cifar-10-batches-py"
    parts = []
    for name in _CIFAR_FILES[kind]:
        if not (path / name).is_file():
            raise _missing(path / name, f"CIFAR-10 batch {name!r}")
        parts.append(_load_cifar_batch(path / name))
    data = np.concatenate([d for d, _ in parts])
    labels = np.concatenate([lab for _, lab in parts])
    x = data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)
    return x, labels

