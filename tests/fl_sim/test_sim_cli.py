"""The command line writes histories, plots and a summary; the export keeps accuracy."""

from __future__ import annotations

import json

import torch

from fl_sim import SimConfig, run
from fl_sim.cli import main
from fl_sim.evaluation import evaluate
from fl_sim.export import export_compact

TINY = ["--num-clients", "4", "--rounds", "2", "--local-steps", "2", "--model-kwargs",
        '{"hidden": [8]}', "--partition", "iid", "--device", "cpu"]


def test_run_writes_history_and_plots(tmp_path, capsys):
    assert main(["run", "--algorithm", "feddlr", "--policy-up", "fixed:2",
                 "--output-dir", str(tmp_path), *TINY]) == 0
    history = json.loads((tmp_path / "feddlr.history.json").read_text())
    assert history["config"]["policy_up"] == "fixed:2"
    assert len(history["records"]) == 2
    assert (tmp_path / "feddlr_test_accuracy.png").stat().st_size > 1000
    assert (tmp_path / "feddlr_compression_errors.png").exists()
    assert "final acc" in capsys.readouterr().out


def test_compare_runs_each_algorithm_into_one_plot(tmp_path, capsys):
    assert main(["compare", "--algorithms", "fedavg", "feddlr", "qsgd", "--policy-down", "fixed:2",
                 "--policy-up", "fixed:2",
                 "--output-dir", str(tmp_path), *TINY]) == 0
    for name in ("fedavg", "feddlr", "qsgd"):
        assert (tmp_path / f"{name}.history.csv").exists()
    assert (tmp_path / "compare_test_accuracy.png").exists()
    out = capsys.readouterr().out
    assert "1.00x" in out  # fedavg's own bytes ratio
    table = [line for line in out.splitlines() if line.startswith("feddlr")]
    assert table and float(table[0].split()[-1].rstrip("x")) > 1.0  # FedDLR sends fewer bytes


def test_exported_compact_model_matches_the_broadcast_model():
    cfg = SimConfig(num_clients=4, rounds=3, model_kwargs={"hidden": [32, 32]},
                    algorithm="feddlr", policy_down="fixed:4", policy_up="fixed:4",
                    partition="iid", device="cpu", policy_overrides={"*out*": None})
    result = run(cfg)
    sim = result.simulation
    dense, compact, report = export_compact(sim.model, result.params, cfg.policy_down,
                                            overrides=cfg.policy_overrides)
    assert report.ranks == {"net.fc1": 4, "net.fc2": 4} and "net.out" in report.kept_dense
    assert report.params_after < report.params_before
    # the compact model computes exactly what the truncated (broadcast) model computes
    from lowrank import compress_state

    broadcast = compress_state(result.params, "fixed:4",
                               overrides=cfg.policy_overrides).decompress()
    with torch.no_grad():
        ref = torch.func.functional_call(sim.model, broadcast, (sim.data.test_x,))
        torch.testing.assert_close(compact(sim.data.test_x), ref, rtol=1e-4, atol=1e-5)
    acc = evaluate(sim.model, broadcast, sim.data.test_x, sim.data.test_y, "classification")
    assert acc.accuracy == float((ref.argmax(-1) == sim.data.test_y).double().mean())
