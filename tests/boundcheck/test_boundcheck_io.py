"""JSON round trip, plots, CLI, floor ordering."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import boundcheck as bc
from boundcheck.cli import main
from boundcheck.floors import ordering_agrees
from boundcheck.grid import markdown_table
from boundcheck.plots import plot_report


@pytest.fixture(scope="module")
def small():
    prob = bc.ridge_problem(num_clients=3, samples_per_client=20, dim=6, out_dim=3)
    rep = bc.check(prob.config(algorithm="feddlr", policy_down="fixed:1", policy_up="fixed:1",
                               local_steps=2, rounds=4), prob, seeds=2)
    return prob, rep


def test_report_json_round_trip(small, tmp_path):
    _, rep = small
    back = bc.BoundReport.load_json(rep.save_json(tmp_path / "r.json"))
    for name in ("bound_dist_sq", "measured_dist_sq", "ratio", "e_s", "e_c", "measured_min"):
        np.testing.assert_array_equal(getattr(back, name), getattr(rep, name))
    assert back.label == rep.label and back.seeds == rep.seeds
    assert back.to_dict() == rep.to_dict()
    assert back.holds == rep.holds and back.summary() == rep.summary()


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_report_json_keeps_non_finite_constants(small, tmp_path):
    _, rep = small
    odd = dataclasses.replace(rep, constants={**rep.constants, "x": math.inf,
                                              "y": [-math.inf, math.nan]})
    path = odd.save_json(tmp_path / "odd.json")
    raw = _strict(path.read_text())
    assert raw["constants"]["x"] == "inf" and raw["constants"]["y"] == ["-inf", "nan"]
    back = bc.BoundReport.load_json(path)
    assert back.constants["x"] == math.inf and back.constants["y"][0] == -math.inf
    assert math.isnan(back.constants["y"][1])
    assert bc.BoundReport.from_dict(odd.to_dict()).constants["x"] == math.inf


def test_grid_markdown_table_has_one_row_per_report(small):
    _, rep = small
    lines = markdown_table([rep, rep]).splitlines()
    assert len(lines) == 4 and lines[1].startswith("|--")
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert head[:3] == ["config", "rounds", "seeds"] and len(head) == len(row) == 13
    s = rep.summary()
    assert row[:3] == [rep.label, str(s["rounds"]), str(s["seeds"])]
    assert row[3] == f"{s['tightness']:.3g}" and row[6] == ("yes" if s["holds"] else "NO")
    assert row[10:] == ["n/a"] * 3  # Li's bound only


def test_grid_table_puts_the_exact_bound_beside_li(small):
    from boundcheck.grid import row_holds

    prob, _ = small
    rep = bc.check(prob.config(algorithm="feddlr", policy_down="fixed:1", policy_up="fixed:1",
                               local_steps=2, rounds=4, batch_size=None), prob, seeds=2,
                   bound="exact")
    row = [c.strip() for c in markdown_table([rep]).splitlines()[2].strip("|").split("|")]
    li, s = rep.constants["lemma3_drift"], rep.summary()
    assert row[3] == f"{li['tightness']:.3g}" and row[10] == f"{s['max_ratio']:.3g}"
    assert float(row[3]) > 5 * float(row[11])  # Li et al. far above the exact bound
    assert row_holds(rep) and row[12] == "yes"


def test_plot_returns_fig_ax_data(small):
    _, rep = small
    fig, ax, data = plot_report(rep)
    assert ax.get_yscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
    np.testing.assert_array_equal(data["bound"], rep.bound_dist_sq)
    assert len(ax.collections) == 1  # the min-max band


def test_cli_check_writes_png_and_json(tmp_path):
    code = main(["check", "--problem", "ridge", "--rounds", "3", "--local-steps", "2",
                 "--seeds", "2", "--policy", "fixed:2", "--out", str(tmp_path)])
    assert code == 0
    pngs, jsons = list(tmp_path.glob("*.png")), list(tmp_path.glob("*.json"))
    assert len(pngs) == 1 and pngs[0].stat().st_size > 1000
    rep = bc.BoundReport.load_json(jsons[0])
    assert rep.holds and rep.num_rounds == 3


def test_cli_check_refuses_large_lr(tmp_path):
    with pytest.raises(ValueError, match="Lemma 1"):
        main(["check", "--rounds", "2", "--lr", "10", "--seeds", "2", "--out", str(tmp_path)])


def test_floor_ordering_tiny(small):
    prob, _ = small
    base = prob.config(local_steps=3, rounds=25)
    fc = bc.floor_ordering(prob, base, ranks=(1, 3), seeds=2)
    # rank 3 of a 3 x 6 weight is sent dense: no compression error, the lower floor
    assert fc.e_c[1] == 0 and fc.e_c[0] > 0
    assert fc.measured_dist_sq[0] > fc.measured_dist_sq[1]
    assert fc.agrees and fc.predicted_order == [1, 3]
    assert all(p >= m for p, m in zip(fc.predicted_dist_sq, fc.measured_dist_sq, strict=True))
    table = fc.markdown().splitlines()
    assert table[0].startswith("| rank ") and table[1].startswith("|--")
    assert [r.split("|")[1].strip() for r in table[2:4]] == ["1", "3"]
    assert table[-1].endswith("agree.")


def test_ordering_agrees():
    assert ordering_agrees([3, 2, 1], [30, 20, 10])
    assert not ordering_agrees([3, 2, 1], [30, 10, 20])
    assert ordering_agrees([1.0, 1.0, 2.0], [1.0, 1.0 + 1e-14, 2.0])  # ties to rounding
    assert not ordering_agrees([1.0, 1.0, 2.0], [1.0, 1.1, 2.0])
