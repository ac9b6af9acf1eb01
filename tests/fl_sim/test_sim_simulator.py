"""End-to-end properties of ``fl_sim.run``: GD equivalence, determinism, resume, bad input."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from fl_sim import History, SimConfig, run
from fl_sim.federated_data import build_federated_data, data_from_config
from fl_sim.rng import purpose_seed

TIMING = {"seconds", "compress_seconds"}

SMALL = SimConfig(dataset="digits", model="mlp", model_kwargs={"hidden": [16]},
                  num_clients=6, partition="iid", rounds=3, local_steps=2, batch_size=5,
                  lr=0.1, policy_down="fixed:4", policy_up="fixed:3", device="cpu")


def _records(h: History) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(r).items() if k not in TIMING}
            for r in h.records]


def test_fedavg_one_client_full_batch_one_step_is_gradient_descent():
    cfg = SimConfig(dataset="digits", model="logreg", num_clients=1, partition="iid",
                    rounds=4, local_steps=1, batch_size=None, lr=0.5, weight_decay=0.01,
                    algorithm="fedavg", dtype="float64", device="cpu")
    result = run(cfg)
    h, sim = result.history, result.simulation
    w = {n: p.detach().clone().requires_grad_(True) for n, p in sim.model.named_parameters()}
    x, y = sim.data.train_x, sim.data.train_y
    for _ in range(cfg.rounds):
        logits = torch.func.functional_call(sim.model, w, (x,))
        loss = torch.nn.functional.cross_entropy(logits, y) + 0.005 * sum(
            p.square().sum() for p in w.values())
        grads = torch.autograd.grad(loss, list(w.values()))
        w = {n: (p - 0.5 * g).detach().requires_grad_(True)
             for (n, p), g in zip(w.items(), grads, strict=True)}
    for n, p in result.params.items():
        torch.testing.assert_close(p, w[n].detach(), rtol=1e-10, atol=1e-12)
    # and the recorded objective is F(w) of that iterate
    final = loss.detach()  # objective at the previous iterate: must have decreased since
    assert h.records[-1].train_loss < float(final)


def test_feddlr_at_full_rank_equals_fedavg():
    base = SMALL.replace(dtype="float64", policy_down="fixed:1000", policy_up="fixed:1000",
                         min_compression_rate=1e-6)
    h_avg = run(base.replace(algorithm="fedavg")).history
    h_dlr = run(base.replace(algorithm="feddlr")).history
    for a, b in zip(h_avg.records, h_dlr.records, strict=True):
        assert a.test_accuracy == b.test_accuracy
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-9)
    assert h_dlr.records[-1].ranks_down["net.fc1.weight"] == 16  # sent as full-rank factors


def test_same_config_and_seed_give_identical_history():
    a, b = run(SMALL).history, run(SMALL).history
    assert _records(a) == _records(b)
    assert _records(run(SMALL.replace(seed=1)).history) != _records(a)


def test_vectorized_and_sequential_give_the_same_history():
    base = SMALL.replace(dtype="float64", algorithm="feddlr")
    vec, seq = run(base).history, run(base.replace(vectorized=False)).history
    for a, b in zip(vec.records, seq.records, strict=True):
        assert a.ranks_up == b.ranks_up and a.bytes_up == b.bytes_up
        assert a.train_loss == pytest.approx(b.train_loss, rel=1e-9)
        assert a.err_client == pytest.approx(b.err_client, rel=1e-6)


@pytest.mark.parametrize("algorithm", ["feddlr", "topk_ef", "lowrank_update"])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, algorithm):
    cfg = SMALL.replace(algorithm=algorithm, rounds=4, participation="scheme2",
                        clients_per_round=3)
    full = run(cfg)
    run(cfg.replace(rounds=2, checkpoint_every=2, output_dir=str(tmp_path)))
    ckpt = tmp_path / "checkpoint.pt"
    assert torch.load(ckpt, weights_only=True)["round"] == 2  # loads without pickle
    resumed = run(cfg, resume_from=ckpt)  # extended from 2 to 4 rounds
    assert _records(resumed.history) == _records(full.history)
    for n, p in full.params.items():
        assert torch.equal(p, resumed.params[n])


def test_resume_with_another_config_is_refused(tmp_path):
    cfg = SMALL.replace(checkpoint_every=1, output_dir=str(tmp_path))
    run(cfg)
    with pytest.raises(ValueError, match="different config.*lr"):
        run(cfg.replace(lr=0.3), resume_from=tmp_path / "checkpoint.pt")


def test_history_json_and_csv_round_trip(tmp_path):
    h = run(SMALL.replace(algorithm="feddlr")).history
    back = History.load_json(h.save_json(tmp_path / "h.json"))
    assert back.records == h.records and back.config == h.config
    lines = h.save_csv(tmp_path / "h.csv").read_text().splitlines()
    assert len(lines) == 1 + SMALL.rounds and lines[0].startswith("round,train_loss")
    assert json.loads(lines[1].split(",\"")[0].split(",")[0]) == 1


def test_byte_ledger_matches_the_compressors():
    h = run(SMALL.replace(algorithm="feddlr")).history
    for r in h.records:
        assert r.bytes_up == sum(r.bytes_up_per_client)
        assert r.bytes_down == sum(r.bytes_down_per_client)
    # fc1 is 16x64 at rank 4 down: 4*(16+64)*4 bytes, plus raw biases and the 10x16
    # classifier, dense by the default policy_overrides {"*out*": None}
    down = h.records[0].bytes_down_per_client[0]
    assert down == 4 * 80 * 4 + 16 * 4 + 10 * 16 * 4 + 10 * 4
    fedavg = run(SMALL.replace(algorithm="fedavg")).history
    dense = (16 * 64 + 16 + 10 * 16 + 10) * 4
    assert fedavg.records[0].bytes_down_per_client == [dense] * 6
    assert h.cumulative_bytes[-1] < fedavg.cumulative_bytes[-1]


def test_prebuilt_data_gives_the_same_run():
    data = data_from_config(SMALL)
    assert _records(run(SMALL, data=data).history) == _records(run(SMALL).history)


def test_the_data_seed_is_its_own_stream():
    # the data builder gets the "data" child of the seed, not the seed itself, so its
    # internal streams never coincide with the runtime streams (init, sampling, ...)
    own = build_federated_data("digits", 6, "iid", purpose_seed(0, "data"), alpha=0.5,
                               test_fraction=0.2)
    assert torch.equal(data_from_config(SMALL).train_y, own.train_y)
    raw = build_federated_data("digits", 6, "iid", 0, alpha=0.5, test_fraction=0.2)
    assert not torch.equal(raw.train_y, own.train_y)


def test_run_gives_back_the_final_model():
    result = run(SMALL.replace(algorithm="feddlr"))
    model = result.model
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), result.params[n])
    acc = float((model(result.simulation.data.test_x).argmax(-1)
                 == result.simulation.data.test_y).double().mean())
    assert acc == pytest.approx(result.history.records[-1].test_accuracy, abs=1e-12)
    # the template keeps w_0
    assert not torch.equal(result.simulation.model.net.fc1.weight, model.net.fc1.weight)


@pytest.mark.parametrize(("change", "message"), [
    ({"algorithm": "fedsgd"}, "algorithm"),
    ({"dataset": "imagenet"}, "dataset"),
    ({"participation": "scheme2", "clients_per_round": 7}, "K=7"),
    ({"local_steps": 0}, "local_steps"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -1.0}, "lr"),
    ({"num_clients": 0}, "num_clients"),
    ({"policy_up": "energy:1.5"}, "tau"),
])
def test_bad_config_gets_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        run(SMALL.replace(**change) if "policy" not in next(iter(change)) else
            SMALL.replace(algorithm="feddlr", **change))


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        run(SMALL.replace(dataset="mnist", data_dir=str(tmp_path / "nowhere")))


def test_empty_client_is_refused():
    with pytest.raises(ValueError, match="client"):
        run(SMALL.replace(num_clients=2000))


def test_nan_loss_stops_with_round_and_client():
    with pytest.raises(FloatingPointError, match=r"round 1, client \d+"):
        run(SMALL.replace(lr=1e30))


def test_observer_sees_every_local_step_and_every_global_model():
    from fl_sim import Observer

    steps, globals_ = [], []
    cfg = SMALL.replace(participation="scheme2", clients_per_round=2)
    result = run(cfg, observer=Observer(
        on_local_step=lambda r, j, params, clients: steps.append(
            (r, j, params["net.fc1.weight"].shape[0], clients.tolist())),
        on_global=lambda r, params: globals_.append((r, params["net.fc1.weight"].clone()))))
    h = result.history
    assert [(r, j) for r, j, _, _ in steps] == [(r, j) for r in range(3) for j in range(2)]
    assert all(k == 2 for _, _, k, _ in steps)
    assert [s[3] for s in steps[::2]] == [rec.clients for rec in h.records]
    assert [r for r, _ in globals_] == [0, 1, 2, 3]
    assert torch.equal(globals_[-1][1], result.params["net.fc1.weight"])
