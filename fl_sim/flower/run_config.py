"""The one mapping between a :class:`fl_sim.SimConfig` and a Flower run config.

A Flower run config (``Context.run_config``, ``flwr run --run-config``,
``[tool.flwr.app.config]`` of an app's ``pyproject.toml``) holds flat TOML scalars
(bool, int, float, str). Each :class:`SimConfig` field becomes one key, its name
spelled with dashes (``local_steps`` -> ``local-steps``, Flower's convention);
values that TOML cannot hold as scalars (dicts, ``None``) travel as JSON text.
Keys of the Flower layer itself (:data:`FLOWER_OPTIONS`: timeouts, minimum
replies) sit beside them with their defaults.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import SimConfig

__all__ = ["FLOWER_OPTIONS", "FlowerOptions", "from_run_config", "to_run_config"]


@dataclass(frozen=True)
class FlowerOptions:
    """What a Flower run needs beyond its :class:`SimConfig`.

    Parameters
    ----------
    round_timeout : float
        Seconds the server waits for a round's replies.
    connect_timeout : float
        Seconds the server waits, before the first round, for nodes serving every
        client to connect and answer.
    min_replies : int
        Fewest replies a round may aggregate; with fewer the run stops with a one-line
        error naming the missing clients.
    """

    round_timeout: float = 300.0
    min_replies: int = 1
    connect_timeout: float = 300.0

    def __post_init__(self) -> None:
        if not self.round_timeout > 0:
            raise ValueError(f"round_timeout: must be > 0 seconds, got {self.round_timeout!r}")
        if not self.connect_timeout > 0:
            raise ValueError(f"connect_timeout: must be > 0 seconds, got "
                             f"{self.connect_timeout!r}")
        if isinstance(self.min_replies, bool) or not isinstance(self.min_replies, int) \
                or self.min_replies < 1:
            raise ValueError(f"min_replies: must be an integer >= 1, got {self.min_replies!r}")


FLOWER_OPTIONS = tuple(f.name for f in dataclasses.fields(FlowerOptions))


def _key(name: str) -> str:
    return name.replace("_", "-")


def _encode(value: Any) -> bool | int | float | str:
    if value is None or isinstance(value, dict | list | tuple):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"run config: cannot encode {type(value).__name__} {value!r}")


def _decode(name: str, annotation: str, value: Any) -> Any:
    """A run-config value back to the field's Python value (JSON text where needed)."""
    if not isinstance(value, str) or annotation == "str":
        return value
    if "dict" in annotation:
        return json.loads(value)
    if value == "null" and "None" in annotation:
        return None
    if annotation.startswith("str"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ValueError(f"run config: {_key(name)}={value!r} is not a valid "
                         f"{annotation}") from None


def to_run_config(config: SimConfig, options: FlowerOptions | None = None
                  ) -> dict[str, bool | int | float | str]:
    """A flat Flower run config holding every field of ``config`` (and ``options``).

    Parameters
    ----------
    config : SimConfig
        The run.
    options : FlowerOptions, optional
        The Flower layer's own settings (defaults if omitted).

    Returns
    -------
    dict[str, bool | int | float | str]
        One key per field, dashed names; :func:`from_run_config` inverts it.
    """
    out = {_key(k): _encode(v) for k, v in config.to_dict().items()}
    opts = options or FlowerOptions()
    out.update({_key(k): _encode(getattr(opts, k)) for k in FLOWER_OPTIONS})
    return out


def from_run_config(run_config: Mapping[str, Any]) -> tuple[SimConfig, FlowerOptions]:
    """Inverse of :func:`to_run_config`; missing keys take :class:`SimConfig`'s defaults.

    Parameters
    ----------
    run_config : Mapping[str, Any]
        A Flower run config (``Context.run_config``) or the output of
        :func:`to_run_config`.

    Returns
    -------
    (SimConfig, FlowerOptions)
    """
    known = {_key(f.name): f for f in dataclasses.fields(SimConfig)}
    flower = {_key(f.name): f for f in dataclasses.fields(FlowerOptions)}
    unknown = sorted(set(run_config) - set(known) - set(flower))
    if unknown:
        raise ValueError(f"run config: unknown key(s) {unknown}")
    values = {f.name: _decode(f.name, str(f.type), run_config[k])
              for k, f in known.items() if k in run_config}
    opts = {f.name: _decode(f.name, str(f.type), run_config[k])
            for k, f in flower.items() if k in run_config}
    return SimConfig(**values), FlowerOptions(**opts)
