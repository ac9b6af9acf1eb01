"""The type of a model's parameters as the simulator passes them around."""

from __future__ import annotations

import torch

__all__ = ["Params"]

# parameter name -> tensor; stacked with a leading client dimension (K, ...) where batched
Params = dict[str, torch.Tensor]
