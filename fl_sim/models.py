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
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lowrank.accounting import sends_factors
from lowrank.policies import parse_policy
from lowrank.svd import exact_svd

from ._validation import _check_int

__all__ = [
    "CNN",
    "CNN1D",
    "FACTORIZATIONS",
    "FactorizedLayer",
    "HadamardLayer",
    "LowRankLayer",
    "MLP",
    "MODELS",
    "MUDLayer",
    "factorize_model",
    "factorized_layers",
    "fedpara_rank",
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
        self.out = nn.Linear(128, num_classes, device="meta")  # the classifier, as MLP's net.out
        _materialize(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` for images ``(batch, C, H, W)``."""
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.out(x)


class CNN1D(nn.Module):
    """Small 1-D convolutional network for signals such as MNIST-1D (40 samples).

    ``conv(1->32, k 5, stride 2, pad 2) - ReLU - conv(32->64, k 3, stride 2, pad 1) - ReLU -
    flatten - linear(64 * L/4 -> 128) - ReLU - linear(128 -> classes)``; layers are named
    ``conv1``, ``conv2``, ``fc1``, ``out`` (the classifier matches the pattern ``"*out*"``).

    The 1-D convolutions are ``nn.Conv2d`` with ``1 x k`` kernels on inputs viewed as
    ``(batch, 1, 1, L)``: the same function as ``nn.Conv1d``, and every tool written for
    ``Linear``/``Conv2d`` (byte accounting, :func:`lowrank.factorize`, the factorized
    variants below) applies unchanged.

    Parameters
    ----------
    length : int, default 40
        Length of the input signal (inputs of any shape are flattened to it).
    num_classes : int, default 10
        Number of outputs.
    channels : (int, int), default (32, 64)
        Channels of the two convolutions.
    hidden : int, default 128
        Width of the hidden linear layer.
    generator : torch.Generator, optional
        Source of the initial weights.
    """

    def __init__(
        self,
        length: int = 40,
        num_classes: int = 10,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        length = _check_int(length, "length", minimum=4)
        num_classes = _check_int(num_classes, "num_classes", minimum=1)
        c1, c2 = (_check_int(c, f"channels[{i}]", minimum=1) for i, c in enumerate(channels))
        hidden = _check_int(hidden, "hidden", minimum=1)
        self.length = length
        self.conv1 = nn.Conv2d(1, c1, (1, 5), stride=(1, 2), padding=(0, 2), device="meta")
        self.conv2 = nn.Conv2d(c1, c2, (1, 3), stride=(1, 2), padding=(0, 1), device="meta")
        l1 = (length + 2 * 2 - 5) // 2 + 1
        l2 = (l1 + 2 * 1 - 3) // 2 + 1
        self.fc1 = nn.Linear(c2 * l2, hidden, device="meta")
        self.out = nn.Linear(hidden, num_classes, device="meta")
        _materialize(self, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_classes)`` for signals ``(batch, L)`` (or any shape of L)."""
        x = x.reshape(x.shape[0], 1, 1, self.length)
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.fc1(x.flatten(1)))
        return self.out(x)


# --------------------------------------------------------------------------------------
# Factorized variants: the model the low-rank FL methods train (FedHM, FedLMT, FedPara,
# FedMUD). Each replaces the weight of a Linear/Conv2d by parameters from which the
# weight is built; the bias keeps its name. Matricization is the project's rule
# (lowrank/accounting.py): a conv kernel (O, I, kh, kw) is the O x (I kh kw) matrix.

# factorization -> names of the parameters that replace ``weight``
FACTORIZATIONS: dict[str, tuple[str, ...]] = {
    "lowrank": ("U", "V"),  # W = U @ V            (FedHM, FedLMT)
    "hadamard": ("X1", "Y1", "X2", "Y2"),  # W = (X1 @ Y1) * (X2 @ Y2)   (FedPara)
    "mud": ("weight", "A", "B"),  # W = weight + A @ B, weight and A frozen   (FedMUD)
}


class FactorizedLayer(nn.Module):
    """A ``Linear`` or ``Conv2d`` (groups 1, zero padding) whose weight is built from factors.

    Subclasses define :meth:`matrix` (the ``O x (I kh kw)`` weight matrix) and may
    override :meth:`forward`. ``bias`` keeps the dense layer's name and value.
    """

    def __init__(self, dense: nn.Linear | nn.Conv2d) -> None:
        super().__init__()
        if isinstance(dense, nn.Conv2d) and (dense.groups != 1 or dense.padding_mode != "zeros"):
            raise ValueError("dense: factorized convolutions need groups=1 and zero padding")
        self.weight_shape = tuple(dense.weight.shape)
        self.conv = None if isinstance(dense, nn.Linear) else {
            "stride": dense.stride, "padding": dense.padding, "dilation": dense.dilation}
        self.bias = None if dense.bias is None else nn.Parameter(dense.bias.detach().clone())

    @property
    def shape(self) -> tuple[int, int]:
        """``(m, n)`` of the matricized weight."""
        return self.weight_shape[0], math.prod(self.weight_shape[1:])

    def matrix(self) -> torch.Tensor:
        """The ``m x n`` weight matrix this layer applies."""
        raise NotImplementedError

    def dense_weight(self) -> torch.Tensor:
        """The weight in the dense layer's shape."""
        return self.matrix().reshape(self.weight_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The dense layer's operation with the built weight."""
        if self.conv is None:
            return F.linear(x, self.dense_weight(), self.bias)
        return F.conv2d(x, self.dense_weight(), self.bias, **self.conv)


class LowRankLayer(FactorizedLayer):
    """``W = U V``: ``U (m, r)``, ``V (r, *kernel)``, computed as two thin layers.

    A linear layer runs ``x -> x V^T -> (.) U^T + b``; a convolution runs a ``kh x kw``
    conv to ``r`` channels then a ``1 x 1`` conv, so training and inference cost
    ``r (m + n)`` multiply-adds per output position instead of ``m n``. Initialized from
    the dense weight's truncated SVD, ``U = U_r sqrt(S_r)``, ``V = sqrt(S_r) V_r^T``
    (FedHM's split).
    """

    def __init__(self, dense: nn.Linear | nn.Conv2d, rank: int) -> None:
        super().__init__(dense)
        m, n = self.shape
        r = _check_int(rank, "rank", minimum=1)
        svd = exact_svd(dense.weight.detach().reshape(m, n).double())
        root = svd.S[:r].sqrt()
        self.U = nn.Parameter((svd.U[:, :r] * root).to(dense.weight.dtype))
        self.V = nn.Parameter((root.unsqueeze(1) * svd.V[:, :r].T).to(dense.weight.dtype)
                              .reshape(r, *self.weight_shape[1:]))

    def matrix(self) -> torch.Tensor:
        return self.U @ self.V.reshape(self.V.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.V.shape[0]
        if self.conv is None:
            return F.linear(F.linear(x, self.V), self.U, self.bias)
        inner = F.conv2d(x, self.V, None, **self.conv)
        return F.conv2d(inner, self.U.reshape(self.U.shape[0], r, 1, 1), self.bias)


def fedpara_rank(m: int, n: int, gamma: float) -> int:
    """FedPara's inner rank ``r`` of an ``m x n`` layer for the parameter ratio ``gamma``.

    ``r = ceil((1 - gamma) r_min + gamma r_max)``, ``r_min = ceil(sqrt(min(m, n)))`` (the
    least ``r`` with ``r^2 >= min(m, n)``, so the Hadamard product can reach full rank),
    ``r_max = floor(m n / (2 (m + n)))`` (as many parameters as the dense layer); the
    matricized form of the rule in ``adap/flower: baselines/fedpara/fedpara/models.py``.
    """
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma: must lie in [0, 1], got {gamma}")
    r_min = math.ceil(math.sqrt(min(m, n)))
    r_max = max(1, (m * n) // (2 * (m + n)))
    return max(1, math.ceil((1 - gamma) * r_min + gamma * r_max - 1e-12))


class HadamardLayer(FactorizedLayer):
    """FedPara's ``W = (X1 Y1) * (X2 Y2)`` (elementwise), rank up to ``r^2`` from ``2 r (m+n)``.

    Convolutions use the matricized form (``Y`` of shape ``(r, I kh kw)``), a documented
    simplification of FedPara's Tucker-core parameterization of conv kernels. Factors are
    drawn ``U(-a, a)`` with ``a = (9 b / (sqrt(3) r))^(1/4)``, so that each entry of ``W``
    has the variance of the dense default init ``U(-b, b)``, ``b = 1/sqrt(fan_in)``.
    """

    def __init__(self, dense: nn.Linear | nn.Conv2d, rank: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(dense)
        m, n = self.shape
        r = _check_int(rank, "rank", minimum=1)
        b = 1.0 / math.sqrt(n)
        a = (9.0 * b / (math.sqrt(3.0) * r)) ** 0.25
        kw = {"dtype": dense.weight.dtype}
        for name, shape in (("X1", (m, r)), ("Y1", (r, n)), ("X2", (m, r)), ("Y2", (r, n))):
            t = torch.empty(shape, **kw).uniform_(-a, a, generator=generator)
            setattr(self, name, nn.Parameter(t))

    def matrix(self) -> torch.Tensor:
        return (self.X1 @ self.Y1) * (self.X2 @ self.Y2)


class MUDLayer(FactorizedLayer):
    """FedMUD's layer: ``W = weight + A B`` with ``weight`` and ``A`` frozen, ``B`` trained.

    ``weight`` is the global model, ``A (m, r)`` the factor regenerated each round from
    a shared seed, ``B (r, n)`` the trained factor (zero at the start of a round, so the
    layer starts at the global model). The forward pass detaches ``weight`` and ``A``:
    their gradients are zero, and the algorithm (fl_sim/algorithms/fedmud.py) keeps its
    own copies of them, so what local training does to them is never used.
    """

    def __init__(self, dense: nn.Linear | nn.Conv2d, rank: int) -> None:
        super().__init__(dense)
        m, n = self.shape
        r = _check_int(rank, "rank", minimum=1)
        self.weight = nn.Parameter(dense.weight.detach().clone())
        self.A = nn.Parameter(torch.zeros(m, r, dtype=dense.weight.dtype))
        self.B = nn.Parameter(torch.zeros(r, n, dtype=dense.weight.dtype))

    def matrix(self) -> torch.Tensor:
        return self.weight.detach().reshape(self.shape) + self.A.detach() @ self.B


def _classifier_name(model: nn.Module) -> str | None:
    """The last ``Linear`` in module order: the classifier, which stays dense."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return names[-1] if names else None


def factorize_model(
    model: nn.Module,
    factorization: str,
    *,
    rank: str = "ratio:0.25",
    gamma: float = 0.1,
    dense_layers: Sequence[str] = (),
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Replace the ``Linear``/``Conv2d`` layers of a dense model by factorized ones (in place).

    The classifier (the last ``Linear``) and layers matching a pattern of
    ``dense_layers`` stay dense, as do layers whose factors would not be smaller than
    the dense weight (:func:`lowrank.accounting.sends_factors`).

    Parameters
    ----------
    model : nn.Module
        A dense model of this module (initialized: ``lowrank`` starts from its SVD,
        ``mud`` from its weights).
    factorization : {"lowrank", "hadamard", "mud"}
        :class:`LowRankLayer`, :class:`HadamardLayer` or :class:`MUDLayer`.
    rank : str
        A policy that fixes the rank in advance (``"ratio:RHO"``, ``"fixed:R"``), for
        ``lowrank`` and ``mud``.
    gamma : float
        FedPara's parameter ratio in ``[0, 1]`` (:func:`fedpara_rank`), for ``hadamard``.
    dense_layers : sequence of str
        ``fnmatch`` patterns of module names that stay dense.
    generator : torch.Generator, optional
        Source of the Hadamard factors.

    Returns
    -------
    nn.Module
        ``model`` itself.
    """
    import fnmatch

    if factorization not in FACTORIZATIONS:
        raise ValueError(f"factorization: expected one of {list(FACTORIZATIONS)}, "
                         f"got {factorization!r}")
    policy = parse_policy(rank)
    keep = {_classifier_name(model)}
    replacements = []
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear | nn.Conv2d) or name in keep \
                or any(fnmatch.fnmatchcase(name, p) for p in dense_layers):
            continue
        m, n = layer.weight.shape[0], layer.weight[0].numel()
        if factorization == "hadamard":
            r = fedpara_rank(m, n, gamma)
            if 2 * r * (m + n) >= m * n:
                continue
            new: nn.Module = HadamardLayer(layer, r, generator)
        else:
            r = policy.requested_rank(m, n)
            if r is None:
                raise ValueError(f"rank: {rank!r} does not fix a rank in advance; "
                                 "use 'ratio:RHO' or 'fixed:R'")
            r = min(r, m, n)
            if not sends_factors(m, n, r):
                continue
            new = LowRankLayer(layer, r) if factorization == "lowrank" else MUDLayer(layer, r)
        replacements.append((name, new))
    for name, new in replacements:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
    return model


def factorized_layers(params: Mapping[str, torch.Tensor], factorization: str) -> list[str]:
    """Prefixes of the layers of ``params`` that carry every factor of ``factorization``.

    For ``"lowrank"`` these are the ``p`` with ``p.U`` and ``p.V`` in ``params``.
    """
    names = FACTORIZATIONS[factorization]
    first = "." + names[0]
    prefixes = [k[: -len(first)] for k in params if k.endswith(first)]
    return [p for p in prefixes if all(f"{p}.{f}" in params for f in names)]


MODELS = ("logreg", "linreg", "mlp", "cnn", "cnn1d")


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
    name : {"logreg", "linreg", "mlp", "cnn", "cnn1d"}
        :class:`LogisticRegression`, :class:`LinearRegression`, :class:`MLP`, :class:`CNN`,
        :class:`CNN1D`.
    input_shape : sequence of int
        Shape of one input, e.g. ``(64,)`` or ``(1, 8, 8)``; ``"cnn"`` needs ``(C, H, W)``.
    num_outputs : int
        Number of classes, or the regression output dimension.
    generator : torch.Generator, optional
        Source of the initial weights (torch's global generator when omitted).
    **kwargs
        Passed to the model, e.g. ``bias=True`` or ``hidden=(100,)``, except the keys
        of the factorized variant: ``factorization`` (``"lowrank"``, ``"hadamard"``,
        ``"mud"``), ``rank``, ``gamma``, ``dense_layers`` go to :func:`factorize_model`,
        applied to the dense model once it is initialized. This is how a config selects
        the model that FedHM/FedLMT (``lowrank``), FedPara (``hadamard``) and FedMUD
        (``mud``) train: ``model_kwargs={"factorization": "lowrank", "rank": "ratio:0.25"}``.

    Returns
    -------
    torch.nn.Module
    """
    factor_kw = {k: kwargs.pop(k) for k in ("factorization", "rank", "gamma", "dense_layers")
                 if k in kwargs}
    model = _build_dense(name, input_shape, num_outputs, generator, kwargs)
    if factor_kw.get("factorization") is not None:
        factorize_model(model, factor_kw.pop("factorization"), generator=generator, **factor_kw)
    elif factor_kw:
        raise ValueError(f"model_kwargs: {sorted(factor_kw)} need a 'factorization'")
    return model


def _build_dense(name: str, input_shape: Sequence[int], num_outputs: int,
                 generator: torch.Generator | None, kwargs: dict) -> nn.Module:
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
    if name == "cnn1d":
        return CNN1D(in_features, num_outputs, generator=generator, **kwargs)
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
