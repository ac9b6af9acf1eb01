"""fl_sim on Flower's simulation engine and on a local deployment (needs the `flower` extra).

2-round, 3-client runs of fedavg, feddlr, feddlr_ef, fedhm and fedmud, all in one start
of the simulation engine, have fl_sim's payload bytes per round and participant and its
accuracy within 0.5 point; a local deployment with 2 SuperNodes running feddlr_ef (client
state in Context.state) does too, and ends every process it started; with one SuperNode
killed mid-round it finishes within its timeouts, naming the failed client.
"""

import math
import pathlib
import threading
import time

import pytest

pytest.importorskip("flwr", reason="Flower is not installed: pip install -e '.[flower]'")

from fl_sim import SimConfig, run  # noqa: E402
from fl_sim.flower.deployment import alive, deploy, port_is_free  # noqa: E402
from fl_sim.flower.run_config import FlowerOptions  # noqa: E402
from fl_sim.flower.simulation import simulate_many  # noqa: E402
from fl_sim.history import History  # noqa: E402

SMALL = SimConfig(dataset="digits", num_clients=3, rounds=2, policy_down="ratio:0.25",
                  policy_up="ratio:0.25", policy_overrides={"*out*": None}, lr=0.2,
                  local_steps=5, device="cpu")


def _assert_matches_fl_sim(history: History, ledger, cfg: SimConfig) -> None:
    ref = run(cfg).history
    assert len(history.records) == len(ref.records) == cfg.rounds
    for got, want, wire in zip(history.records, ref.records, ledger.rounds, strict=True):
        assert got.clients == want.clients
        assert got.bytes_down_per_client == want.bytes_down_per_client
        assert got.bytes_up_per_client == want.bytes_up_per_client
        assert got.ranks_up == want.ranks_up and got.ranks_down == want.ranks_down
        assert abs(got.test_accuracy - want.test_accuracy) <= 0.005
        # Flower's serialized messages carry the payload plus an envelope
        assert wire.payload_up == got.bytes_up_per_client
        assert all(w > p for w, p in zip(wire.wire_up, wire.payload_up, strict=True))
        assert all(w > p for w, p in zip(wire.wire_down, wire.payload_down, strict=True))
        assert wire.failed == []


# one start of the simulation engine for every algorithm family (Ray starts once):
# the two model/update families, FedHM (factors both ways), and the two algorithms with
# per-client state, under partial participation so that a client catches up from the
# state its node keeps in Context.state
ENGINE_RUNS = {
    "fedavg": {}, "feddlr": {},
    "feddlr_ef": {"participation": "scheme2", "clients_per_round": 2},
    "fedhm": {"model_kwargs": {"factorization": "lowrank", "rank": "ratio:0.25"}},
    "fedmud": {"model_kwargs": {"factorization": "mud", "rank": "ratio:0.25"},
               "participation": "scheme2", "clients_per_round": 2},
}


@pytest.fixture(scope="module")
def engine_runs(tmp_path_factory):
    configs = {a: SMALL.replace(algorithm=a, output_dir=str(tmp_path_factory.mktemp(a)), **kw)
               for a, kw in ENGINE_RUNS.items()}
    results = simulate_many(list(configs.values()),
                            FlowerOptions(round_timeout=120, connect_timeout=120))
    return {a: (configs[a], *res) for a, res in zip(configs, results, strict=True)}


@pytest.mark.timeout(400)
@pytest.mark.parametrize("algorithm", list(ENGINE_RUNS))
def test_simulation_engine_matches_fl_sim(algorithm, engine_runs):
    cfg, history, ledger = engine_runs[algorithm]
    out = pathlib.Path(cfg.output_dir)
    assert History.load_json(out / f"{algorithm}.history.json").records == history.records
    assert ledger.engine == "simulation" and ledger.error is None
    _assert_matches_fl_sim(history, ledger, cfg)


def test_run_simulation_is_pinned():
    """simulate_many runs in-process apps with run_simulation, which Flower 1.42 deprecates
    for `flwr run` (apps loaded by module path in other processes): pin what it passes."""
    import inspect

    from flwr.simulation import run_simulation

    params = inspect.signature(run_simulation).parameters
    assert {"server_app", "client_app", "num_supernodes", "backend_config",
            "verbose_logging"} <= set(params)


def _check_all_ended(local) -> None:
    assert local.all_exited(), [p for p, s in local.seen.items() if alive(p, s)]
    assert all(port_is_free(p) for p in local.ports)


@pytest.mark.timeout(300)
def test_local_deployment_matches_fl_sim_and_ends_its_processes(tmp_path):
    """feddlr_ef: each client's replica, g_k and synced round live in its node's Context
    state across rounds (each round a fresh ClientApp process).

    Node 0 serves clients 0 and 2; in round 2 each client applies the round's change to
    the replica it kept, and a client whose state was lost would refuse it (a failure).
    """
    cfg = SMALL.replace(algorithm="feddlr_ef", output_dir=str(tmp_path))
    started = []
    options = FlowerOptions(round_timeout=120, connect_timeout=120)
    history, ledger = deploy(cfg, options, supernodes=2, startup_timeout=60,
                             deployment=started)
    local = started[0]
    _check_all_ended(local)
    assert len(local.procs) == 4  # SuperLink, 2 SuperNodes, flwr run
    assert len(local.seen) > len(local.procs)  # and what they spawned (SuperExec, apps)
    assert ledger.engine == "deployment"
    _assert_matches_fl_sim(history, ledger, cfg)


@pytest.mark.timeout(300)
def test_supernode_killed_mid_round_does_not_hang(tmp_path):
    """SuperNode 1 (client 1) dies in round 1: rounds go on with client 0, naming client 1."""
    cfg = SMALL.replace(algorithm="feddlr", num_clients=2, output_dir=str(tmp_path))
    killed = threading.Event()

    def kill_when_training(local) -> None:
        # SuperNode 1 launches one ClientApp for the query, then one per train message
        log = local.supernode(1).log.read_text()
        if not killed.is_set() and log.count("Start `flwr-clientapp` process") >= 2:
            local.kill_supernode(1)
            killed.set()

    started = []
    t0 = time.monotonic()
    options = FlowerOptions(round_timeout=30, min_replies=1, connect_timeout=120)
    try:
        history, ledger = deploy(cfg, options, supernodes=2, startup_timeout=60,
                                 on_progress=kill_when_training, deployment=started)
    except RuntimeError as exc:  # stopping is allowed, with one line naming the client
        assert "client 1" in str(exc) and "\n" not in str(exc)
    else:
        for r, rec in zip(ledger.rounds, history.records, strict=True):
            assert [f.client for f in r.failed] == [1]
            assert r.failed[0].node == ledger.nodes["1"]
            assert rec.clients == [0]
        assert math.isfinite(history.records[-1].test_accuracy)
    assert killed.is_set()
    assert time.monotonic() - t0 < 280
    _check_all_ended(started[0])


@pytest.mark.timeout(180)
def test_interrupt_ends_every_process(tmp_path):
    """Ctrl-C (KeyboardInterrupt) while the run goes on: every process is ended."""
    cfg = SMALL.replace(algorithm="fedavg", num_clients=2, output_dir=str(tmp_path))

    def interrupt(local) -> None:
        raise KeyboardInterrupt

    started = []
    with pytest.raises(KeyboardInterrupt):
        deploy(cfg, FlowerOptions(connect_timeout=60), supernodes=2, startup_timeout=60,
               on_progress=interrupt, deployment=started)
    assert len(started[0].procs) == 4
    _check_all_ended(started[0])
