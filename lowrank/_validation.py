"""Input validation shared by the compression operators.

Every check names the offending tensor so that an error deep inside a model-level
call still tells the user which layer was at fault.
"""

from __future__ import annotations

import torch

__all__ = ["all_finite", "check_matrix", "check_float_tensor", "check_payload_dtype"]


def all_finite(x: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> torch.Tensor:
    """``torch.isfinite(x).all(dim)``, by one summation instead of a boolean pass.

    A sum is finite only if every term is: NaN and +-Inf propagate through additions,
    so where the sum is finite every entry is. Only where it is not (a non-finite entry,
    or finite entries whose sum passes the dtype's range) are the entries checked one
    by one. Exact either way; on a CPU the sum reads a float32 tensor about 40x faster
    than ``isfinite(x).all()`` (docs/benchmarks.md).

    Parameters
    ----------
    x : torch.Tensor
        Floating point.
    dim : int or tuple of int, optional
        Dimensions reduced (all when None).

    Returns
    -------
    torch.Tensor
        bool, ``x``'s shape without ``dim`` (a 0-d tensor when ``dim`` is None).
    """
    total = x.sum() if dim is None else x.sum(dim=dim)
    ok = torch.isfinite(total)
    if bool(ok.all()):
        return ok
    finite = torch.isfinite(x)
    return finite.all() if dim is None else finite.all(dim=dim)


def check_float_tensor(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` is not a finite floating-point tensor.

    Parameters
    ----------
    x : torch.Tensor
        The tensor to check.
    name : str
        Name used in the error message (a parameter or layer name).

    Raises
    ------
    TypeError
        If ``x`` is not a tensor or has an integer, boolean or complex dtype.
    ValueError
        If ``x`` contains NaN or Inf.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(
            f"{name}: expected a floating-point tensor, got dtype {x.dtype}; "
            "cast it with .float() first"
        )
    if x.numel() and not bool(all_finite(x)):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: contains {n_bad} NaN or Inf entries")


def check_matrix(x: torch.Tensor, name: str) -> None:
    """Raise unless ``x`` is a finite float tensor with at least two dimensions.

    Parameters
    ----------
    x : torch.Tensor
        A matrix ``(m, n)`` or a batch of matrices ``(..., m, n)``.
    name : str
        Name used in the error message.
    """
    check_float_tensor(x, name)
    if x.ndim < 2:
        raise ValueError(
            f"{name}: a matrix needs at least 2 dimensions, got shape {tuple(x.shape)}"
        )
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name}: empty matrix of shape {tuple(x.shape)}")


def check_payload_dtype(dtype: object, name: str = "payload_dtype") -> None:
    """Raise unless ``dtype`` is ``None`` or a floating-point ``torch.dtype``.

    Factors rounded to integers, booleans or complex numbers are not an approximation
    of the matrix (an int8 payload gives a relative error of 1), so only floating
    dtypes are accepted.

    Parameters
    ----------
    dtype : torch.dtype or None
        The dtype factors are sent in (``None``: the matrix's own).
    name : str
        Name used in the error message.
    """
    if dtype is None:
        return
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name}: expected a torch.dtype such as torch.float16, got "
                        f"{type(dtype).__name__} {dtype!r}")
    if not dtype.is_floating_point:
        raise TypeError(f"{name}: factors must be sent in a floating dtype (float16, bfloat16, "
                        f"float32, float64), got {dtype}")
