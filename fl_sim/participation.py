"""Which clients take part in a round, and with which aggregation weights.

Follows Li et al. (ICLR 2020), Section 3.3:

- ``full``: every client, weights ``p_k``;
- ``scheme1``: ``K`` indices drawn *with replacement* with probabilities ``p_k``;
  plain average, weight ``1/K`` per draw (a client drawn twice counts twice);
- ``scheme2``: ``K`` clients drawn uniformly *without replacement*; weights
  ``p_k * N / K`` (unbiased: their expectation is ``p_k``; they need not sum to 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Participation", "sample_participants", "SCHEMES"]

SCHEMES = ("full", "scheme1", "scheme2")


@dataclass(frozen=True)
class Participation:
    """The clients of one round."""

    clients: torch.Tensor  # int64 (K,), client indices (repeats possible under scheme1)
    weights: torch.Tensor  # float64 (K,), aggregation weights


def sample_participants(
    p: torch.Tensor, scheme: str, k: int | None, generator: torch.Generator
) -> Participation:
    """Draw the participants of one round.

    Parameters
    ----------
    p : torch.Tensor
        Client weights ``p_k = n_k / n``, float64, shape ``(N,)``.
    scheme : {"full", "scheme1", "scheme2"}
        Participation scheme.
    k : int or None
        Clients per round (ignored for ``full``).
    generator : torch.Generator
        The sampling stream.
    """
    n = p.numel()
    if scheme == "full":
        return Participation(torch.arange(n), p.clone())
    if scheme not in SCHEMES:
        raise ValueError(f"participation: unknown {scheme!r}; expected one of {SCHEMES}")
    if k is None or k < 1:
        raise ValueError(f"clients_per_round: must be >= 1 for {scheme}, got {k}")
    if scheme == "scheme1":
        clients = torch.multinomial(p, k, replacement=True, generator=generator)
        return Participation(clients, torch.full((k,), 1.0 / k, dtype=torch.float64))
    if k > n:
        raise ValueError(f"clients_per_round: K={k} exceeds the number of clients N={n}")
    clients = torch.randperm(n, generator=generator)[:k].sort().values
    return Participation(clients, p[clients] * (n / k))
