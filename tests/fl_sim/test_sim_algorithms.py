"""Algorithms on a fake trainer: FedDLR at full rank is FedAvg; the byte ledger adds up."""

from __future__ import annotations

import math

import pytest
import torch

from fl_sim import SimConfig
from fl_sim.algorithms import ALGORITHMS, ModelCompression, RoundContext, make_algorithm
from fl_sim.participation import sample_participants
from lowrank import FixedRank, RankRatio, compress_state, state_nbytes


def _alg(name, **config):
    return make_algorithm(SimConfig(algorithm=name, **config))


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(12, 8, generator=g, dtype=torch.float64),
            "a.bias": torch.randn(12, generator=g, dtype=torch.float64),
            "b.weight": torch.randn(3, 12, generator=g, dtype=torch.float64)}


def _fake_train(start, clients):
    """Deterministic 'training': each client adds its own low-rank-ish perturbation."""
    out = {}
    for n, p in start.items():
        g = torch.Generator().manual_seed(len(n))
        noise = torch.randn(p.shape[1:], generator=g, dtype=p.dtype)
        out[n] = p + 0.1 * (clients.to(p.dtype) + 1).view(-1, *[1] * (p.ndim - 1)) * noise
    return out


def _ctx(n_clients=4):
    p = torch.full((n_clients,), 1 / n_clients, dtype=torch.float64)
    part = sample_participants(p, "full", None, torch.Generator())
    return RoundContext(part, _fake_train, torch.Generator().manual_seed(0), n_clients)


def test_feddlr_at_full_rank_equals_fedavg():
    fedavg = _alg("fedavg")
    # min_compression_rate small: factors are sent, not raw
    feddlr = _alg("feddlr", policy_down="fixed:100", policy_up="fixed:100",
                  min_compression_rate=0.01)
    s_avg, _ = fedavg.round(fedavg.init(_params(), 4), _ctx())
    s_dlr, comms = feddlr.round(feddlr.init(_params(), 4), _ctx())
    assert comms.ranks_down["a.weight"] == 8  # full rank, sent as factors
    for n in s_avg.params:
        torch.testing.assert_close(s_dlr.params[n], s_avg.params[n], rtol=1e-10, atol=1e-10)
    assert comms.err_server < 1e-10 and comms.err_client < 1e-10


def test_byte_ledger_equals_payload_sizes():
    alg = _alg("feddlr", policy_down="fixed:2", policy_up="fixed:3")
    state = alg.init(_params(), 4)
    new_state, comms = alg.round(state, _ctx())
    down = compress_state(state.params, "fixed:2")
    assert comms.bytes_down_per_client == [down.nbytes] * 4
    # 12x8 at rank 2: 2*(12+8)*8 bytes; bias raw 12*8; 3x12 at rank 2 = 2*15*8 (< 36*8)
    assert down.nbytes == 2 * 20 * 8 + 12 * 8 + 2 * 15 * 8
    local = _fake_train({n: p.unsqueeze(0).expand(4, *p.shape) for n, p in
                         down.decompress().items()}, torch.arange(4))
    expected_up = [compress_state({n: t[i] for n, t in local.items()}, "fixed:3").nbytes
                   for i in range(4)]
    assert comms.bytes_up_per_client == expected_up


def test_client_error_is_the_weighted_reconstruction_error():
    alg = _alg("feddlr_up", policy_up="fixed:1")
    state = alg.init(_params(), 4)
    new_state, comms = alg.round(state, _ctx())
    local = _fake_train({n: p.unsqueeze(0).expand(4, *p.shape) for n, p in
                         state.params.items()}, torch.arange(4))
    sent = compress_state(local, "fixed:1", batched=True).decompress()
    diff = sum(float(((sent[n] - local[n]).mean(0)).square().sum()) for n in local)
    assert comms.err_client == pytest.approx(math.sqrt(diff), rel=1e-12)
    assert comms.err_server == 0.0
    assert comms.bytes_down_per_client == [state_nbytes(state.params)] * 4


@pytest.mark.parametrize("name", ["lowrank_update", "topk_ef", "qsgd"])
def test_update_compression_sends_less_and_tracks_its_error(name):
    alg = _alg(name, update_rank=1, topk_ratio=0.1, qsgd_levels=4)
    state = alg.init(_params(), 4)
    new_state, comms = alg.round(state, _ctx())
    dense = state_nbytes(state.params)
    assert all(b < dense for b in comms.bytes_up_per_client)
    assert comms.err_client > 0
    if name != "qsgd":  # error feedback keeps a residual for every participant
        residual = new_state.memory["residuals"]["a.weight"]
        assert residual.shape == (4, 12, 8) and bool(residual.abs().sum(dim=(1, 2)).gt(0).all())


def test_error_feedback_residual_is_what_was_not_sent():
    alg = _alg("topk_ef", topk_ratio=0.1)
    state = alg.init(_params(), 4)
    new_state, _ = alg.round(state, _ctx())
    local = _fake_train({n: p.unsqueeze(0).expand(4, *p.shape) for n, p in
                         state.params.items()}, torch.arange(4))
    # w_{r+1} = w_r + mean_k (delta_k - residual_k) with equal weights
    for n in state.params:
        delta = local[n] - state.params[n]
        expected = state.params[n] + (delta - new_state.memory["residuals"][n]).mean(0)
        torch.testing.assert_close(new_state.params[n], expected, rtol=1e-12, atol=1e-12)


def test_unknown_algorithm_lists_the_valid_names():
    with pytest.raises(ValueError, match="algorithm: .*fedavg, feddlr"):
        SimConfig(algorithm="fedsgd")
    with pytest.raises(ValueError, match="ratio"):  # built (so validated) with the config
        SimConfig(algorithm="topk_ef", topk_ratio=1.5)


@pytest.mark.parametrize("name", list(ALGORITHMS))
def test_every_registered_algorithm_builds_from_the_default_config(name):
    alg = make_algorithm(SimConfig(algorithm=name))
    assert alg.name == name


def test_policies_are_parsed_once_at_the_config_boundary():
    alg = _alg("feddlr", policy_down="ratio:0.5", policy_up="fixed:3",
               policy_overrides={"*out*": None, "a.*": "fixed:1"})
    assert isinstance(alg, ModelCompression)
    assert alg.down == RankRatio(0.5) and alg.up == FixedRank(3)
    assert alg.overrides == {"*out*": None, "a.*": FixedRank(1)}
    with pytest.raises(ValueError, match="policy_up"):
        SimConfig(policy_up="ratio:2")
    with pytest.raises(ValueError, match=r"policy_overrides\['a\.\*'\]"):
        SimConfig(policy_overrides={"a.*": "bogus:1"})


def test_adding_an_algorithm_touches_one_registry(monkeypatch):
    fedavg = ALGORITHMS["fedavg"]
    monkeypatch.setitem(ALGORITHMS, "my_fedavg", fedavg)
    cfg = SimConfig(algorithm="my_fedavg")  # the config accepts it: no second list
    assert make_algorithm(cfg).name == "fedavg"
