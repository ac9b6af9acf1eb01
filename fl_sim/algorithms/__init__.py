"""Federated algorithms: FedAvg, FedDLR (reconstructed) and its ablations, update-compression
baselines. Build one by name with :func:`make_algorithm`."""

from __future__ import annotations

from lowrank import parse_policy

from .base import Algorithm, RoundComms, RoundContext, ServerState
from .model_compression import ModelCompression
from .update_compression import UpdateCompression, lowrank_update, qsgd, topk_ef

__all__ = ["ALGORITHMS", "Algorithm", "ModelCompression", "RoundComms", "RoundContext",
           "ServerState", "UpdateCompression", "make_algorithm"]

ALGORITHMS = ("fedavg", "feddlr", "feddlr_up", "feddlr_down", "lowrank_update", "topk_ef",
              "qsgd")


def make_algorithm(
    name: str,
    *,
    policy_down: str = "energy:0.99",
    policy_up: str = "energy:0.99",
    method: str = "exact",
    min_rate: float = 1.0,
    max_rank: int | None = None,
    overrides: dict[str, str | None] | None = None,
    update_rank: int = 4,
    topk_ratio: float = 0.05,
    qsgd_levels: int = 16,
) -> Algorithm:
    """An algorithm by name, with its hyperparameters.

    Parameters
    ----------
    name : str
        One of :data:`ALGORITHMS`.
    policy_down, policy_up : str
        Rank policies of the FedDLR family (``"energy:0.99"``, ``"fixed:8"``...).
    method : str
        Decomposition for the FedDLR family.
    min_rate : float
        Raw-vs-factors rule of :func:`lowrank.compress_state`.
    max_rank : int, optional
        Sketch size for spectrum-based policies with sketching methods.
    overrides : dict, optional
        Per-layer policies for the FedDLR family by ``fnmatch`` pattern; ``None`` = dense.
    update_rank : int
        Rank of ``lowrank_update``.
    topk_ratio : float
        Fraction of entries kept by ``topk_ef``.
    qsgd_levels : int
        Levels of ``qsgd``.
    """
    family = {"fedavg": (False, False), "feddlr": (True, True), "feddlr_up": (False, True),
              "feddlr_down": (True, False)}
    if name in family:
        down, up = family[name]
        return ModelCompression(name=name, down=parse_policy(policy_down) if down else None,
                                up=parse_policy(policy_up) if up else None, method=method,
                                min_rate=min_rate, max_rank=max_rank,
                                overrides=dict(overrides) if overrides else None)
    if name == "lowrank_update":
        return lowrank_update(update_rank)
    if name == "topk_ef":
        return topk_ef(topk_ratio)
    if name == "qsgd":
        return qsgd(qsgd_levels)
    raise ValueError(f"algorithm: unknown {name!r}; expected one of {', '.join(ALGORITHMS)}")
