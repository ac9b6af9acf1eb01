"""The federated view of a dataset that the simulator consumes.

:class:`FederatedData` keeps all clients' training rows in one tensor, client
``k`` owning rows ``client_offsets[k] : client_offsets[k] + client_sizes[k]``; this
lets the trainer gather minibatches of many clients with one indexing operation.

:func:`build_federated_data` makes one from a dataset name:

- centralized datasets (``"digits"``, ``"digits_images"``, ``"mnist"``, ``"cifar10"``):
  a global test set is held out (digits: a stratified ``test_fraction``; MNIST and
  CIFAR-10: their official test files), the rest is split across clients by a
  partitioner of :mod:`fl_sim.partition`, and each client's part is split again
  into local train and test rows (``client_test_fraction``, 0 by default);
- datasets with a natural split (``"synthetic"``: FedProx synthetic(alpha, beta);
  ``"ridge"``: the ridge teacher): each client's own samples are split into
  train and test rows (``test_fraction``), and the global test set is the union
  of the clients' test rows. The ``partition`` argument is not used.

Features are not standardized: digits, MNIST and CIFAR-10 pixels lie in ``[0, 1]``,
synthetic and ridge inputs are kept as generated (the theory's constants are
computed on exactly these inputs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from ._validation import _check_float, _check_int, _seed_sequence
from .dataset_files import load_cifar10, load_digits, load_mnist_idx
from .generated_data import mnist1d, ridge_teacher, synthetic_fedprox
from .partition import make_partition
from .rng import purpose_seed

if TYPE_CHECKING:
    from .config import SimConfig

__all__ = ["DATASETS", "DATA_FIELDS", "FederatedData", "build_federated_data",
           "data_from_config"]

Task = Literal["classification", "regression"]

DATASETS = ("digits", "digits_images", "synthetic", "ridge", "mnist", "cifar10", "mnist1d")
_CENTRALIZED = ("digits", "digits_images", "mnist", "cifar10", "mnist1d")


@dataclass(frozen=True, eq=False)
class FederatedData:
    """All clients' data of one federated problem, as tensors.

    Client ``k`` owns rows ``client_offsets[k] : client_offsets[k] + client_sizes[k]``
    of ``train_x`` and ``train_y``; the clients' blocks are contiguous and in order.
    """

    name: str  # dataset name, e.g. "digits"
    task: Task  # "classification" or "regression"
    train_x: torch.Tensor  # float32 (N_train, *input_shape), all clients concatenated
    train_y: torch.Tensor  # int64 (N_train,) labels, or float32 (N_train, num_outputs) targets
    client_offsets: torch.Tensor  # int64 (num_clients,), CPU: first row of each client
    client_sizes: torch.Tensor  # int64 (num_clients,), CPU: training rows per client, all >= 1
    test_x: torch.Tensor  # float32 (N_test, *input_shape): global test set (may be empty)
    test_y: torch.Tensor  # targets of the global test set
    client_test_x: list[torch.Tensor]  # per-client test inputs (possibly empty tensors)
    client_test_y: list[torch.Tensor]  # per-client test targets
    input_shape: tuple[int, ...]  # shape of one input, e.g. (64,) or (1, 8, 8)
    num_outputs: int  # number of classes, or regression output dimension
    w_true: np.ndarray | None = None  # float64 (in_features, num_outputs) teacher of "ridge"

    def __post_init__(self) -> None:
        if self.task not in ("classification", "regression"):
            raise ValueError(f"task: expected 'classification' or 'regression', got {self.task!r}")
        offsets, sizes = self.client_offsets, self.client_sizes
        for field in ("client_offsets", "client_sizes"):
            t = getattr(self, field)
            if not isinstance(t, torch.Tensor) or t.dtype != torch.int64 or t.ndim != 1:
                raise TypeError(f"{field}: expected a 1-D int64 tensor")
        if sizes.numel() == 0 or offsets.shape != sizes.shape:
            raise ValueError(
                f"client_offsets, client_sizes: expected equal non-empty shapes, got "
                f"{tuple(offsets.shape)} and {tuple(sizes.shape)}"
            )
        empty = torch.nonzero(sizes < 1).flatten()
        if empty.numel():
            k = int(empty[0])
            raise ValueError(f"client {k}: has {int(sizes[k])} training samples, needs >= 1")
        expected = torch.cumsum(sizes, 0) - sizes
        if not torch.equal(offsets.cpu(), expected.cpu()):
            raise ValueError("client_offsets: must be the running sum of client_sizes from 0")
        n = int(sizes.sum())
        if self.train_x.shape[0] != n or self.train_y.shape[0] != n:
            raise ValueError(
                f"train_x, train_y: expected {n} rows (sum of client_sizes), got "
                f"{self.train_x.shape[0]} and {self.train_y.shape[0]}"
            )
        if tuple(self.train_x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"input_shape: {tuple(self.input_shape)} does not match train_x rows of shape "
                f"{tuple(self.train_x.shape[1:])}"
            )
        if len(self.client_test_x) != sizes.numel() or len(self.client_test_y) != sizes.numel():
            raise ValueError(
                f"client_test_x, client_test_y: expected {sizes.numel()} entries (one per "
                f"client), got {len(self.client_test_x)} and {len(self.client_test_y)}"
            )
        if self.test_x.numel() and tuple(self.test_x.shape[1:]) != tuple(self.input_shape):
            raise ValueError(
                f"{self.name}: test inputs have shape {tuple(self.test_x.shape[1:])}, training "
                f"inputs {tuple(self.input_shape)}; the test files do not match the training files"
            )
        self._check_targets(self.train_y, "train_y")
        self._check_targets(self.test_y, "test_y")
        self._check_finite()

    def _check_finite(self) -> None:
        """NaN or Inf in the inputs or targets is bad data: say so, naming the dataset."""
        tensors = {"train_x": self.train_x, "train_y": self.train_y, "test_x": self.test_x,
                   "test_y": self.test_y}
        tensors |= {f"client_test_x[{k}]": t for k, t in enumerate(self.client_test_x)}
        for field, t in tensors.items():
            if not t.dtype.is_floating_point or t.device.type == "meta" or not t.numel():
                continue
            bad = int((~torch.isfinite(t)).sum())
            if bad:
                raise ValueError(
                    f"{self.name}: {field} holds {bad} NaN or Inf values; the data are bad "
                    "(check the dataset's files or dataset_kwargs), this is not a learning-rate "
                    "problem")

    def _check_targets(self, y: torch.Tensor, name: str) -> None:
        if self.task == "classification":
            if y.dtype != torch.int64 or y.ndim != 1:
                raise TypeError(f"{name}: classification labels must be 1-D int64")
            checkable = y.numel() and y.device.type != "meta"  # meta tensors hold no values
            if checkable and (int(y.min()) < 0 or int(y.max()) >= self.num_outputs):
                raise ValueError(
                    f"{name}: labels must lie in [0, {self.num_outputs}), got "
                    f"[{int(y.min())}, {int(y.max())}]"
                )
        elif not y.dtype.is_floating_point or tuple(y.shape[1:]) != (self.num_outputs,):
            raise TypeError(
                f"{name}: regression targets must be float of shape (n, {self.num_outputs}), "
                f"got {y.dtype} {tuple(y.shape)}"
            )

    @property
    def num_clients(self) -> int:
        """Number of clients."""
        return int(self.client_sizes.numel())

    @property
    def num_train(self) -> int:
        """Total number of training rows."""
        return int(self.train_x.shape[0])

    @property
    def weights(self) -> np.ndarray:
        """Client weights ``p_k = n_k / sum_j n_j`` (float64, sums to 1)."""
        sizes = self.client_sizes.cpu().numpy().astype(np.float64)
        return sizes / sizes.sum()

    def _rows(self, k: int) -> slice:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise TypeError(f"k: expected a client index (int), got {type(k).__name__}")
        if not 0 <= k < self.num_clients:
            raise IndexError(f"client {k}: index out of range [0, {self.num_clients})")
        start = int(self.client_offsets[k])
        return slice(start, start + int(self.client_sizes[k]))

    def client_x(self, k: int) -> torch.Tensor:
        """Training inputs of client ``k`` (a view into ``train_x``)."""
        return self.train_x[self._rows(k)]

    def client_y(self, k: int) -> torch.Tensor:
        """Training targets of client ``k`` (a view into ``train_y``)."""
        return self.train_y[self._rows(k)]

    def client_parts(self) -> list[np.ndarray]:
        """Row indices of every client into ``train_x`` (for :mod:`fl_sim.partition` plots)."""
        rows = [self._rows(k) for k in range(self.num_clients)]
        return [np.arange(r.start, r.stop, dtype=np.int64) for r in rows]

    def to(self, device: torch.device | str) -> FederatedData:
        """A copy with every data tensor on ``device``.

        ``client_offsets`` and ``client_sizes`` stay on the CPU: they are used for
        indexing, not computation.
        """
        return dataclasses.replace(
            self,
            train_x=self.train_x.to(device),
            train_y=self.train_y.to(device),
            test_x=self.test_x.to(device),
            test_y=self.test_y.to(device),
            client_test_x=[t.to(device) for t in self.client_test_x],
            client_test_y=[t.to(device) for t in self.client_test_y],
        )


# --------------------------------------------------------------------------- builder helpers


def _num_test(n: int, fraction: float) -> int:
    """Rows held out for testing out of ``n``: ``floor(fraction * n)`` (< n when fraction < 1)."""
    return int(np.floor(fraction * n))


def _split_rows(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(train, test)`` row indices of ``n`` rows, each sorted."""
    order = rng.permutation(n)
    cut = _num_test(n, fraction)
    return np.sort(order[cut:]), np.sort(order[:cut])


def _stratified_split(
    labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` indices with ``floor(fraction * n_c)`` test rows from every class."""
    train, test = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        tr, te = _split_rows(members.size, fraction, rng)
        train.append(members[tr])
        test.append(members[te])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@dataclass(frozen=True)
class _Pieces:
    """Numpy arrays per client before they are concatenated into tensors."""

    train: list[tuple[np.ndarray, np.ndarray]]
    test: list[tuple[np.ndarray, np.ndarray]]
    global_test: tuple[np.ndarray, np.ndarray]


def _load_centralized(
    name: str, data_dir: str | Path | None, fraction: float, rng: np.random.Generator, **kw: Any
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(train pool, global test)`` of a centralized dataset."""
    if name in ("digits", "digits_images", "mnist1d"):
        if name == "mnist1d":  # generated offline (kw: num_samples, default 10,000)
            x, y = mnist1d(seed=int(rng.integers(2**31)), **kw)
        else:
            x, y = load_digits(as_images=name == "digits_images", **kw)
        tr, te = _stratified_split(y, fraction, rng)
        return (x[tr], y[tr]), (x[te], y[te])
    if data_dir is None:
        raise ValueError(
            f"data_dir: required for {name!r}; point it at a folder holding the files "
            "(nothing is downloaded)"
        )
    loader = load_mnist_idx if name == "mnist" else load_cifar10
    return loader(data_dir, "train", **kw), loader(data_dir, "test", **kw)


def _centralized_pieces(
    name: str,
    num_clients: int,
    partition: str,
    partition_kwargs: dict[str, Any],
    data_dir: str | Path | None,
    test_fraction: float,
    client_test_fraction: float,
    streams: list[np.random.SeedSequence],
    dataset_kwargs: dict[str, Any],
) -> _Pieces:
    holdout_rng, partition_rng, split_rng = (np.random.default_rng(s) for s in streams)
    (x, y), global_test = _load_centralized(
        name, data_dir, test_fraction, holdout_rng, **dataset_kwargs
    )
    parts = make_partition(partition, y, num_clients, partition_rng, **partition_kwargs)
    train, test = [], []
    for part in parts:
        tr, te = _split_rows(part.size, client_test_fraction, split_rng)
        train.append((x[part[tr]], y[part[tr]]))
        test.append((x[part[te]], y[part[te]]))
    return _Pieces(train, test, global_test)


def _natural_pieces(
    clients: list[tuple[np.ndarray, np.ndarray]], test_fraction: float, rng: np.random.Generator
) -> _Pieces:
    train, test = [], []
    for x, y in clients:
        tr, te = _split_rows(x.shape[0], test_fraction, rng)
        train.append((x[tr], y[tr]))
        test.append((x[te], y[te]))
    global_test = (np.concatenate([x for x, _ in test]), np.concatenate([y for _, y in test]))
    return _Pieces(train, test, global_test)


def _with_bias(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((x.shape[0], 1), dtype=x.dtype)], axis=1)


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# --------------------------------------------------------------------------- builder


def build_federated_data(
    name: str,
    num_clients: int,
    partition: str = "dirichlet",
    seed: int | np.random.SeedSequence | np.random.Generator = 0,
    *,
    alpha: float = 0.5,
    test_fraction: float = 0.2,
    client_test_fraction: float | None = None,
    data_dir: str | Path | None = None,
    add_bias_feature: bool = False,
    partition_kwargs: Mapping[str, Any] | None = None,
    **dataset_kwargs: Any,
) -> FederatedData:
    """Build the federated view of a named dataset.

    Parameters
    ----------
    name : {"digits", "digits_images", "synthetic", "ridge", "mnist", "cifar10"}
        ``"digits"``: scikit-learn digits, 64 features in ``[0, 1]``;
        ``"digits_images"``: the same as ``(1, 8, 8)`` images;
        ``"synthetic"``: FedProx synthetic(fedprox_alpha, beta), see
        :func:`fl_sim.generated_data.synthetic_fedprox`; ``"ridge"``: matrix regression
        with a teacher of known spectrum, see :func:`fl_sim.generated_data.ridge_teacher`;
        ``"mnist"``, ``"cifar10"``: local files in ``data_dir``.
    num_clients : int
        Number of clients, ``>= 1``.
    partition : {"dirichlet", "iid", "shards", "power_law"}, default "dirichlet"
        Partitioner for centralized datasets; not used by ``"synthetic"`` and
        ``"ridge"``, which are generated per client.
    seed : int, numpy.random.SeedSequence or numpy.random.Generator, default 0
        Root of all randomness. Independent child streams drive data generation,
        the global test holdout, the partition and the per-client splits, so the
        same seed gives bit-identical tensors.
    alpha : float, default 0.5
        Dirichlet concentration of ``partition="dirichlet"``; not used by the other
        partitions nor by ``"synthetic"`` and ``"ridge"`` (so that a caller may always
        pass it). FedProx's own alpha is the dataset keyword ``fedprox_alpha``.
    test_fraction : float, default 0.2
        In ``[0, 1)``. Centralized digits: fraction of every class held out as the
        global test set (MNIST and CIFAR-10 use their official test files instead).
        ``"synthetic"``, ``"ridge"``: fraction of every client's samples held out as
        its test split; the global test set is their union.
    client_test_fraction : float, optional
        Centralized datasets only: fraction of each client's part kept as its local
        test split (default 0, i.e. empty client test sets).
    data_dir : str or pathlib.Path, optional
        Folder with the files, required for ``"mnist"`` and ``"cifar10"``.
    add_bias_feature : bool, default False
        Append a constant-1 feature (flat inputs only), so that a bias-free linear
        model learns an intercept. For ``"ridge"``, ``w_true`` gains a zero last row.
    partition_kwargs : mapping, optional
        Extra arguments of the partitioner, e.g. ``{"min_size": 5}`` or
        ``{"shards_per_client": 2}``.
    **dataset_kwargs
        Passed to the generator or loader: ``fedprox_alpha`` (FedProx's alpha, named
        so because ``alpha`` is the Dirichlet keyword), ``beta``, ``dim``,
        ``num_classes``, ``iid``, ``max_samples_per_client`` for ``"synthetic"``
        (``fedprox_alpha`` and ``beta`` default to 1.0);
        ``samples_per_client`` (200), ``dim`` (20), ``out_dim`` (10), ``spectrum``
        (``s_i = 1/i``), ``noise_std`` (0.1), ``heterogeneity``, ``feature_shift`` for
        ``"ridge"``; ``normalize`` for ``"digits"`` and ``"mnist"``; ``num_samples`` (10,000) for
        ``"mnist1d"``.

    Returns
    -------
    FederatedData

    Raises
    ------
    ValueError
        On an unknown name (the message lists the valid ones), a missing
        ``data_dir``, a fraction out of range, an argument the dataset does not
        use, or a client left without training samples (named by index).
    """
    if name not in DATASETS:
        raise ValueError(f"name: unknown dataset {name!r}; valid names are {list(DATASETS)}")
    num_clients = _check_int(num_clients, "num_clients", minimum=1)
    test_fraction = _check_float(test_fraction, "test_fraction", 0.0, 1.0, max_inclusive=False)
    data_ss, *streams = _seed_sequence(seed).spawn(4)
    pkw = dict(partition_kwargs or {})

    if name in _CENTRALIZED:
        if partition == "dirichlet":
            pkw.setdefault("alpha", alpha)
        ctf = 0.0 if client_test_fraction is None else client_test_fraction
        ctf = _check_float(ctf, "client_test_fraction", 0.0, 1.0, max_inclusive=False)
        pieces = _centralized_pieces(
            name, num_clients, partition, pkw, data_dir, test_fraction, ctf, streams,
            dataset_kwargs,
        )
        task: Task = "classification"
        num_outputs, w_true = 10, None
    else:
        if client_test_fraction is not None:
            raise ValueError(
                f"client_test_fraction: not used by {name!r}, whose clients' test splits "
                "are set by test_fraction"
            )
        if name == "synthetic":
            kw = {"fedprox_alpha": 1.0, "beta": 1.0, **dataset_kwargs}
            clients = synthetic_fedprox(
                kw.pop("fedprox_alpha"), num_clients=num_clients, seed=data_ss, **kw
            )
            task, num_outputs, w_true = "classification", int(kw.get("num_classes", 10)), None
        else:
            kw = {"samples_per_client": 200, "dim": 20, "out_dim": 10, "noise_std": 0.1,
                  **dataset_kwargs}
            kw.setdefault("spectrum", 1.0 / np.arange(1, min(kw["dim"], kw["out_dim"]) + 1))
            teacher = ridge_teacher(num_clients, seed=data_ss, **kw)
            clients, w_true = teacher.clients, teacher.w_true
            task, num_outputs = "regression", int(kw["out_dim"])
        pieces = _natural_pieces(clients, test_fraction, np.random.default_rng(streams[2]))

    for k, (x, _) in enumerate(pieces.train):
        if x.shape[0] == 0:
            raise ValueError(f"client {k}: has no training samples after the train/test split")
    input_shape = tuple(pieces.train[0][0].shape[1:])
    if add_bias_feature:
        if len(input_shape) != 1:
            raise ValueError(
                f"add_bias_feature: needs flat inputs, but {name!r} has input shape {input_shape}"
            )
        pieces = _Pieces(
            train=[(_with_bias(x), y) for x, y in pieces.train],
            test=[(_with_bias(x), y) for x, y in pieces.test],
            global_test=(_with_bias(pieces.global_test[0]), pieces.global_test[1]),
        )
        input_shape = (input_shape[0] + 1,)
        if w_true is not None:
            w_true = np.vstack([w_true, np.zeros((1, w_true.shape[1]))])

    sizes = torch.tensor([x.shape[0] for x, _ in pieces.train], dtype=torch.int64)
    return FederatedData(
        name=name,
        task=task,
        train_x=_tensor(np.concatenate([x for x, _ in pieces.train])),
        train_y=_tensor(np.concatenate([y for _, y in pieces.train])),
        client_offsets=torch.cumsum(sizes, 0) - sizes,
        client_sizes=sizes,
        test_x=_tensor(pieces.global_test[0]),
        test_y=_tensor(pieces.global_test[1]),
        client_test_x=[_tensor(x) for x, _ in pieces.test],
        client_test_y=[_tensor(y) for _, y in pieces.test],
        input_shape=input_shape,
        num_outputs=num_outputs,
        w_true=w_true,
    )


# the SimConfig fields that decide a run's data (and nothing else does)
DATA_FIELDS = ("dataset", "num_clients", "partition", "dirichlet_alpha", "seed",
               "test_fraction", "data_dir", "dataset_kwargs")


def data_from_config(config: SimConfig) -> FederatedData:
    """The federated data of a run: the one mapping from a config to its data.

    The simulator, the experiments runner and the Flower engine all call this, so a
    config means the same data everywhere. Only :data:`DATA_FIELDS` are read; the
    seed reaches the data builder as its own child stream
    (:func:`fl_sim.rng.purpose_seed` with ``"data"``).

    Parameters
    ----------
    config : SimConfig
        The run.

    Returns
    -------
    FederatedData
        On the CPU, in the dtypes of the builder (the simulator casts and moves it).
    """
    return build_federated_data(config.dataset, config.num_clients, config.partition,
                                purpose_seed(config.seed, "data"),
                                alpha=config.dirichlet_alpha,
                                test_fraction=config.test_fraction, data_dir=config.data_dir,
                                **config.dataset_kwargs)
