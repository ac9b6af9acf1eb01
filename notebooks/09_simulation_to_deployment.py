# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9. From simulation to deployment
#
# `fl_sim` runs a whole federation in one process: the clients' models are rows of one
# tensor, a "message" is a function call, and the bytes of a round are *counted*, never
# sent. A real federation sends messages between machines. This notebook runs **the same
# FedDLR run** twice, in `fl_sim` and on [Flower](https://flower.ai)'s simulation engine
# (the `flower` extra: `pip install -e '.[flower]'`), and puts the two byte ledgers side
# by side. You will see:
#
# * what a round becomes when it is messages: the server's **send**, each client's
#   **update**, the server's **aggregate** (`fl_sim/flower/protocols.py`);
# * that the factors travel **as factors** (`U`, `V` arrays), and that the payload bytes
#   of the messages equal fl_sim's ledger, round by round;
# * what Flower adds around the payload: the **envelope**;
# * why an algorithm whose clients keep state (FedDLR-EF) must let a client that sat out
#   **catch up**, and what that costs.
#
# The last step, a deployment of separate processes, is one command (at the end); it is
# not run here because it starts a process per message and takes minutes.

# %%
import dataclasses
import tempfile

import numpy as np
import torch

from fl_sim import SimConfig, run
from fl_sim.flower.codec import encode
from fl_sim.flower.local import cached_setup
from fl_sim.flower.protocols import protocol_for
from fl_sim.participation import sample_participants
from lowrank import state_nbytes

cfg = SimConfig(dataset="digits", num_clients=3, rounds=2, algorithm="feddlr",
                policy_down="ratio:0.25", policy_up="ratio:0.25",
                policy_overrides={"*out*": None}, local_steps=5, lr=0.2, device="cpu")
ours = run(cfg).history
for r in ours.records:
    print(f"round {r.round}: accuracy {r.test_accuracy:.4f}, down {r.bytes_down_per_client} "
          f"bytes, up {r.bytes_up_per_client} bytes per client")

# %% [markdown]
# ## 1. A round as messages
#
# On Flower the server cannot call the clients' training: it sends each participant a
# message and waits for the replies. `protocol_for(sim)` gives the algorithm's round in
# three halves. Here is the server's half of round 1 for FedDLR: one **downlink** per
# participant, a dict of records, each a dict of `lowrank` payloads. We encode it the way
# a message carries it (`fl_sim.flower.codec.encode`: a dict of NumPy arrays named
# `"<tensor>|<part>"`).

# %%
sim = cached_setup(cfg)
protocol = protocol_for(sim)
state = protocol.init_state()
p = torch.as_tensor(sim.data.weights, dtype=torch.float64)
part = sample_participants(p, cfg.participation, cfg.clients_per_round,
                           torch.Generator().manual_seed(0))  # full: every client
send = protocol.send(state, part, round_number=1)
arrays, payload_bytes = encode(send.downlinks[0].records["payload"])
for key, a in arrays.items():
    print(f"{key:22s} {str(a.shape):12s} {a.dtype}")

# %% [markdown]
# The two hidden layers travel as `U` and `V` (rank 16 and 50: a quarter of `min(m, n)`),
# never as the `(m, n)` matrix; the classifier and the biases travel dense (`|dense`).
#
# ### Exercise 1 — the bytes of one downlink
#
# Predict first: is one client's downlink more or less than half of the dense model
# (`state_nbytes(sim.initial_params())`, 220,840 bytes)? Then compute `down_bytes`, the
# bytes of the arrays above, **from their shapes and dtypes** (not from `payload_bytes`),
# and compare it with fl_sim's ledger.

# %% tags=["exercise"]
prediction = "less"  # "less" or "more" than half of 220,840 bytes
# HINT: each array holds prod(shape) numbers of dtype.itemsize bytes
# BEGIN SOLUTION
down_bytes = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in arrays.values())
# END SOLUTION

# %% tags=["check"]
assert down_bytes == payload_bytes == ours.records[0].bytes_down_per_client[0]
print(f"{down_bytes:,} bytes; your prediction was",
      "right" if (down_bytes < state_nbytes(sim.initial_params()) / 2)
      == (prediction == "less") else "wrong")

# %% [markdown]
# ## 2. The same run on Flower's simulation engine
#
# `fl_sim.flower.simulation.simulate` starts Flower's simulation engine (Ray), one virtual
# SuperNode per client, and runs the same config through a `ServerApp` (the strategy
# `FlSimStrategy`) and a `ClientApp`. The server draws the participants and its
# compression from fl_sim's random streams, and each client replays fl_sim's minibatches,
# so it is the *same* run, not just the same setting. Starting Ray takes a while.

# %%
from fl_sim.flower import flower_available  # noqa: E402

assert flower_available(), "this part needs the flower extra: pip install -e '.[flower]'"
from fl_sim.flower.ledger import side_by_side  # noqa: E402
from fl_sim.flower.run_config import FlowerOptions  # noqa: E402
from fl_sim.flower.simulation import simulate  # noqa: E402

with tempfile.TemporaryDirectory() as out:
    theirs, ledger = simulate(dataclasses.replace(cfg, output_dir=out),
                              FlowerOptions(round_timeout=120, connect_timeout=120))
print(side_by_side({"fl_sim": ours, "simulation": theirs}, {"simulation": ledger}))

# %% [markdown]
# The payload columns agree round by round, and so do the accuracies. The **wire** column
# is Flower's serialized message (`fl_sim.flower.codec.message_nbytes`): every array in
# NumPy `.npy` form with its key, the config record (round, client, position), the metric
# record of the reply, and the message's metadata.
#
# ### Exercise 2 — the envelope
#
# Compute `envelope`, the bytes Flower adds over the whole run as a fraction of the payload
# bytes (both links, all rounds), from `ledger.rounds` (each has `payload_down`,
# `wire_down`, `payload_up`, `wire_up`: one entry per participant). Predict first: more or
# less than 10 %?

# %% tags=["exercise"]
prediction = "less"  # "less" or "more" than 10 %
# BEGIN SOLUTION
wire = sum(sum(r.wire_down) + sum(r.wire_up) for r in ledger.rounds)
payload = sum(sum(r.payload_down) + sum(r.payload_up) for r in ledger.rounds)
envelope = wire / payload - 1
# END SOLUTION

# %% tags=["check"]
assert 0 < envelope < 1
assert abs(envelope * sum(r.bytes_down + r.bytes_up for r in theirs.records)
           - sum(r.envelope_down + r.envelope_up for r in ledger.rounds)) < 1e-6 * wire
print(f"envelope {100 * envelope:.2f} %; your prediction was",
      "right" if (envelope < 0.1) == (prediction == "less") else "wrong")

# %% [markdown]
# FedDLR's envelope is larger than FedAvg's (about 4 % against 1.5 % in
# `docs/flower.md`): it sends more, smaller arrays, and each carries its own header and key.
#
# ## 3. Clients with state: catching up
#
# FedDLR-EF (our extension) broadcasts a *change*, `c = C(w - h)`, and every client adds
# it to its replica `h`. A client that sat out a round no longer holds the `h` the next
# change applies to: it must receive the changes it missed, or `h` dense, whichever is
# smaller (`fl_sim/algorithms/catch_up.py`). On Flower the client's `h` lives in its
# node's `Context.state`, and the server sends exactly those bytes
# (`fl_sim/flower/protocols.py`, `FedDLREFProtocol`). fl_sim charges the same; here is
# its ledger with 2 of 3 clients per round.

# %%
ef_cfg = dataclasses.replace(cfg, algorithm="feddlr_ef", rounds=4, participation="scheme2",
                             clients_per_round=2)
ef = run(ef_cfg).history
message = ours.records[0].bytes_down_per_client[0]  # one round's change: FedDLR's downlink
dense = state_nbytes(sim.initial_params())  # h dense: the whole model
for r in ef.records:
    print(f"round {r.round}: clients {r.clients}, bytes down {r.bytes_down_per_client}")

# %% [markdown]
# ### Exercise 3 — what a client that sat out pays
#
# Client `k` took part in round `s`, sat out rounds `s+1 .. t-1`, and takes part in round
# `t`: it has missed `t - s` changes of `message` bytes each. Write
# `catch_up(missed)`, the bytes it receives, with `message` and `dense` above (a client in
# its first round has missed every change since round 0, where everyone knows `h = 0`).
# Predict first: in which round does a client receive `h` dense?

# %% tags=["exercise"]
prediction = 3  # the round in which some client receives h dense


def catch_up(missed: int) -> int:
    # BEGIN SOLUTION
    return min(missed * message, dense)
    # END SOLUTION


# %% tags=["check"]
last = {}
dense_rounds = []
for r in ef.records:
    for k, got in zip(r.clients, r.bytes_down_per_client, strict=True):
        assert catch_up(r.round - last.get(k, 0)) == got, (r.round, k)
        if got == dense:
            dense_rounds.append(r.round)
        last[k] = r.round
print("h went dense in rounds", dense_rounds, "; your prediction was",
      "right" if prediction in dense_rounds else "wrong")

# %% [markdown]
# One change is about half the model here (rank 16 and 50 factors), so a client back after
# one round out receives its two missed changes, just under the dense replica, while a
# client in its first round at round 3 has missed three and receives `h` dense; at a lower
# rank it would receive the changes. On Flower, a participant whose reply is lost is also
# resynced dense, so the state on both sides stays equal (`docs/flower.md`).
#
# ## 4. The deployment, as a command
#
# The last step leaves one process: one SuperLink and N SuperNodes as separate OS
# processes on 127.0.0.1, started, run and stopped by one command, which writes the same
# `feddlr.history.json` and the wire ledger `feddlr.flower.json`:
#
# ```bash
# .venv/bin/python -m fl_sim.flower deploy --supernodes 2 --algorithm feddlr \
#     --num-clients 3 --rounds 2 --local-steps 5 --lr 0.2 --output-dir /tmp/deploy
# ```
#
# Its rounds take tens of seconds on a small machine: Flower 1.42 starts a fresh ClientApp
# process for every message, which imports torch and builds the data before training for a
# fraction of a second (`docs/flower.md`, "Can a SuperNode keep its ClientApp process?").
# For TLS and node authentication on a real network, see the same page.
#
# ## Summary
#
# * On Flower a round is three halves: send, client update, aggregate; the factors travel
#   as factors, and the payload bytes equal fl_sim's ledger.
# * Flower's envelope (headers, keys, records) adds a few percent; more for many small
#   arrays.
# * Clients with state need a catch-up rule under partial participation; fl_sim charges
#   it and the Flower run sends exactly it.
