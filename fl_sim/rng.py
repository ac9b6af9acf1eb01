"""The one owner of the seed: every purpose draws from its own stream (docs/architecture.md).

One ``seed`` is split once, by :class:`numpy.random.SeedSequence`, into one child
per purpose in :data:`PURPOSES`:

- ``data``: data generation, partition and train/test splits (a
  :class:`~numpy.random.SeedSequence` that :func:`fl_sim.federated_data.data_from_config`
  hands to the data builder, which splits it further for its own sub-steps);
- ``init``: model initialization;
- ``sampling``: which clients take part in a round;
- ``batches``: minibatch indices of local SGD;
- ``compression``: randomized SVD, QSGD rounding, power-iteration starts.

So changing (say) the compressor does not change which clients are sampled. The
runtime streams are ``torch.Generator`` objects whose states checkpoint as tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PURPOSES", "RandomStreams", "purpose_seed"]

PURPOSES = ("data", "init", "sampling", "batches", "compression")
_RUNTIME = PURPOSES[1:]  # torch generators, checkpointed


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    return int(seed)


def purpose_seed(seed: int, purpose: str) -> np.random.SeedSequence:
    """The child of ``seed`` that owns ``purpose`` (one of :data:`PURPOSES`).

    Parameters
    ----------
    seed : int
        The run's seed (``SimConfig.seed``), ``>= 0``.
    purpose : str
        One of :data:`PURPOSES`.

    Returns
    -------
    numpy.random.SeedSequence
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose: expected one of {', '.join(PURPOSES)}, got {purpose!r}")
    children = np.random.SeedSequence(_check_seed(seed)).spawn(len(PURPOSES))
    return children[PURPOSES.index(purpose)]


def _torch_generator(seed_sequence: np.random.SeedSequence) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed_sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
    return gen


@dataclass
class RandomStreams:
    """The runtime streams (every purpose but ``data``), derived by :func:`purpose_seed`."""

    seed: int
    init: torch.Generator  # model initialization
    sampling: torch.Generator  # which clients take part in a round
    batches: torch.Generator  # minibatch indices of local SGD
    compression: torch.Generator  # randomized SVD, QSGD rounding, power-iteration starts

    @classmethod
    def from_seed(cls, seed: int) -> RandomStreams:
        """Split ``seed`` into one independent stream per purpose."""
        seed = _check_seed(seed)
        runtime = {p: _torch_generator(purpose_seed(seed, p)) for p in _RUNTIME}
        return cls(seed=seed, **runtime)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """States of the runtime torch streams (for checkpoints)."""
        return {p: getattr(self, p).get_state() for p in _RUNTIME}

    def load_state_dict(self, states: dict[str, torch.Tensor]) -> None:
        """Restore the runtime torch streams."""
        for p in _RUNTIME:
            getattr(self, p).set_state(states[p])
