"""Tests of lowrank.accounting: the one byte rule, for ints and for tensors of ranks."""

from __future__ import annotations

import pytest
import torch

from lowrank.accounting import (
    check_min_compression_rate,
    factors_nbytes,
    matricized_shape,
    sends_factors,
    wire_nbytes,
)


def test_basic_sizes():
    assert factors_nbytes(10, 20, 3, 4) == 3 * 30 * 4
    assert factors_nbytes(10, 20, 3, 8) == 3 * 30 * 8
    assert matricized_shape((16, 3, 5, 5)) == (16, 75)
    assert matricized_shape((7,)) is None
    with pytest.raises(ValueError, match="shape"):
        matricized_shape((0, 3))


def test_break_even_rank_goes_dense():
    # 10 x 10: factors cost 20 r numbers; dense when 20 r >= 100, i.e. r >= 5
    assert sends_factors(10, 10, 4)
    assert not sends_factors(10, 10, 5)
    assert wire_nbytes((10, 10), 4, 4) == 4 * 20 * 4
    assert wire_nbytes((10, 10), 5, 4) == 400
    assert wire_nbytes((10, 10), 50, 4) == 400  # clipped to min(m, n), then dense
    # min_compression_rate 2: dense when 40 r >= 100, i.e. r >= 3
    assert wire_nbytes((10, 10), 2, 4, 2.0) == 2 * 20 * 4
    assert wire_nbytes((10, 10), 3, 4, 2.0) == 400
    assert wire_nbytes((10,), 1, 4) == 40  # a bias is always dense
    assert wire_nbytes((10, 10), None, 4) == 400
    assert wire_nbytes((8, 2, 3, 3), 1, 4) == 1 * (8 + 18) * 4  # conv: 8 x 18


def test_dense_itemsize_differs_from_factor_itemsize():
    # factors at float16 (2 bytes), dense items at float32 (4 bytes)
    assert wire_nbytes((10, 10), 2, 2, dense_itemsize=4) == 2 * 20 * 2
    assert wire_nbytes((10, 10), 6, 2, dense_itemsize=4) == 400


def test_tensor_of_ranks_matches_the_scalar_rule_elementwise():
    ranks = torch.arange(0, 12)
    got = wire_nbytes((10, 10), ranks, 4, 1.5)
    want = [wire_nbytes((10, 10), int(r), 4, 1.5) for r in ranks]
    assert got.tolist() == want
    assert sends_factors(10, 10, ranks, 1.5).tolist() == [
        sends_factors(10, 10, int(r), 1.5) for r in ranks]


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), True, "2"])
def test_min_compression_rate_must_be_finite_and_positive(bad):
    with pytest.raises(ValueError, match="min_compression_rate"):
        check_min_compression_rate(bad)
