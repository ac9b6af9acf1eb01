"""theory.approximation.floor_growth_relative_error_bound against exact truncation errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowrank.policies import EnergyThreshold, FixedRank, FloorGrowth, RankRatio, parse_policy
from theory.approximation import (
    floor_growth_relative_error_bound,
    policy_relative_error_bound,
    tail_energy,
)


@pytest.mark.parametrize("spec", ["floor:0.05:grow:2:energy:0.8", "floor:0.3:grow:0:energy:0.99",
                                  "floor:0:grow:3:ratio:0.1", "floor:0.2:grow:1:error:0.5",
                                  "floor:0:grow:1:floor:0.25:grow:0:fixed:2"])
def test_bound_holds_on_random_and_flat_spectra(spec):
    policy, m, n = parse_policy(spec), 12, 20
    bound = floor_growth_relative_error_bound(policy, m, n)
    g = np.random.default_rng(0)
    spectra = [np.ones(12), np.r_[1.0, np.zeros(11)]]
    spectra += [np.sort(g.random(12) ** d)[::-1].copy() for d in (1, 4, 12) for _ in range(20)]
    for s in spectra:
        r = int(policy.select(torch.from_numpy(s.copy()), m, n))
        assert tail_energy(s, r) / np.sum(s ** 2) <= bound + 1e-12, (s, r)


def test_bound_is_attained_on_a_flat_spectrum_and_improves_on_the_inner_policy():
    s = np.ones(10)
    policy = FloorGrowth(FixedRank(2), floor=0.0, growth=3)  # keeps 5 of 10 equal values
    assert floor_growth_relative_error_bound(policy, 10, 10) == pytest.approx(0.5)
    assert tail_energy(s, int(policy.select(torch.ones(10), 10, 10))) / 10 == pytest.approx(0.5)
    energy = FloorGrowth(EnergyThreshold(0.5), floor=0.8)
    assert floor_growth_relative_error_bound(energy, 10, 10) == pytest.approx(0.2)
    assert policy_relative_error_bound(EnergyThreshold(0.5), 10, 10) > 0.49
    with pytest.raises(TypeError, match="FloorGrowth"):
        floor_growth_relative_error_bound(RankRatio(0.5), 10, 10)


def test_policy_relative_error_bound_dispatches_to_floor_growth():
    """The general entry point knows FloorGrowth (it raised TypeError before)."""
    for spec in ("floor:0.05:grow:2:energy:0.8", "floor:0:grow:1:floor:0.25:grow:0:fixed:2"):
        policy = parse_policy(spec)
        assert policy_relative_error_bound(policy, 12, 20) == \
            floor_growth_relative_error_bound(policy, 12, 20)
