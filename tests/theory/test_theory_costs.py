"""Tests of theory.costs: bytes per round and multiply-adds of factorized layers."""

from __future__ import annotations

import pytest

from theory.costs import (
    conv_factorized_flops,
    factorized_flops,
    layer_nbytes,
    round_bytes,
)


def test_layer_nbytes_validates_its_integers():
    with pytest.raises(ValueError, match="rank"):
        layer_nbytes((3, 3), -1)
    with pytest.raises(ValueError, match="itemsize"):
        layer_nbytes((3, 3), 1, itemsize=0)
    with pytest.raises(ValueError, match="shape"):
        layer_nbytes((0, 3), 1)


def test_layer_goes_raw_at_the_break_even_rank():
    # 10 x 10: factors cost r * 20 numbers; raw when 20 r >= 100, i.e. r >= 5
    assert layer_nbytes((10, 10), 4) == 4 * 20 * 4
    assert layer_nbytes((10, 10), 5) == 400
    assert layer_nbytes((10, 10), 50) == 400
    # min_compression_rate 2: raw when 40 r >= 100, i.e. r >= 3
    assert layer_nbytes((10, 10), 2, min_compression_rate=2.0) == 2 * 20 * 4
    assert layer_nbytes((10, 10), 3, min_compression_rate=2.0) == 400
    assert layer_nbytes((10,), 1) == 40  # a bias is always dense
    assert layer_nbytes((8, 2, 3, 3), 1) == 1 * (8 + 18) * 4
    assert layer_nbytes((10, 10), None) == 400
    with pytest.raises(ValueError, match="min_compression_rate"):
        layer_nbytes((10, 10), 2, min_compression_rate=0.0)


def test_round_bytes_totals():
    shapes = [(64, 100), (64,), (10, 64), (10,)]
    rb = round_bytes(shapes, ranks_down=[8, None, 2, None], ranks_up=[4, None, 2, None],
                     num_clients=3)
    down = 8 * 164 * 4 + 64 * 4 + 2 * 74 * 4 + 10 * 4
    up = 4 * 164 * 4 + 64 * 4 + 2 * 74 * 4 + 10 * 4
    assert rb.downlink_per_client == down
    assert rb.uplink_per_client == (up, up, up)
    assert rb.downlink_total == 3 * down and rb.uplink_total == 3 * up
    assert rb.total == 3 * (down + up)
    dense = (6400 + 64 + 640 + 10) * 4
    assert rb.dense_per_client == dense
    assert rb.compression_ratio == pytest.approx(6 * dense / rb.total)


def test_round_bytes_per_client_ranks_and_checks():
    shapes = [(20, 20)]
    rb = round_bytes(shapes, [2], [[1], [3]], num_clients=2)
    assert rb.uplink_per_client == (1 * 40 * 4, 3 * 40 * 4)
    with pytest.raises(ValueError, match="ranks_down"):
        round_bytes(shapes, [1, 2], [1], num_clients=1)
    with pytest.raises(ValueError, match="ranks_up"):
        round_bytes(shapes, [1], [[1], [1], [1]], num_clients=2)
    with pytest.raises(ValueError, match="num_clients"):
        round_bytes(shapes, [1], [1], num_clients=0)


def test_flops():
    f = factorized_flops(256, 512, 16)
    assert (f.dense, f.factorized) == (256 * 512, 16 * 768)
    assert f.speedup == pytest.approx(256 * 512 / (16 * 768))
    c = conv_factorized_flops(64, 32, 3, 8)
    assert (c.dense, c.factorized) == (9 * 32 * 64, 9 * 32 * 8 + 8 * 64)
    c2 = conv_factorized_flops(64, 32, (3, 1), 8)
    assert c2.dense == 3 * 32 * 64
    with pytest.raises(ValueError, match="r"):
        factorized_flops(3, 3, 0)
