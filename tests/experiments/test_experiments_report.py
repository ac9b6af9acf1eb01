"""experiments.report on hand-made numbers: tabulate tables and (fig, ax, data) plots."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pytest

from experiments.report import (
    comm_table,
    convex_table,
    engines_text,
    paired_table,
    plot_convex_floors,
    plot_paired,
    plot_policies,
    plot_setting,
)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


SETTING = {
    "target": 0.9, "rounds": 3, "seeds": [0, 1],
    "rows": [{"algorithm": "fedavg", "acc_mean": 0.95, "acc_std": 0.01, "acc_gap": 0.0,
              "up_mb": 10.0, "down_mb": 10.0, "total_mb": 20.0, "ratio": 1.0,
              "to_target_mb": 12.0, "reached": 2, "seeds": 2, "to_target_ratio": 1.0,
              "seconds_per_round": 0.1},
             {"algorithm": "feddlr ratio:0.25", "acc_mean": 0.9, "acc_std": 0.02,
              "acc_gap": -0.05, "up_mb": 2.5, "down_mb": 2.5, "total_mb": 5.0, "ratio": 4.0,
              "to_target_mb": math.nan, "reached": 1, "seeds": 2,
              "to_target_ratio": math.nan, "seconds_per_round": 0.2}],
    "curves": {"fedavg": {"round": [1, 2, 3], "accuracy": [0.5, 0.8, 0.95],
                          "cumulative_mb": [6.0, 13.0, 20.0]},
               "topk": {"round": [1, 2, 3], "accuracy": [0.4, 0.7, 0.9],
                        "cumulative_mb": [1.0, 2.0, 3.0]}},
}


@pytest.fixture
def close_all():
    yield
    plt.close("all")


def test_comm_table_keeps_columns_and_formats():
    caption, blank, head, sep, *rows = comm_table(SETTING).splitlines()
    assert caption.startswith("Target accuracy 0.90") and blank == ""
    assert _cells(head)[0] == "algorithm" and len(_cells(head)) == 10 and sep.startswith("|--")
    assert _cells(rows[0])[:3] == ["fedavg", "0.9500 ± 0.0100", "+0.00 pt"]
    assert _cells(rows[1])[7:9] == ["- (1/2)", "-x"]  # nan shown as "-"


def test_paired_table_labels_and_extra_columns():
    rows = [{"N,K": (10, 5), "fedavg_acc": 0.9, "fedavg_std": 0.0, "feddlr_acc": 0.8,
             "feddlr_std": 0.1, "gap": 0.1, "fedavg_mb": 1.0, "feddlr_mb": 0.5, "ratio": 2.0,
             "C": 0.25},
            {"N,K": None, "fedavg_acc": 0.9, "fedavg_std": 0.0, "feddlr_acc": 0.8,
             "feddlr_std": 0.1, "gap": 0.1, "fedavg_mb": 1.0, "feddlr_mb": 0.5, "ratio": 2.0,
             "C": None}]
    head, _, first, second = paired_table(rows, "N,K", ("C",)).splitlines()
    assert _cells(head)[-1] == "C" and len(_cells(head)) == 8
    assert _cells(first)[0] == "N=10, K=5" and _cells(first)[-1] == "0.2500"
    assert _cells(second)[0] == "IID" and _cells(second)[-1] == "-"


def test_convex_table_shows_infinite_floor_and_never():
    c = {"rows": [{"rank": 1, "q2": 0.9, "e_s": 0.001, "e_c": 0.16, "floor_apriori": math.inf,
                   "floor_aposteriori": 2900.0, "floor_measured": 14.0, "rounds_pred": None,
                   "rounds_measured": None, "bytes_per_round_pred": 23680,
                   "bytes_per_round_measured": 23680.0, "acc_mean": 0.2}]}
    row = _cells(convex_table(c).splitlines()[2])
    assert row[4] == "inf" and row[8] == "never" and row[9] == "not in run"
    assert row[10] == row[11] == "23,680"


def test_engines_text_without_flower():
    e = {"rounds": 5, "fl_sim": {"fedavg": {"median_s": 0.01, "final_acc": 0.9}},
         "flower": {"status": "skipped"}}
    lines = engines_text(e).splitlines()
    assert _cells(lines[0])[2] == "median s/round (rounds 2..5)"
    assert _cells(lines[2]) == ["fl_sim (vectorized)", "fedavg", "0.0100", "0.9000"]
    assert lines[-1] == "Flower: skipped"


def test_plot_setting_returns_the_plotted_curves(close_all):
    fig, ax, data = plot_setting(SETTING, "mb")
    assert ax.figure is fig and ax.get_xscale() == "log"
    assert data["topk"] == {"x": [1.0, 2.0, 3.0], "accuracy": [0.4, 0.7, 0.9]}
    assert len(ax.lines) == 3  # two curves and the target line
    with pytest.raises(ValueError, match="x: expected"):
        plot_setting(SETTING, "seconds")


def test_parameter_plots_draw_on_given_axes(close_all):
    fig, axes = plt.subplots(1, 3)
    policy = {"rows": [{"policy": "-", "label": "fedavg", "total_mb": 20.0, "acc_mean": 0.95},
                       {"policy": "ratio:0.25", "label": "feddlr ratio:0.25", "total_mb": 5.0,
                        "acc_mean": 0.9}]}
    out_fig, out_ax, pts = plot_policies(policy, ax=axes[0])
    assert out_fig is fig and out_ax is axes[0]
    assert pts == {"fedavg": (20.0, 0.95), "feddlr ratio:0.25": (5.0, 0.9)}
    rows = [{"alpha": a, "fedavg_acc": 0.9, "fedavg_std": 0.01, "feddlr_acc": 0.85,
             "feddlr_std": 0.02} for a in (0.1, None)]
    _, ax, data = plot_paired(rows, "alpha", "alpha", ax=axes[1])
    assert ax is axes[1] and data["ticks"] == ["0.1", "IID"]
    assert data["feddlr"] == [0.85, 0.85] and data["fedavg_std"] == [0.01, 0.01]
    convex = {"rows": [{"rank": 2, "dist_curve": [4.0, 2.0, 1.0], "floor_aposteriori": 0.5}]}
    _, ax, floors = plot_convex_floors(convex, ax=axes[2])
    assert floors == {2: {"dist_sq": [4.0, 2.0, 1.0], "floor": 0.5}}
    assert ax.get_yscale() == "log" and len(ax.lines) == 2
