"""The configuration of a simulation: one dataclass, validated up front."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lowrank import parse_policy
from lowrank.accounting import check_min_compression_rate

from .algorithms import ALGORITHMS, make_algorithm, parse_overrides
from .federated_data import DATASETS
from .models import MODELS
from .participation import SCHEMES

__all__ = ["SimConfig"]

_METHODS = ("exact", "randomized", "power", "subspace")


@dataclass(frozen=True)
class SimConfig:
    """Everything that defines a run.

    The same config and seed give a bit-identical history on the same device, torch
    version and number of torch threads (each history records them in
    ``History.environment``; ``docs/reliability.md``). Every field is checked for its
    type and range when the config is built: a wrong value raises ``TypeError`` or
    ``ValueError`` naming the field.
    """

    # what is trained
    algorithm: str = "feddlr"  # one of fl_sim.algorithms.ALGORITHMS
    dataset: str = "digits"  # one of DATASETS
    model: str = "mlp"  # one of MODELS
    model_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. {"hidden": (200, 200)}
    # federation
    num_clients: int = 20  # N (ignored for datasets with a natural split: synthetic, ridge)
    partition: str = "dirichlet"  # iid, dirichlet, shards, power_law
    dirichlet_alpha: float = 0.5  # label skew for the dirichlet partition
    participation: str = "full"  # full, scheme1 (with replacement by p_k), scheme2 (uniform)
    clients_per_round: int | None = None  # K for scheme1/scheme2
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the dataset builder
    data_dir: str | None = None  # folder of local MNIST/CIFAR files
    test_fraction: float = 0.2  # held-out share of each dataset
    # optimization
    rounds: int = 30  # R
    local_steps: int = 10  # E: local SGD *steps* per round (not epochs)
    batch_size: int | None = 10  # B; None = full-batch gradient descent
    lr: float = 0.05  # eta_0
    lr_schedule: str = "constant"  # constant, inverse (eta0/(1+t/decay)), li (2/(mu(gamma+t)))
    lr_decay_steps: float = 100.0  # for "inverse"
    lr_mu: float | None = None  # for "li"
    lr_gamma: float | None = None  # for "li"
    weight_decay: float = 0.0  # lambda: adds lambda/2 ||w||^2 to every F_k
    divergence_factor: float | None = 100.0  # stop when train_loss > this x the initial
    #   train_loss (the error names the round; finished rounds are kept); None = never
    # compression
    policy_down: str = "ratio:0.25"  # server-side rank policy (FedDLR family, FedDLR-EF)
    policy_up: str = "ratio:0.25"  # client-side rank policy (FedDLR family, FedDLR-EF)
    policy_overrides: dict[str, str | None] = field(
        default_factory=lambda: {"*out*": None})  # layer pattern -> policy, or None to send
    #   that layer dense; the default keeps the classifier (MLP/CNN1D "out") dense
    method: str = "exact"  # exact, randomized, power, subspace (warm-started, the fast path:
    #   fl_sim/algorithms/model_compression.py, docs/benchmarks.md)
    subspace_iters: int = 1  # method "subspace": iterations from the warm start
    min_compression_rate: float = 1.0  # factors only if r (m + n) * this < m n
    max_rank: int | None = None  # sketch size for spectrum policies with sketching methods
    update_rank: int = 4  # lowrank_update rank
    topk_ratio: float = 0.05  # topk_ef fraction kept
    qsgd_levels: int = 16  # qsgd levels
    rank_floor: float = 0.0  # FedDLR family, FedDLR-EF: keep >= ceil(floor min(m, n)) ranks
    rank_growth: int = 0  # FedDLR family, FedDLR-EF: add this many ranks to the policy's
    #   choice (lowrank.policies.FloorGrowth; both 0 = the policy as it is)
    # execution
    seed: int = 0
    vectorized: bool = True  # vmap over clients; False = one client at a time
    chunk_size: int | None = 64  # participants trained and compressed at a time (bounds
    #   memory, docs/benchmarks.md); None = all at once. Results do not depend on it
    #   beyond float rounding of the aggregation sums
    device: str = "auto"  # auto (CUDA if present), cpu, cuda
    dtype: str = "float32"  # float32 or float64
    eval_every: int = 1  # evaluate every k rounds (and at the last)
    checkpoint_every: int = 0  # 0 = never; else write a checkpoint every k rounds
    output_dir: str | None = None  # where checkpoints (and CLI outputs) go

    def __post_init__(self) -> None:
        _check_types(self)
        checks = [
            (self.algorithm in ALGORITHMS, "algorithm", f"one of {', '.join(ALGORITHMS)}"),
            (self.dataset in DATASETS, "dataset", f"one of {', '.join(DATASETS)}"),
            (self.model in MODELS, "model", f"one of {', '.join(MODELS)}"),
            (self.participation in SCHEMES, "participation", f"one of {', '.join(SCHEMES)}"),
            (self.method in _METHODS, "method", f"one of {', '.join(_METHODS)}"),
            (self.num_clients >= 1, "num_clients", ">= 1"),
            (self.rounds >= 1, "rounds", ">= 1"),
            (self.local_steps >= 1, "local_steps", ">= 1 (E counts local SGD steps)"),
            (self.batch_size is None or self.batch_size >= 1, "batch_size", ">= 1 or None"),
            (self.lr_schedule == "li" or 0 < self.lr < math.inf, "lr", "> 0 and finite"),
            (self.lr_decay_steps > 0, "lr_decay_steps", "> 0"),
            (0 <= self.weight_decay < math.inf, "weight_decay", ">= 0 and finite"),
            (self.divergence_factor is None or self.divergence_factor > 1, "divergence_factor",
             "> 1 or None (None turns the guard off)"),
            (self.max_rank is None or self.max_rank >= 1, "max_rank", ">= 1 or None"),
            (self.subspace_iters >= 1, "subspace_iters", ">= 1"),
            (self.chunk_size is None or self.chunk_size >= 1, "chunk_size", ">= 1 or None"),
            (self.eval_every >= 1, "eval_every", ">= 1"),
            (self.checkpoint_every >= 0, "checkpoint_every", ">= 0"),
            (self.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'"),
            (0 < self.test_fraction < 1, "test_fraction", "in (0, 1)"),
            (self.seed >= 0, "seed", ">= 0"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"{name}: expected {expected}, got {getattr(self, name)!r}")
        if self.device != "auto":
            try:
                torch.device(self.device)
            except RuntimeError:
                raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got "
                                 f"{self.device!r}") from None
        if self.checkpoint_every and self.output_dir is None:
            raise ValueError("checkpoint_every: checkpoints need an output_dir; set output_dir "
                             "or checkpoint_every=0")
        for name in ("policy_down", "policy_up"):
            try:
                parse_policy(getattr(self, name))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{name}: {exc}") from exc
        overrides = parse_overrides(self.policy_overrides)
        check_min_compression_rate(self.min_compression_rate)
        algorithm = make_algorithm(self)  # the algorithm's own checks (topk_ratio...) now
        self._check_sketch_size(algorithm, overrides)
        if self.participation != "full":
            k = self.clients_per_round
            if k is None or k < 1:
                raise ValueError(f"clients_per_round: {self.participation} needs K >= 1, got {k}")
            if self.participation == "scheme2" and self.dataset not in ("synthetic", "ridge") \
                    and k > self.num_clients:
                raise ValueError(f"clients_per_round: K={k} > num_clients N={self.num_clients}")

    def _check_sketch_size(self, algorithm: object, overrides: dict) -> None:
        """A sketching method needs max_rank when a used policy picks its rank from the
        spectrum: say so now, not in round 1 (and not for an algorithm that compresses
        nothing with these policies). Method "subspace" keeps the width of its warm start,
        so there a used policy must fix the rank (max_rank does not apply); it starts
        warm only after a broadcast, so only when the downlink is compressed."""
        down, up = getattr(algorithm, "down", None), getattr(algorithm, "up", None)
        named = [(n, p) for n, p in (("policy_down", down), ("policy_up", up)) if p is not None]
        if named:
            named += [(f"policy_overrides[{k!r}]", p) for k, p in overrides.items()
                      if p is not None]
        if self.method == "subspace":
            for name, policy in named if down is not None else []:
                if policy.requested_rank(2, 2) is None:
                    raise ValueError(
                        f"{name}: method='subspace' truncates to the rank of its warm start, "
                        f"so it needs a policy that fixes the rank (fixed:, ratio:), not "
                        f"{policy}; or use method='exact'")
            return
        if self.method == "exact" or self.max_rank is not None:
            return
        for _, policy in named:
            if policy.requested_rank(2, 2) is None:
                raise ValueError(
                    f"max_rank: method={self.method!r} sketches a fixed number of directions, "
                    f"but {policy} picks its rank from the spectrum; set max_rank (the sketch "
                    "size) or use method='exact' or a fixed:/ratio: policy")

    def replace(self, **changes: Any) -> SimConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"config: unknown field(s) {unknown}")
        return cls(**data)


_EXPECTED = {"int": "an integer", "float": "a real number", "bool": "True or False",
             "str": "a string", "dict": "a dict with string keys"}


def _check_types(config: SimConfig) -> None:
    """Check every field against its annotation (``int``, ``float``, ``bool``, ``str``,
    ``dict``, optionally ``| None``); numpy scalars become Python numbers.

    Fields with other annotations are left to their own checks. Raises ``TypeError``
    naming the field, and ``ValueError`` for a NaN float.
    """
    for f in dataclasses.fields(config):
        kinds = {k.strip() for k in re.sub(r"\[.*\]", "", str(f.type)).split("|")}
        value = getattr(config, f.name)
        optional = "None" in kinds
        kinds.discard("None")
        if value is None:
            if optional:
                continue
            raise TypeError(f"{f.name}: expected {_EXPECTED.get(min(kinds), min(kinds))}, "
                            "got None")
        kind = next(iter(kinds)) if len(kinds) == 1 else ""
        if kind == "bool":
            ok = isinstance(value, bool | np.bool_)
            value = bool(value) if ok else value
        elif kind == "int":
            ok = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
            value = int(value) if ok else value
        elif kind == "float":
            ok = isinstance(value, int | float | np.integer | np.floating) and \
                not isinstance(value, bool | np.bool_)
            if ok and isinstance(value, np.integer | np.floating):
                value = value.item()
            if ok and isinstance(value, int):  # 2**70 would overflow inside torch
                try:
                    value = float(value)
                except OverflowError:
                    raise ValueError(f"{f.name}: an integer of {len(str(value))} digits is "
                                     "too large for a float") from None
            if ok and value != value:
                raise ValueError(f"{f.name}: expected a number, got nan")
        elif kind == "str":
            ok = isinstance(value, str)
        elif kind == "dict":
            ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        else:
            continue  # an annotation this check does not know: the field checks itself
        if not ok:
            raise TypeError(f"{f.name}: expected {_EXPECTED[kind]}"
                            f"{' or None' if optional else ''}, "
                            f"got {type(value).__name__} {value!r}"[:300])
        if value is not getattr(config, f.name):
            object.__setattr__(config, f.name, value)
