"""Save and load any object with ``to_dict``/``from_dict`` as a JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typing.Self is Python >= 3.11; the project supports 3.10
    from typing_extensions import Self

__all__ = ["JsonFile"]


class JsonFile:
    """Mixin: ``save_json``/``load_json`` on top of ``to_dict()`` and ``from_dict(data)``."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - provided by the subclass
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:  # pragma: no cover - subclass
        raise NotImplementedError

    def save_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` as indented JSON (creating folders); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> Self:
        """Read a file written by :meth:`save_json`."""
        return cls.from_dict(json.loads(Path(path).read_text()))
