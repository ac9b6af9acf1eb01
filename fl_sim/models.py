"""Plain ``torch.nn`` models for the simulator, and the loss of each task.

Every model is a stack of ``Linear``/``Conv2d`` layers and ReLUs: no batch norm, no
dropout, no in-place operations, so that the trainer can run many clients at
once with ``torch.func.functional_call`` under ``torch.func.vmap``. Inputs of any
shape are flattened by the fully connected models, so an MLP or a logistic
regression also takes ``(1, 28, 28)`` images.

Initialization is PyTorch's default (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for
weights and biases) drawn from an explicit ``torch.Generator`` when one is
given; without one it draws from torch's global generator, like ``nn.Linear``.
The layers are built on the ``meta`` device first, so building a model with a
generator leaves the global random state untouched.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._validation import _check_int

__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "LinearRegression",
    "LogisticRegression",
    "build_model",
    "per_sample_loss",
    "init_parameters",
    "loss_fn_for",
]


def init_parameters(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """(Re)initialize every ``Linear`` and ``Conv2d`` of ``module`` in place.

    Weights and biases are drawn from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, which is
    what PyTorch's default ``reset_parameters`` amounts to for these layers.

    Parameters
    ----------
    module : torch.nn.Module
        The model; its parameters must live on a real device (not ``meta``).
    generator : torch.Generator, optional
        Source of randomness; torch's global generator when omitted.

    Returns
    -------
    torch.nn.Module
        ``module`` itself.
    """
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear | nn.Conv2d):
                fan_in = layer.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
    return module


def _materialize(module: nn.Module, generator: torch.Generator | None) -> None:
    """Give a module built on the meta device real CPU storage and initialize it."""
    module.to_empty(device="cpu")
    init_parameters(module, generator)


class LinearRegression(nn.Module):
    """Linear (matrix) regression: one ``nn.Linear``.

    ``linear.weight`` of shape ``(out_dim, in_features)`` is ``W.T`` for the theory's
    ``F_k(W) = ||X_k W - Y_k||^2 / (2 n_k)``.

    Parameters
    ----------
    in_features : int
        Number of input features (inputs are flattened).
    out_dim : int
        Output dimension, ``>= 1``.
    bias : bool, default False
        Add a bias vector.
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        in_features: int,
        out_dim: int,
        bias: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        in_features = _check_int(in_features, "in_features", minimum=1)
        out_dim = _check_int(out_dim, "out_dim", minimum=1)
        self.linear = nn.Linear(in_features, out_dim, bias=bias, device="meta")
        _materialize(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions ``(batch, out_dim)``."""
        return self.linear(x.flatten(1))


class LogisticRegression(LinearRegression):
    """Multinomial logistic regression: one ``nn.Linear``, returns logits.

    Without a bias (the default) the only parameter, ``linear.weight`` of shape
    ``(num_classes, in_features)``, is exactly the matrix ``W`` of the convex theory.

    Parameters
    ----------
    in_features : int
        Number of input features (inputs are flattened).
    num_classes : int
        Number of classes, ``>= 2``.
    bias : bool, default False
        Add a bias vector.
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        bias: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(in_features, _check_int(num_classes, "num_classes", minimum=2),
                         bias=bias, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)``."""
        return super().forward(x)


class MLP(nn.Module):
    """Fully connected network with ReLU activations.

    Layers are named ``net.fc1``, ``net.fc2``, ..., ``net.out``.

    Parameters
    ----------
    in_features : int, default 64
        Number of input features (inputs are flattened).
    hidden : sequence of int, default (200, 200)
        Widths of the hidden layers (may be empty).
    num_classes : int, default 10
        Number of outputs.
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        in_features: int = 64,
        hidden: Sequence[int] = (200, 200),
        num_classes: int = 10,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        widths = [_check_int(in_features, "in_features", minimum=1)]
        widths += [_check_int(h, f"hidden[{i}]", minimum=1) for i, h in enumerate(hidden)]
        num_classes = _check_int(num_classes, "num_classes", minimum=1)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True), start=1):
            layers[f"fc{i}"] = nn.Linear(a, b, device="meta")
            layers[f"relu{i}"] = nn.ReLU()
        layers["out"] = nn.Linear(widths[-1], num_classes, device="meta")
        self.net = nn.Sequential(layers)
        _materialize(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)``."""
        return self.net(x.flatten(1))


class CNN(nn.Module):
    """Small convolutional network for ``(C, H, W)`` images.

    ``conv3x3(C->32, pad 1) - ReLU - conv3x3(32->64, pad 1) - ReLU - maxpool 2 -
    flatten - linear(64 * floor(H/2) * floor(W/2) -> 128) - ReLU - linear(128 -> classes)``.

    Parameters
    ----------
    in_channels : int, default 1
        Input channels.
    num_classes : int, default 10
        Number of outputs.
    image_size : int or (int, int), default 8
        Height and width of the input (8 for digits, 28 for MNIST, 32 for CIFAR-10).
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int | tuple[int, int] = 8,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        in_channels = _check_int(in_channels, "in_channels", minimum=1)
        num_classes = _check_int(num_classes, "num_classes", minimum=1)
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        h = _check_int(h, "image_size (height)", minimum=2)
        w = _check_int(w, "image_size (width)", minimum=2)
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1, device="meta")
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1, device="meta")
        self.fc1 = nn.Linear(64 * (h // 2) * (w // 2), 128, device="meta")
        self.fc2 = nn.Linear(128, num_classes, device="meta")
        _materialize(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` for images ``(batch, C, H, W)``."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


MODELS = ("logreg", "linreg", "mlp", "cnn")


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_outputs: int,
    *,
    generator: torch.Generator | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build a model by name for inputs of ``input_shape`` and ``num_outputs`` outputs.

    Parameters
    ----------
    name : {"logreg", "linreg", "mlp", "cnn"}
        :class:`LogisticRegression`, :class:`LinearRegression`, :class:`MLP`, :class:`CNN`.
    input_shape : sequence of int
        Shape of one input, e.g. ``(64,)`` or ``(1, 8, 8)``; ``"cnn"`` needs ``(C, H, W)``.
    num_outputs : int
        Number of classes, or the regression output dimension.
    generator : torch.Generator, optional
        Source of the initial weights (torch's global generator when omitted).
    **kwargs
        Passed to the model, e.g. ``bias=True`` or ``hidden=(100,)``.

    Returns
    -------
    torch.nn.Module
    """
    shape = tuple(_check_int(d, f"input_shape[{i}]", 1) for i, d in enumerate(input_shape))
    if not shape:
        raise ValueError("input_shape: must have at least one dimension, got ()")
    in_features = math.prod(shape)
    if name == "logreg":
        return LogisticRegression(in_features, num_outputs, generator=generator, **kwargs)
    if name == "linreg":
        return LinearRegression(in_features, num_outputs, generator=generator, **kwargs)
    if name == "mlp":
        return MLP(in_features, num_classes=num_outputs, generator=generator, **kwargs)
    if name == "cnn":
        if len(shape) != 3:
            raise ValueError(
                f"input_shape: 'cnn' needs image inputs (C, H, W), got {shape}; "
                "use e.g. dataset 'digits_images' instead of 'digits'"
            )
        c, h, w = shape
        return CNN(c, num_outputs, image_size=(h, w), generator=generator, **kwargs)
    raise ValueError(f"name: unknown model {name!r}; valid names are {list(MODELS)}")


def per_sample_loss(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss of each sample of a task, shape ``(n,)``.

    Parameters
    ----------
    task : {"classification", "regression"}
        Cross-entropy of logits for classification; ``0.5 * ||pred - y||^2``
        (summed over outputs) for regression, so that the mean over samples with
        ``pred = X W`` is the theory's ``F_k(W) = ||X W - Y||^2 / (2 n)`` without the
        L2 term (weight decay is added by the trainer).
    """
    if task == "classification":
        return lambda pred, y: F.cross_entropy(pred, y, reduction="none")
    if task == "regression":
        return lambda pred, y: 0.5 * (pred - y).square().sum(dim=-1)
    raise ValueError(f"task: expected 'classification' or 'regression', got {task!r}")


def loss_fn_for(task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The mean loss of a task: the mean of :func:`per_sample_loss` over samples.

    Returns
    -------
    callable
        ``loss(pred, y) -> scalar tensor``.
    """
    per_sample = per_sample_loss(task)
    return lambda pred, y: per_sample(pred, y).mean()
