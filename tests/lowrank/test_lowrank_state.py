"""Tests of lowrank.state: model-level compression of state dicts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lowrank import CompressedState, FixedRank, compress_matrix, compress_state
from lowrank.baselines import DensePayload
from lowrank.state import MatrixEntry, resolve_policy


def held(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def held_nbytes(cs: CompressedState) -> int:
    """Bytes of the tensors a single-state payload actually holds."""
    total = 0
    for e in cs.entries.values():
        if isinstance(e, DensePayload):
            total += held(e.tensor)
        else:
            total += held(e.factors.U) + held(e.factors.V) + held(e.dense_items)
    return total


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3)  # 16 x 27
        self.bn = nn.BatchNorm2d(16)  # running stats + int64 num_batches_tracked
        self.fc1 = nn.Linear(40, 32)  # 32 x 40
        self.head = nn.Linear(32, 4)  # 4 x 32


def make_state(seed: int = 0, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = Net().to(dtype).state_dict()
    return {k: v.clone() for k, v in state.items()}


def test_compress_state_layout_and_bytes():
    state = make_state()
    cs = compress_state(state, FixedRank(2))
    assert cs.batch_size is None
    assert set(cs.entries) == set(state)
    for name in ("conv.weight", "fc1.weight", "head.weight"):
        assert isinstance(cs.entries[name], MatrixEntry)
    for name in ("conv.bias", "bn.weight", "bn.running_mean", "bn.num_batches_tracked",
                 "fc1.bias", "head.bias"):
        assert isinstance(cs.entries[name], DensePayload)
    assert cs.ranks == {"conv.weight": 2, "fc1.weight": 2, "head.weight": 2}
    expected = (2 * (16 + 27) + 2 * (32 + 40) + 2 * (4 + 32)) * 8  # factors, float64
    expected += sum(held(v) for k, v in state.items() if v.ndim < 2)  # raw at own dtype
    assert cs.nbytes == expected == held_nbytes(cs) == held_nbytes(cs.unbind()[0])
    # num_batches_tracked is int64 (8 bytes), counted at its dtype
    assert cs.entries["bn.num_batches_tracked"].nbytes == 8
    assert cs.nbytes_per_item == [cs.nbytes]


def test_raw_one_dim_tensors_counted_at_their_dtype():
    state = {"w": torch.randn(8, 8, dtype=torch.float64),
             "b16": torch.randn(8).half(), "b32": torch.randn(8), "b64": torch.randn(8).double(),
             "count": torch.tensor(3, dtype=torch.int64)}
    cs = compress_state(state, FixedRank(1))
    assert cs.entries["b16"].nbytes == 16
    assert cs.entries["b32"].nbytes == 32
    assert cs.entries["b64"].nbytes == 64
    assert cs.entries["count"].nbytes == 8
    assert cs.nbytes == 1 * 16 * 8 + 16 + 32 + 64 + 8


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_decompress_restores_shapes_and_dtypes(dtype):
    state = make_state(1, dtype)
    cs = compress_state(state, FixedRank(3), payload_dtype=torch.float16)
    out = cs.decompress()
    assert set(out) == set(state)
    for k, v in state.items():
        assert out[k].shape == v.shape and out[k].dtype == v.dtype, k
        if v.ndim < 2:
            assert torch.equal(out[k], v)
    # conv kernel: matricized as (O, I*kh*kw) and restored
    ref = compress_matrix(state["conv.weight"].reshape(16, -1), FixedRank(3),
                          payload_dtype=torch.float16).to_dense().reshape(16, 3, 3, 3)
    torch.testing.assert_close(out["conv.weight"], ref, atol=0, rtol=0)


def test_sq_errors_match_the_reconstruction():
    state = make_state(2)
    cs = compress_state(state, FixedRank(2))
    out = cs.decompress()
    for k, v in state.items():
        made = float((out[k].double() - v.double()).square().sum())
        assert cs.sq_errors[k] == pytest.approx(made, rel=1e-10, abs=1e-20), k
    assert cs.sq_error == pytest.approx(sum(cs.sq_errors.values()), rel=1e-15)


@pytest.mark.parametrize("min_compression_rate", [1.0, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("r", [1, 2, 3, 4])
def test_min_compression_rate_rule(min_compression_rate, r):
    # 4 x 12: factors cost r * 16 values against 48 dense; the grid hits the boundary
    # r * 16 * rate == 48 exactly at (r, rate) = (3, 1), (2, 1.5), (1, 3): sent raw
    w = torch.randn(4, 12, generator=torch.Generator().manual_seed(r), dtype=torch.float64)
    cs = compress_state({"w": w}, FixedRank(r), min_compression_rate=min_compression_rate)
    e = cs.entries["w"]
    raw = r * (4 + 12) * min_compression_rate >= 4 * 12
    assert bool(e.sent_dense) is raw
    if raw:
        assert cs.nbytes == held(w)
        assert torch.equal(cs.decompress()["w"], w)
        assert cs.ranks["w"] == 4 and cs.sq_errors["w"] == 0.0
    else:
        assert cs.nbytes == r * 16 * 8
        assert cs.ranks["w"] == r
        assert cs.sq_errors["w"] > 0
    # what the payload holds once split per item (a single state: one item) is what it sends
    assert cs.nbytes == sum(held_nbytes(item) for item in cs.unbind())
    assert torch.equal(cs.unbind()[0].decompress()["w"], cs.decompress()["w"])


def test_min_compression_rate_must_be_positive():
    with pytest.raises(ValueError, match="min_compression_rate"):
        compress_state(make_state(), FixedRank(1), min_compression_rate=0.0)


def test_overrides_by_pattern():
    state = make_state(3)
    cs = compress_state(state, FixedRank(2),
                        overrides={"head.*": None, "conv.*": "fixed:5", "*.weight": FixedRank(1)})
    assert isinstance(cs.entries["head.weight"], DensePayload)  # None => raw
    assert torch.equal(cs.decompress()["head.weight"], state["head.weight"])
    assert cs.ranks["conv.weight"] == 5  # first matching pattern wins
    assert cs.ranks["fc1.weight"] == 1
    assert "head.weight" not in cs.ranks
    assert resolve_policy("fc1.bias", FixedRank(2), {"*.weight": None}) == FixedRank(2)
    assert resolve_policy("x", None, None) is None
    # default None: everything raw, bytes = the dense state
    raw = compress_state(state, None)
    assert raw.nbytes == sum(held(v) for v in state.values())
    assert all(torch.equal(raw.decompress()[k], v) for k, v in state.items())


def _stack(states):
    return {k: torch.stack([s[k] for s in states]) for k in states[0]}


@pytest.mark.parametrize("policy", [FixedRank(2), "energy:0.6", "error:0.5"])
def test_batched_equals_per_item(policy):
    states = [make_state(10 + i) for i in range(4)]
    states[2]["fc1.weight"] = states[2]["fc1.weight"][:, :1].expand(32, 40).clone()  # rank 1
    batched = compress_state(_stack(states), policy, min_compression_rate=1.5, batched=True)
    assert batched.batch_size == 4
    dense = batched.decompress()
    per_items = batched.unbind()
    assert batched.nbytes_per_item == [p.nbytes for p in per_items]
    assert batched.nbytes == sum(batched.nbytes_per_item)
    any_raw = False
    for i, s in enumerate(states):
        single = compress_state(s, policy, min_compression_rate=1.5)
        for k, v in single.decompress().items():
            assert dense[k][i].shape == v.shape and dense[k].dtype == v.dtype
            torch.testing.assert_close(dense[k][i], v, atol=1e-13, rtol=0)
            torch.testing.assert_close(per_items[i].decompress()[k], v, atol=1e-13, rtol=0)
        for k, r in single.ranks.items():
            assert int(batched.ranks[k][i]) == r
            assert per_items[i].ranks[k] == r
            any_raw |= bool(batched.entries[k].sent_dense[i])
        for k, err in single.sq_errors.items():
            assert float(batched.sq_errors[k][i]) == pytest.approx(err, rel=1e-10, abs=1e-24)
        assert per_items[i].nbytes == single.nbytes
        # nbytes is exactly what each unbound item holds
        assert per_items[i].nbytes == held_nbytes(per_items[i])
    if policy != FixedRank(2):
        assert any_raw or len({int(r) for r in batched.ranks["fc1.weight"]}) > 1


def test_batched_mixed_raw_and_low_rank_items():
    # item 0 low rank (sent as factors), item 1 full rank at tau = 1 (sent raw)
    g = torch.Generator().manual_seed(7)
    low = torch.outer(torch.randn(6, generator=g, dtype=torch.float64),
                      torch.randn(10, generator=g, dtype=torch.float64))
    full = torch.randn(6, 10, generator=g, dtype=torch.float64)
    cs = compress_state({"w": torch.stack([low, full])}, "energy:1.0", batched=True)
    e = cs.entries["w"]
    assert e.sent_dense.tolist() == [False, True]
    assert cs.ranks["w"].tolist() == [1, 6]
    assert cs.nbytes == 1 * 16 * 8 + 60 * 8
    assert cs.nbytes_per_item == [16 * 8, 60 * 8]
    out = cs.decompress()["w"]
    torch.testing.assert_close(out[0], low, atol=1e-14, rtol=0)
    assert torch.equal(out[1], full)


def test_batched_inconsistent_batch_dimension_rejected():
    with pytest.raises(ValueError, match="b"):
        compress_state({"a": torch.randn(3, 4, 4), "b": torch.randn(2, 4)}, FixedRank(1),
                       batched=True)
    with pytest.raises(ValueError, match="s"):
        compress_state({"s": torch.tensor(1.0)}, FixedRank(1), batched=True)
