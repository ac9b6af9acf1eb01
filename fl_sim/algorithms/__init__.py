"""Federated algorithms: FedAvg, FedDLR (reconstructed) and its ablations, FedDLR-EF (our
extension), the low-rank methods FedHM, FedLMT, FedPara, FedMUD, update-compression baselines.

:data:`ALGORITHMS` is the one registry: name -> builder ``(SimConfig) -> Algorithm``.
Every hyperparameter's default lives in :class:`fl_sim.config.SimConfig`; a builder
reads the fields it needs. Policy strings are parsed here, once, at the boundary
between the config and the algorithm objects. Adding an algorithm is one builder and
one entry below (docs/architecture.md, "Add an algorithm").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lowrank import RankPolicy, parse_policy
from lowrank.policies import with_floor_growth

from .base import Algorithm, RoundComms, RoundContext, ServerState
from .feddlr_ef import FedDLREF
from .fedhm import FedHM
from .fedlmt import FedLMT
from .fedmud import FedMUD
from .fedpara import FedPara
from .model_compression import ModelCompression
from .update_compression import UpdateCompression, lowrank_update, qsgd, topk_ef

if TYPE_CHECKING:
    from ..config import SimConfig

__all__ = ["ALGORITHMS", "Algorithm", "AlgorithmBuilder", "FedDLREF", "FedHM", "FedLMT",
           "FedMUD", "FedPara", "ModelCompression", "RoundComms", "RoundContext", "ServerState",
           "UpdateCompression", "make_algorithm", "parse_overrides"]

AlgorithmBuilder = Callable[["SimConfig"], Algorithm]


def parse_overrides(overrides: dict[str, str | None] | None) -> dict[str, RankPolicy | None]:
    """Per-layer policies with their strings parsed (``None`` stays: send dense)."""
    out: dict[str, RankPolicy | None] = {}
    for pattern, spec in (overrides or {}).items():
        try:
            out[pattern] = None if spec is None else parse_policy(spec)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"policy_overrides[{pattern!r}]: {exc}") from exc
    return out


def _policy(config: SimConfig, spec: str) -> RankPolicy:
    """A policy string of the config, with its ``rank_floor``/``rank_growth`` applied."""
    return with_floor_growth(parse_policy(spec), config.rank_floor, config.rank_growth)


def _model_compression(name: str, down: bool, up: bool) -> AlgorithmBuilder:
    """Builder of one member of the FedDLR family (FedAvg when neither link compresses)."""

    def build(config: SimConfig) -> ModelCompression:
        return ModelCompression(
            name=name,
            down=_policy(config, config.policy_down) if down else None,
            up=_policy(config, config.policy_up) if up else None,
            method=config.method, min_compression_rate=config.min_compression_rate,
            max_rank=config.max_rank, overrides=parse_overrides(config.policy_overrides) or None,
            subspace_iters=config.subspace_iters, chunk_size=config.chunk_size)

    return build


def _feddlr_ef(config: SimConfig) -> FedDLREF:
    return FedDLREF(down=_policy(config, config.policy_down),
                    up=_policy(config, config.policy_up), method=config.method,
                    min_compression_rate=config.min_compression_rate, max_rank=config.max_rank,
                    overrides=parse_overrides(config.policy_overrides) or None)


ALGORITHMS: dict[str, AlgorithmBuilder] = {
    "fedavg": _model_compression("fedavg", down=False, up=False),
    "feddlr": _model_compression("feddlr", down=True, up=True),
    "feddlr_up": _model_compression("feddlr_up", down=False, up=True),
    "feddlr_down": _model_compression("feddlr_down", down=True, up=False),
    "lowrank_update": lambda config: lowrank_update(config.update_rank),
    "topk_ef": lambda config: topk_ef(config.topk_ratio),
    "qsgd": lambda config: qsgd(config.qsgd_levels),
    "feddlr_ef": _feddlr_ef,
    # these train the factorized model that model_kwargs selects (fl_sim/models.py);
    # their init names model_kwargs when the model carries no factors
    "fedhm": lambda config: FedHM(),
    "fedlmt": lambda config: FedLMT(),
    "fedpara": lambda config: FedPara(),
    "fedmud": lambda config: FedMUD(),
}


def make_algorithm(config: SimConfig) -> Algorithm:
    """The algorithm a config names, with the config's hyperparameters.

    Parameters
    ----------
    config : SimConfig
        ``config.algorithm`` is a key of :data:`ALGORITHMS`.

    Returns
    -------
    Algorithm
    """
    try:
        builder = ALGORITHMS[config.algorithm]
    except KeyError:
        raise ValueError(f"algorithm: unknown {config.algorithm!r}; expected one of "
                         f"{', '.join(ALGORITHMS)}") from None
    return builder(config)
