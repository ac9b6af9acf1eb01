"""What a finished run leaves behind: the summary table and the output files.

:func:`summary_table` prints final accuracy, bytes and the bytes ratio to a
baseline; :func:`write_outputs` writes each history (JSON, CSV) and the PNG plots.
Neither chooses a matplotlib backend: the CLI does (:func:`fl_sim.cli.main`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
from tabulate import tabulate

from .history import History
from .plots import plot_compression_errors, plot_metric

__all__ = ["code_version", "summary_table", "write_outputs"]

SUMMARY_HEADERS = ("algorithm", "final acc", "best acc", "up MB", "down MB", "total MB",
                   "bytes ratio")


def summary_table(histories: Mapping[str, History], baseline: str | None = None,
                  tablefmt: str = "simple") -> str:
    """Final accuracy, total bytes and the bytes ratio to a baseline, as a table.

    Parameters
    ----------
    histories : Mapping[str, History]
        Label -> history of a run.
    baseline : str, optional
        Label whose total bytes divide every run's (the "bytes ratio" column).
    tablefmt : str
        A ``tabulate`` format: ``"simple"`` for a terminal, ``"github"`` for Markdown.

    Returns
    -------
    str
    """
    base = histories.get(baseline) if baseline else None
    base_bytes = base.cumulative_bytes[-1] if base else None
    rows = []
    for label, h in histories.items():
        acc = [a for a in h.column("test_accuracy") if a is not None]
        up, down = sum(h.column("bytes_up")), sum(h.column("bytes_down"))
        rows.append([label, f"{acc[-1]:.4f}" if acc else "-", f"{max(acc):.4f}" if acc else "-",
                     f"{up / 1e6:.2f}", f"{down / 1e6:.2f}", f"{(up + down) / 1e6:.2f}",
                     f"{base_bytes / (up + down):.2f}x" if base_bytes else "-"])
    text = tabulate(rows, headers=SUMMARY_HEADERS, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(SUMMARY_HEADERS) - 1))
    if base_bytes:
        text += f"\n(bytes ratio = {baseline}'s total bytes / this run's total bytes)"
    return text


def _task_metric(histories: Mapping[str, History]) -> str:
    """Test accuracy for classification runs, test loss otherwise."""
    has_accuracy = any(a is not None for h in histories.values()
                       for a in h.column("test_accuracy"))
    return "test_accuracy" if has_accuracy else "test_loss"


def write_outputs(histories: Mapping[str, History], out: Path, name: str = "compare"
                  ) -> list[Path]:
    """Histories (JSON, CSV) and PNG plots into ``out``; returns the written paths.

    Parameters
    ----------
    histories : Mapping[str, History]
        Label -> history; files are named after the labels.
    out : Path
        Output folder (created if missing).
    name : str
        Prefix of the comparison plot, ``{name}_{metric}.png``.

    Returns
    -------
    list[Path]
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label, h in histories.items():
        written += [h.save_json(out / f"{label}.history.json"),
                    h.save_csv(out / f"{label}.history.csv")]
    metric = _task_metric(histories)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot_metric(histories, metric, "round", ax=axes[0])
    plot_metric(histories, metric, "bytes", ax=axes[1])
    fig.tight_layout()
    written.append(_save(fig, out / f"{name}_{metric}.png"))
    for label, h in histories.items():
        if any(h.column("err_server")) or any(h.column("err_client")):
            fig, _, _ = plot_compression_errors(h)
            written.append(_save(fig, out / f"{label}_compression_errors.png"))
    return written


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def code_version(repo: Path | None = None) -> str:
    """The commit that generated a document: ``"abc1234"``, ``"abc1234 + uncommitted
    changes"``, or ``"unknown (not a git checkout)"``.

    Generated docs (results, benchmark records) state it beside their command.

    Parameters
    ----------
    repo : Path, optional
        A folder inside the checkout (default: this package's folder).
    """
    where = str(repo or Path(__file__).resolve().parent)
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    commit = head.stdout.strip()
    return f"{commit} + uncommitted changes" if dirty.stdout.strip() else commit
