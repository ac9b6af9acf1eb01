"""Learning-rate schedules, indexed by the global local-step counter ``t = r * E + j``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LearningRate", "Constant", "InverseTime", "LiSchedule", "make_schedule"]


class LearningRate:
    """Base class: ``schedule(t)`` is the step size of global local step ``t``."""

    def __call__(self, t: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(LearningRate):
    """``eta_t = eta0``."""

    eta0: float

    def __call__(self, t: int) -> float:
        return self.eta0


@dataclass(frozen=True)
class InverseTime(LearningRate):
    """``eta_t = eta0 / (1 + t / decay_steps)``."""

    eta0: float
    decay_steps: float = 1.0  # steps over which the rate halves the first time

    def __call__(self, t: int) -> float:
        return self.eta0 / (1.0 + t / self.decay_steps)


@dataclass(frozen=True)
class LiSchedule(LearningRate):
    """``eta_t = 2 / (mu (gamma + t))``, Li et al. (ICLR 2020), Theorem 1."""

    mu: float  # strong-convexity constant
    gamma: float  # offset, max(8 L/mu, E) in Theorem 1

    def __call__(self, t: int) -> float:
        return 2.0 / (self.mu * (self.gamma + t))


def make_schedule(
    name: str, lr: float, *, mu: float | None = None, gamma: float | None = None,
    decay_steps: float = 1.0,
) -> LearningRate:
    """Build a schedule by name: ``"constant"``, ``"inverse"`` or ``"li"``.

    Parameters
    ----------
    name : str
        Schedule name.
    lr : float
        ``eta0`` for ``constant`` and ``inverse`` (must be > 0).
    mu, gamma : float, optional
        Required by ``li``.
    decay_steps : float
        For ``inverse``.
    """
    if name == "li":
        if mu is None or gamma is None or mu <= 0 or gamma <= 0:
            raise ValueError(f"lr_schedule 'li' needs mu > 0 and gamma > 0, got {mu}, {gamma}")
        return LiSchedule(mu=mu, gamma=gamma)
    if not lr > 0:
        raise ValueError(f"lr: must be > 0, got {lr}")
    if name == "constant":
        return Constant(lr)
    if name == "inverse":
        if decay_steps <= 0:
            raise ValueError(f"lr_decay_steps: must be > 0, got {decay_steps}")
        return InverseTime(lr, decay_steps)
    raise ValueError(f"lr_schedule: unknown {name!r}; expected 'constant', 'inverse' or 'li'")
