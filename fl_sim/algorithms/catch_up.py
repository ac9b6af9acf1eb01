"""Catch-up bytes of a downlink that sends *differences* (FedDLR-EF, FedMUD).

When the server broadcasts a change (a compressed difference, an aggregated factor)
instead of the model, a client can only apply it if it holds the state the change
applies to. With partial participation a client that sat out some rounds must first
receive the messages it missed, or the current state dense, whichever is smaller.
This module keeps that ledger in the server state (so checkpoints carry it):

- ``last`` (int64, one per client): the round whose broadcast the client last applied,
  ``-1`` before its first participation;
- ``cum`` (float64, one entry per round plus a leading 0): cumulative bytes of the
  per-round messages, so the bytes of the messages of rounds ``s+1 .. t`` are
  ``cum[t+1] - cum[s+1]``.

A participant of round ``t`` that last synced at round ``s`` is charged
``fixed + min(dense, cum[t+1] - cum[s+1])`` bytes, where ``fixed`` is what every
participant receives anyway (tensors broadcast as current values) and ``dense`` the
state sent whole; a client that never synced is charged ``fixed + dense`` when
``never_dense`` is set (it holds nothing), else it starts from a state every client
knows without communication (FedDLR-EF's replica starts at zero). A client listed twice in
one round pays the messages once. All byte counts come from :mod:`lowrank.accounting`.
"""

from __future__ import annotations

import torch

from ..params import Params

__all__ = ["SLOT", "init_ledger", "catch_up_bytes"]

SLOT = "catch_up"  # key of the ledger in ServerState.memory


def init_ledger(num_clients: int) -> Params:
    """A ledger in which no client has synced and no message was sent."""
    return {"last": torch.full((num_clients,), -1, dtype=torch.int64),
            "cum": torch.zeros(1, dtype=torch.float64)}


def catch_up_bytes(ledger: Params, round_index: int, clients: torch.Tensor, message: int,
                   dense: int, fixed: int = 0, never_dense: bool = False
                   ) -> tuple[list[int], Params]:
    """Bytes each participant of round ``round_index`` receives, and the updated ledger.

    Parameters
    ----------
    ledger : dict
        From :func:`init_ledger` or an earlier call (left unchanged).
    round_index : int
        ``t``, the 0-based round (rounds completed before this one).
    clients : torch.Tensor
        int64 ``(K,)`` participants, in order (repeats allowed).
    message : int
        Bytes of this round's message (what a client synced at ``t - 1`` needs).
    dense : int
        Bytes of the state sent whole instead of the missed messages.
    fixed : int
        Bytes every participant receives in addition.
    never_dense : bool
        A client that never synced needs ``dense`` (else the missed messages since
        round 0, capped at ``dense``).

    Returns
    -------
    bytes : list of int
        One entry per participant.
    ledger : dict
        With this round's message appended and the participants' ``last`` set to ``t``.
    """
    cum = torch.cat([ledger["cum"], ledger["cum"][-1:] + float(message)])
    if cum.numel() != round_index + 2:
        raise ValueError(f"round_index: ledger holds {ledger['cum'].numel() - 1} rounds, "
                         f"got round {round_index}")
    last = ledger["last"].clone()
    out = []
    for client in clients.tolist():
        s = int(last[client])
        if s == round_index:  # listed twice in this round: already synced
            out.append(int(fixed))
            continue
        if s < 0 and never_dense:
            out.append(int(fixed + dense))
        else:
            missed = int(round(float(cum[round_index + 1] - cum[s + 1])))
            out.append(int(fixed + min(dense, missed)))
        last[client] = round_index
    return out, {"last": last, "cum": cum}
