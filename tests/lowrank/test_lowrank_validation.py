"""Every bad input raises the documented error, naming the offending tensor."""

from __future__ import annotations

import math

import pytest
import torch

from lowrank import (
    QSGD,
    EnergyThreshold,
    ErrorBudget,
    ErrorFeedback,
    FixedRank,
    Identity,
    RankRatio,
    TopK,
    compress_matrix,
    compress_state,
    exact_svd,
    power_svd,
    randomized_svd,
)
from lowrank._validation import check_float_tensor, check_matrix


def _nan(shape=(4, 3)):
    x = torch.randn(*shape)
    x.view(-1)[1] = float("nan")
    return x


def _inf(shape=(4, 3)):
    x = torch.randn(*shape, dtype=torch.float64)
    x.view(-1)[-1] = -float("inf")
    return x


# --- policy parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [0, -1, -100])
def test_fixed_rank_must_be_positive(rank):
    with pytest.raises(ValueError, match="rank"):
        FixedRank(rank)


@pytest.mark.parametrize("rank", ["3", None, 2.5, True])
def test_fixed_rank_must_be_an_integer(rank):
    with pytest.raises(TypeError, match="rank"):
        FixedRank(rank)  # type: ignore[arg-type]


def test_fixed_rank_accepts_integral_float():
    assert FixedRank(3.0).rank == 3  # type: ignore[arg-type]


@pytest.mark.parametrize("tau", [0.0, -0.1, 1.0000001, 2.0, math.nan, math.inf])
def test_energy_tau_outside_unit_interval(tau):
    with pytest.raises(ValueError, match="tau"):
        EnergyThreshold(tau)


@pytest.mark.parametrize("rho", [0.0, -0.5, 1.5, math.nan])
def test_ratio_outside_unit_interval(rho):
    with pytest.raises(ValueError, match="rho"):
        RankRatio(rho)


@pytest.mark.parametrize("eps", [-1e-12, -1.0, math.nan])
def test_error_budget_eps_negative(eps):
    with pytest.raises(ValueError, match="eps"):
        ErrorBudget(eps)


def test_boundary_values_accepted():
    EnergyThreshold(1.0)
    RankRatio(1.0)
    ErrorBudget(0.0)
    FixedRank(1)


# --- target ranks of the decompositions -------------------------------------------------------


@pytest.mark.parametrize("fn", [randomized_svd, power_svd])
@pytest.mark.parametrize("rank", [0, -2, 1.5, True])
def test_decomposition_target_rank_must_be_positive_integer(fn, rank):
    with pytest.raises(ValueError, match="fc7.weight.*rank"):
        fn(torch.randn(5, 4), rank, name="fc7.weight")


def test_decomposition_iteration_counts():
    a = torch.randn(5, 4)
    with pytest.raises(ValueError, match="oversampling"):
        randomized_svd(a, 2, oversampling=-1)
    with pytest.raises(ValueError, match="power_iters"):
        randomized_svd(a, 2, power_iters=-1)
    with pytest.raises(ValueError, match="iters"):
        power_svd(a, 2, iters=0)


# --- tensor contents ---------------------------------------------------------------------------

MATRIX_FUNCTIONS = {
    "exact_svd": lambda x, name: exact_svd(x, name=name),
    "randomized_svd": lambda x, name: randomized_svd(x, 2, name=name),
    "power_svd": lambda x, name: power_svd(x, 2, name=name),
    "compress_matrix": lambda x, name: compress_matrix(x, FixedRank(1), name=name),
    "compress_matrix/randomized": lambda x, name: compress_matrix(
        x, FixedRank(1), "randomized", name=name),
    "check_matrix": lambda x, name: check_matrix(x, name),
}

VECTOR_FUNCTIONS = {
    "Identity": lambda x, name: Identity().compress(x, name),
    "TopK": lambda x, name: TopK(k=2).compress(x, name),
    "QSGD": lambda x, name: QSGD(4).compress(x, name),
    "ErrorFeedback": lambda x, name: ErrorFeedback(TopK(k=2)).compress(x, name),
    "check_float_tensor": lambda x, name: check_float_tensor(x, name),
}

ALL_FUNCTIONS = {**MATRIX_FUNCTIONS, **VECTOR_FUNCTIONS}


@pytest.mark.parametrize("fn", list(ALL_FUNCTIONS))
@pytest.mark.parametrize("make", [_nan, _inf], ids=["nan", "inf"])
def test_non_finite_entries_rejected_by_name(fn, make):
    with pytest.raises(ValueError, match=r"layer3\.weight: contains 1 NaN or Inf"):
        ALL_FUNCTIONS[fn](make(), "layer3.weight")


@pytest.mark.parametrize("fn", list(ALL_FUNCTIONS))
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool,
                                   torch.complex64])
def test_non_float_dtypes_rejected_by_name(fn, dtype):
    x = torch.ones(4, 3).to(dtype)
    with pytest.raises(TypeError, match=r"blocks\.0\.w: expected a floating-point tensor"):
        ALL_FUNCTIONS[fn](x, "blocks.0.w")


@pytest.mark.parametrize("fn", list(ALL_FUNCTIONS))
def test_non_tensor_rejected_by_name(fn):
    with pytest.raises(TypeError, match="my_array: expected a torch.Tensor"):
        ALL_FUNCTIONS[fn]([[1.0, 2.0], [3.0, 4.0]], "my_array")


@pytest.mark.parametrize("fn", list(MATRIX_FUNCTIONS))
@pytest.mark.parametrize("shape", [(), (5,)])
def test_fewer_than_two_dims_rejected_where_a_matrix_is_needed(fn, shape):
    with pytest.raises(ValueError, match=r"head\.bias: a matrix needs at least 2 dimensions"):
        MATRIX_FUNCTIONS[fn](torch.randn(shape), "head.bias")


@pytest.mark.parametrize("fn", list(MATRIX_FUNCTIONS))
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 4)])
def test_empty_matrix_rejected(fn, shape):
    with pytest.raises(ValueError, match="emb: empty matrix"):
        MATRIX_FUNCTIONS[fn](torch.randn(shape), "emb")


def test_valid_inputs_pass_validation():
    check_matrix(torch.randn(2, 3, dtype=torch.float16), "x")
    check_float_tensor(torch.randn(3, dtype=torch.bfloat16), "x")
    check_float_tensor(torch.empty(0), "x")


# --- model level ------------------------------------------------------------------------------


def _state():
    return {"features.0.weight": torch.randn(8, 3, 3, 3), "features.0.bias": torch.randn(8),
            "classifier.weight": torch.randn(4, 8), "classifier.bias": torch.randn(4)}


@pytest.mark.parametrize("bad", ["features.0.weight", "classifier.weight"])
@pytest.mark.parametrize("make", [_nan, _inf], ids=["nan", "inf"])
def test_state_dict_with_non_finite_layer_names_that_layer(bad, make):
    state = _state()
    state[bad] = make(tuple(state[bad].shape)).to(state[bad].dtype)
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        compress_state(state, FixedRank(2))


def test_batched_state_dict_with_nan_names_that_layer():
    state = {k: torch.stack([v, v]) for k, v in _state().items()}
    state["classifier.weight"][1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match=r"classifier\.weight: contains 1 NaN"):
        compress_state(state, "energy:0.9", batched=True)


def test_state_dict_with_non_tensor_names_the_entry():
    state = {**_state(), "step": 3}
    with pytest.raises(TypeError, match="step"):
        compress_state(state, FixedRank(2))  # type: ignore[arg-type]


def test_integer_tensors_in_a_state_dict_are_sent_raw_not_rejected():
    state = {**_state(), "bn.num_batches_tracked": torch.tensor(5),
             "index_table": torch.arange(12).reshape(3, 4)}
    cs = compress_state(state, FixedRank(2))
    out = cs.decompress()
    assert torch.equal(out["index_table"], state["index_table"])
    assert torch.equal(out["bn.num_batches_tracked"], state["bn.num_batches_tracked"])


def test_nan_in_a_raw_bias_names_the_tensor():
    from lowrank import compress_state

    state = {"fc.weight": torch.randn(6, 5), "fc.bias": torch.tensor([0.0, float("nan")])}
    with pytest.raises(ValueError, match="fc.bias"):
        compress_state(state, "fixed:2")


def test_fixed_rank_accepts_numpy_integers():
    import numpy as np

    from lowrank import FixedRank

    assert FixedRank(np.int64(3)).rank == 3


def test_qsgd_levels_never_exceed_s_even_when_the_norm_rounds_down(monkeypatch):
    from lowrank import QSGD

    # one dominant float64 entry: |x_0| / float32(norm) exceeds 1 by rounding, so the
    # scaled value is a hair above s; force the round-up branch with u = 0
    x = torch.tensor([1.0 + 5e-8, 1e-9, -1e-9], dtype=torch.float64)
    assert float(x.abs().max()) / float(torch.linalg.vector_norm(x).float()) > 1.0
    monkeypatch.setattr(torch, "rand", lambda *a, **k: torch.zeros(a[0], dtype=torch.float64))
    p = QSGD(127).compress(x)
    assert p.levels.dtype == torch.int8
    assert int(p.levels.abs().max()) <= 127 and int(p.levels[0]) == 127


# --- all_finite: one summation instead of isfinite(x).all() --------------------------------------

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), None])
def test_all_finite_equals_isfinite_all(dtype, bad):
    from lowrank._validation import all_finite

    x = torch.randn(6, 5, 7, generator=torch.Generator().manual_seed(0)).to(dtype)
    if bad is not None:
        x[3, 2, 4] = bad
    # finite entries whose sum overflows the dtype: row 1 (the sum is inf, the entries are not)
    x[1] = torch.finfo(dtype).max / 2
    for dim in (None, 1, (1, 2), -1):
        want = torch.isfinite(x).all() if dim is None else torch.isfinite(x).all(dim=dim)
        assert torch.equal(all_finite(x, dim=dim), want), (dtype, bad, dim)
    assert torch.equal(all_finite(x.mT, dim=(1, 2)), torch.isfinite(x).all(dim=(1, 2)))
