"""FedPara (Hyeon-Woo, Ye-Bin & Oh, ICLR 2022): FedAvg on a low-rank Hadamard model.

Each chosen layer is ``W = (X1 Y1) * (X2 Y2)`` (elementwise product), rank up to ``r^2``
from ``2 r (m + n)`` parameters; the inner rank comes from the parameter ratio
``gamma``: ``r = ceil((1 - gamma) r_min + gamma r_max)``
(:func:`fl_sim.models.fedpara_rank`, after ``adap/flower: baselines/fedpara``). The
factors travel both ways and are averaged as FedAvg averages weights; the paper
counts bytes as "2 x participants x model size x rounds", which is what
``lowrank.state_nbytes`` of the factors gives here.

Reconstructed here: convolutions use the matricized form ``O x (I kh kw)`` instead of
FedPara's Tucker cores (a documented simplification, :class:`fl_sim.models.HadamardLayer`);
the factor init matches the variance of the dense default init; the classifier stays
dense. Selected by ``model_kwargs={"factorization": "hadamard", "gamma": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowrank import RankPolicy

from ..params import Params
from .base import ServerState
from .factorized_model import require_factorized
from .model_compression import ModelCompression

__all__ = ["FedPara"]


@dataclass(frozen=True)
class FedPara(ModelCompression):
    """FedAvg of the Hadamard factors ``X1, Y1, X2, Y2``."""

    name: str = "fedpara"
    down: RankPolicy | None = None
    up: RankPolicy | None = None

    def init(self, params: Params, num_clients: int) -> ServerState:
        require_factorized(params, self.name, "hadamard")
        return super().init(params, num_clients)
