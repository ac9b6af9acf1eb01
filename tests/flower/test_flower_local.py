"""fl_sim.flower without Flower: run config mapping, payload codec, and each side of a round
(every algorithm's Protocol: send, client, aggregate, catch-up and resync).

These parts import no ``flwr``; replaying rounds with them must give fl_sim's run.
"""

import math

import pytest
import torch

from fl_sim import SimConfig, run
from fl_sim.algorithms import make_algorithm
from fl_sim.flower.codec import decode, encode
from fl_sim.flower.local import cached_setup
from fl_sim.flower.protocols import ClientRound, check_runnable, protocol_for
from fl_sim.flower.run_config import FlowerOptions, from_run_config, to_run_config
from fl_sim.participation import Participation, sample_participants
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


FACTORIZED = {"fedhm": {"factorization": "lowrank", "rank": "ratio:0.25"},
              "fedlmt": {"factorization": "lowrank", "rank": "ratio:0.25"},
              "fedpara": {"factorization": "hadamard", "gamma": 0.1},
              "fedmud": {"factorization": "mud", "rank": "ratio:0.25"}}


def _config(algorithm, **kw):
    return SMALL.replace(algorithm=algorithm, local_steps=5,
                         model_kwargs=FACTORIZED.get(algorithm, SMALL.model_kwargs), **kw)


def _messages(down):
    """A downlink's records as the arrays a client receives (checking the byte count)."""
    records = {name: encode(payloads)[0] for name, payloads in down.records.items()}
    assert sum(a.nbytes for r in records.values() for a in r.values()) == down.nbytes
    return records


def _replay(cfg, lose=None):
    """fl_sim's rounds, one client at a time through each algorithm's Protocol and the codec.

    ``lose=(round, client)``: that client's reply is lost after it updated its memory.
    """
    sim = cached_setup(cfg)
    server, client = protocol_for(sim), protocol_for(sim)
    state = server.init_state()
    p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
    memory = {k: {s: {} for s in client.memory_slots} for k in range(sim.data.num_clients)}
    out = []
    for r in range(cfg.rounds):
        part = sample_participants(p, cfg.participation, cfg.clients_per_round,
                                   sim.streams.sampling)
        send = server.send(state, part, r + 1)
        clients = part.clients.tolist()
        received, up, keep = [], [], []
        for i, k in enumerate(clients):
            down = send.downlinks[i]
            who = ClientRound(k, r, len(clients), i, {"round": r + 1, **down.config})
            arrays, nbytes = encode(client.client(_messages(down), who, memory[k]))
            if lose == (r + 1, k):
                continue
            keep.append(i)
            up.append(nbytes)
            received.append(decode(arrays, server.uplink_like(state),
                                   qsgd_levels=cfg.qsgd_levels))
        replied = Participation(part.clients[keep], part.weights[keep])
        agg = server.aggregate(state, replied, received)
        state = agg.state
        if len(keep) < len(clients):
            state = server.failed(state, [k for i, k in enumerate(clients) if i not in keep])
        logits = sim.model_with(state.params)(sim.data.test_x)
        acc = float((logits.argmax(-1) == sim.data.test_y).double().mean())
        out.append(([d.nbytes for d in send.downlinks], up, acc, clients, agg,
                    [d.config.get("mode") for d in send.downlinks]))
    return out, state, memory


@pytest.mark.parametrize("algorithm, rounds, exact, extra", [
    ("fedavg", 2, True, {}), ("feddlr", 2, True, {}), ("topk_ef", 2, True, {}),
    ("lowrank_update", 2, False, {}), ("fedlmt", 2, True, {}), ("fedpara", 2, True, {}),
    ("fedhm", 2, True, {}), ("feddlr_ef", 4, True, {}), ("fedmud", 4, True, {}),
    ("feddlr", 3, True, {"method": "subspace", "policy_down": "fixed:4",
                         "policy_up": "fixed:4"})])
def test_replayed_rounds_equal_fl_sim(algorithm, rounds, exact, extra):
    """Same bytes per participant and ranks for every algorithm; same accuracy where
    clients draw no compression noise.

    lowrank_update draws randomness on the clients (power-iteration starts), which fl_sim
    takes from one shared stream: there only bytes must agree. Partial participation
    (scheme2, 2 of 3) checks that clients replay fl_sim's minibatch stream at their
    position, and, over 4 rounds, that FedDLR-EF and FedMUD clients that sat out catch up
    both ways (the missed messages from their memory, or the state dense), each paying
    fl_sim's catch-up bytes. FedDLR with ``method="subspace"``: the server's truncation
    starts from the last broadcast's bases on both (its slots travel in the ServerState).
    """
    cfg = _config(algorithm, participation="scheme2", clients_per_round=2, rounds=rounds,
                  **extra)
    ref = run(cfg).history
    replayed, _, _ = _replay(cfg)
    modes = set()
    for rec, (down, up, acc, clients, agg, mode) in zip(ref.records, replayed, strict=True):
        assert clients == rec.clients
        assert down == rec.bytes_down_per_client
        assert up == rec.bytes_up_per_client
        assert agg.ranks_up == rec.ranks_up and agg.ranks_down == rec.ranks_down
        if exact:
            assert math.isclose(acc, rec.test_accuracy, abs_tol=1e-9)
        modes.update(mode)
    if algorithm in ("feddlr_ef", "fedmud"):  # 0: state dense, 1: missed messages
        assert modes == {0, 1}


def test_lost_reply_resyncs_the_client_dense():
    """FedDLR-EF: client 2's round-1 reply is lost after it updated its replica and g.

    The server charges it the replica dense next time and both sides restart its g, so
    its replica equals the server's again; a client whose memory is behind the
    messages refuses them in one line.
    """
    cfg = _config("feddlr_ef", participation="full", rounds=2)
    out, state, memory = _replay(cfg, lose=(1, 2))
    down, _, acc, clients, _, modes = out[1]
    assert modes == [1, 1, 0]  # clients 0, 1: this round's message; client 2: dense
    assert down[2] > down[0] and math.isfinite(acc)
    h = {n: t[0] for n, t in state.memory["replica"].items()}
    for n, t in memory[2]["replica"].items():
        torch.testing.assert_close(t, h[n], rtol=0, atol=0)
    sim = cached_setup(cfg)
    protocol = protocol_for(sim)
    who = ClientRound(0, 1, 3, 0, {"mode": 1, "synced": 0, "reset-g": 0})
    with pytest.raises(ValueError, match="client 0: holds the state of round 2"):
        protocol.client({}, who, memory[0])


def test_every_algorithm_has_a_protocol_and_stateful_ones_refuse_repeats():
    from fl_sim.algorithms import ALGORITHMS
    from fl_sim.flower.protocols import check_supported

    for name in ALGORITHMS:
        check_supported(make_algorithm(_config(name)))
    sim = cached_setup(_config("feddlr_ef"))
    protocol = protocol_for(sim)
    state = protocol.init_state()
    twice = Participation(torch.tensor([1, 1]), torch.tensor([0.5, 0.5], dtype=torch.float64))
    with pytest.raises(ValueError, match="participation: a client listed twice"):
        protocol.send(state, twice, 1)
    for name in ("feddlr_ef", "fedmud"):  # refused before any process starts
        with pytest.raises(ValueError, match=f"participation: scheme1 .* runs {name}"):
            check_runnable(_config(name, participation="scheme1", clients_per_round=2))
    check_runnable(_config("fedavg", participation="scheme1", clients_per_round=2))


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


def test_server_send_warm_starts_from_the_last_broadcast():
    """Under ``method="subspace"`` the Flower server, like fl_sim's, starts its truncation
    from the bases of its last broadcast, kept in ``ServerState.server_memory``."""
    from fl_sim.algorithms.model_compression import DOWN_BASES
    from fl_sim.flower.local import server_send

    sim = cached_setup(_config("feddlr", method="subspace", policy_down="fixed:4",
                               policy_up="fixed:4"))
    alg = sim.algorithm
    first = server_send(sim, alg.init(sim.initial_params(), sim.data.num_clients))
    assert set(first.server_memory[DOWN_BASES]) == set(first.ranks_down)
    moved = {n: p + 1e-3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0),
                                       dtype=p.dtype) for n, p in first.start.items()}
    state = alg.init(moved, sim.data.num_clients)
    state = type(state)(params=moved, round=1, memory=state.memory,
                        server_memory=first.server_memory)
    second = server_send(sim, state)
    warm = alg.compress(moved, alg.down, torch.Generator(),
                        warm_starts=first.server_memory[DOWN_BASES]).decompress()
    cold = alg.compress(moved, alg.down, torch.Generator()).decompress()
    assert all(torch.equal(second.start[n], warm[n]) for n in warm)
    assert not all(torch.equal(second.start[n], cold[n]) for n in cold)
