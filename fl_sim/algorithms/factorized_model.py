"""The check every algorithm that trains a factorized model makes on its start model.

FedHM, FedLMT and FedPara train the factors of a model built by
:func:`fl_sim.models.factorize_model` (selected by the config's ``model_kwargs``,
e.g. ``{"factorization": "lowrank", "rank": "ratio:0.25"}``); FedMUD trains the
``mud`` variant. The algorithm sees parameters only, so it recognizes the variant by
the factor names (:data:`fl_sim.models.FACTORIZATIONS`) and fails with one line
naming ``model_kwargs`` if the model carries none.
"""

from __future__ import annotations

from ..models import factorized_layers
from ..params import Params

__all__ = ["require_factorized", "model_kwargs_hint"]


def model_kwargs_hint(algorithm: str, factorization: str) -> str:
    """The ``model_kwargs`` an algorithm needs, as a sentence for error messages."""
    example = {"lowrank": "'rank': 'ratio:0.25'", "hadamard": "'gamma': 0.1",
               "mud": "'rank': 'ratio:0.25'"}[factorization]
    return (f"model_kwargs: {algorithm} trains a factorized model; set "
            f"model_kwargs={{'factorization': '{factorization}', {example}}}")


def require_factorized(params: Params, algorithm: str, factorization: str) -> list[str]:
    """The factorized layers of ``params``, or a ``ValueError`` naming ``model_kwargs``."""
    layers = factorized_layers(params, factorization)
    if not layers:
        raise ValueError(model_kwargs_hint(algorithm, factorization) +
                         " (the model has no factorized layer)")
    return layers

