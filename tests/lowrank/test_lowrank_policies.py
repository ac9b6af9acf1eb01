"""Tests of lowrank.policies: the rank each policy selects, clipping, parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lowrank import (
    EnergyThreshold,
    ErrorBudget,
    FixedRank,
    RankRatio,
    compress_matrix,
    parse_policy,
)

F64_EPS = torch.finfo(torch.float64).eps


def _random_spectrum(seed: int, k: int, decay: float) -> torch.Tensor:
    """Descending non-negative float64 singular values with a random profile."""
    g = np.random.default_rng(seed)
    s = np.sort(g.random(k) * np.arange(1, k + 1, dtype=np.float64) ** -decay)[::-1].copy()
    return torch.from_numpy(s)


spectra = st.builds(
    _random_spectrum,
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 25),
    decay=st.floats(0.0, 3.0),
)


@settings(max_examples=40, deadline=None)
@given(s=spectra, tau=st.floats(1e-3, 1.0))
def test_energy_threshold_keeps_tau_and_is_minimal(s, tau):
    k = s.numel()
    r = int(EnergyThreshold(tau).select(s, k, k + 3))
    assert 1 <= r <= k
    s2 = s.square()
    total = float(s2.sum())
    kept = float(s2[:r].sum())
    # keeps at least tau of the energy (up to the documented relative slack of 4 ulps)
    assert kept >= tau * total * (1 - 4 * F64_EPS)
    # minimal: one rank fewer keeps strictly less than tau
    if r > 1:
        assert float(s2[: r - 1].sum()) < tau * total


def test_energy_threshold_hand_checked_values():
    s = torch.tensor([3.0, 2.0, 1.0, 1.0], dtype=torch.float64)  # energies 9, 4, 1, 1 (total 15)
    assert int(EnergyThreshold(9 / 15).select(s, 4, 4)) == 1  # exactly reached at r = 1
    assert int(EnergyThreshold(9 / 15 + 1e-9).select(s, 4, 4)) == 2
    assert int(EnergyThreshold(13 / 15).select(s, 4, 4)) == 2
    assert int(EnergyThreshold(14 / 15).select(s, 4, 4)) == 3
    assert int(EnergyThreshold(1.0).select(s, 4, 4)) == 4
    # tau = 1 keeps the numerical rank, not more
    assert int(EnergyThreshold(1.0).select(torch.tensor([2.0, 1.0, 0.0, 0.0]), 4, 4)) == 2


@settings(max_examples=40, deadline=None)
@given(s=spectra, frac=st.floats(0.0, 1.2))
def test_error_budget_tail_within_budget_and_minimal(s, frac):
    total = float(s.square().sum())
    eps = frac * math.sqrt(total)
    r = int(ErrorBudget(eps).select(s, s.numel(), s.numel()))
    s2 = s.square()
    assert 1 <= r <= s.numel()
    assert float(s2[r:].sum()) <= eps**2 * (1 + 4 * F64_EPS) + 4 * F64_EPS * total
    if r > 1:  # minimal: one rank fewer leaves a tail above the budget
        assert float(s2[r - 1:].sum()) > eps**2


def test_error_budget_hand_checked_values():
    s = torch.tensor([3.0, 2.0, 1.0, 1.0], dtype=torch.float64)  # tails: 6, 2, 1, 0
    assert int(ErrorBudget(0.0).select(s, 4, 4)) == 4
    assert int(ErrorBudget(1.0).select(s, 4, 4)) == 3
    assert int(ErrorBudget(math.sqrt(2)).select(s, 4, 4)) == 2
    assert int(ErrorBudget(math.sqrt(6)).select(s, 4, 4)) == 1
    assert int(ErrorBudget(100.0).select(s, 4, 4)) == 1  # at least 1


def test_policies_on_a_batch_choose_per_matrix():
    s = torch.tensor([[3.0, 0.1, 0.1], [1.0, 1.0, 1.0]], dtype=torch.float64)
    assert EnergyThreshold(0.9).select(s, 3, 3).tolist() == [1, 3]
    assert ErrorBudget(0.5).select(s, 3, 3).tolist() == [1, 3]
    assert FixedRank(2).select(s, 3, 3).tolist() == [2, 2]
    assert FixedRank(2).select(s, 3, 3).dtype == torch.int64


def test_energy_policy_uses_total_energy_from_sketch():
    # only 2 of 4 singular values known; the true energy (15) decides the rank
    s = torch.tensor([3.0, 2.0], dtype=torch.float64)
    total = torch.tensor(15.0, dtype=torch.float64)
    # with the true total: 0.65 * 15 = 9.75 > 9, so r = 2
    assert int(EnergyThreshold(0.65).select(s, 4, 4, total_energy=total)) == 2
    # with only the sketched energy (13): 0.65 * 13 = 8.45 <= 9, so r = 1
    assert int(EnergyThreshold(0.65).select(s, 4, 4)) == 1


@pytest.mark.parametrize(("rank", "m", "n"), [(1, 5, 7), (3, 5, 7), (5, 5, 7), (4, 9, 4)])
def test_fixed_rank_documented_rank(rank, m, n):
    w = torch.randn(m, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = compress_matrix(w, FixedRank(rank))
    assert f.rank == rank and not f.clipped
    assert f.U.shape == (m, rank) and f.V.shape == (n, rank)


@pytest.mark.parametrize(("rho", "m", "n", "expected"), [
    (0.25, 8, 12, 2), (0.3, 8, 12, 3), (1.0, 8, 12, 8), (0.01, 8, 12, 1), (0.5, 10, 7, 4),
    (0.2, 10, 10, 2),  # 0.2 * 10 = 2.0000000000000004 in floats; ceil must still give 2
])
def test_rank_ratio_documented_rank(rho, m, n, expected):
    assert expected == math.ceil(rho * min(m, n) - 1e-9)
    assert RankRatio(rho).requested_rank(m, n) == expected
    w = torch.randn(m, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = compress_matrix(w, RankRatio(rho))
    assert f.rank == expected and not f.clipped


@pytest.mark.parametrize("method", ["exact", "randomized", "power"])
@pytest.mark.parametrize(("rank", "m", "n"), [(6, 5, 7), (100, 4, 3), (8, 8, 3)])
def test_rank_above_min_dim_is_clipped_and_reported(method, rank, m, n):
    w = torch.randn(m, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    f = compress_matrix(w, FixedRank(rank), method,
                        generator=torch.Generator().manual_seed(0))
    assert f.clipped
    assert f.rank == min(m, n)
    assert f.requested_rank == rank
    assert f.U.shape == (m, min(m, n))
    torch.testing.assert_close(f.to_dense(), w, atol=1e-12, rtol=0)
    assert FixedRank(rank).max_rank(m, n) == min(m, n)


def test_rank_not_clipped_at_exactly_min_dim():
    f = compress_matrix(torch.randn(4, 6), FixedRank(4))
    assert not f.clipped and f.rank == 4
    assert not compress_matrix(torch.randn(4, 6), EnergyThreshold(0.5)).clipped


@pytest.mark.parametrize("policy", [FixedRank(3), RankRatio(0.25), EnergyThreshold(0.99),
                                    ErrorBudget(0.1), FixedRank(1), EnergyThreshold(1.0),
                                    ErrorBudget(0.0)])
def test_parse_policy_round_trips(policy):
    kind = {FixedRank: "fixed", RankRatio: "ratio", EnergyThreshold: "energy",
            ErrorBudget: "error"}[type(policy)]
    value = next(iter(vars(policy).values()))
    parsed = parse_policy(f"{kind}:{value}")
    assert parsed == policy and type(parsed) is type(policy)
    assert parse_policy(policy) is policy


@pytest.mark.parametrize("spec", ["fixed", "fixed:", "rank:3", "", "energy:abc", "fixed:2.5",
                                  "FIXED:3", "ratio:1.5", "energy:0", "error:-1", "fixed:0"])
def test_parse_policy_rejects_bad_specs(spec):
    with pytest.raises((ValueError, TypeError)):
        parse_policy(spec)


def test_parse_policy_error_message_lists_forms():
    with pytest.raises(ValueError, match="fixed:R"):
        parse_policy("nope:1")


def test_floor_growth_parsed_from_its_prefix_and_selects_documented_rank():
    from lowrank.policies import FloorGrowth

    p = parse_policy("floor:0.5:grow:2:energy:0.9")
    assert p == FloorGrowth(EnergyThreshold(0.9), 0.5, 2)
    assert parse_policy("floor:0:grow:1:floor:0.2:grow:0:fixed:3") == FloorGrowth(
        FloorGrowth(FixedRank(3), 0.2, 0), 0.0, 1)
    s = torch.tensor([10.0, 1.0, 0.1, 0.01] + [0.0] * 6)
    assert int(EnergyThreshold(0.9).select(s, 10, 12)) == 1
    assert int(FloorGrowth(EnergyThreshold(0.9), growth=2).select(s, 10, 12)) == 3
    assert int(p.select(s, 10, 12)) == 5  # the floor, ceil(0.5 * 10), beats 1 + 2
    assert int(FloorGrowth(EnergyThreshold(0.9), growth=20).select(s, 10, 12)) == 10
    for bad in ("floor:0.1", "floor:0.1:up:2:fixed:3", "floor:x:grow:2:fixed:3",
                "floor:0.1:grow:2:nope:3"):
        with pytest.raises(ValueError, match="policy"):
            parse_policy(bad)
    with pytest.raises(ValueError, match="rank_floor"):
        parse_policy("floor:1.5:grow:0:fixed:3")
    with pytest.raises(ValueError, match="rank_growth"):
        FloorGrowth(FixedRank(3), 0.1, -1)
