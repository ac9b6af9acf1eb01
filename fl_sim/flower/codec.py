"""Payloads of :mod:`lowrank` as the arrays of a Flower ``ArrayRecord``, and message sizes.

Each payload travels as the arrays it is made of, never densified before sending:

========================  =============================================  ==========
payload                   arrays (keys ``"<tensor>|<part>"``)            receiver
========================  =============================================  ==========
dense tensor              ``dense``                                      the tensor
low-rank factors          ``U`` ``(m, r)``, ``V`` ``(n, r)``             ``U V^T``
top-k                     ``values``, ``indices``                        scattered
QSGD                      ``norm``, ``packed`` (bit-packed levels)       dequantized
========================  =============================================  ==========

A :class:`lowrank.state.MatrixEntry` that :func:`lowrank.accounting.sends_factors`
sends raw goes as ``dense``. Shapes and dtypes come from the receiver's own copy of
the model (same config), so the only bytes besides the arrays are Flower's envelope.
The payload bytes of our ledger are the bytes of these arrays, which equal each
payload's ``.nbytes`` (the rule of :mod:`lowrank.accounting`): :func:`encode`
checks it. :func:`message_nbytes` is what Flower serializes for a whole message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from lowrank import CompressedState, LowRankFactors
from lowrank.baselines import DensePayload, QSGDPayload, TopKPayload
from lowrank.state import MatrixEntry

__all__ = ["Decoded", "decode", "encode", "message_nbytes", "record_payload_nbytes"]

_SEP = "|"


def _numpy(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


def _entry_arrays(payload: object) -> dict[str, np.ndarray]:
    """The arrays one payload consists of (part name -> array)."""
    if isinstance(payload, DensePayload):
        return {"dense": _numpy(payload.tensor)}
    if isinstance(payload, MatrixEntry):
        if payload.factors.ranks.ndim:
            raise ValueError("encode: a batched MatrixEntry; unbind it first")
        if bool(payload.sent_dense):
            return {"dense": _numpy(payload.dense_items.reshape(payload.shape))}
        return {"U": _numpy(payload.factors.U), "V": _numpy(payload.factors.V)}
    if isinstance(payload, TopKPayload):
        return {"values": _numpy(payload.values), "indices": _numpy(payload.indices)}
    if isinstance(payload, QSGDPayload):
        return {"norm": _numpy(payload.norm), "packed": _numpy(payload.packed)}
    raise TypeError(f"encode: no wire format for {type(payload).__name__}")


def encode(payloads: Mapping[str, object] | CompressedState) -> tuple[dict[str, np.ndarray], int]:
    """Arrays to put in an ``ArrayRecord`` and the payload bytes of our ledger.

    Parameters
    ----------
    payloads : Mapping[str, payload] or CompressedState
        Tensor name -> a :mod:`lowrank` payload, or a single (not batched)
        :class:`lowrank.state.CompressedState`.

    Returns
    -------
    arrays : dict[str, numpy.ndarray]
        ``"<tensor>|<part>"`` -> array.
    nbytes : int
        Sum of the payloads' ``.nbytes``; equal to the arrays' bytes (checked).
    """
    if isinstance(payloads, CompressedState):
        if payloads.batch_size:
            raise ValueError("encode: a batched CompressedState; unbind it first")
        payloads = payloads.unbind()[0].entries
    arrays: dict[str, np.ndarray] = {}
    ledger = 0
    for name, payload in payloads.items():
        if _SEP in name:
            raise ValueError(f"{name}: tensor names may not contain {_SEP!r}")
        parts = _entry_arrays(payload)
        sent = sum(a.nbytes for a in parts.values())
        if sent != payload.nbytes:
            raise AssertionError(f"{name}: arrays hold {sent} bytes, the ledger says "
                                 f"{payload.nbytes}")
        ledger += sent
        arrays.update({f"{name}{_SEP}{part}": a for part, a in parts.items()})
    return arrays, ledger


@dataclass(frozen=True)
class Decoded:
    """What a receiver rebuilds from one message's arrays."""

    params: dict[str, torch.Tensor]  # dense reconstruction of every tensor
    nbytes: int  # payload bytes (the arrays' bytes)
    ranks: dict[str, int]  # per matricized tensor: r of the factors, min(m, n) if sent dense
    bases: dict[str, torch.Tensor]  # right factors V of the tensors received as factors


def decode(arrays: Mapping[str, np.ndarray], like: Mapping[str, torch.Tensor], *,
           qsgd_levels: int | None = None, device: torch.device | str = "cpu") -> Decoded:
    """Rebuild the dense tensors a sender encoded with :func:`encode`.

    Parameters
    ----------
    arrays : Mapping[str, numpy.ndarray]
        ``"<tensor>|<part>"`` -> array, as received.
    like : Mapping[str, torch.Tensor]
        The receiver's tensors of the same names: shapes and dtypes to restore.
    qsgd_levels : int, optional
        ``s`` of QSGD payloads (from the run's config).
    device : torch.device or str
        Where the rebuilt tensors go.

    Returns
    -------
    Decoded
    """
    parts: dict[str, dict[str, np.ndarray]] = {}
    for key, a in arrays.items():
        name, _, part = key.rpartition(_SEP)
        parts.setdefault(name, {})[part] = a
    missing = sorted(set(like) - set(parts))
    extra = sorted(set(parts) - set(like))
    if missing or extra:
        raise ValueError(f"decode: tensors missing {missing}, unexpected {extra}")
    out, ranks, bases, nbytes = {}, {}, {}, 0
    for name, ref in like.items():
        got = {k: torch.from_numpy(np.array(v, copy=True)).to(device) for k, v in
               parts[name].items()}
        nbytes += sum(v.nbytes for v in parts[name].values())
        shape = tuple(ref.shape)
        kind = frozenset(got)
        if kind == {"dense"}:
            tensor = got["dense"]
            payload: object = DensePayload(tensor)
            if ref.ndim >= 2:
                ranks[name] = min(shape[0], math.prod(shape[1:]))
        elif kind == {"U", "V"}:
            U, V = got["U"], got["V"]
            r = U.shape[-1]
            factors = LowRankFactors(U=U, V=V, ranks=torch.tensor(r),
                                     sq_error=torch.tensor(float("nan"), dtype=torch.float64),
                                     energy=torch.tensor(float("nan"), dtype=torch.float64),
                                     dtype=ref.dtype)
            payload = MatrixEntry(factors, shape, torch.empty(0, *factors.shape,
                                                              dtype=ref.dtype, device=device))
            ranks[name] = r
            bases[name] = V
        elif kind == {"values", "indices"}:
            payload = TopKPayload(got["values"], got["indices"], shape)
        elif kind == {"norm", "packed"}:
            if qsgd_levels is None:
                raise ValueError(f"{name}: a QSGD payload needs qsgd_levels")
            payload = QSGDPayload(got["norm"], got["packed"], qsgd_levels, ref.dtype, shape)
        else:
            raise ValueError(f"{name}: unknown payload parts {sorted(kind)}")
        tensor = payload.decompress().reshape(shape).to(ref.dtype)
        out[name] = tensor
    return Decoded(params=out, nbytes=nbytes, ranks=ranks, bases=bases)


def record_payload_nbytes(record: object) -> int:
    """Bytes of the arrays' data in an ``ArrayRecord`` as Flower holds them (np.save form)."""
    return sum(len(a.data) for a in record.values())


def message_nbytes(message: object) -> int:
    """Bytes Flower serializes for a message: every object of its tree, deflated.

    A message travels as a tree of objects (the message, its record dict, records,
    arrays and array chunks), each deflated to bytes; this is their total, the
    message's size on the wire before transport framing (gRPC/HTTP headers).
    """
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects

    return sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values())
