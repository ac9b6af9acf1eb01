"""Compression operators of the FedDLR toolkit.

Matrix decompositions (:mod:`lowrank.svd`), rank policies
(:mod:`lowrank.policies`), matrix- and model-level compression
(:mod:`lowrank.factors`, :mod:`lowrank.state`), factorized inference layers
(:mod:`lowrank.factorize`), baseline compressors (:mod:`lowrank.baselines`)
and byte accounting (:mod:`lowrank.accounting`). Depends on numpy, scipy and
torch only.
"""

from .accounting import sends_factors, state_nbytes, tensor_nbytes, wire_nbytes
from .baselines import QSGD, Compressor, ErrorFeedback, Identity, Payload, TopK
from .factorize import FactorizationReport, FactorizedConv2d, FactorizedLinear, factorize
from .factors import LowRankFactors, compress_matrix
from .policies import (
    EnergyThreshold,
    ErrorBudget,
    FixedRank,
    RankPolicy,
    RankRatio,
    parse_policy,
)
from .state import CompressedState, compress_state, planned_ranks
from .svd import SVDResult, exact_svd, power_svd, randomized_svd

__all__ = [
    "CompressedState", "Compressor", "EnergyThreshold", "ErrorBudget", "ErrorFeedback",
    "FactorizationReport", "FactorizedConv2d", "FactorizedLinear", "FixedRank", "Identity",
    "LowRankFactors", "Payload", "QSGD", "RankPolicy", "RankRatio", "SVDResult", "TopK",
    "compress_matrix", "compress_state", "exact_svd", "factorize", "parse_policy",
    "planned_ranks", "power_svd", "randomized_svd", "sends_factors", "state_nbytes",
    "tensor_nbytes", "wire_nbytes",
]
