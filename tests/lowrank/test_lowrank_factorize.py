"""Tests of lowrank.factorize: the compact network equals the truncated original."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lowrank import FactorizedConv2d, FactorizedLinear, FixedRank, compress_matrix, factorize
from lowrank.state import resolve_policy


def truncated_reference(module: nn.Module, policy, ranked: dict[str, int], overrides=None):
    """The original module with each factorized layer's weight replaced by its truncation.

    Built independently of factorize: ``compress_matrix(W.reshape(out, -1)).to_dense()``
    reshaped back, for exactly the layers the report says were factorized.
    """
    ref = copy.deepcopy(module)
    for name, layer in ref.named_modules():
        if name in ranked:
            w = layer.weight.detach()
            f = compress_matrix(w.reshape(w.shape[0], -1), resolve_policy(name, policy, overrides))
            assert f.rank == ranked[name]
            with torch.no_grad():
                layer.weight.copy_(f.to_dense().reshape(w.shape))
    return ref


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_linear_module_itself():
    torch.manual_seed(0)
    lin = nn.Linear(30, 20).double()
    compact, report = factorize(lin, FixedRank(4))
    assert isinstance(compact, FactorizedLinear)
    assert report.ranks == {"": 4}
    x = torch.randn(7, 30, dtype=torch.float64)
    ref = truncated_reference(lin, FixedRank(4), report.ranks)
    torch.testing.assert_close(compact(x), ref(x), atol=1e-12, rtol=0)
    assert report.params_before == 30 * 20 + 20
    assert report.params_after == n_params(compact) == 4 * (30 + 20) + 20
    assert report.params_after < report.params_before
    assert report.param_ratio == pytest.approx(620 / 220)
    # the input module is left unchanged
    assert isinstance(lin, nn.Linear) and lin.weight.shape == (20, 30)


def test_linear_without_bias():
    torch.manual_seed(1)
    lin = nn.Linear(12, 16, bias=False).double()
    compact, report = factorize(lin, FixedRank(2))
    x = torch.randn(3, 12, dtype=torch.float64)
    ref = truncated_reference(lin, FixedRank(2), report.ranks)
    torch.testing.assert_close(compact(x), ref(x), atol=1e-12, rtol=0)
    assert compact[1].bias is None


@pytest.mark.parametrize("kwargs", [
    {"stride": 1, "padding": 0, "dilation": 1},
    {"stride": 2, "padding": 1, "dilation": 1},
    {"stride": (1, 2), "padding": (2, 1), "dilation": (2, 1)},
    {"stride": 1, "padding": 2, "dilation": 2, "padding_mode": "circular"},
    {"stride": 1, "padding": "same", "dilation": 1},
    {"stride": 3, "padding": 1, "dilation": 2, "bias": False},
])
def test_conv2d_with_stride_padding_dilation(kwargs):
    torch.manual_seed(2)
    conv = nn.Conv2d(4, 10, (3, 5), **kwargs).double()
    compact, report = factorize(conv, FixedRank(3))
    assert isinstance(compact, FactorizedConv2d)
    assert report.ranks == {"": 3}
    x = torch.randn(2, 4, 13, 17, dtype=torch.float64)
    ref = truncated_reference(conv, FixedRank(3), report.ranks)
    out = compact(x)
    assert out.shape == conv(x).shape
    torch.testing.assert_close(out, ref(x), atol=1e-12, rtol=0)
    assert report.params_after == n_params(compact) == 3 * (4 * 15) + 3 * 10 + (
        10 if kwargs.get("bias", True) else 0)
    assert report.params_after < report.params_before


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, dilation=2, padding=2), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=4),  # grouped: stays dense
        )
        self.inner = nn.Module()
        self.inner.fc = nn.Linear(16 * 4 * 4, 64)
        self.classifier = nn.Linear(64, 5)

    def forward(self, x):
        h = self.features(x).flatten(1)
        return self.classifier(torch.relu(self.inner.fc(h)))


@pytest.mark.parametrize("float_dtype", [torch.float64, torch.float32])
def test_nested_model_equals_truncated_original(float_dtype):
    torch.manual_seed(3)
    model = Block().to(float_dtype).eval()
    policy = FixedRank(2)
    # features.0 is 16 x 27: r * (m + n) * rate = 2 * 43 * 2 = 172 < 432 -> factorized;
    # classifier (5 x 64: 2 * 69 * 2 = 276 < 320) would be factorized, the override keeps it
    compact, report = factorize(model, policy, overrides={"classifier": None},
                                min_compression_rate=2.0)
    assert set(report.ranks) == {"features.0", "features.2", "inner.fc"}
    assert report.kept_dense["classifier"] == "no policy"
    assert report.kept_dense["features.4"] == "grouped convolution"
    assert isinstance(compact.features[0], FactorizedConv2d)
    assert isinstance(compact.inner.fc, FactorizedLinear)
    assert isinstance(compact.classifier, nn.Linear)
    assert compact.features[0][0].weight.dtype == float_dtype
    x = torch.randn(4, 3, 8, 8, dtype=float_dtype)
    ref = truncated_reference(model, policy, report.ranks)
    tol = 1e-12 if float_dtype == torch.float64 else 1e-5
    torch.testing.assert_close(compact(x), ref(x), atol=tol, rtol=0)
    assert report.params_after == n_params(compact) < report.params_before == n_params(model)


def test_layer_kept_dense_by_min_compression_rate():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(40, 40), nn.ReLU(), nn.Linear(40, 6)).double()
    # rank 3, min_compression_rate 2: first layer 3 * 80 * 2 = 480 < 1600 -> factorized;
    # last layer 3 * 46 * 2 = 276 >= 240 -> dense (at rate 1.5: 207 < 240 -> factorized)
    compact, report = factorize(model, FixedRank(3), min_compression_rate=2.0)
    assert report.ranks == {"0": 3}
    assert "2" in report.kept_dense and "would not shrink" in report.kept_dense["2"]
    assert isinstance(compact[2], nn.Linear)
    assert torch.equal(compact[2].weight, model[2].weight)
    x = torch.randn(5, 40, dtype=torch.float64)
    ref = truncated_reference(model, FixedRank(3), report.ranks)
    torch.testing.assert_close(compact(x), ref(x), atol=1e-12, rtol=0)
    compact1, report1 = factorize(model, FixedRank(3), min_compression_rate=1.5)
    assert report1.ranks == {"0": 3, "2": 3}


def test_override_policy_by_pattern_and_string():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(30, 30), nn.Linear(30, 30)).double()
    compact, report = factorize(model, "fixed:2", overrides={"1": "fixed:5"})
    assert report.ranks == {"0": 2, "1": 5}
    x = torch.randn(3, 30, dtype=torch.float64)
    ref = truncated_reference(model, "fixed:2", report.ranks, overrides={"1": "fixed:5"})
    torch.testing.assert_close(compact(x), ref(x), atol=1e-12, rtol=0)


def test_full_rank_policy_is_lossless_but_not_smaller():
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(8, 8)).double()
    compact, report = factorize(model, FixedRank(8))
    assert report.ranks == {} and "0" in report.kept_dense
    assert report.params_after == report.params_before
    x = torch.randn(2, 8, dtype=torch.float64)
    torch.testing.assert_close(compact(x), model(x), atol=0, rtol=0)


def test_low_rank_weights_factorize_exactly():
    # a model whose weights already have rank 2 is reproduced exactly by rank-2 factors
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(20, 30), nn.Tanh(), nn.Linear(30, 10)).double()
    with torch.no_grad():
        for lin in (model[0], model[2]):
            m, n = lin.weight.shape
            lin.weight.copy_(torch.randn(m, 2, dtype=torch.float64)
                             @ torch.randn(2, n, dtype=torch.float64))
    compact, report = factorize(model, FixedRank(2))
    assert report.ranks == {"0": 2, "2": 2}
    x = torch.randn(6, 20, dtype=torch.float64)
    torch.testing.assert_close(compact(x), model(x), atol=1e-11, rtol=0)
    assert report.params_after < report.params_before
