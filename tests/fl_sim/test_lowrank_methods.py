"""FedHM, FedLMT, FedPara, FedMUD, FedDLR-EF: each round against a hand-written reference,
bytes against the payloads, the error-feedback identities, FedMUD's exact averaging,
FedDLR-EF at full rank = FedAvg, the catch-up ledger and the floor/growth rank policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fl_sim import SimConfig, run
from fl_sim.algorithms import FedDLREF, FedHM, FedLMT, FedMUD, FedPara, RoundContext, make_algorithm
from fl_sim.algorithms.catch_up import catch_up_bytes, init_ledger
from fl_sim.algorithms.fedmud import SEED_BYTES
from fl_sim.participation import Participation
from lowrank import EnergyThreshold, FixedRank, RankRatio, compress_state
from lowrank.policies import FloorGrowth

F64 = torch.float64


def _lowrank_params(seed=0):
    """A tiny factorized model: layer a (6 x 5, rank 2) factorized, classifier b dense."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    return {"a.U": r(6, 2), "a.V": r(2, 5), "a.bias": r(6), "b.weight": r(3, 6), "b.bias": r(3)}


def _shift(name, shape, client):
    g = torch.Generator().manual_seed(1000 * client + len(name))
    return 0.1 * torch.randn(shape, generator=g, dtype=F64)


def _train(start, clients):
    """Fake local training: client k adds its own fixed perturbation to every tensor."""
    return {n: torch.stack([p[i] + _shift(n, p.shape[1:], int(c))
                            for i, c in enumerate(clients.tolist())])
            for n, p in start.items()}


def _ctx(clients=(0, 1, 2), weights=None, train=_train, n=4, seed=0):
    c = torch.tensor(clients, dtype=torch.int64)
    w = torch.full((len(clients),), 1 / len(clients), dtype=F64) if weights is None \
        else torch.tensor(weights, dtype=F64)
    return RoundContext(Participation(c, w), train, torch.Generator().manual_seed(seed), n)


def _nbytes(params):
    return sum(8 * p.numel() for p in params.values())


def test_fedlmt_averages_factors_separately():
    params, weights = _lowrank_params(), (0.5, 0.3, 0.2)
    alg = FedLMT()
    state, comms = alg.round(alg.init(params, 4), _ctx(weights=weights))
    for n, p in params.items():
        ref = sum(a * (p + _shift(n, p.shape, k)) for k, a in enumerate(weights))
        torch.testing.assert_close(state.params[n], ref, rtol=0, atol=1e-14)
    # the product of averages is not the average of products: FedLMT is not FedHM
    avg_prod = sum(a * (params["a.U"] + _shift("a.U", (6, 2), k))
                   @ (params["a.V"] + _shift("a.V", (2, 5), k)) for k, a in enumerate(weights))
    assert float((state.params["a.U"] @ state.params["a.V"] - avg_prod).norm()) > 1e-4
    assert comms.bytes_down_per_client == [_nbytes(params)] * 3
    assert comms.bytes_up_per_client == [_nbytes(params)] * 3


def test_fedhm_averages_products_and_truncates():
    params, weights = _lowrank_params(), (0.5, 0.3, 0.2)
    alg = FedHM()
    state, comms = alg.round(alg.init(params, 4), _ctx(weights=weights))
    prods = [(params["a.U"] + _shift("a.U", (6, 2), k)).numpy()
             @ (params["a.V"] + _shift("a.V", (2, 5), k)).numpy() for k in range(3)]
    avg = sum(a * p for a, p in zip(weights, prods, strict=True))
    u, s, vt = np.linalg.svd(avg)
    ref = (u[:, :2] * s[:2]) @ vt[:2]
    got = (state.params["a.U"] @ state.params["a.V"]).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # balanced split U = U_r sqrt(S), V = sqrt(S) V_r^T
    np.testing.assert_allclose(np.linalg.norm(state.params["a.U"].numpy(), axis=0),
                               np.sqrt(s[:2]), rtol=1e-10)
    assert comms.err_server == pytest.approx(math.sqrt(float(np.sum(s[2:] ** 2))), rel=1e-10)
    for n in ("a.bias", "b.weight", "b.bias"):
        ref_n = sum(a * (params[n] + _shift(n, params[n].shape, k))
                    for k, a in enumerate(weights))
        torch.testing.assert_close(state.params[n], ref_n, rtol=0, atol=1e-14)
    assert comms.bytes_down_per_client == comms.bytes_up_per_client == [_nbytes(params)] * 3
    assert comms.ranks_down == {"a": 2}


def test_fedpara_averages_hadamard_factors():
    g = torch.Generator().manual_seed(0)
    params = {n: torch.randn(*s, generator=g, dtype=F64) for n, s in
              (("a.X1", (6, 2)), ("a.Y1", (2, 5)), ("a.X2", (6, 2)), ("a.Y2", (2, 5)),
               ("a.bias", (6,)))}
    alg = FedPara()
    state, comms = alg.round(alg.init(params, 4), _ctx())
    for n, p in params.items():
        ref = sum((p + _shift(n, p.shape, k)) / 3 for k in range(3))
        torch.testing.assert_close(state.params[n], ref, rtol=0, atol=1e-14)
    assert comms.bytes_up_per_client == [_nbytes(params)] * 3


@pytest.mark.parametrize("cls", [FedHM, FedLMT, FedPara, FedMUD])
def test_factorized_methods_refuse_a_dense_model(cls):
    with pytest.raises(ValueError, match="model_kwargs: .* trains a factorized model"):
        cls().init({"w": torch.zeros(3, 3)}, 2)


@pytest.mark.parametrize("name", ["fedhm", "fedlmt", "fedpara", "fedmud"])
def test_run_names_the_missing_model_kwargs(name):
    with pytest.raises(ValueError, match=r"model_kwargs: .*'factorization'"):
        run(SimConfig(algorithm=name, rounds=1, num_clients=2))


def _mud_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=F64)  # noqa: E731
    return {"a.weight": r(6, 5), "a.A": r(6, 2), "a.B": r(2, 5), "a.bias": r(6),
            "b.weight": r(3, 6), "b.bias": r(3)}


def test_fedmud_averaging_is_exact_and_absorbed():
    params, weights = _mud_params(), (0.5, 0.3, 0.2)
    seen = {}

    def train(start, clients):
        seen["start"] = {n: p[0].clone() for n, p in start.items()}
        return _train(start, clients)

    alg = FedMUD()
    state0 = alg.init(params, 4)
    assert float(state0.params["a.B"].abs().sum()) == 0  # the update starts at zero
    state, comms = alg.round(state0, _ctx(weights=weights, train=train))
    a = seen["start"]["a.A"]
    assert float(seen["start"]["a.B"].abs().sum()) == 0
    torch.testing.assert_close(seen["start"]["a.weight"], params["a.weight"])
    b = [_shift("a.B", (2, 5), k) for k in range(3)]  # each client's trained B_k
    # exact: the new weight is the average of the clients' effective weights w + A B_k
    ref = sum(wk * (params["a.weight"] + a @ bk) for wk, bk in zip(weights, b, strict=True))
    torch.testing.assert_close(state.params["a.weight"], ref, rtol=0, atol=1e-13)
    assert float(state.params["a.B"].abs().sum()) == 0  # absorbed
    for n in ("a.bias", "b.weight", "b.bias"):
        ref_n = sum(wk * (params[n] + _shift(n, params[n].shape, k))
                    for k, wk in enumerate(weights))
        torch.testing.assert_close(state.params[n], ref_n, rtol=0, atol=1e-14)
    # bytes: up = B and the dense tensors; down (never synced) = dense tensors + weight + seed
    dense_tensors = 8 * (6 + 18 + 3)
    assert comms.bytes_up_per_client == [8 * 10 + dense_tensors] * 3
    assert comms.bytes_down_per_client == [dense_tensors + 8 * 30 + SEED_BYTES] * 3
    # round 2, full participation: the seed and last round's B_bar only
    state2, comms2 = alg.round(state, _ctx(weights=weights, seed=1))
    assert comms2.bytes_down_per_client == [dense_tensors + SEED_BYTES + 8 * 10] * 3
    assert not torch.equal(state2.params["a.A"], state.params["a.A"])  # a new seed, a new A


@pytest.mark.parametrize("algorithm,kwargs", [
    ("feddlr_ef", {}),
    ("fedmud", {"factorization": "mud", "rank": "fixed:2"}),
    ("fedhm", {"factorization": "lowrank", "rank": "fixed:2"})])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, algorithm, kwargs):
    cfg = SimConfig(dataset="digits", model_kwargs={"hidden": [16], **kwargs}, num_clients=6,
                    partition="iid", rounds=4, local_steps=2, batch_size=5, lr=0.1,
                    device="cpu", algorithm=algorithm, participation="scheme2",
                    clients_per_round=3)
    full = run(cfg)
    run(cfg.replace(rounds=2, checkpoint_every=2, output_dir=str(tmp_path)))
    resumed = run(cfg, resume_from=tmp_path / "checkpoint.pt")
    for n, p in full.params.items():
        assert torch.equal(p, resumed.params[n])
    assert [r.bytes_down_per_client for r in resumed.history.records] == \
        [r.bytes_down_per_client for r in full.history.records]


def test_catch_up_ledger_charges_missed_messages_or_dense():
    owed = init_ledger(3)
    out, owed = catch_up_bytes(owed, torch.tensor([0, 1]), message=10, dense=45)
    assert out == [10, 10]  # from the state everyone knows
    out, owed = catch_up_bytes(owed, torch.tensor([0]), message=20, dense=45)
    assert out == [20]
    out, owed = catch_up_bytes(owed, torch.tensor([0, 1, 2, 1]), message=30, dense=45,
                               fixed=5)
    # client 1 missed round 2 (20 + 30 = 50 > 45: dense); client 2 never synced (60 > 45);
    # client 1 listed twice pays once
    assert out == [35, 50, 50, 5]
    assert owed.tolist() == [0.0, 0.0, 0.0]
    out, _ = catch_up_bytes(init_ledger(2, never_dense=True), torch.tensor([1]), 10, 45)
    assert out == [45]  # holds nothing: the state dense


def _dense_params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(6, 5, generator=g, dtype=F64),
            "a.bias": torch.randn(6, generator=g, dtype=F64),
            "out.weight": torch.randn(3, 6, generator=g, dtype=F64)}


def test_feddlr_ef_error_feedback_identities_and_bytes():
    alg = FedDLREF(down=FixedRank(1), up=FixedRank(1), overrides={"*out*": None})
    state = alg.init(_dense_params(), 4)
    for r, clients in enumerate([(0, 1, 2), (1, 2, 3), (0, 1, 2)]):
        w = state.params
        h = {n: t[0] for n, t in state.memory["replica"].items()}
        g_old = {n: t.clone() for n, t in state.memory["g"].items()}
        sent = compress_state({n: w[n] - h[n] for n in w}, FixedRank(1),
                              overrides={"*out*": None})
        new, comms = alg.round(state, _ctx(clients, seed=r))
        h_new = {n: t[0] for n, t in new.memory["replica"].items()}
        for n in w:  # EF21-P: h <- h + C(w - h)
            torch.testing.assert_close(h_new[n], h[n] + sent.decompress()[n], rtol=0,
                                       atol=1e-13)
        idx = torch.tensor(clients)
        local = _train({n: t.unsqueeze(0).expand(3, *t.shape) for n, t in h_new.items()}, idx)
        msg = compress_state({n: local[n] - h_new[n] - g_old[n][idx] for n in w}, FixedRank(1),
                             overrides={"*out*": None}, batched=True)
        for n in w:  # EF21: g_k <- g_k + C(D_k - g_k); others unchanged
            torch.testing.assert_close(new.memory["g"][n][idx], g_old[n][idx]
                                       + msg.decompress()[n], rtol=0, atol=1e-13)
            rest = [k for k in range(4) if k not in clients]
            torch.testing.assert_close(new.memory["g"][n][rest], g_old[n][rest])
            # aggregation: w <- sum_k a_k (h + g_k)  (= h + mean g_k: weights sum to 1)
            torch.testing.assert_close(new.params[n], h_new[n] + new.memory["g"][n][idx]
                                       .mean(0), rtol=0, atol=1e-13)
        assert comms.bytes_up_per_client == msg.nbytes_per_item
        # rank-1 factors of a (6 x 5) are 11 numbers; the bias and the classifier dense
        assert comms.bytes_up_per_client == [8 * (11 + 6 + 18)] * 3
        dense = 8 * (30 + 6 + 18)
        cum = 8 * (11 + 6 + 18)
        if r == 0:  # from h = 0: one message
            assert comms.bytes_down_per_client == [sent.nbytes] * 3
        if r == 1:  # client 3 missed round 0: two messages (> dense: dense)
            assert comms.bytes_down_per_client == [cum, cum, min(dense, 2 * cum)]
        state = new


def test_feddlr_ef_at_full_rank_equals_fedavg_in_the_simulator():
    base = SimConfig(dataset="digits", num_clients=6, rounds=3, local_steps=2, dtype="float64",
                     participation="scheme2", clients_per_round=3, device="cpu",
                     model_kwargs={"hidden": (20,)})
    fedavg = run(base.replace(algorithm="fedavg"))
    # fixed:20 is full rank (64-20-10); min_compression_rate 0.01 still sends factors
    ef = run(base.replace(algorithm="feddlr_ef", policy_down="fixed:20", policy_up="fixed:20",
                          policy_overrides={}, min_compression_rate=0.01))
    for n in fedavg.params:
        torch.testing.assert_close(ef.params[n], fedavg.params[n], rtol=1e-9, atol=1e-10)
    assert ef.history.column("test_accuracy") == pytest.approx(
        fedavg.history.column("test_accuracy"))
    assert ef.history.records[0].ranks_down["net.fc1.weight"] == 20  # sent as factors


def test_floor_growth_policy():
    s = torch.tensor([[10.0, 1.0, 0.1, 0.01] + [0.0] * 6])
    assert int(EnergyThreshold(0.9).select(s, 10, 12)) == 1
    assert int(FloorGrowth(EnergyThreshold(0.9), growth=2).select(s, 10, 12)) == 3
    assert int(FloorGrowth(EnergyThreshold(0.9), floor=0.5).select(s, 10, 12)) == 5
    assert int(FloorGrowth(EnergyThreshold(0.9), growth=20).select(s, 10, 12)) == 10
    assert FloorGrowth(RankRatio(0.25), floor=0.5, growth=1).requested_rank(10, 12) == 5
    assert FloorGrowth(EnergyThreshold(0.9), growth=1).requested_rank(10, 12) is None
    with pytest.raises(ValueError, match="rank_floor"):
        FloorGrowth(RankRatio(0.25), floor=1.5)
    alg = make_algorithm(SimConfig(rank_floor=0.1, rank_growth=2))
    assert alg.down == FloorGrowth(RankRatio(0.25), 0.1, 2)


def test_default_feddlr_compresses():
    cfg = SimConfig()
    alg = make_algorithm(cfg)
    assert cfg.algorithm == "feddlr" and alg.down == RankRatio(0.25)
    assert cfg.policy_overrides == {"*out*": None}
