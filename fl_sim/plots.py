"""Plot helpers: each takes ``ax=None`` and returns ``(fig, ax, data)``; no ``plt.show()``.

``data`` is what was drawn (the plotted numbers), so a caller can test, tabulate or
re-plot it without reading the artists back. No helper selects a matplotlib backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ._validation import _check_int
from .history import History
from .partition import label_counts

__all__ = ["plot_metric", "plot_compression_errors", "plot_ranks", "plot_label_distribution"]

_LABELS = {"test_accuracy": "test accuracy", "test_loss": "test loss",
           "train_loss": "training objective F(w)", "dist_sq": "||w - w*||^2"}


def _axes(ax: Axes | None, figsize: tuple[float, float] = (6, 4)) -> tuple[Figure, Axes]:
    """``(ax.figure, ax)``, or a new figure of size ``figsize`` with one axes if ``ax`` is None."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_metric(
    histories: Mapping[str, History],
    metric: str = "test_accuracy",
    x: str = "round",
    ax: Axes | None = None,
) -> tuple[Figure, Axes, dict[str, dict[str, list[float]]]]:
    """One curve per run: a metric against rounds or cumulative bytes.

    Parameters
    ----------
    histories : Mapping[str, History]
        Label -> history.
    metric : str
        A :class:`RoundRecord` field (``test_accuracy``, ``train_loss``, ``dist_sq``...).
    x : {"round", "bytes"}
        Horizontal axis: round number or cumulative bytes (up + down, all clients), in MB.
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        Label -> ``{"x": [...], "y": [...]}``: the plotted points (rounds or MB, and the
        metric), rounds where the metric is ``None`` left out. A run with no such
        point is absent.
    """
    if x not in ("round", "bytes"):
        raise ValueError(f"x: expected 'round' or 'bytes', got {x!r}")
    fig, ax = _axes(ax)
    data: dict[str, dict[str, list[float]]] = {}
    for label, h in histories.items():
        xs = h.column("round") if x == "round" else [b / 1e6 for b in h.cumulative_bytes]
        pts = [(a, b) for a, b in zip(xs, h.column(metric), strict=True) if b is not None]
        if pts:
            px, py = (list(v) for v in zip(*pts, strict=True))
            ax.plot(px, py, label=label, marker="." if len(pts) < 40 else None)
            data[label] = {"x": px, "y": py}
    ax.set_xlabel("round" if x == "round" else "cumulative bytes sent (MB, up + down)")
    ax.set_ylabel(_LABELS.get(metric, metric))
    if metric in ("dist_sq", "train_loss") and x == "round":
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if data:
        ax.legend()
    return fig, ax, data


def plot_compression_errors(
    history: History, ax: Axes | None = None
) -> tuple[Figure, Axes, dict[str, list[float]]]:
    """Server-side and client-side compression errors per round (the theory's e_s, e_c).

    Parameters
    ----------
    history : History
        One run.
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        ``round``, ``err_server`` and ``err_client``: the plotted values, one per round.
    """
    fig, ax = _axes(ax)
    data = {name: list(history.column(name)) for name in ("round", "err_server", "err_client")}
    ax.plot(data["round"], data["err_server"], label=r"server $\|C_s(w_r)-w_r\|$")
    ax.plot(data["round"], data["err_client"],
            label=r"clients $\|\sum_k a_k (C_c(w^k)-w^k)\|$")
    ax.set_xlabel("round")
    ax.set_ylabel("compression error (Frobenius)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig, ax, data


def plot_ranks(
    history: History, side: str = "down", ax: Axes | None = None
) -> tuple[Figure, Axes, dict[str, Any]]:
    """Rank of each layer per round; for the uplink, the mean over participants.

    Parameters
    ----------
    history : History
        One run.
    side : {"down", "up"}
        The server's broadcast (``ranks_down``) or the clients' uploads (``ranks_up``).
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        ``round``: the rounds; ``ranks``: layer name -> plotted rank per round (``None``
        where the layer was sent dense).
    """
    if side not in ("down", "up"):
        raise ValueError(f"side: expected 'down' or 'up', got {side!r}")
    fig, ax = _axes(ax)
    rounds = list(history.column("round"))
    per_round = history.column(f"ranks_{side}")
    layers = sorted({name for ranks in per_round for name in ranks})
    ranks: dict[str, list[float | None]] = {}
    for name in layers:
        values = [r.get(name) for r in per_round]
        ranks[name] = [sum(v) / len(v) if isinstance(v, list) else v for v in values]
        ax.plot(rounds, ranks[name], label=name)
    ax.set_xlabel("round")
    ax.set_ylabel(f"rank ({'server' if side == 'down' else 'mean over clients'})")
    ax.grid(alpha=0.3)
    if layers:
        ax.legend(fontsize="small")
    return fig, ax, {"round": rounds, "ranks": ranks}


def plot_label_distribution(
    labels: Any,
    parts: Sequence[np.ndarray],
    num_classes: int | None = None,
    ax: Axes | None = None,
    max_clients: int = 30,
) -> tuple[Figure, Axes, np.ndarray]:
    """Stacked horizontal bars: how many samples of each class every client holds.

    Parameters
    ----------
    labels : array_like of int
        Class label of every sample, shape ``(N,)``.
    parts : sequence of numpy.ndarray
        Index arrays, one per client.
    num_classes : int, optional
        Number of classes; defaults to ``max(labels) + 1``.
    ax : Axes, optional
        Where to draw; a new figure if omitted.
    max_clients : int, default 30
        Plot only the first ``max_clients`` clients.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : numpy.ndarray
        int64 ``(plotted_clients, num_classes)``: the plotted counts, the first rows of
        :func:`fl_sim.partition.label_counts`.
    """
    max_clients = _check_int(max_clients, "max_clients", minimum=1)
    counts = label_counts(labels, parts, num_classes)[:max_clients]
    fig, ax = _axes(ax, (7, max(2.0, 0.25 * counts.shape[0] + 1)))
    clients = np.arange(counts.shape[0])
    left = np.zeros(counts.shape[0])
    for c in range(counts.shape[1]):
        ax.barh(clients, counts[:, c], left=left, label=str(c))
        left += counts[:, c]
    ax.set_xlabel("number of samples")
    ax.set_ylabel("client")
    ax.set_yticks(clients)
    ax.invert_yaxis()
    ax.set_title(f"label distribution ({counts.shape[0]} of {len(parts)} clients)")
    ax.legend(title="class", bbox_to_anchor=(1.02, 1), loc="upper left", fontsize="small")
    return fig, ax, counts
