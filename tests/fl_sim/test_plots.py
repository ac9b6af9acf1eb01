"""fl_sim.plots: every helper takes ``ax=None`` and returns ``(fig, ax, data)``."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from fl_sim.history import History, RoundRecord
from fl_sim.partition import dirichlet, label_counts
from fl_sim.plots import plot_compression_errors, plot_label_distribution, plot_metric, plot_ranks


def _history(accuracy, bytes_per_round=1_000_000) -> History:
    records = [RoundRecord(round=r + 1, train_loss=1.0 / (r + 1), test_loss=None,
                           test_accuracy=a, bytes_up=bytes_per_round // 2,
                           bytes_down=bytes_per_round // 2, bytes_up_per_client=[],
                           bytes_down_per_client=[], ranks_down={"fc1": 4 + r},
                           ranks_up={"fc1": [2, 4 + r]}, err_server=0.1 * r,
                           err_client=0.2 * r, dist_sq=None, clients=[0, 1], seconds=0.0,
                           compress_seconds=0.0)
               for r, a in enumerate(accuracy)]
    return History(config={}, records=records)


@pytest.fixture
def close_all():
    yield
    plt.close("all")


def test_plot_metric_returns_the_plotted_points(close_all):
    runs = {"a": _history([0.5, None, 0.7]), "b": _history([0.1, 0.2, 0.3], 2_000_000)}
    fig, ax, data = plot_metric(runs, "test_accuracy", x="bytes")
    assert ax.figure is fig and len(ax.lines) == 2
    assert data["a"] == {"x": [1.0, 3.0], "y": [0.5, 0.7]}  # the None round is left out
    assert data["b"] == {"x": [2.0, 4.0, 6.0], "y": [0.1, 0.2, 0.3]}
    np.testing.assert_array_equal(ax.lines[0].get_xydata(), [[1.0, 0.5], [3.0, 0.7]])


def test_plot_metric_leaves_out_runs_without_points_and_checks_x(close_all):
    _, _, data = plot_metric({"a": _history([None, None])}, "test_accuracy")
    assert data == {}
    with pytest.raises(ValueError, match="x: expected"):
        plot_metric({}, x="time")


def test_plot_compression_errors_draws_on_given_axes(close_all):
    fig, ax = plt.subplots()
    out_fig, out_ax, data = plot_compression_errors(_history([0.5, 0.6]), ax=ax)
    assert out_fig is fig and out_ax is ax and len(ax.lines) == 2
    assert data == {"round": [1, 2], "err_server": [0.0, 0.1], "err_client": [0.0, 0.2]}


def test_plot_ranks_averages_the_uplink_over_clients(close_all):
    h = _history([0.5, 0.6])
    _, _, down = plot_ranks(h, "down")
    _, ax, up = plot_ranks(h, "up")
    assert down == {"round": [1, 2], "ranks": {"fc1": [4, 5]}}
    assert up == {"round": [1, 2], "ranks": {"fc1": [3.0, 3.5]}}
    assert ax.get_ylabel() == "rank (mean over clients)"
    with pytest.raises(ValueError, match="side"):
        plot_ranks(h, "sideways")


def balanced_labels(num_classes: int = 10, per_class: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(num_classes), per_class))


def test_plot_label_distribution_returns_counts_and_labels_axes(close_all):
    labels = balanced_labels()
    parts = dirichlet(labels, 12, alpha=0.5, rng=np.random.default_rng(0), min_size=5)
    fig, ax, counts = plot_label_distribution(labels, parts, max_clients=8)
    np.testing.assert_array_equal(counts, label_counts(labels, parts)[:8])
    assert ax.get_xlabel() and ax.get_ylabel() == "client"
    assert len(ax.get_legend().get_texts()) == 10
    assert len(ax.patches) == 8 * 10


def test_plot_label_distribution_draws_on_given_axes(close_all):
    fig, ax = plt.subplots()
    labels = np.array([0, 1, 1, 0])
    out_fig, out_ax, counts = plot_label_distribution(labels, [np.array([0, 1]),
                                                               np.array([2, 3])], ax=ax)
    assert out_fig is fig and out_ax is ax
    np.testing.assert_array_equal(counts, [[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="max_clients"):
        plot_label_distribution(labels, [np.array([0, 1, 2, 3])], max_clients=0)
