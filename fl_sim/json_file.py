"""One JSON policy for the project: strict JSON, non-finite floats as strings.

JSON has no ``inf`` or ``nan``. :func:`to_jsonable` writes them as the strings
``"inf"``, ``"-inf"`` and ``"nan"`` (what ``str(float)`` gives) and
:func:`from_jsonable` turns exactly those three strings back into floats, so a
round trip through :func:`write_json` / :func:`read_json` keeps every float, and
the files parse with any strict JSON reader. The :class:`JsonFile` mixin
(``History``, ``boundcheck.BoundReport``) saves and loads through the same two
functions.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # typing.Self is Python >= 3.11; the project supports 3.10
    from typing_extensions import Self

__all__ = ["JsonFile", "from_jsonable", "read_json", "to_jsonable", "write_json"]

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types (dict, list, str, int, float, bool, None) for ``obj``.

    Parameters
    ----------
    obj : Any
        ``None``, ``bool``, ``int``, ``float``, ``str``; numpy scalars and arrays;
        torch tensors; mappings (keys become ``str(key)``); lists and tuples; an
        object with a ``to_dict()`` method; a dataclass (its fields); a path
        (its string); nested in any way.

    Returns
    -------
    Any
        The same data with only JSON types. Non-finite floats become the strings
        ``"inf"``, ``"-inf"``, ``"nan"``; arrays and tensors become nested lists.

    Raises
    ------
    TypeError
        If ``obj`` holds a value of another type.
    """
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    torch = sys.modules.get("torch")  # a tensor implies torch is imported; never import it
    if torch is not None and isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if callable(getattr(obj, "to_dict", None)):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"obj: cannot write a {type(obj).__name__} as JSON")


def from_jsonable(obj: Any) -> Any:
    """Undo :func:`to_jsonable`'s one encoding: ``"inf"``, ``"-inf"``, ``"nan"`` -> float.

    Parameters
    ----------
    obj : Any
        Parsed JSON (dicts, lists, scalars), nested in any way.

    Returns
    -------
    Any
        The same structure with exactly the strings ``"inf"``, ``"-inf"`` and
        ``"nan"`` (anywhere, also inside lists) replaced by the floats; every other
        value unchanged. Dict keys stay strings.
    """
    if isinstance(obj, str):
        return _NON_FINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {k: from_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_jsonable(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any, indent: int | None = 1) -> Path:
    """Write ``to_jsonable(obj)`` as strict JSON, atomically; returns the path.

    The text goes to a temporary file in the same folder, which then replaces
    ``path`` (``os.replace``): a reader never sees half a file. Missing folders
    are created.

    Parameters
    ----------
    path : str or Path
        Destination file.
    obj : Any
        Anything :func:`to_jsonable` accepts.
    indent : int, optional
        Indentation of the JSON text (``None``: one line).

    Returns
    -------
    Path
    """
    path = Path(path)
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | Path) -> Any:
    """Read a JSON file and apply :func:`from_jsonable` (the inverse of :func:`write_json`).

    Parameters
    ----------
    path : str or Path
        A JSON file.

    Returns
    -------
    Any
    """
    return from_jsonable(json.loads(Path(path).read_text(encoding="utf-8")))


class JsonFile:
    """Mixin: ``save_json``/``load_json`` on top of ``to_dict()`` and ``from_dict(data)``.

    Both go through :func:`write_json` and :func:`read_json`, so non-finite floats
    survive the round trip and the files are strict JSON.
    """

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - provided by the subclass
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:  # pragma: no cover - subclass
        raise NotImplementedError

    def save_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` as indented JSON (creating folders); returns the path."""
        return write_json(path, self.to_dict())

    @classmethod
    def load_json(cls, path: str | Path) -> Self:
        """Read a file written by :meth:`save_json`."""
        return cls.from_dict(read_json(path))
