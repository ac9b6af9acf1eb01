"""Tests of fl_sim.models: shapes, parameter counts, vmap-compatibility, initialization."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from fl_sim.models import (
    CNN,
    MLP,
    LinearRegression,
    LogisticRegression,
    build_model,
    init_parameters,
    loss_fn_for,
)

SHAPES = [
    ("logreg", (64,), 10),
    ("logreg", (1, 8, 8), 10),
    ("linreg", (20,), 5),
    ("mlp", (64,), 10),
    ("mlp", (1, 28, 28), 10),
    ("cnn", (1, 8, 8), 10),
    ("cnn", (1, 28, 28), 10),
    ("cnn", (3, 32, 32), 10),
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("name", "shape", "out"), SHAPES)
def test_output_shapes(name, shape, out):
    model = build_model(name, shape, out, generator=gen(0))
    y = model(torch.rand(3, *shape, generator=gen(1)))
    assert y.shape == (3, out) and y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_mlp_parameter_count():
    model = MLP(64, (200, 200), 10)
    expected = 64 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10
    assert sum(p.numel() for p in model.parameters()) == expected


def test_linear_models_hold_exactly_the_theory_matrix():
    logreg = LogisticRegression(64, 10)
    assert [(n, tuple(p.shape)) for n, p in logreg.named_parameters()] == [
        ("linear.weight", (10, 64))
    ]
    linreg = LinearRegression(6, 3, bias=True)
    assert {n for n, _ in linreg.named_parameters()} == {"linear.weight", "linear.bias"}
    x = torch.rand(4, 6, generator=gen(0))
    torch.testing.assert_close(linreg(x), x @ linreg.linear.weight.T + linreg.linear.bias)


def test_cnn_flatten_size_follows_image_size():
    for size, flat in ((8, 64 * 16), (28, 64 * 196), (32, 64 * 256)):
        assert CNN(1, 10, image_size=size).fc1.in_features == flat
    assert CNN(3, 4, image_size=(8, 12)).fc1.in_features == 64 * 4 * 6


@pytest.mark.parametrize(("name", "shape", "out"), [SHAPES[0], SHAPES[2], SHAPES[3], SHAPES[5]])
def test_vmap_over_stacked_copies_equals_per_copy_forward(name, shape, out):
    models = [build_model(name, shape, out, generator=gen(s)) for s in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.rand(5, *shape, generator=gen(9))

    def forward(p, b, inputs):
        return functional_call(base, (p, b), (inputs,))

    batched = vmap(forward, in_dims=(0, 0, None))(params, buffers, x)
    expected = torch.stack([m(x) for m in models])
    assert batched.shape == (3, 5, out)
    torch.testing.assert_close(batched, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(expected[0], expected[1])  # the copies really differ


def test_vmap_of_grad_matches_per_copy_autograd():
    models = [MLP(64, (16,), 10, generator=gen(s)) for s in range(2)]
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.rand(7, 64, generator=gen(3))
    y = torch.randint(0, 10, (7,), generator=gen(4))
    loss = loss_fn_for("classification")

    def client_loss(p):
        return loss(functional_call(base, p, (x,)), y)

    grads = vmap(grad(client_loss))(params)
    for i, m in enumerate(models):
        m.zero_grad()
        loss(m(x), y).backward()
        for n, p in m.named_parameters():
            torch.testing.assert_close(grads[n][i], p.grad)


def test_init_is_deterministic_by_generator_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = CNN(generator=gen(5)), CNN(generator=gen(5)), CNN(generator=gen(6))
    assert torch.equal(torch.random.get_rng_state(), state)
    for (n, pa), (_, pb), (_, pc) in zip(
        a.named_parameters(), b.named_parameters(), c.named_parameters(), strict=True
    ):
        assert torch.equal(pa, pb), n
        assert not torch.equal(pa, pc), n


def test_init_without_generator_follows_torch_manual_seed():
    torch.manual_seed(123)
    a = MLP(8, (4,), 3)
    torch.manual_seed(123)
    b = MLP(8, (4,), 3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_init_bounds_are_pytorch_default():
    model = CNN(1, 10, image_size=8, generator=gen(0))
    for layer, fan_in in ((model.conv1, 9), (model.conv2, 32 * 9), (model.fc1, 1024)):
        bound = 1 / math.sqrt(fan_in)
        assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
        assert layer.weight.abs().max() > 0.9 * bound  # uses the whole range
    same = init_parameters(copy.deepcopy(model), gen(0))
    for pa, pb in zip(model.parameters(), same.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_build_model_errors():
    with pytest.raises(ValueError, match=r"unknown model 'resnet'.*'logreg'.*'cnn'"):
        build_model("resnet", (64,), 10)
    with pytest.raises(ValueError, match=r"'cnn' needs image inputs \(C, H, W\), got \(64,\)"):
        build_model("cnn", (64,), 10)
    with pytest.raises(ValueError, match="num_classes: must be >= 2, got 1"):
        build_model("logreg", (64,), 1)
    with pytest.raises(ValueError, match=r"input_shape\[1\]: must be >= 1, got 0"):
        build_model("mlp", (1, 0), 10)
    with pytest.raises(TypeError, match="in_features"):
        LinearRegression(2.5, 1)


def test_regression_loss_is_half_mean_squared_error_summed_over_outputs():
    g = gen(0)
    x = torch.randn(9, 4, generator=g)
    w = torch.randn(3, 4, generator=g)
    y = torch.randn(9, 3, generator=g)
    loss = loss_fn_for("regression")(x @ w.T, y)
    expected = torch.linalg.matrix_norm(x @ w.T - y) ** 2 / (2 * 9)
    torch.testing.assert_close(loss, expected)
    assert loss.ndim == 0


def test_classification_loss_is_mean_cross_entropy():
    logits, y = torch.randn(6, 4, generator=gen(1)), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(loss_fn_for("classification")(logits, y),
                               F.cross_entropy(logits, y))
    with pytest.raises(ValueError, match="task: expected 'classification' or 'regression'"):
        loss_fn_for("ranking")
