"""A rank policy that does not ratchet: any policy, plus room to grow, above a floor.

Measured in docs/results.md (before this module): with ``energy:TAU`` on both links
FedDLR's rank falls round after round (``energy:0.8`` ends at rank 2). The cause is
feedback: the downlink truncates the average of truncated uploads, clients train
from that low-rank start for a few steps, and an energy threshold ``< 1`` on a
spectrum whose tail is only a few steps old keeps cutting it. Two knobs break the
loop, applied to whatever policy a run names:

- ``growth`` adds ``g`` ranks to the inner policy's choice, so directions the last
  local steps opened can enter the next message (the rank can rise again);
- ``floor`` keeps at least ``ceil(floor * min(m, n))`` ranks (at least 1).

``r = clamp(inner(sigma) + growth, ceil(floor * min(m, n)), k)``, ``k`` the number of
singular values available. With ``growth = 0`` and ``floor = 0`` it is the inner policy.
Our own design (not from the FedDLR paper); config fields ``rank_floor`` and
``rank_growth`` (fl_sim/config.py) wrap ``policy_down`` and ``policy_up`` of the
FedDLR family and FedDLR-EF. It subclasses :class:`lowrank.policies.RankPolicy`
here because ``lowrank`` is not ours to change; a ``floor``/``growth`` option of
``lowrank.parse_policy`` would let other code name it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lowrank import RankPolicy

__all__ = ["FloorGrowth", "with_floor_growth"]


@dataclass(frozen=True)
class FloorGrowth(RankPolicy):
    """``inner`` plus ``growth`` ranks, never below ``floor * min(m, n)``.

    Parameters
    ----------
    inner : RankPolicy
        The policy whose rank is adjusted (e.g. ``EnergyThreshold(0.9)``).
    floor : float
        Fraction of ``min(m, n)`` always kept, in ``[0, 1]``.
    growth : int
        Ranks added to the inner choice, ``>= 0``.
    """

    inner: RankPolicy
    floor: float = 0.0
    growth: int = 0

    def __post_init__(self) -> None:
        if not (0.0 <= float(self.floor) <= 1.0):
            raise ValueError(f"rank_floor: must lie in [0, 1], got {self.floor}")
        if isinstance(self.growth, bool) or not isinstance(self.growth, int) or self.growth < 0:
            raise ValueError(f"rank_growth: must be an int >= 0, got {self.growth!r}")

    def _floor(self, m: int, n: int) -> int:
        return max(1, math.ceil(self.floor * min(m, n) - 1e-12))

    def requested_rank(self, m: int, n: int) -> int | None:
        r = self.inner.requested_rank(m, n)
        return None if r is None else max(r + self.growth, self._floor(m, n))

    def select(self, singular_values, m, n, total_energy=None):
        k = singular_values.shape[-1]
        r = self.inner.select(singular_values, m, n, total_energy) + self.growth
        return r.clamp(min=min(self._floor(m, n), k), max=k).to(torch.int64)


def with_floor_growth(policy: RankPolicy, floor: float, growth: int) -> RankPolicy:
    """``policy`` itself when both knobs are off, else :class:`FloorGrowth` around it."""
    if floor == 0 and growth == 0:
        return policy
    return FloorGrowth(policy, floor, growth)
