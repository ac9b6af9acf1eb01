"""experiments.report's Pareto front and verdicts on hand-made rows."""

from __future__ import annotations

from experiments.report import pareto_front, plot_pareto, verdicts


def _row(label, mb, acc, ratio=2.0):
    return {"algorithm": label, "total_mb": mb, "acc_mean": acc, "acc_std": 0.0,
            "ratio": ratio}


def test_pareto_front_keeps_only_undominated_points():
    pts = [("a", 10, 0.9), ("b", 5, 0.8), ("c", 6, 0.7), ("d", 20, 0.9), ("e", 1, 0.1)]
    assert pareto_front(pts) == ["e", "b", "a"]


def test_verdicts_on_hand_made_rows():
    setting = {"title": "S", "rows": [
        _row("fedavg", 100, 0.95, 1.0), _row("feddlr ratio:0.25", 50, 0.90),
        _row("feddlr_ef ratio:0.25", 40, 0.94), _row("fedhm ratio:0.25", 45, 0.91),
        _row("fedlmt ratio:0.25", 50, 0.89)]}
    v = {(x["claim"], x["method"]): x["verdict"] for x in verdicts(
        {"communication": [setting], "computation": {"rows": []}})}
    # feddlr (50 MB, 0.90) is dominated by fedhm (45, 0.91) and dominates only fedlmt
    assert v[("communication", "feddlr")] == "loses"
    assert v[("communication", "feddlr_ef")] == "beats"  # (40, 0.94) dominates both
    fig, ax, data = plot_pareto(setting)
    assert data["feddlr_ef ratio:0.25"] == (40, 0.94)


def test_computation_verdict_needs_a_strict_advantage():
    def row(source, acc, flops):
        return {"policy": "ratio:0.25", "source": source, "acc_compact": acc,
                "flops_compact": flops}

    comp = {"rows": [row("feddlr", 0.9, 100), row("fedhm (native)", 0.9, 100),
                     row("fedlmt (native)", 0.9, 100)]}
    v = verdicts({"communication": [], "computation": comp})
    assert [x["verdict"] for x in v] == ["ties"]
    comp["rows"][1] = row("fedhm (native)", 0.85, 100)
    comp["rows"][2] = row("fedlmt (native)", 0.9, 120)
    assert verdicts({"communication": [], "computation": comp})[0]["verdict"] == "beats"
    comp["rows"][0] = row("feddlr", 0.8, 100)
    assert verdicts({"communication": [], "computation": comp})[0]["verdict"] == "mixed"


def test_runner_halves_the_learning_rate_after_a_divergence(monkeypatch):
    import experiments.runner as runner_module
    from experiments.runner import Runner
    from fl_sim import SimConfig
    from fl_sim.simulator import DivergenceError

    real_run, seen = runner_module.run, []

    def flaky_run(cfg, **kwargs):
        seen.append(cfg.lr)
        if cfg.lr > 0.15:
            raise DivergenceError("train_loss: diverging")
        return real_run(cfg, **kwargs)

    monkeypatch.setattr(runner_module, "run", flaky_run)
    runner = Runner(verbose=False)
    cfg = SimConfig(algorithm="fedavg", num_clients=3, rounds=1, lr=0.4, device="cpu",
                    model_kwargs={"hidden": [8]})
    result = runner(cfg)
    assert seen == [0.4, 0.2, 0.1] and result.history.config["lr"] == 0.1
    assert runner.backoffs == [("fedavg", 0, 0.4), ("fedavg", 0, 0.2)]
    monkeypatch.setattr(runner_module, "run", lambda cfg, **kw: flaky_run(cfg.replace(lr=1.0)))
    import pytest

    with pytest.raises(DivergenceError):
        runner(cfg)
