"""Rank policies: small objects that map singular values to a rank.

A policy sees the (descending) singular values of a matrix, or of a batch of
matrices, and returns one rank per matrix. Policies that do not need the
spectrum (:class:`FixedRank`, :class:`RankRatio`) also announce a rank in
advance through :meth:`RankPolicy.max_rank`, which lets sketching methods
(randomized SVD, power iteration) size their sketch.

All ranks are at least 1 and at most ``min(m, n)``; a request above
``min(m, n)`` is clipped and reported by the caller (see
:class:`lowrank.factors.LowRankFactors.clipped`), never an error.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

__all__ = [
    "RankPolicy",
    "FixedRank",
    "RankRatio",
    "EnergyThreshold",
    "ErrorBudget",
    "FloorGrowth",
    "parse_policy",
    "with_floor_growth",
]


class RankPolicy(ABC):
    """Base class of the rank policies."""

    @abstractmethod
    def select(
        self,
        singular_values: torch.Tensor,
        m: int,
        n: int,
        total_energy: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Choose a rank for each matrix of a batch.

        Parameters
        ----------
        singular_values : torch.Tensor
            Shape ``(..., k)``, descending, non-negative; ``k <= min(m, n)``
            (fewer than ``min(m, n)`` when they come from a sketch).
        m, n : int
            Shape of the matrices.
        total_energy : torch.Tensor, optional
            ``||W||_F^2`` per matrix, shape ``(...)``. Defaults to the sum of
            the squared singular values given, which is exact when ``k`` equals
            ``min(m, n)``.

        Returns
        -------
        torch.Tensor
            ``int64`` ranks of shape ``(...)``, each in ``[1, k]``.
        """

    def requested_rank(self, m: int, n: int) -> int | None:
        """The rank asked for before clipping, if the policy fixes one."""
        return None

    def max_rank(self, m: int, n: int) -> int | None:
        """Upper bound on the rank this policy can return, if known in advance."""
        r = self.requested_rank(m, n)
        return None if r is None else min(r, m, n)


def _energy_rank(
    singular_values: torch.Tensor, kept_energy: torch.Tensor
) -> torch.Tensor:
    """Smallest r with ``sum_{i<=r} s_i^2 >= kept_energy`` (clipped to [1, k])."""
    s2 = singular_values.double().square()
    cumulative = torch.cumsum(s2, dim=-1)
    # number of prefixes that still fall short of the target, +1
    short = (cumulative < kept_energy.double().unsqueeze(-1)).sum(dim=-1)
    k = singular_values.shape[-1]
    return (short + 1).clamp(min=1, max=k).to(torch.int64)


def _total(singular_values: torch.Tensor, total_energy: torch.Tensor | None) -> torch.Tensor:
    if total_energy is None:
        return singular_values.double().square().sum(dim=-1)
    return torch.as_tensor(total_energy, dtype=torch.float64, device=singular_values.device)


@dataclass(frozen=True)
class FixedRank(RankPolicy):
    """Keep exactly ``rank`` singular triplets (clipped to ``min(m, n)``).

    Parameters
    ----------
    rank : int
        Target rank, at least 1.
    """

    rank: int  # target rank; clipped to min(m, n) per matrix

    def __post_init__(self) -> None:
        integral = isinstance(self.rank, numbers.Integral) or (
            isinstance(self.rank, float) and float(self.rank).is_integer())
        if isinstance(self.rank, bool) or not integral:
            raise TypeError(f"rank: expected an int, got {self.rank!r}")
        object.__setattr__(self, "rank", int(self.rank))
        if self.rank <= 0:
            raise ValueError(f"rank: must be >= 1, got {self.rank}")

    def requested_rank(self, m: int, n: int) -> int:
        return self.rank

    def select(self, singular_values, m, n, total_energy=None):
        k = singular_values.shape[-1]
        r = min(self.rank, k)
        return torch.full(singular_values.shape[:-1], r, dtype=torch.int64,
                          device=singular_values.device)


@dataclass(frozen=True)
class RankRatio(RankPolicy):
    """Keep ``ceil(rho * min(m, n))`` singular triplets.

    Parameters
    ----------
    rho : float
        Fraction of the full rank, in ``(0, 1]``.
    """

    rho: float  # fraction of min(m, n) kept

    def __post_init__(self) -> None:
        if not (0.0 < float(self.rho) <= 1.0) or math.isnan(float(self.rho)):
            raise ValueError(f"rho: must lie in (0, 1], got {self.rho}")

    def requested_rank(self, m: int, n: int) -> int:
        return max(1, math.ceil(self.rho * min(m, n) - 1e-12))

    def select(self, singular_values, m, n, total_energy=None):
        k = singular_values.shape[-1]
        r = min(self.requested_rank(m, n), k)
        return torch.full(singular_values.shape[:-1], r, dtype=torch.int64,
                          device=singular_values.device)


@dataclass(frozen=True)
class EnergyThreshold(RankPolicy):
    """Smallest rank keeping a fraction ``tau`` of the energy.

    ``r = min{r : sum_{i<=r} s_i^2 >= tau * sum_i s_i^2}``. By Eckart–Young the
    squared truncation error is then at most ``(1 - tau) * ||W||_F^2``.

    Parameters
    ----------
    tau : float
        Fraction of the squared Frobenius norm kept, in ``(0, 1]``.
    """

    tau: float  # fraction of energy kept; tau = 1 keeps the numerical rank

    def __post_init__(self) -> None:
        t = float(self.tau)
        if math.isnan(t) or not (0.0 < t <= 1.0):
            raise ValueError(f"tau: must lie in (0, 1], got {self.tau}")

    def select(self, singular_values, m, n, total_energy=None):
        total = _total(singular_values, total_energy)
        # a relative slack of a few ulps so that tau = 1 does not demand more than
        # the energy that floating point can represent
        target = self.tau * total * (1.0 - 4 * torch.finfo(singular_values.dtype).eps)
        return _energy_rank(singular_values, target)


@dataclass(frozen=True)
class ErrorBudget(RankPolicy):
    """Smallest rank whose tail energy is at most ``eps**2``.

    ``r = min{r : sum_{i>r} s_i^2 <= eps^2}`` (at least 1), so the Frobenius
    error of the truncation is at most ``eps``.

    Parameters
    ----------
    eps : float
        Absolute Frobenius error budget, ``>= 0``.
    """

    eps: float  # absolute Frobenius error allowed per matrix

    def __post_init__(self) -> None:
        e = float(self.eps)
        if math.isnan(e) or e < 0:
            raise ValueError(f"eps: must be >= 0, got {self.eps}")

    def select(self, singular_values, m, n, total_energy=None):
        total = _total(singular_values, total_energy)
        target = (total - self.eps**2).clamp(min=0.0)
        return _energy_rank(singular_values, target)


@dataclass(frozen=True)
class FloorGrowth(RankPolicy):
    """``inner`` plus ``growth`` ranks, never below ``floor * min(m, n)``: a rank that can rise.

    ``r = clamp(inner(s) + growth, ceil(floor * min(m, n)), k)``, ``k`` the number of
    singular values available (at least 1 kept). With ``floor = 0`` and ``growth = 0``
    it is ``inner``. Our own design (not from the FedDLR paper): on both links of
    FedDLR an energy threshold ``< 1`` ratchets the rank down round after round (the
    downlink truncates an average of truncated uploads, so the next spectrum's tail is
    only a few local steps old); ``growth`` lets the directions those steps opened into
    the next message, and ``floor`` stops the fall. Its a-priori relative error is
    ``theory.approximation.floor_growth_relative_error_bound``. Parsed from
    ``"floor:F:grow:G:INNER"``, e.g. ``"floor:0.05:grow:2:energy:0.8"``.

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
        if not isinstance(self.inner, RankPolicy):
            raise TypeError(f"inner: expected a RankPolicy, got {self.inner!r}")
        f = float(self.floor)
        if math.isnan(f) or not (0.0 <= f <= 1.0):
            raise ValueError(f"rank_floor: must lie in [0, 1], got {self.floor}")
        if isinstance(self.growth, bool) or not isinstance(self.growth, numbers.Integral) \
                or self.growth < 0:
            raise ValueError(f"rank_growth: must be an int >= 0, got {self.growth!r}")

    def floor_rank(self, m: int, n: int) -> int:
        """``max(1, ceil(floor * min(m, n)))``: the fewest ranks ever kept (before clipping)."""
        return max(1, math.ceil(self.floor * min(m, n) - 1e-12))

    def requested_rank(self, m: int, n: int) -> int | None:
        r = self.inner.requested_rank(m, n)
        return None if r is None else max(r + self.growth, self.floor_rank(m, n))

    def select(self, singular_values, m, n, total_energy=None):
        k = singular_values.shape[-1]
        r = self.inner.select(singular_values, m, n, total_energy) + self.growth
        return r.clamp(min=min(self.floor_rank(m, n), k), max=k).to(torch.int64)


def with_floor_growth(policy: RankPolicy, floor: float, growth: int) -> RankPolicy:
    """``policy`` itself when both knobs are off, else :class:`FloorGrowth` around it."""
    if floor == 0 and growth == 0:
        return policy
    return FloorGrowth(policy, floor, growth)


def parse_policy(spec: str | RankPolicy) -> RankPolicy:
    """Build a policy from a short string, as used on the command line.

    ``"fixed:8"``, ``"ratio:0.25"``, ``"energy:0.99"``, ``"error:0.1"``, and
    ``"floor:F:grow:G:INNER"`` (:class:`FloorGrowth` around the policy ``INNER``, e.g.
    ``"floor:0.05:grow:2:energy:0.8"``).

    Parameters
    ----------
    spec : str or RankPolicy
        The specification; a policy is returned unchanged.
    """
    if isinstance(spec, RankPolicy):
        return spec
    if str(spec).startswith("floor:"):
        parts = str(spec).split(":", 4)
        if len(parts) != 5 or parts[2] != "grow":
            raise ValueError(f"policy: cannot parse {spec!r}; expected 'floor:F:grow:G:INNER', "
                             "e.g. 'floor:0.05:grow:2:energy:0.8'")
        try:
            floor, growth = float(parts[1]), int(parts[3])
        except ValueError as exc:
            raise ValueError(f"policy: bad floor or growth in {spec!r}") from exc
        return FloorGrowth(parse_policy(parts[4]), floor, growth)
    kinds = {"fixed": (FixedRank, int), "ratio": (RankRatio, float),
             "energy": (EnergyThreshold, float), "error": (ErrorBudget, float)}
    kind, _, value = str(spec).partition(":")
    if kind not in kinds or not value:
        raise ValueError(
            f"policy: cannot parse {spec!r}; expected one of "
            "'fixed:R', 'ratio:RHO', 'energy:TAU', 'error:EPS', 'floor:F:grow:G:INNER'"
        )
    cls, cast = kinds[kind]
    try:
        parsed = cast(value)
    except ValueError as exc:
        raise ValueError(f"policy: bad value in {spec!r}") from exc
    return cls(parsed)
