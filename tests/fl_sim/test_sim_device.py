"""fl_sim.device: the device chosen once, and timers that wait for the device's queued work."""

from __future__ import annotations

import types

import pytest
import torch

from fl_sim.device import resolve_device, synchronized_clock


def test_auto_is_cuda_when_present_else_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_one_line_error():
    with pytest.raises(ValueError, match="device: 'cuda' requested but CUDA is not available"):
        resolve_device("cuda")


def test_the_clock_synchronizes_cuda_tensors_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    before = synchronized_clock({"w": torch.zeros(2)})
    assert calls == []  # CPU: nothing queued, no wait
    fake = types.SimpleNamespace(is_cuda=True, device=torch.device("cuda", 1))
    after = synchronized_clock({"w": fake, "b": fake})
    assert calls == [torch.device("cuda", 1)]  # once, on the parameters' device
    assert after >= before
    synchronized_clock({})  # no parameters: no wait, no error
    assert len(calls) == 1
