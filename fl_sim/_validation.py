"""Argument checks and seed handling shared by the data modules.

Each check names the parameter it rejects, so an error deep in a data builder
still says which argument was wrong.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Seed = int | np.random.SeedSequence

def _check_int(value: Any, name: str, minimum: int | None = None) -> int:
    """Return ``value`` as ``int``; raise naming ``name`` if it is not an integer >= minimum."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    return int(value)


def _check_float(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    max_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite ``float`` in ``[minimum, maximum]`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")
    if maximum is not None and (value > maximum or (not max_inclusive and value == maximum)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name}: must be {op} {maximum}, got {value}")
    return value


def _seed_sequence(seed: Seed | np.random.Generator, name: str = "seed") -> np.random.SeedSequence:
    """A :class:`~numpy.random.SeedSequence` from an int, a SeedSequence or a Generator.

    A Generator is consumed through :meth:`numpy.random.Generator.spawn`, so the
    caller's stream advances deterministically.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return seed.spawn(1)[0].bit_generator.seed_seq
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(
            f"{name}: expected an int, numpy.random.SeedSequence or numpy.random.Generator, "
            f"got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"{name}: must be a non-negative integer, got {seed}")
    return np.random.SeedSequence(int(seed))


def _as_generator(rng: np.random.Generator | int, name: str = "rng") -> np.random.Generator:
    """``rng`` itself if it is a Generator, else a fresh Generator seeded by the int ``rng``."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(_seed_sequence(rng, name))
