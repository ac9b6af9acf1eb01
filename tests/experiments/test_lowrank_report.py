"""experiments.report's Pareto front and verdicts on hand-made rows."""

from __future__ import annotations

import math

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
    # a row whose numbers rest on fewer seeds says so in the evidence
    setting["rows"][4]["diverged"] = [{"seed": 1, "lrs": [0.1, 0.05, 0.025]}]
    ev = {x["method"]: x["evidence"] for x in verdicts(
        {"communication": [setting], "computation": {"rows": []}})}
    assert "fedlmt ratio:0.25 [1 seed diverged: mean of the rest]" in ev["feddlr_ef"]
    assert "fedhm ratio:0.25 [" not in ev["feddlr_ef"]


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

    with pytest.raises(runner_module.Diverged) as err:
        runner(cfg)
    assert err.value.lrs == (0.4, 0.2, 0.1) and runner.diverged == [err.value]


def test_a_run_diverging_at_every_rate_is_a_reported_row_not_a_stop(tmp_path):
    """A config forced to diverge (lr 1e4): a 'diverged' outcome with the rates tried,
    left out of the row's means and curve, named in the row and counted in the report."""
    import math

    from experiments.communication import run_setting
    from experiments.report import comm_table, diverged_runs, plot_pareto, verdicts
    from experiments.runner import Runner, diverged_lrs, seed_stats
    from experiments.settings import Algo, Setting
    from fl_sim import SimConfig

    base = SimConfig(algorithm="fedavg", num_clients=3, rounds=2, lr=0.1, device="cpu",
                     model_kwargs={"hidden": [8]})
    hot = Algo("fedhm hot", {"lr": 1e4})  # a SOTA-family label, so verdicts see it
    setting = Setting("tiny", "tiny", base, (Algo("fedavg"), Algo("feddlr ratio:0.25", {
        "algorithm": "feddlr"}), hot))
    runner = Runner(verbose=False)
    hs = runner.seeds(hot.config(base), [0, 1])
    assert [diverged_lrs(h) for h in hs] == [[1e4, 5e3, 2.5e3]] * 2
    assert all(h.records == [] for h in hs) and len(runner.diverged) == 2
    st = seed_stats(hs)
    assert st.diverged == 2 and math.isnan(st.acc_mean)
    out = run_setting(setting, [0, 1], runner, runs={"fedhm hot": hs})
    row = out["rows"][2]
    assert row["diverged"] == [{"seed": 0, "lrs": [1e4, 5e3, 2.5e3]},
                               {"seed": 1, "lrs": [1e4, 5e3, 2.5e3]}]
    assert math.isnan(row["acc_mean"]) and row["seeds"] == 0 and "fedhm hot" not in out["curves"]
    assert out["rows"][1]["diverged"] == [] and math.isfinite(out["rows"][1]["acc_mean"])
    text = comm_table(out)
    assert "seed 1 diverged at lr 10000/5000/2500** (excluded)" in text
    assert "**2 seed run(s) diverged at all three rates**" in text
    assert len(diverged_runs({"communication": [out]})) == 2
    assert verdicts({"communication": [out]}) == []  # the only SOTA row has no numbers
    _, _, data = plot_pareto(out)
    assert set(data) == {"fedavg", "feddlr ratio:0.25"}
    # one seed diverging: the row's means are over the other seed only
    mixed = [runner.seeds(base, [0])[0], hs[1]]
    row = run_setting(setting, [0, 1], runner, runs={"fedhm hot": mixed})["rows"][2]
    assert row["seeds"] == 1 and row["acc_mean"] == mixed[0].column("test_accuracy")[-1]
    assert row["diverged"] == [{"seed": 1, "lrs": [1e4, 5e3, 2.5e3]}]


def test_a_diverged_error_crosses_a_process_boundary():
    """``--jobs N`` parts raise in worker processes: the error must unpickle whole."""
    import pickle

    from experiments.runner import Diverged

    err = pickle.loads(pickle.dumps(Diverged("fedpara", 1, (0.1, 0.05), "non-finite loss")))
    assert (err.algorithm, err.seed, err.lrs) == ("fedpara", 1, (0.1, 0.05))
    assert "fedpara seed 1 diverged at lr 0.1/0.05: non-finite loss" in str(err)


def test_a_setting_whose_every_fedavg_seed_diverged_has_no_target_and_no_crash():
    from experiments.communication import run_setting
    from experiments.runner import Runner
    from experiments.settings import Algo, Setting
    from fl_sim import History, SimConfig

    base = SimConfig(algorithm="fedavg", num_clients=3, rounds=2, lr=0.1, device="cpu",
                     model_kwargs={"hidden": [8]})
    setting = Setting("tiny", "tiny", base, (Algo("fedavg"),))
    hs = [History(config={**base.replace(seed=s).to_dict(), "diverged_lrs": [0.1, 0.05]})
          for s in (0, 1)]
    res = run_setting(setting, [0, 1], Runner(verbose=False), runs={"fedavg": hs})
    assert math.isnan(res["target"])
    assert len(res["rows"][0]["diverged"]) == 2
