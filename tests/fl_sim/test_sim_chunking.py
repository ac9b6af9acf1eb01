"""Chunked participants and the fast compression path equal their references."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fl_sim import SimConfig, run, setup
from fl_sim.algorithms import RoundContext, make_algorithm
from fl_sim.algorithms.base import broadcast
from fl_sim.participation import sample_participants

SMALL = SimConfig(dataset="digits", model="mlp", model_kwargs={"hidden": [16]},
                  num_clients=10, partition="iid", rounds=3, local_steps=3, batch_size=5,
                  lr=0.1, policy_down="fixed:4", policy_up="fixed:3", device="cpu")


def _params(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(12, 8, generator=g, dtype=dtype),
            "a.bias": torch.randn(12, generator=g, dtype=dtype),
            "b.weight": torch.randn(9, 12, generator=g, dtype=dtype)}


def _fake_train(start, clients):
    """Each client adds its own full-rank perturbation (fresh tensors, like the trainer)."""
    out = {}
    for n, p in start.items():
        g = torch.Generator().manual_seed(len(n))
        noise = torch.randn(clients.numel(), *p.shape[1:], generator=g, dtype=p.dtype)
        out[n] = p + 0.05 * (clients.to(p.dtype) + 1).view(-1, *[1] * (p.ndim - 1)) * noise
    return out


def _ctx(n_clients, clients=None):
    p = torch.full((n_clients,), 1 / n_clients, dtype=torch.float64)
    part = sample_participants(p, "full", None, torch.Generator())
    if clients is not None:
        part = dataclasses.replace(part, clients=clients, weights=p[clients] * n_clients
                                   / clients.numel())
    return RoundContext(part, _fake_train, torch.Generator().manual_seed(0), n_clients)


def test_chunked_training_is_bit_identical():
    sim = setup(SMALL)
    clients = torch.tensor([0, 3, 3, 5, 9, 1, 2])
    start = broadcast(sim.initial_params(), clients.numel())
    out = {}
    for size in (None, 3):
        trainer = dataclasses.replace(sim.trainer, chunk_size=size)
        out[size] = trainer.train(start, clients, 1, torch.Generator().manual_seed(4))
    for n, p in out[None][0].items():
        assert torch.equal(p, out[3][0][n]), n
    assert torch.equal(out[None][1], out[3][1])


@pytest.mark.parametrize("method", ["exact", "subspace"])
def test_chunked_rounds_equal_unchunked_within_float_rounding(method):
    states = {}
    for size in (None, 3):
        alg = make_algorithm(SimConfig(algorithm="feddlr", policy_down="fixed:4",
                                       policy_up="fixed:3", method=method, chunk_size=size,
                                       policy_overrides={}))
        state = alg.init(_params(), 8)
        for _ in range(2):  # round 2 of "subspace" starts from the broadcast bases
            state, comms = alg.round(state, _ctx(8))
        states[size] = (state, comms)
    (a, ca), (b, cb) = states[None], states[3]
    for n in a.params:  # sums over 3 chunks instead of one: float64 rounding only
        torch.testing.assert_close(a.params[n], b.params[n], rtol=1e-12, atol=1e-12)
    assert ca.bytes_up_per_client == cb.bytes_up_per_client and ca.ranks_up == cb.ranks_up
    assert ca.err_client == pytest.approx(cb.err_client, rel=1e-9)


def test_subspace_round_is_the_exact_round_within_the_stated_error():
    """Warm-started truncations err within 1% of the exact ones; the model follows."""
    out = {}
    for method in ("exact", "subspace"):
        alg = make_algorithm(SimConfig(algorithm="feddlr", policy_down="fixed:6",
                                       policy_up="fixed:6", method=method, policy_overrides={}))
        state = alg.init(_params(), 8)
        for _ in range(3):
            state, comms = alg.round(state, _ctx(8))
        out[method] = (state, comms)
    (se, ce), (sf, cf) = out["exact"], out["subspace"]
    assert cf.err_client == pytest.approx(ce.err_client, rel=0.05)
    for n in se.params:
        scale = float(se.params[n].norm())
        assert float((sf.params[n] - se.params[n]).norm()) <= 0.02 * scale


def test_update_compression_writes_only_the_participants_rows():
    alg = make_algorithm(SimConfig(algorithm="topk_ef", topk_ratio=0.1))
    state = alg.init(_params(), 6)
    state, _ = alg.round(state, _ctx(6, torch.tensor([0, 4])))
    stack = state.memory["residuals"]["a.weight"]
    before = stack.clone()
    state2, comms = alg.round(state, _ctx(6, torch.tensor([1, 4])))
    after = state2.memory["residuals"]["a.weight"]
    assert after is stack  # updated in place: no copy of the N clients' memory
    untouched = [0, 2, 3, 5]
    assert torch.equal(after[untouched], before[untouched])
    assert not torch.equal(after[1], before[1]) and not torch.equal(after[4], before[4])
    assert math.isfinite(comms.err_client) and comms.err_client > 0


def test_subspace_run_resumes_bit_identically(tmp_path):
    cfg = SMALL.replace(algorithm="feddlr", method="subspace", rounds=4)
    full = run(cfg)
    run(cfg.replace(rounds=2, checkpoint_every=2, output_dir=str(tmp_path)))
    resumed = run(cfg, resume_from=tmp_path / "checkpoint.pt")
    for n, p in full.params.items():
        assert torch.equal(p, resumed.params[n])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_chunked_subspace_rounds_run_on_cuda():
    cfg = SMALL.replace(algorithm="feddlr", method="subspace", chunk_size=4, device="cuda")
    cpu = run(SMALL.replace(algorithm="feddlr", method="subspace", chunk_size=4))
    gpu = run(cfg)
    assert gpu.params["net.fc1.weight"].is_cuda
    assert gpu.history.records[-1].bytes_up == cpu.history.records[-1].bytes_up


def test_run_passes_chunk_size_to_the_trainer_and_stays_within_rounding():
    cfg = SMALL.replace(algorithm="fedavg", dtype="float64")
    assert setup(cfg.replace(chunk_size=3)).trainer.chunk_size == 3
    whole = run(cfg.replace(chunk_size=None))
    chunked = run(cfg.replace(chunk_size=3))  # 10 participants in chunks of 3
    for n, p in whole.params.items():  # training bit-identical; aggregation sums alike
        torch.testing.assert_close(chunked.params[n], p, rtol=1e-12, atol=1e-12)
    assert [r.bytes_up for r in chunked.history.records] == \
        [r.bytes_up for r in whole.history.records]


def test_server_truncation_starts_from_the_last_broadcast_within_the_stated_error():
    """Round 2's server truncation is warm-started from round 1's bases (kept in
    ``ServerState.server_memory``) and errs within 1% of the exact SVD's optimum."""
    from fl_sim.algorithms.model_compression import DOWN_BASES
    from lowrank import compress_state

    alg = make_algorithm(SimConfig(algorithm="feddlr", policy_down="fixed:4",
                                   policy_up="fixed:3", method="subspace", policy_overrides={}))
    state = alg.init(_params(), 8)
    assert alg.server_warm_starts(state) is None  # round 1: nothing to start from: exact
    state, _ = alg.round(state, _ctx(8))
    bases = state.server_memory[DOWN_BASES]
    assert sorted(bases) == ["a.weight", "b.weight"] and bases["a.weight"].shape == (8, 4)
    exact = compress_state(state.params, alg.down).sq_error
    new_state, comms = alg.round(state, _ctx(8))
    assert exact <= comms.err_server ** 2 <= 1.01 * exact
    assert comms.err_server ** 2 != pytest.approx(exact, rel=1e-12)  # not the exact SVD
    assert new_state.server_memory[DOWN_BASES]["a.weight"] is not bases["a.weight"]


def test_checkpoints_keep_server_memory_and_load_format_2(tmp_path):
    from fl_sim.algorithms import ServerState
    from fl_sim.checkpoint import Checkpoint, content_hash, load_checkpoint, save_checkpoint

    params = {"w": torch.randn(3, 2)}
    slots = {"down_bases": {"w": torch.randn(2, 1)}, "other": {"x": torch.arange(5.0)}}
    history = {"records": [{"round": 1}]}
    path = save_checkpoint(tmp_path / "c.pt", Checkpoint(
        {}, ServerState(params, 1, server_memory=slots), {}, history))
    back = load_checkpoint(path, params=params, num_clients=4).state.server_memory
    assert back.keys() == slots.keys()
    assert all(torch.equal(back[s][n], t) for s, d in slots.items() for n, t in d.items())
    old = torch.load(path, weights_only=True)  # as fl_sim wrote them before server_memory
    del old["server_memory"]
    old["format"] = 2
    old["sha256"] = content_hash(old)
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt", params=params).state.server_memory == {}
    old["format"] = 4
    torch.save(old, tmp_path / "new.pt")
    with pytest.raises(ValueError, match=r"new\.pt: has format 4, expected 2 or 3"):
        load_checkpoint(tmp_path / "new.pt")


def test_subspace_with_a_spectrum_policy_names_the_policy():
    with pytest.raises(ValueError, match=r"^policy_up: method='subspace'.*fixed:, ratio:"):
        SimConfig(algorithm="feddlr", method="subspace", policy_up="energy:0.9", max_rank=8)
    with pytest.raises(ValueError, match=r"^policy_overrides\['\*fc1\*'\]: method='subspace'"):
        SimConfig(algorithm="feddlr", method="subspace", policy_overrides={"*fc1*": "error:0.1"})
    # nothing is warm-started without a compressed broadcast: any policy works
    SimConfig(algorithm="feddlr_up", method="subspace", policy_up="energy:0.9")
