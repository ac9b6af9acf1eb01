"""Baseline compressors with the same payload interface as the low-rank ones.

Each compressor maps a tensor to a payload with ``.nbytes`` (what is sent, at
the real dtypes, indices included) and ``.decompress()``:

- :class:`TopK`: the ``k`` largest-magnitude entries (values + int32/int64 indices);
- :class:`QSGD`: unbiased stochastic quantization to ``s`` levels
  (Alistarh et al. 2017), as used by FedPAQ (Reisizadeh et al. 2020), with the
  levels bit-packed (2 bits for ``s = 1``, 4 bits for ``s <= 7``, else 8+);
- :class:`ErrorFeedback`: wraps any compressor and keeps the residual
  (Seide et al. 2014; Karimireddy et al. 2019), keyed by tensor name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ._random import draw
from ._validation import check_float_tensor
from .accounting import tensor_nbytes

__all__ = ["Payload", "Compressor", "DensePayload", "TopKPayload", "QSGDPayload",
           "Identity", "TopK", "QSGD", "ErrorFeedback"]


class Payload(Protocol):
    """What a compressor sends."""

    @property
    def nbytes(self) -> int: ...

    def decompress(self) -> torch.Tensor: ...


class Compressor(Protocol):
    """Maps a tensor to a payload."""

    def compress(self, x: torch.Tensor, name: str = "tensor") -> Payload: ...


@dataclass(frozen=True)
class DensePayload:
    """A tensor sent uncompressed."""

    tensor: torch.Tensor

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.tensor)

    def decompress(self) -> torch.Tensor:
        return self.tensor


@dataclass(frozen=True)
class TopKPayload:
    """Values and flat indices of the kept entries."""

    values: torch.Tensor  # (k,) in the tensor's dtype
    indices: torch.Tensor  # (k,) int32 when numel < 2**31, else int64
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.values) + tensor_nbytes(self.indices)

    def decompress(self) -> torch.Tensor:
        out = torch.zeros(math.prod(self.shape), dtype=self.values.dtype,
                          device=self.values.device)
        out[self.indices.long()] = self.values
        return out.reshape(self.shape)


def _level_dtype(s: int) -> torch.dtype:
    """Smallest signed integer dtype holding ``[-s, s]``."""
    if s <= 127:
        return torch.int8
    return torch.int16 if s <= 32767 else torch.int32 if s <= 2**31 - 1 else torch.int64


_MAX_LEVELS = 2**52  # levels are computed in float64, exact for integers up to 2**53


def _code_bits(s: int) -> int:
    """Bits per entry when packing codes ``level + s`` in ``[0, 2s]``: 2, 4, or 8+."""
    needed = math.ceil(math.log2(2 * s + 1))
    return next((b for b in (2, 4) if b >= needed), 8 * _level_dtype(s).itemsize)


def _pack(levels: torch.Tensor, s: int) -> torch.Tensor:
    """Pack signed levels: ``8 / bits`` codes per byte when ``bits < 8``, else as is."""
    bits = _code_bits(s)
    if bits >= 8:
        return levels.reshape(-1)
    per_byte = 8 // bits
    codes = (levels.reshape(-1).to(torch.int32) + s)
    pad = (-codes.numel()) % per_byte
    codes = torch.cat([codes, codes.new_zeros(pad)]).reshape(-1, per_byte)
    shifts = torch.arange(per_byte, device=codes.device, dtype=torch.int32) * bits
    return (codes << shifts).sum(dim=1).to(torch.uint8)


def _unpack(packed: torch.Tensor, s: int, numel: int) -> torch.Tensor:
    """Inverse of :func:`_pack`: signed levels, flat, in :func:`_level_dtype`."""
    bits = _code_bits(s)
    if bits >= 8:
        return packed
    per_byte = 8 // bits
    shifts = torch.arange(per_byte, device=packed.device, dtype=torch.int32) * bits
    codes = (packed.to(torch.int32).unsqueeze(1) >> shifts) & ((1 << bits) - 1)
    return (codes.reshape(-1)[:numel] - s).to(_level_dtype(s))


@dataclass(frozen=True)
class QSGDPayload:
    """Norm (float32) and signed levels in ``[-s, s]``, bit-packed.

    Levels are sent as codes ``level + s``: 2 bits each for ``s = 1``, 4 bits for
    ``s <= 7`` (several codes per byte), else one signed int8/int16/int32 each.
    """

    norm: torch.Tensor  # () float32
    packed: torch.Tensor  # uint8 codes (2 or 4 bits each) or signed levels (8+ bits)
    s: int
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def levels(self) -> torch.Tensor:
        """The signed levels, in the shape of the tensor (int8 when ``s <= 127``)."""
        return _unpack(self.packed, self.s, math.prod(self.shape)).reshape(self.shape)

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.norm) + tensor_nbytes(self.packed)

    @property
    def nbits_packed(self) -> float:
        """Bits with ideal (entropy-free) packing: 32 for the norm + ``log2(2s+1)`` per entry."""
        return 32 + math.prod(self.shape) * math.log2(2 * self.s + 1)

    def decompress(self) -> torch.Tensor:
        # in float64: norm * level could pass the dtype's range before the division by s
        return (self.norm.double() * self.levels.double() / self.s).to(self.dtype)


@dataclass(frozen=True)
class Identity:
    """No compression (FedAvg's uplink), counted the same way."""

    def compress(self, x: torch.Tensor, name: str = "tensor") -> DensePayload:
        check_float_tensor(x, name)
        return DensePayload(x.detach().clone())


@dataclass(frozen=True)
class TopK:
    """Keep the ``k`` largest-magnitude entries; ``k = ceil(ratio * numel)`` if ratio is given.

    Parameters
    ----------
    k : int, optional
        Number of entries kept (clipped to ``numel``).
    ratio : float, optional
        Fraction of entries kept, in ``(0, 1]``.
    """

    k: int | None = None  # entries kept per tensor
    ratio: float | None = None  # or: fraction of entries kept

    def __post_init__(self) -> None:
        if (self.k is None) == (self.ratio is None):
            raise ValueError("TopK: give exactly one of k and ratio")
        if self.k is not None and self.k <= 0:
            raise ValueError(f"k: must be >= 1, got {self.k}")
        if self.ratio is not None and not (0 < self.ratio <= 1):
            raise ValueError(f"ratio: must lie in (0, 1], got {self.ratio}")

    def count(self, numel: int) -> int:
        """Entries kept for a tensor of ``numel`` entries."""
        k = self.k if self.k is not None else math.ceil(self.ratio * numel)
        return max(1, min(k, numel))

    def compress(self, x: torch.Tensor, name: str = "tensor") -> TopKPayload:
        check_float_tensor(x, name)
        flat = x.detach().reshape(-1)
        idx = torch.topk(flat.abs(), self.count(flat.numel()), sorted=False).indices
        idx_dtype = torch.int32 if flat.numel() < 2**31 else torch.int64
        return TopKPayload(values=flat[idx].clone(), indices=idx.to(idx_dtype),
                           shape=tuple(x.shape))


@dataclass(frozen=True)
class QSGD:
    """Unbiased stochastic quantization with ``s`` levels (QSGD).

    Each entry ``x_i`` becomes ``||x|| * sign(x_i) * l_i / s`` where ``l_i`` is
    ``floor(s |x_i| / ||x||)`` or that plus one, with the probability that makes
    it unbiased: ``E[Q(x)] = x``.

    Parameters
    ----------
    s : int
        Number of levels (>= 1).
    generator : torch.Generator, optional
        Randomness for the rounding.
    """

    s: int  # quantization levels; entries are sent as signed integers in [-s, s]
    generator: torch.Generator | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.s, bool) or not isinstance(self.s, int) or self.s < 1:
            raise ValueError(f"s: must be an integer >= 1, got {self.s!r}")
        if self.s > _MAX_LEVELS:
            raise ValueError(f"s: must be <= 2**52 (levels are exact float64 integers), "
                             f"got {self.s}")

    def compress(self, x: torch.Tensor, name: str = "tensor") -> QSGDPayload:
        check_float_tensor(x, name)
        x = x.detach()
        norm64 = torch.linalg.vector_norm(x.double())
        norm = norm64.float()
        # the norm is sent as float32 and every decompressed entry is at most the norm:
        # both must fit, or finite inputs would come back as inf or nan
        limit = min(torch.finfo(torch.float32).max, torch.finfo(x.dtype).max)
        if not bool(torch.isfinite(norm64)) or float(norm64) > limit:
            big = x.double().abs().max()  # the norm without overflow, for the message
            size = float(big * torch.linalg.vector_norm(x.double() / big))
            raise ValueError(f"{name}: norm {size:.3g} exceeds {limit:.3g}, the "
                             f"range of QSGD's float32 norm and of {x.dtype}; scale the "
                             "tensor down")
        int_dtype = _level_dtype(self.s)
        if float(norm) == 0.0:
            levels = torch.zeros_like(x, dtype=int_dtype)
            return QSGDPayload(norm, _pack(levels, self.s), self.s, x.dtype, tuple(x.shape))
        scaled = x.double().abs() / norm.double() * self.s
        lower = torch.floor(scaled)
        u = draw(torch.rand, x.shape, self.generator, torch.float64, x.device)
        # the float32 norm can round below |x_i|, making scaled slightly exceed s: clamp
        level = (lower + (u < (scaled - lower)).double()).clamp(max=self.s)
        levels = (torch.sign(x).double() * level).to(int_dtype)
        return QSGDPayload(norm=norm, packed=_pack(levels, self.s), s=self.s, dtype=x.dtype,
                           shape=tuple(x.shape))


@dataclass
class ErrorFeedback:
    """Error feedback around a compressor: send ``C(x + e)``, keep ``e <- x + e - C(x + e)``.

    The residual is stored per tensor name, so one wrapper serves a whole model
    (use one wrapper per client).

    Parameters
    ----------
    compressor : Compressor
        The inner compressor.
    """

    compressor: Compressor
    residuals: dict[str, torch.Tensor] = field(default_factory=dict)

    def compress(self, x: torch.Tensor, name: str = "tensor") -> Payload:
        check_float_tensor(x, name)
        corrected = x.detach() + self.residuals.get(name, torch.zeros_like(x))
        payload = self.compressor.compress(corrected, name)
        self.residuals[name] = corrected - payload.decompress()
        return payload
