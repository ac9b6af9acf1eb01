"""Partitioners: split one centralized dataset across clients.

Each partitioner returns a list with one int64 array of sample indices per client.
The arrays are disjoint, cover every sample, and are sorted in increasing order
(the order of a client's samples carries no information; minibatches are drawn
at random later). Randomness comes only from the ``rng`` argument, a
:class:`numpy.random.Generator` or an int seed.

- :func:`iid`: uniform random split, sizes differ by at most one;
- :func:`dirichlet`: label skew, per class proportions ~ Dir(alpha) (Hsu, Qi, Brown 2019);
- :func:`shards`: McMahan et al. (2017) pathological non-IID shards;
- :func:`power_law`: IID labels, Pareto-distributed client sizes.

:func:`label_counts` gives the class counts per client (the data that
:func:`fl_sim.plots.plot_label_distribution` draws; this module does not plot).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._validation import _as_generator, _check_float, _check_int

__all__ = [
    "PARTITIONERS",
    "dirichlet",
    "iid",
    "label_counts",
    "make_partition",
    "power_law",
    "shards",
]

Rng = np.random.Generator | int


def _check_labels(labels: Any) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array, got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels: expected integer class labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"labels: class labels must be >= 0, got {y.min()}")
    return y.astype(np.int64)


def _check_enough(num_samples: int, num_clients: int, min_size: int) -> None:
    if num_clients * min_size > num_samples:
        raise ValueError(
            f"num_clients: {num_clients} clients with at least min_size={min_size} samples "
            f"each need {num_clients * min_size} samples, but there are only {num_samples}"
        )


def _split_by_sizes(order: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Cut ``order`` into consecutive pieces of the given sizes, each sorted."""
    bounds = np.cumsum(sizes)[:-1]
    return [np.sort(part).astype(np.int64) for part in np.split(order, bounds)]


def iid(num_samples: int, num_clients: int, rng: Rng) -> list[np.ndarray]:
    """Uniformly random split into ``num_clients`` parts of nearly equal size.

    Parameters
    ----------
    num_samples : int
        Number of samples to split, ``>= num_clients``.
    num_clients : int
        Number of clients, ``>= 1``.
    rng : numpy.random.Generator or int
        Source of randomness.

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays; sizes differ by at most one.
    """
    num_samples = _check_int(num_samples, "num_samples", minimum=0)
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    _check_enough(num_samples, num_clients, 1)
    order = _as_generator(rng).permutation(num_samples)
    sizes = np.full(num_clients, num_samples // num_clients)
    sizes[: num_samples % num_clients] += 1
    return _split_by_sizes(order, sizes)


def dirichlet(
    labels: Any,
    num_clients: int,
    alpha: float,
    rng: Rng,
    *,
    min_size: int = 10,
    max_tries: int = 100,
) -> list[np.ndarray]:
    """Label-skewed split: each class is divided among clients in Dir(alpha) proportions.

    For every class ``c`` independently, proportions ``q_c ~ Dir(alpha * 1)`` over
    clients are drawn and the (shuffled) samples of class ``c`` are cut accordingly.
    Small ``alpha`` gives each client few classes; large ``alpha`` approaches an IID
    split. The draw is repeated until every client has at least ``min_size`` samples.

    Parameters
    ----------
    labels : array_like of int
        Class label of every sample, shape ``(N,)``.
    num_clients : int
        Number of clients, ``>= 1``.
    alpha : float
        Dirichlet concentration, ``> 0``.
    rng : numpy.random.Generator or int
        Source of randomness.
    min_size : int, default 10
        Smallest acceptable client size, ``>= 1``.
    max_tries : int, default 100
        Number of draws before giving up, ``>= 1``.

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays.

    Raises
    ------
    ValueError
        If ``num_clients * min_size > N``, or if no draw within ``max_tries`` gives
        every client ``min_size`` samples.
    """
    y = _check_labels(labels)
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    alpha = _check_float(alpha, "alpha", minimum=0.0)
    if alpha == 0.0:
        raise ValueError("alpha: must be > 0, got 0.0")
    min_size = _check_int(min_size, "min_size", minimum=1)
    max_tries = _check_int(max_tries, "max_tries", minimum=1)
    _check_enough(y.size, num_clients, min_size)
    gen = _as_generator(rng)
    classes = np.unique(y)
    smallest = 0
    for _ in range(max_tries):
        pieces: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in classes:
            members = gen.permutation(np.flatnonzero(y == c))
            q = gen.dirichlet(np.full(num_clients, alpha))
            cuts = (np.cumsum(q)[:-1] * members.size).astype(np.int64)
            for k, part in enumerate(np.split(members, cuts)):
                pieces[k].append(part)
        parts = [np.sort(np.concatenate(p)).astype(np.int64) for p in pieces]
        smallest = min(p.size for p in parts)
        if smallest >= min_size:
            return parts
    raise ValueError(
        f"dirichlet: no split with every client holding >= min_size={min_size} samples "
        f"after max_tries={max_tries} draws (smallest client in the last draw: {smallest}); "
        f"use a larger alpha (got {alpha}), a smaller min_size or fewer clients"
    )


def shards(
    labels: Any, num_clients: int, rng: Rng, *, shards_per_client: int = 2
) -> list[np.ndarray]:
    """McMahan-style pathological split: sort by label, cut into shards, deal them out.

    The samples are sorted by label (ties in random order), cut into
    ``num_clients * shards_per_client`` contiguous shards of (nearly) equal size,
    and each client receives ``shards_per_client`` shards chosen at random. When
    the shard boundaries line up with the class boundaries (balanced classes and a
    shard count divisible by the class count) a client sees at most
    ``shards_per_client`` labels; otherwise a shard may straddle two labels.

    Reference: McMahan et al., "Communication-Efficient Learning of Deep Networks
    from Decentralized Data", AISTATS 2017.

    Parameters
    ----------
    labels : array_like of int
        Class label of every sample, shape ``(N,)``.
    num_clients : int
        Number of clients, ``>= 1``.
    rng : numpy.random.Generator or int
        Source of randomness.
    shards_per_client : int, default 2
        Shards per client, ``>= 1``.

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays.
    """
    y = _check_labels(labels)
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    shards_per_client = _check_int(shards_per_client, "shards_per_client", minimum=1)
    num_shards = num_clients * shards_per_client
    if num_shards > y.size:
        raise ValueError(
            f"shards_per_client: {num_clients} clients x {shards_per_client} shards = "
            f"{num_shards} shards, more than the {y.size} samples"
        )
    gen = _as_generator(rng)
    shuffled = gen.permutation(y.size)
    by_label = shuffled[np.argsort(y[shuffled], kind="stable")]
    pieces = np.array_split(by_label, num_shards)
    deal = gen.permutation(num_shards).reshape(num_clients, shards_per_client)
    return [np.sort(np.concatenate([pieces[s] for s in row])).astype(np.int64) for row in deal]


def power_law(
    num_samples: int,
    num_clients: int,
    rng: Rng,
    *,
    exponent: float = 1.5,
    min_size: int = 1,
) -> list[np.ndarray]:
    """IID samples, unequal client sizes with a Pareto (power-law) tail.

    Client weights ``w_k = 1 + Pareto(exponent)`` (so ``P(w > x) = x^-exponent``);
    each client gets ``min_size`` samples plus a share of the rest proportional to
    ``w_k`` (largest-remainder rounding, so sizes add up exactly).

    Parameters
    ----------
    num_samples : int
        Number of samples, ``>= num_clients * min_size``.
    num_clients : int
        Number of clients, ``>= 1``.
    rng : numpy.random.Generator or int
        Source of randomness.
    exponent : float, default 1.5
        Tail index of the Pareto law, ``> 0``; smaller is more unequal.
    min_size : int, default 1
        Smallest client size, ``>= 1``.

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays.
    """
    num_samples = _check_int(num_samples, "num_samples", minimum=0)
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    exponent = _check_float(exponent, "exponent", minimum=0.0)
    if exponent == 0.0:
        raise ValueError("exponent: must be > 0, got 0.0")
    min_size = _check_int(min_size, "min_size", minimum=1)
    _check_enough(num_samples, num_clients, min_size)
    gen = _as_generator(rng)
    weights = 1.0 + gen.pareto(exponent, size=num_clients)
    rest = num_samples - num_clients * min_size
    share = rest * weights / weights.sum()
    sizes = np.floor(share).astype(np.int64)
    leftover = rest - int(sizes.sum())
    sizes[np.argsort(sizes - share, kind="stable")[:leftover]] += 1  # largest remainders
    return _split_by_sizes(gen.permutation(num_samples), sizes + min_size)


def label_counts(
    labels: Any, parts: Sequence[np.ndarray], num_classes: int | None = None
) -> np.ndarray:
    """Number of samples of each class held by each client.

    Parameters
    ----------
    labels : array_like of int
        Class label of every sample, shape ``(N,)``.
    parts : sequence of numpy.ndarray
        Index arrays, one per client.
    num_classes : int, optional
        Number of classes; defaults to ``max(labels) + 1``.

    Returns
    -------
    numpy.ndarray
        int64 ``(num_clients, num_classes)``.
    """
    y = _check_labels(labels)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    num_classes = _check_int(num_classes, "num_classes", minimum=0)
    if y.size and y.max() >= num_classes:
        raise ValueError(f"num_classes: {num_classes} is too small for label {y.max()}")
    counts = np.zeros((len(parts), num_classes), dtype=np.int64)
    for k, part in enumerate(parts):
        idx = np.asarray(part, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= y.size):
            raise ValueError(f"parts[{k}]: indices must lie in [0, {y.size}), client {k}")
        counts[k] = np.bincount(y[idx], minlength=num_classes)
    return counts


def _iid_by_labels(labels: Any, num_clients: int, rng: Rng) -> list[np.ndarray]:
    return iid(len(_check_labels(labels)), num_clients, rng)


def _power_law_by_labels(labels: Any, num_clients: int, rng: Rng, **kw: Any) -> list[np.ndarray]:
    return power_law(len(_check_labels(labels)), num_clients, rng, **kw)


PARTITIONERS: dict[str, Callable[..., list[np.ndarray]]] = {
    "iid": _iid_by_labels,
    "dirichlet": dirichlet,
    "shards": shards,
    "power_law": _power_law_by_labels,
}


def make_partition(
    name: str, labels: Any, num_clients: int, rng: Rng, **kwargs: Any
) -> list[np.ndarray]:
    """Partition a labelled dataset with the partitioner called ``name``.

    Parameters
    ----------
    name : {"iid", "dirichlet", "shards", "power_law"}
        Which partitioner.
    labels : array_like of int
        Class label of every sample, shape ``(N,)`` (only its length matters for
        ``"iid"`` and ``"power_law"``).
    num_clients : int
        Number of clients.
    rng : numpy.random.Generator or int
        Source of randomness.
    **kwargs
        Passed on, e.g. ``alpha=0.5`` and ``min_size`` for ``"dirichlet"``,
        ``shards_per_client`` for ``"shards"``, ``exponent`` for ``"power_law"``.

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays.
    """
    if name not in PARTITIONERS:
        raise ValueError(
            f"partition: unknown name {name!r}; valid names are {sorted(PARTITIONERS)}"
        )
    return PARTITIONERS[name](labels, num_clients, rng=rng, **kwargs)
