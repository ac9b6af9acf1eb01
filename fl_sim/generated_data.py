"""Data made by code: the FedProx synthetic benchmark, the ridge teacher and MNIST-1D.

Both generators return numpy arrays, one ``(X_k, y_k)`` pair per client, and
nothing here reads a file. :func:`synthetic_fedprox` is the synthetic(alpha, beta)
benchmark of FedProx (classification, non-IID by construction);
:func:`ridge_teacher` is a matrix-regression problem whose teacher ``w_true`` has
a singular spectrum chosen by the caller, so the tail energy that a rank-``r``
truncation discards is known exactly (its constants are in ``docs/theory.md``
section 9, the bound checks that run on it in section 11).

:func:`mnist1d` runs the ``mnist1d`` package's own generator (Greydanus 2020), never
its download path.

Generators take a ``seed`` (an ``int`` or a :class:`numpy.random.SeedSequence`)
and never touch numpy's or torch's global random state. Every client draws from
its own child stream, so client ``k``'s data do not depend on the sizes drawn for
the other clients.

Data read from files or shipped packages live in :mod:`fl_sim.dataset_files`;
:mod:`fl_sim.federated_data` turns either into the simulator's federated view
(see ``docs/architecture.md``, "Add a dataset").
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._validation import Seed, _check_float, _check_int, _seed_sequence

__all__ = ["RidgeTeacher", "mnist1d", "ridge_teacher", "synthetic_fedprox"]


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


# --------------------------------------------------------------------------- MNIST-1D


@functools.lru_cache(maxsize=4)
def _mnist1d_arrays(num_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:  # an optional extra
        raise ImportError("dataset: 'mnist1d' needs the mnist1d package; "
                          "pip install 'feddlr[mnist1d]' (or the dev extra)") from exc
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, 1.0, seed
    # make_dataset seeds numpy's and Python's global generators: restore both after
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    x = np.ascontiguousarray(data["x"], dtype=np.float32)
    y = np.ascontiguousarray(data["y"], dtype=np.int64)
    x.flags.writeable = y.flags.writeable = False  # cached: shared between calls
    return x, y


def mnist1d(num_samples: int = 10_000, *, seed: Seed = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-1D (Greydanus 2020) generated offline by the ``mnist1d`` package's generator.

    Ten 1-D digit templates (length 12) are padded, scaled, translated, sheared and
    given correlated and i.i.d. noise, then resampled to 40 points, with the
    package's default transform settings (``mnist1d.data.get_dataset_args``); the whole
    set is standardized (mean 0, std 1). Classes are balanced
    (``num_samples // 10`` each). The package's own train/test split is not used: the
    caller splits (``fl_sim.federated_data`` stratifies by class).

    ``make_dataset`` seeds numpy's and Python's *global* generators; their states are
    saved and restored around it, so calling this leaves them as they were.

    Parameters
    ----------
    num_samples : int, default 10000
        Number of signals (a multiple of 10 keeps every class the same size); the
        package's default, 5,000, is what its paper uses (4,000 train, 1,000 test).
    seed : int or numpy.random.SeedSequence
        Seed of the generator (a SeedSequence is reduced to one 32-bit int).

    Returns
    -------
    x : numpy.ndarray
        float32 ``(num_samples // 10 * 10, 40)``, read-only.
    y : numpy.ndarray
        int64 labels 0-9, read-only.
    """
    num_samples = _check_int(num_samples, "num_samples", minimum=10)
    ss = seed if isinstance(seed, np.random.SeedSequence) else _seed_sequence(seed)
    return _mnist1d_arrays(num_samples, int(ss.generate_state(1)[0]))
