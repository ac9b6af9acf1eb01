"""Participation schemes of Li et al. (ICLR 2020)."""

from __future__ import annotations

import pytest
import torch

from fl_sim.participation import sample_participants


def _p(n: int, seed: int = 0) -> torch.Tensor:
    w = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) + 0.1
    return w / w.sum()


def test_full_participation_uses_every_client_with_weights_p():
    p = _p(7)
    part = sample_participants(p, "full", None, torch.Generator())
    assert part.clients.tolist() == list(range(7))
    assert torch.equal(part.weights, p)


def test_scheme1_draws_k_with_replacement_and_averages_plainly():
    p = _p(5)
    part = sample_participants(p, "scheme1", 12, torch.Generator().manual_seed(1))
    assert part.clients.numel() == 12  # more than N: only possible with replacement
    assert torch.allclose(part.weights, torch.full((12,), 1 / 12, dtype=torch.float64))


def test_scheme2_draws_distinct_clients_with_weights_p_n_over_k():
    p = _p(10)
    part = sample_participants(p, "scheme2", 4, torch.Generator().manual_seed(2))
    assert part.clients.unique().numel() == 4
    assert torch.allclose(part.weights, p[part.clients] * 10 / 4)


@pytest.mark.parametrize("scheme", ["scheme1", "scheme2"])
def test_aggregation_is_unbiased(scheme):
    """E[sum_k a_k x_k] = sum_k p_k x_k: the mean over draws is within 5 standard errors."""
    n, k, draws = 12, 3, 20000
    p = _p(n, seed=3)
    x = torch.randn(n, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    gen = torch.Generator().manual_seed(5)
    samples = torch.empty(draws, dtype=torch.float64)
    for i in range(draws):
        part = sample_participants(p, scheme, k, gen)
        samples[i] = (part.weights * x[part.clients]).sum()
    target = float((p * x).sum())
    stderr = float(samples.std()) / draws**0.5
    assert abs(float(samples.mean()) - target) < 5 * stderr
    # and the check has power: a biased aggregate (plain mean of the drawn x) is rejected
    assert abs(float(x.mean()) - target) > 5 * stderr


def test_bad_inputs_name_the_parameter():
    p = _p(4)
    with pytest.raises(ValueError, match="K=5 exceeds"):
        sample_participants(p, "scheme2", 5, torch.Generator())
    with pytest.raises(ValueError, match="clients_per_round"):
        sample_participants(p, "scheme1", 0, torch.Generator())
    with pytest.raises(ValueError, match="participation"):
        sample_participants(p, "everyone", 2, torch.Generator())
