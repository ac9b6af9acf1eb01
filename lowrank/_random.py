"""Random draws that follow an optional generator, then move to the data's device."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

__all__ = ["draw"]


def draw(
    sampler: Callable[..., torch.Tensor],
    shape: Sequence[int],
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device: torch.device | str,
) -> torch.Tensor:
    """``sampler(shape)`` (``torch.rand``/``torch.randn``) on ``device``.

    A generator can only fill tensors on its own device, so the draw is made there
    (the CPU without a generator) and then moved; results do not depend on ``device``.
    """
    where = "cpu" if generator is None else generator.device
    return sampler(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)
