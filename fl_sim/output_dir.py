"""Output folders are checked before any computation, so a bad location never costs a run.

:func:`check_output_dir` creates the folder (and its parents) and writes and deletes a
probe file in it: an existing file in the way, a missing or read-only parent, or a
file system that refuses writes (``/proc``) is reported at once, naming the option.
The simulator (``SimConfig.output_dir``) and every command line call it first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_output_dir"]


def check_output_dir(path: str | Path, name: str = "output_dir") -> Path:
    """Create ``path`` if needed and prove that files can be written in it.

    Parameters
    ----------
    path : str or Path
        The folder a run will write to.
    name : str
        The option or field to name in the error (``"output_dir"``, ``"--out"``).

    Returns
    -------
    Path
        ``path`` as a :class:`~pathlib.Path`.

    Raises
    ------
    ValueError
        ``name: cannot write to <path> (<reason>); choose another folder``.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name}: {folder} exists and is not a folder; choose another path")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValueError(f"{name}: cannot write to {folder} ({reason}); choose another "
                         "folder") from exc
    return folder
