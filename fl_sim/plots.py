"""Plot helpers in the ``ax=None -> (fig, ax)`` style; no ``plt.show()`` here."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .history import History

__all__ = ["plot_metric", "plot_compression_errors", "plot_ranks"]

_LABELS = {"test_accuracy": "test accuracy", "test_loss": "test loss",
           "train_loss": "training objective F(w)", "dist_sq": "||w - w*||^2"}


def _axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
        return fig, ax
    return ax.figure, ax


def plot_metric(
    histories: Mapping[str, History],
    metric: str = "test_accuracy",
    x: str = "round",
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """One curve per run: a metric against rounds or cumulative bytes.

    Parameters
    ----------
    histories : Mapping[str, History]
        Label -> history.
    metric : str
        A :class:`RoundRecord` field (``test_accuracy``, ``train_loss``, ``dist_sq``...).
    x : {"round", "bytes"}
        Horizontal axis: round number or cumulative bytes (up + down, all clients).
    ax : Axes, optional
        Where to draw; a new figure if omitted.
    """
    if x not in ("round", "bytes"):
        raise ValueError(f"x: expected 'round' or 'bytes', got {x!r}")
    fig, ax = _axes(ax)
    for label, h in histories.items():
        xs = h.column("round") if x == "round" else [b / 1e6 for b in h.cumulative_bytes]
        pts = [(a, b) for a, b in zip(xs, h.column(metric), strict=True) if b is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), label=label, marker="." if len(pts) < 40 else None)
    ax.set_xlabel("round" if x == "round" else "cumulative bytes sent (MB, up + down)")
    ax.set_ylabel(_LABELS.get(metric, metric))
    if metric in ("dist_sq", "train_loss") and x == "round":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig, ax


def plot_compression_errors(history: History, ax: Axes | None = None) -> tuple[Figure, Axes]:
    """Server-side and client-side compression errors per round (the theory's e_s, e_c)."""
    fig, ax = _axes(ax)
    rounds = history.column("round")
    ax.plot(rounds, history.column("err_server"), label=r"server $\|C_s(w_r)-w_r\|$")
    ax.plot(rounds, history.column("err_client"),
            label=r"clients $\|\sum_k a_k (C_c(w^k)-w^k)\|$")
    ax.set_xlabel("round")
    ax.set_ylabel("compression error (Frobenius)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig, ax


def plot_ranks(history: History, side: str = "down", ax: Axes | None = None
               ) -> tuple[Figure, Axes]:
    """Rank of each layer per round; for the uplink, the mean over participants."""
    if side not in ("down", "up"):
        raise ValueError(f"side: expected 'down' or 'up', got {side!r}")
    fig, ax = _axes(ax)
    rounds = history.column("round")
    per_round = history.column(f"ranks_{side}")
    layers = sorted({name for ranks in per_round for name in ranks})
    for name in layers:
        values = [r.get(name) for r in per_round]
        values = [sum(v) / len(v) if isinstance(v, list) else v for v in values]
        ax.plot(rounds, values, label=name)
    ax.set_xlabel("round")
    ax.set_ylabel(f"rank ({'server' if side == 'down' else 'mean over clients'})")
    ax.grid(alpha=0.3)
    if layers:
        ax.legend(fontsize="small")
    return fig, ax
