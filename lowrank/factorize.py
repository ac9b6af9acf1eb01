"""Export a model with low-rank weights as a compact network for inference.

Each compressible ``nn.Linear(n -> m)`` becomes ``Linear(n -> r, no bias)``
followed by ``Linear(r -> m)``; each ``nn.Conv2d`` (groups = 1) with kernel
``(O, I, kh, kw)`` becomes a ``kh x kw`` conv with ``r`` output channels (same
stride, padding, dilation) followed by a ``1 x 1`` conv to ``O`` channels. The
output equals that of the original module with its weights truncated to rank
``r`` — exactly, up to floating point.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .accounting import check_min_compression_rate, sends_factors
from .factors import LowRankFactors, compress_matrix
from .policies import RankPolicy
from .state import PolicyOverrides, resolve_policy

__all__ = ["FactorizedLinear", "FactorizedConv2d", "FactorizationReport", "factorize"]


class FactorizedLinear(nn.Sequential):
    """``Linear(n -> r)`` then ``Linear(r -> m)``: a rank-``r`` linear layer."""

    def __init__(self, factors: LowRankFactors, bias: torch.Tensor | None) -> None:
        m, n = factors.shape
        r = factors.rank
        kw = {"dtype": factors.U.dtype, "device": factors.U.device}  # not the default float32
        first = nn.Linear(n, r, bias=False, **kw)
        second = nn.Linear(r, m, bias=bias is not None, **kw)
        with torch.no_grad():
            first.weight.copy_(factors.V.mT)
            second.weight.copy_(factors.U)
            if bias is not None:
                second.bias.copy_(bias)
        super().__init__(first, second)


class FactorizedConv2d(nn.Sequential):
    """A ``kh x kw`` conv to ``r`` channels, then a ``1 x 1`` conv to the output channels."""

    def __init__(self, conv: nn.Conv2d, factors: LowRankFactors) -> None:
        r = factors.rank
        kw = {"dtype": factors.U.dtype, "device": factors.U.device}  # not the default float32
        first = nn.Conv2d(conv.in_channels, r, conv.kernel_size, stride=conv.stride,
                          padding=conv.padding, dilation=conv.dilation, bias=False,
                          padding_mode=conv.padding_mode, **kw)
        second = nn.Conv2d(r, conv.out_channels, 1, bias=conv.bias is not None, **kw)
        with torch.no_grad():
            first.weight.copy_(factors.V.mT.reshape(r, *conv.weight.shape[1:]))
            second.weight.copy_(factors.U.reshape(conv.out_channels, r, 1, 1))
            if conv.bias is not None:
                second.bias.copy_(conv.bias)
        super().__init__(first, second)


@dataclass
class FactorizationReport:
    """What :func:`factorize` did, layer by layer."""

    ranks: dict[str, int] = field(default_factory=dict)  # factorized layers and their ranks
    kept_dense: dict[str, str] = field(default_factory=dict)  # layer -> reason left dense
    params_before: int = 0  # parameters of the original module
    params_after: int = 0  # parameters of the compact module

    @property
    def param_ratio(self) -> float:
        """``params_before / params_after`` (> 1 means the compact model is smaller)."""
        return self.params_before / max(self.params_after, 1)


def _matrix(module: nn.Linear | nn.Conv2d) -> torch.Tensor:
    return module.weight.detach().reshape(module.weight.shape[0], -1)


def factorize(
    module: nn.Module,
    policy: RankPolicy | str | None,
    *,
    overrides: PolicyOverrides | None = None,
    min_compression_rate: float = 1.0,
) -> tuple[nn.Module, FactorizationReport]:
    """A compact copy of ``module`` in which low-rank layers are factorized.

    Parameters
    ----------
    module : nn.Module
        The trained model (left unchanged).
    policy : RankPolicy, str or None
        Rank policy for each ``Linear``/``Conv2d`` weight (matricized as
        ``W.reshape(out, -1)``). For a model trained with FedDLR, the server's
        policy reproduces exactly the model it would broadcast next, ``C_s(w_R)``;
        ``w_R`` itself, an average of low-rank uploads, is generally not low-rank.
    overrides : Mapping[str, RankPolicy | str | None], optional
        Per-layer policies by ``fnmatch`` pattern on the module name
        (e.g. ``"features.0"``); ``None`` keeps the layer dense.
    min_compression_rate : float
        A layer is factorized only where its factors are this many times smaller
        (:func:`lowrank.accounting.sends_factors`).

    Returns
    -------
    compact : nn.Module
        The factorized copy.
    report : FactorizationReport
        Ranks chosen, layers kept dense (and why), parameter counts.
    """
    min_compression_rate = check_min_compression_rate(min_compression_rate)
    compact = copy.deepcopy(module)  # deepcopy keeps ties: shared tensors stay shared
    # parameters() counts a shared (tied) tensor once
    report = FactorizationReport(params_before=sum(p.numel() for p in module.parameters()))
    tied = _tied_weights(compact)
    replacements: list[tuple[str, nn.Module]] = []
    for name, layer in compact.named_modules():
        if isinstance(layer, nn.modules.conv._ConvNd) and not isinstance(layer, nn.Conv2d):
            report.kept_dense[name] = f"{type(layer).__name__} is not factorized (Linear, Conv2d)"
            continue
        if not isinstance(layer, nn.Linear | nn.Conv2d):
            continue
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            report.kept_dense[name] = "grouped convolution"
            continue
        if name in tied:  # factorizing one side would break the tie and grow the model
            report.kept_dense[name] = f"weight shared with {tied[name]}"
            continue
        layer_policy = resolve_policy(name, policy, overrides)
        if layer_policy is None:
            report.kept_dense[name] = "no policy"
            continue
        factors = compress_matrix(_matrix(layer), layer_policy, name=name)
        m, n = factors.shape
        # never grow a layer, whatever min_compression_rate allows
        if not sends_factors(m, n, factors.rank, min_compression_rate) \
                or factors.rank * (m + n) >= m * n:
            report.kept_dense[name] = f"rank {factors.rank} would not shrink {m}x{n}"
            continue
        if isinstance(layer, nn.Linear):
            replacement: nn.Module = FactorizedLinear(factors, layer.bias)
        else:
            replacement = FactorizedConv2d(layer, factors)
        replacements.append((name, replacement.to(layer.weight.device)))
        report.ranks[name] = factors.rank
    for name, replacement in replacements:
        if name == "":
            compact = replacement
            continue
        parent_name, _, child = name.rpartition(".")
        parent = compact.get_submodule(parent_name) if parent_name else compact
        setattr(parent, child, replacement)
    report.params_after = sum(p.numel() for p in compact.parameters())
    return compact, report


def _tied_weights(module: nn.Module) -> dict[str, list[str]]:
    """Layer name -> the other names of its weight, for weights stored more than once.

    A weight is tied when another parameter shares its storage (``head.weight =
    emb.weight``) or when the layer itself is reachable under several names.
    """
    owners: dict[int, list[str]] = {}
    for pname, p in module.named_parameters(remove_duplicate=False):
        owners.setdefault(p.untyped_storage().data_ptr(), []).append(pname)
    names_of: dict[int, list[str]] = {}
    for mname, m in module.named_modules(remove_duplicate=False):
        names_of.setdefault(id(m), []).append(mname)
    tied: dict[str, list[str]] = {}
    for mname, m in module.named_modules():
        weight = getattr(m, "weight", None)
        if not isinstance(weight, torch.Tensor) or not isinstance(m, nn.Linear | nn.Conv2d):
            continue
        own = f"{mname}.weight" if mname else "weight"
        others = [n for n in owners.get(weight.untyped_storage().data_ptr(), []) if n != own]
        others += [n for n in names_of[id(m)] if n != mname]
        if others:
            tied[mname] = others
    return tied
