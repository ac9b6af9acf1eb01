"""FedLMT (Liu et al., ICML 2024): FedAvg on a pre-factorized low-rank model.

Every client trains the same *pre-factorized* model, each chosen layer written as
``W = U V`` with a fixed rank (the paper's ``ratio_LR``; here the model's ``rank``, e.g.
``ratio:0.25``), and the server averages ``U`` and ``V`` *separately*
(``new_common[k] += weight * v`` in ``Sherrylife/FedLMT: servers/serverFedLMT.py``).
Both links carry the factors (and the layers kept dense), nothing else; the model
stays factorized from start to end, so the trained model *is* the compact model.

Reconstructed here: the factorized model is :class:`fl_sim.models.LowRankLayer`
(initialized from the dense init's truncated SVD, classifier dense; FedLMT's code
initializes its factors its own way), selected by
``model_kwargs={"factorization": "lowrank", "rank": ...}``; pFedLMT's personalized
split is not modelled. The round is the FedAvg round of
:class:`~fl_sim.algorithms.model_compression.ModelCompression` on that model, so the
byte ledger is ``lowrank.state_nbytes`` of the factors on both links.
"""

from __future__ import annotations

from dataclasses import dataclass

from lowrank import RankPolicy

from ..params import Params
from .base import ServerState
from .factorized_model import require_factorized
from .model_compression import ModelCompression

__all__ = ["FedLMT"]


@dataclass(frozen=True)
class FedLMT(ModelCompression):
    """FedAvg of the factors ``U``, ``V`` of a pre-factorized model (averaged separately)."""

    name: str = "fedlmt"
    down: RankPolicy | None = None  # the factors travel as they are
    up: RankPolicy | None = None

    def init(self, params: Params, num_clients: int) -> ServerState:
        require_factorized(params, self.name, "lowrank")
        return super().init(params, num_clients)
