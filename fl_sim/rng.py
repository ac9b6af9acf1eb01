"""Separate random streams per purpose (DESIGN §2).

Data split, model init, client sampling, minibatches and compression each draw
from their own generator, all derived from one seed, so that changing (say) the
compressor does not change which clients are sampled. The runtime streams are
``torch.Generator`` objects whose states checkpoint as tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["RandomStreams"]

_PURPOSES = ("init", "sampling", "batches", "compression")


@dataclass
class RandomStreams:
    """One generator per purpose, derived from a single seed."""

    seed: int
    data: np.random.Generator  # data generation and partition (used once, at setup)
    init: torch.Generator  # model initialization
    sampling: torch.Generator  # which clients take part in a round
    batches: torch.Generator  # minibatch indices of local SGD
    compression: torch.Generator  # randomized SVD, QSGD rounding, power-iteration starts

    @classmethod
    def from_seed(cls, seed: int) -> RandomStreams:
        """Derive independent streams with :class:`numpy.random.SeedSequence`."""
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
        children = np.random.SeedSequence(int(seed)).spawn(1 + len(_PURPOSES))
        torch_gens = {}
        for purpose, child in zip(_PURPOSES, children[1:], strict=True):
            gen = torch.Generator()
            gen.manual_seed(int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))
            torch_gens[purpose] = gen
        return cls(seed=int(seed), data=np.random.default_rng(children[0]), **torch_gens)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """States of the runtime torch streams (for checkpoints)."""
        return {p: getattr(self, p).get_state() for p in _PURPOSES}

    def load_state_dict(self, states: dict[str, torch.Tensor]) -> None:
        """Restore the runtime torch streams."""
        for p in _PURPOSES:
            getattr(self, p).set_state(states[p])
