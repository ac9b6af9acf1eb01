"""fl_sim.flower without Flower: run config mapping, payload codec, and each side of a round.

These parts import no ``flwr``; replaying rounds with them must give fl_sim's run.
"""

import math

import pytest
import torch

from fl_sim import SimConfig, run
from fl_sim.flower.codec import decode, encode
from fl_sim.flower.local import (
    cached_setup,
    client_update,
    server_aggregate,
    server_send,
    train_client,
)
from fl_sim.flower.run_config import FlowerOptions, from_run_config, to_run_config
from fl_sim.participation import sample_participants
from fl_sim.presets import DEMO_CONFIG
from lowrank import QSGD, TopK, compress_state
from lowrank.powersgd import PowerSGD

SMALL = SimConfig(dataset="digits", num_clients=3, rounds=2, policy_down="ratio:0.25",
                  policy_up="ratio:0.25", policy_overrides={"*out*": None}, lr=0.2,
                  device="cpu")


@pytest.mark.parametrize("cfg", [
    DEMO_CONFIG,
    SimConfig(batch_size=None, data_dir="/data/mnist", lr_mu=0.5, clients_per_round=None,
              model_kwargs={"hidden": [64]}, participation="full"),
])
def test_run_config_round_trip(cfg):
    options = FlowerOptions(round_timeout=12.5, min_replies=2)
    rc = to_run_config(cfg, options)
    assert all(isinstance(v, bool | int | float | str) for v in rc.values())
    assert "local-steps" in rc and "round-timeout" in rc
    back, opts = from_run_config(rc)
    assert back == cfg and opts == options


def test_run_config_errors_name_the_key():
    with pytest.raises(ValueError, match="unknown key"):
        from_run_config({"local-stepz": 3})
    with pytest.raises(ValueError, match="lr"):
        from_run_config({"lr": -1.0})
    with pytest.raises(ValueError, match="min_replies"):
        FlowerOptions(min_replies=0)


def _state():
    gen = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(30, 20, generator=gen),
            "a.bias": torch.randn(30, generator=gen),
            "b.weight": torch.randn(10, 30, generator=gen)}


def test_factors_travel_as_factors_and_bytes_match_the_ledger():
    s = _state()
    sent = compress_state(s, "fixed:3", overrides={"b.*": "fixed:9"})
    arrays, nbytes = encode(sent)
    # a.weight goes as U (30x3) and V (20x3); b.weight at rank 9 would not pay off: dense
    assert arrays["a.weight|U"].shape == (30, 3) and arrays["a.weight|V"].shape == (20, 3)
    assert "a.weight|dense" not in arrays and arrays["b.weight|dense"].shape == (10, 30)
    assert nbytes == sent.nbytes == sum(a.nbytes for a in arrays.values())
    got = decode(arrays, s)
    assert got.nbytes == nbytes and got.ranks == {"a.weight": 3, "b.weight": 10}
    for n, t in sent.decompress().items():
        torch.testing.assert_close(got.params[n], t)


@pytest.mark.parametrize("compressor", [TopK(ratio=0.1), QSGD(4), PowerSGD(2)])
def test_update_payloads_round_trip(compressor):
    s = _state()
    payloads = {n: compressor.compress(t, name=n) for n, t in s.items()}
    arrays, nbytes = encode(payloads)
    assert nbytes == sum(p.nbytes for p in payloads.values())
    got = decode(arrays, s, qsgd_levels=4)
    for n, p in payloads.items():
        torch.testing.assert_close(got.params[n], p.decompress().reshape(s[n].shape))


def test_decode_names_missing_tensors():
    s = _state()
    arrays, _ = encode(compress_state(s, None))
    del arrays["a.bias|dense"]
    with pytest.raises(ValueError, match="a.bias"):
        decode(arrays, s)


def _replay(cfg):
    """fl_sim's rounds, one client at a time through fl_sim.flower.local and the codec."""
    sim = cached_setup(cfg)
    params = sim.algorithm.init(sim.initial_params(), sim.data.num_clients).params
    p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
    memory = {k: {} for k in range(sim.data.num_clients)}
    out = []
    for r in range(cfg.rounds):
        part = sample_participants(p, cfg.participation, cfg.clients_per_round,
                                   sim.streams.sampling)
        arrays, down = encode(server_send(sim, params).payloads)
        start = decode(arrays, params).params
        received, up = [], []
        clients = part.clients.tolist()
        for i, k in enumerate(clients):
            local = train_client(sim, start, k, r, len(clients), i)
            arrays, nbytes = encode(client_update(sim, start, local, k, r, memory[k]))
            up.append(nbytes)
            received.append(decode(arrays, params, qsgd_levels=cfg.qsgd_levels).params)
        params = server_aggregate(sim, params, received, part.weights)
        logits = sim.model_with(params)(sim.data.test_x)
        acc = float((logits.argmax(-1) == sim.data.test_y).double().mean())
        out.append((down, up, acc, clients))
    return out


@pytest.mark.parametrize("algorithm, exact", [
    ("fedavg", True), ("feddlr", True), ("topk_ef", True), ("lowrank_update", False)])
def test_replayed_rounds_equal_fl_sim(algorithm, exact):
    """Same bytes for every algorithm; same accuracy where clients draw no compression noise.

    lowrank_update draws randomness on the clients (power-iteration starts), which fl_sim
    takes from one shared stream: there only bytes must agree. Partial participation
    (scheme2) checks that clients replay fl_sim's minibatch stream at their position.
    """
    cfg = SMALL.replace(algorithm=algorithm, participation="scheme2", clients_per_round=2,
                        local_steps=5)
    ref = run(cfg).history
    for rec, (down, up, acc, clients) in zip(ref.records, _replay(cfg), strict=True):
        assert clients == rec.clients
        assert [down] * len(clients) == rec.bytes_down_per_client
        assert up == rec.bytes_up_per_client
        if exact:
            assert math.isclose(acc, rec.test_accuracy, abs_tol=1e-9)


def test_algorithms_without_a_strategy_are_refused_in_one_line():
    from fl_sim.algorithms import make_algorithm
    from fl_sim.flower.local import check_supported

    for name in ("feddlr_ef", "fedhm", "fedmud"):
        with pytest.raises(ValueError, match=f"algorithm: '{name}'"):
            check_supported(make_algorithm(SMALL.replace(algorithm=name)))
    for name in ("fedavg", "feddlr", "feddlr_down", "fedlmt", "fedpara", "qsgd"):
        check_supported(make_algorithm(SMALL.replace(algorithm=name)))


def test_ledger_round_trip_envelope_and_tables(tmp_path):
    from fl_sim.flower.ledger import (
        Failure,
        FlowerLedger,
        FlowerRound,
        ledger_table,
        side_by_side,
    )
    from fl_sim.history import History

    r = FlowerRound(round=1, clients=[0, 2], payload_down=[100, 100], wire_down=[130, 131],
                    payload_up=[40, 50], wire_up=[75, 80],
                    failed=[Failure(client=1, node=77, reason="no reply within 5 s")])
    assert r.envelope_down == 61 and r.envelope_up == 65
    ledger = FlowerLedger(engine="deployment", flwr_version="x", nodes={"0": 5}, rounds=[r])
    back = FlowerLedger.load_json(ledger.save_json(tmp_path / "l.json"))
    assert back == ledger
    table = ledger_table(back)
    assert "261" in table and "155" in table and "1" in table.splitlines()[-1]
    ref = run(SMALL.replace(algorithm="fedavg", rounds=1, local_steps=1)).history
    flower = History(config=ref.config, records=[ref.records[0]])
    text = side_by_side({"fl_sim": ref, "deployment": flower}, {"deployment": back})
    assert f"{ref.records[0].bytes_down:,}" in text and "261 / 155" in text
