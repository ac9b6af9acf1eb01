"""Raw datasets as numpy arrays, all offline (DESIGN section 4).

Nothing here downloads. Real data come from scikit-learn's handwritten digits
(shipped in the wheel) or from files the user has placed in a local folder
(MNIST-format IDX files, CIFAR-10 python batches). Generated data: the FedProx
synthetic(alpha, beta) benchmark and a ridge-regression teacher whose singular
spectrum, hence the tail energy of ``w_true``, is chosen by the caller.

Generators take a ``seed`` (an ``int`` or a :class:`numpy.random.SeedSequence`)
and never touch numpy's or torch's global random state. Every client draws from
its own child stream, so client ``k``'s data do not depend on the sizes drawn for
the other clients.

The small validation helpers at the top are shared by the other data modules of
:mod:`fl_sim` (partitions, federated view).
"""

from __future__ import annotations

import gzip
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import Seed, _check_float, _check_int, _seed_sequence

__all__ = [
    "RidgeTeacher",
    "load_cifar10",
    "load_digits",
    "load_mnist_idx",
    "read_idx",
    "ridge_teacher",
    "synthetic_fedprox",
]



def _check_kind(kind: str) -> None:
    if kind not in ("train", "test"):
        raise ValueError(f"kind: expected 'train' or 'test', got {kind!r}")


def _missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{what} not found at {path}. This toolkit never downloads data: place the files "
        "there manually (see the docstring of the loader for the expected names)."
    )


def _check_folder(folder: str | Path, what: str) -> Path:
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


# --------------------------------------------------------------------------- FedProx synthetic


def _softmax_argmax(logits: np.ndarray) -> np.ndarray:
    """``argmax(softmax(z))`` per row; softmax is monotone, so this is ``argmax(z)``."""
    return np.argmax(logits, axis=1).astype(np.int64)


def synthetic_fedprox(
    alpha: float,
    beta: float,
    num_clients: int,
    seed: Seed,
    dim: int = 60,
    num_classes: int = 10,
    iid: bool = False,
    max_samples_per_client: int | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The synthetic(alpha, beta) benchmark of FedProx, one dataset per client.

    Reference: T. Li, A. K. Sahu, M. Zaheer, M. Sanjabi, A. Talwalkar, V. Smith,
    "Federated Optimization in Heterogeneous Networks", MLSys 2020, section 5.1 and
    its generator ``data/synthetic_*/generate_synthetic.py``. For client ``k``:

    - ``u_k ~ N(0, alpha^2)``, ``W_k ~ N(u_k, 1)`` of shape ``(dim, num_classes)``,
      ``b_k ~ N(u_k, 1)`` of shape ``(num_classes,)``;
    - ``B_k ~ N(0, beta^2)``, ``v_k ~ N(B_k, 1)`` of shape ``(dim,)``;
    - ``x ~ N(v_k, Sigma)`` with ``Sigma`` diagonal, ``Sigma_jj = j^-1.2`` for ``j = 1..dim``;
    - ``y = argmax(softmax(x W_k + b_k))``;
    - ``n_k = int(lognormal(mean=4, sigma=2)) + 50`` samples.

    ``alpha`` and ``beta`` are standard deviations, as in the reference code.

    A property of the reference generator, kept here for fidelity: ``u_k`` shifts
    every entry of ``W_k`` and ``b_k`` by the same amount, which adds the same value
    ``u_k (sum_j x_j + 1)`` to every logit and so never changes ``y``. For a given
    seed the labels therefore do not depend on ``alpha``; the clients' models differ
    through the unit-variance noise of ``W_k, b_k`` whatever ``alpha`` is. ``beta``
    does matter: it spreads the clients' input means.

    Parameters
    ----------
    alpha : float
        Spread of the client models (model heterogeneity), ``>= 0``.
    beta : float
        Spread of the client input means (feature heterogeneity), ``>= 0``.
    num_clients : int
        Number of clients, ``>= 1``.
    seed : int or numpy.random.SeedSequence
        Seed of all draws. Client sizes and priors come from one child stream and
        each client's ``W_k, b_k, v_k, x`` from its own, so the result is identical
        for the same seed on every platform numpy supports.
    dim : int, default 60
        Input dimension.
    num_classes : int, default 10
        Number of classes.
    iid : bool, default False
        The reference's IID variant: one shared ``W, b ~ N(0, 1)`` and ``x ~ N(0, Sigma)``
        for every client (``alpha`` and ``beta`` are then unused).
    max_samples_per_client : int, optional
        Cap on ``n_k``. The default ``None`` keeps the reference's sizes; lognormal(4, 2)
        has a heavy tail (about 1 client in 30 gets more than 2,000 samples and a few
        in a thousand more than 20,000), so pass e.g. 2000 for bounded run times. A
        capped client keeps the first ``max_samples_per_client`` of the samples it
        would have had without the cap.

    Returns
    -------
    list of (X_k, y_k)
        ``X_k`` float32 ``(n_k, dim)``, ``y_k`` int64 ``(n_k,)``.
    """
    alpha = _check_float(alpha, "alpha", minimum=0.0)
    beta = _check_float(beta, "beta", minimum=0.0)
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    dim = _check_int(dim, "dim", minimum=1)
    num_classes = _check_int(num_classes, "num_classes", minimum=2)
    if max_samples_per_client is not None:
        max_samples_per_client = _check_int(max_samples_per_client, "max_samples_per_client", 1)

    root, *client_seeds = _seed_sequence(seed).spawn(1 + num_clients)
    prior = np.random.default_rng(root)
    sizes = prior.lognormal(mean=4.0, sigma=2.0, size=num_clients).astype(np.int64) + 50
    if max_samples_per_client is not None:
        sizes = np.minimum(sizes, max_samples_per_client)
    mean_w = prior.normal(0.0, alpha, size=num_clients)  # u_k, also the mean of b_k
    mean_x = prior.normal(0.0, beta, size=num_clients)  # B_k
    shared_w = prior.normal(0.0, 1.0, size=(dim, num_classes))  # used when iid
    shared_b = prior.normal(0.0, 1.0, size=num_classes)
    x_std = np.arange(1, dim + 1, dtype=np.float64) ** (-1.2 / 2)  # sqrt(Sigma_jj)

    clients = []
    for k in range(num_clients):
        rng = np.random.default_rng(client_seeds[k])
        w = rng.normal(mean_w[k], 1.0, size=(dim, num_classes))
        b = rng.normal(mean_w[k], 1.0, size=num_classes)
        v = rng.normal(mean_x[k], 1.0, size=dim)
        if iid:
            w, b, v = shared_w, shared_b, np.zeros(dim)
        x = v + x_std * rng.standard_normal((int(sizes[k]), dim))
        clients.append((x.astype(np.float32), _softmax_argmax(x @ w + b)))
    return clients


# --------------------------------------------------------------------------- ridge teacher


@dataclass(frozen=True)
class RidgeTeacher:
    """A matrix-regression problem with a teacher of known singular spectrum.

    ``Y_k = X_k @ W_k + noise`` with ``W_k = w_true`` (plus a per-client perturbation
    when ``heterogeneity > 0``). In the theory's notation ``F_k(W) =
    ||X_k W - Y_k||^2 / (2 n_k)`` with ``W`` of shape ``(dim, out_dim)``; a
    ``torch.nn.Linear(dim, out_dim)`` holds ``W.T``.
    """

    clients: list[tuple[np.ndarray, np.ndarray]]  # (X_k float32 (n_k, d), Y_k float32 (n_k, o))
    w_true: np.ndarray  # float64 (d, o), singular values exactly `spectrum`
    spectrum: np.ndarray  # float64 (min(d, o),), non-increasing
    client_weights: list[np.ndarray]  # float64 (d, o) per client: W_k (== w_true if homogeneous)
    noise_std: float  # standard deviation of the label noise

    def tail_energy(self, r: int) -> float:
        """Squared Frobenius error of the best rank-``r`` approximation of ``w_true``.

        By Eckart-Young-Mirsky this is ``sum_{i > r} s_i^2``.

        Parameters
        ----------
        r : int
            Rank, ``>= 0``; ranks beyond ``min(d, o)`` give 0.

        Returns
        -------
        float
        """
        r = _check_int(r, "r", minimum=0)
        return float(np.sum(self.spectrum[r:] ** 2))


def _random_orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A Haar-distributed ``rows x cols`` matrix with orthonormal columns (``cols <= rows``)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))  # sign fix makes the distribution Haar


def ridge_teacher(
    num_clients: int,
    samples_per_client: int | Sequence[int],
    dim: int,
    out_dim: int,
    spectrum: Sequence[float] | np.ndarray,
    noise_std: float,
    seed: Seed,
    heterogeneity: float = 0.0,
    feature_shift: float = 0.0,
) -> RidgeTeacher:
    """Generate a federated matrix-regression problem with a low-rank-friendly teacher.

    ``w_true = U diag(s) V^T`` with Haar-random orthonormal ``U (dim x k)`` and
    ``V (out_dim x k)``, ``k = min(dim, out_dim)``, so its singular values are exactly
    ``s = sorted(spectrum, descending)``. For client ``k``: rows of ``X_k`` are
    ``N(shift_k, I)`` with ``shift_k ~ N(0, feature_shift^2 I)`` (zero by default),
    ``W_k = w_true + heterogeneity * Delta_k`` with ``Delta_k`` Gaussian, scaled so that
    ``E||Delta_k||_F^2 = ||w_true||_F^2``, and ``Y_k = X_k W_k + noise_std * N(0, I)``.

    Parameters
    ----------
    num_clients : int
        Number of clients, ``>= 1``.
    samples_per_client : int or sequence of int
        Samples per client, one value for all or one per client, each ``>= 1``.
    dim, out_dim : int
        Input and output dimensions, ``>= 1``.
    spectrum : array_like
        The ``min(dim, out_dim)`` singular values of ``w_true``, non-negative (sorted
        into non-increasing order).
    noise_std : float
        Standard deviation of the additive label noise, ``>= 0``.
    seed : int or numpy.random.SeedSequence
        Seed of all draws; the teacher and each client use separate child streams.
    heterogeneity : float, default 0.0
        Relative size of the per-client teacher perturbation, ``>= 0``.
    feature_shift : float, default 0.0
        Standard deviation of the per-client mean of the inputs, ``>= 0``.

    Returns
    -------
    RidgeTeacher
    """
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    dim = _check_int(dim, "dim", minimum=1)
    out_dim = _check_int(out_dim, "out_dim", minimum=1)
    noise_std = _check_float(noise_std, "noise_std", minimum=0.0)
    heterogeneity = _check_float(heterogeneity, "heterogeneity", minimum=0.0)
    feature_shift = _check_float(feature_shift, "feature_shift", minimum=0.0)
    if isinstance(samples_per_client, int | np.integer):
        sizes = [_check_int(samples_per_client, "samples_per_client", minimum=1)] * num_clients
    else:
        sizes = [
            _check_int(n, f"samples_per_client[{k}]", minimum=1)
            for k, n in enumerate(samples_per_client)
        ]
        if len(sizes) != num_clients:
            raise ValueError(
                f"samples_per_client: expected {num_clients} values (one per client), "
                f"got {len(sizes)}"
            )
    k_max = min(dim, out_dim)
    s = np.asarray(spectrum, dtype=np.float64)
    if s.shape != (k_max,):
        raise ValueError(
            f"spectrum: expected min(dim, out_dim) = {k_max} singular values, got shape {s.shape}"
        )
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("spectrum: singular values must be finite and non-negative")
    s = np.sort(s)[::-1].copy()

    root, *client_seeds = _seed_sequence(seed).spawn(1 + num_clients)
    teacher_rng = np.random.default_rng(root)
    u = _random_orthonormal(teacher_rng, dim, k_max)
    v = _random_orthonormal(teacher_rng, out_dim, k_max)
    w_true = (u * s) @ v.T
    delta_scale = heterogeneity * np.linalg.norm(s) / np.sqrt(dim * out_dim)

    clients, weights = [], []
    for k in range(num_clients):
        rng = np.random.default_rng(client_seeds[k])
        shift = feature_shift * rng.standard_normal(dim)
        w_k = w_true + delta_scale * rng.standard_normal((dim, out_dim))
        x = shift + rng.standard_normal((sizes[k], dim))
        y = x @ w_k + noise_std * rng.standard_normal((sizes[k], out_dim))
        clients.append((x.astype(np.float32), y.astype(np.float32)))
        weights.append(w_k)
    return RidgeTeacher(
        clients=clients, w_true=w_true, spectrum=s, client_weights=weights, noise_std=noise_std
    )


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
    images = read_idx(_find_idx(path, image_stem), expected_ndim=3)
    labels = read_idx(_find_idx(path, label_stem), expected_ndim=1)
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

