"""Shared fixtures for the lowrank tests: matrices with a known spectrum."""

from __future__ import annotations

import pytest
import torch


def _matrix_with_spectrum(m: int, n: int, s: torch.Tensor, seed: int) -> torch.Tensor:
    """``U diag(s) V^T`` with Haar-random orthonormal ``U (m x k)``, ``V (n x k)``, float64."""
    g = torch.Generator().manual_seed(seed)
    k = s.numel()
    u, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return (u * s.to(torch.float64)) @ v.T


@pytest.fixture
def matrix_with_spectrum():
    """Factory ``(m, n, s, seed) -> W`` with singular values exactly ``s`` (float64)."""
    return _matrix_with_spectrum


@pytest.fixture(autouse=True)
def _single_thread():
    """Run each lowrank test on one intra-op thread, then restore the setting.

    The matrices here are tiny: threads buy nothing, and on a busy shared machine
    OpenMP workers waiting for a core made some tests 100x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
