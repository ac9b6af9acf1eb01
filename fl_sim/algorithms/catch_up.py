"""Catch-up bytes of a downlink that sends *differences* (FedDLR-EF, FedMUD).

When the server broadcasts a change (a compressed difference, an aggregated factor)
instead of the model, a client can only apply it if it holds the state the change
applies to. With partial participation a client that sat out some rounds must first
receive the messages it missed, or the current state dense, whichever is smaller.

The ledger is one number per client, ``owed``: the bytes of the messages broadcast since
the client last synced. Every round adds the round's message to every client's ``owed``;
a participant receives ``fixed + min(dense, owed_k)`` bytes and its ``owed`` drops to 0.
``fixed`` is what every participant receives anyway (tensors broadcast as current
values), ``dense`` the state sent whole. A client that never synced owes ``inf`` when it
holds nothing (FedMUD: it downloads the weights dense) or ``0`` when it starts from a
state every client knows without communication (FedDLR-EF's replica starts at zero). A
client listed twice in one round pays once. All byte counts come from
:mod:`lowrank.accounting`.

The ledger lives in ``ServerState.memory`` (so checkpoints carry it and resume
bit-identically). That dict holds per-client stacks keyed by parameter name (the layout
fl_sim/checkpoint.py verifies), so the ledger is stored as one ``(N,)`` float64 stack
under the name of the model's first parameter (:func:`ledger_slot`).
"""

from __future__ import annotations

import math

import torch

from ..params import Params

__all__ = ["SLOT", "init_ledger", "ledger_slot", "catch_up_bytes"]

SLOT = "catch_up"  # key of the ledger in ServerState.memory


def ledger_slot(params: Params, owed: torch.Tensor) -> Params:
    """The memory slot holding ``owed``: one stack keyed by the first parameter's name."""
    return {next(iter(params)): owed}


def init_ledger(num_clients: int, never_dense: bool = False) -> torch.Tensor:
    """``owed`` before the first round: ``inf`` (hold nothing) or ``0`` (hold a known state)."""
    return torch.full((num_clients,), math.inf if never_dense else 0.0, dtype=torch.float64)


def catch_up_bytes(owed: torch.Tensor, clients: torch.Tensor, message: int, dense: int,
                   fixed: int = 0) -> tuple[list[int], torch.Tensor]:
    """Bytes each participant of a round receives, and the updated ledger.

    Parameters
    ----------
    owed : torch.Tensor
        float64 ``(N,)``: bytes of the messages each client missed (left unchanged).
    clients : torch.Tensor
        int64 ``(K,)`` participants, in order (repeats allowed).
    message : int
        Bytes of this round's message.
    dense : int
        Bytes of the state sent whole instead of the missed messages.
    fixed : int
        Bytes every participant receives in addition.

    Returns
    -------
    bytes : list of int
        One entry per participant.
    owed : torch.Tensor
        With this round's message added for every client and the participants' set to 0.
    """
    owed = owed + float(message)
    out = []
    for client in clients.tolist():
        out.append(int(fixed + min(float(dense), float(owed[client]))))
        owed[client] = 0.0
    return out, owed
