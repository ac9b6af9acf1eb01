"""The --quick mode of ``python -m experiments``: structure and sanity, not speed or accuracy."""

from __future__ import annotations

import json
import math

import pytest
import torch

from experiments.__main__ import main
from experiments.settings import QUICK
from fl_sim.json_file import read_json


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    threads = torch.get_num_threads()
    try:  # one thread: small matrices, and no oversubscription on shared CI cores
        assert main(["--quick", "--threads", "1", "--out", str(out), "--quiet"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out, read_json(out / "results.json")


def _finite(values) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


@pytest.mark.timeout(600)
def test_files_written(quick_run):
    out, _ = quick_run
    report = (out / "results.md").read_text()
    for section in ("## Targets", "## 1. Communication efficiency", "## 2. Key parameters",
                    "## 3. Computation", "## 4. Simulator performance"):
        assert section in report
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert "parameters.png" in pngs and "convex_floors.png" in pngs
    assert sum(p.startswith("comm_") for p in pngs) == len(QUICK.settings())
    for name in pngs:
        assert (out / name).stat().st_size < 400_000  # modest size
        assert f"]({name})" in report or f"/{name})" in report


def test_communication_rows_and_sanity(quick_run):
    _, res = quick_run
    assert [s["name"] for s in res["communication"]] == [s.name for s in QUICK.settings()]
    for s in res["communication"]:
        rows = {r["algorithm"]: r for r in s["rows"]}
        expected = [a.label for a in next(x for x in QUICK.settings() if x.name == s["name"]).algos]
        assert list(rows) == expected
        assert not any(r["any_nan"] for r in rows.values())
        assert _finite(r["acc_mean"] for r in rows.values())
        fedavg = rows["fedavg"]
        assert fedavg["ratio"] == pytest.approx(1.0)
        for label, r in rows.items():
            if label.startswith("feddlr"):
                assert r["total_mb"] < fedavg["total_mb"], label
            assert 0 <= r["acc_mean"] <= 1
        for c in s["curves"].values():
            assert _finite(c["accuracy"]) and c["cumulative_mb"] == sorted(c["cumulative_mb"])


def test_parameters_and_theory(quick_run):
    _, res = quick_run
    par = res["parameters"]
    assert [r["policy"] for r in par["policy"]["rows"]] == ["-", *QUICK.policies]
    for r in par["policy"]["rows"]:
        if r["predicted_mb_per_round"] is not None:  # bytes are predicted exactly a priori
            assert r["predicted_mb_per_round"] == pytest.approx(r["mb_per_round"], rel=1e-9)
    assert [r["E"] for r in par["E"]["rows"]] == list(QUICK.local_steps)
    assert len(par["NK"]["rows"]) == len(QUICK.clients)
    assert len(par["alpha"]["rows"]) == len(QUICK.alphas)
    conv = par["convex"]
    assert len(conv["rows"]) == 1 + len(QUICK.convex_ranks)
    for r in conv["rows"]:
        assert r["bytes_per_round_pred"] == pytest.approx(r["bytes_per_round_measured"])
        assert _finite([r["floor_aposteriori"], r["floor_measured"]])


def test_computation_and_engines(quick_run):
    _, res = quick_run
    rows = res["computation"]["rows"]
    assert rows and all(r["params_compact"] < r["params_dense"] for r in rows)
    assert all(r["flops_compact"] < r["flops_dense"] for r in rows)
    for r in rows:
        assert _finite(t["speedup"] for t in r["timing"].values())
    eng = res["engines"]
    assert _finite(v["median_s"] for v in eng["fl_sim"].values())
    assert "status" in eng["flower"]
    assert set(res["targets"]) == {"communication", "computation", "feddlr_ef",
                                   "compact_vs_fedavg"}
    sources = {r["source"] for r in rows}
    assert {"feddlr_ef truncated", "fedhm (native)", "fedlmt (native)"} <= sources
    for r in rows:
        if r["source"].endswith("(native)"):  # the trained model is the compact model
            assert r["acc_dense"] == pytest.approx(r["acc_compact"], abs=1e-3)


def test_lowrank_methods_pareto_verdicts_and_hyperparameters(quick_run):
    out, res = quick_run
    report = (out / "results.md").read_text()
    assert "## Verdicts on the paper's claims" in report
    assert "## 5. Low-rank methods: one equal-budget hyperparameter grid" in report
    pngs = {p.name for p in out.glob("pareto_*.png")}
    assert pngs == {f"pareto_{s.name}.png" for s in QUICK.settings()}
    names = [s["name"] for s in res["communication"]]
    assert "mnist1d_mlp_dirichlet-1.0" in names and "mnist1d_cnn1d_dirichlet-1.0" in names
    labels = {r["algorithm"] for s in res["communication"] for r in s["rows"]}
    for method in ("feddlr_ef", "fedhm", "fedlmt", "fedpara", "fedmud"):
        assert any(lab.split(" ")[0] == method for lab in labels), method
    h = res["hyperparams"]
    per_method = {}
    for r in h["rows"]:
        per_method[r["method"]] = per_method.get(r["method"], 0) + 1
    assert len(set(per_method.values())) == 1  # the same budget for every method
    assert set(per_method) == {"fedavg", "feddlr", "feddlr_ef", "fedhm", "fedlmt", "fedpara",
                               "fedmud"}
    kinds = {(v["claim"], v["method"]) for v in verdict_rows(res)}
    assert ("communication", "feddlr") in kinds and ("computation", "feddlr") in kinds


def verdict_rows(res):
    from experiments.report import verdicts

    return verdicts(res)


def test_results_json_is_strict(quick_run):
    out, _ = quick_run

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    json.loads((out / "results.json").read_text(), parse_constant=refuse)


def test_rebuild_reproduces_the_report(quick_run):
    out, res = quick_run
    report = (out / "results.md").read_text()
    assert main(["--rebuild", "--out", str(out)]) == 0
    assert (out / "results.md").read_text() == report
    assert read_json(out / "results.json")["targets"] == res["targets"]
