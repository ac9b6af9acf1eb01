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
# # 3. FedDLR step by step
#
# In federated learning (FL) a server and N clients train one model together without the
# clients ever sharing their data. Every **round** the server sends the current global model
# down to the clients, each client runs a few SGD steps on its own data, sends its local model
# back up, and the server averages what it received (FedAvg; notebook 2). The bottleneck is
# communication: the whole model travels twice per client per round.
#
# **FedDLR** (Qiao, Yu, Zhang & Letaief, 2021: "Communication-Efficient Federated Learning
# with Dual-Side Low-Rank Compression") shrinks *both* messages by sending every weight matrix
# as a low-rank factorization (notebook 1). The paper's full text is not available to us; the
# toolkit implements a **reconstruction from its abstract**, labelled "FedDLR (reconstructed)".
#
# **Learning goals**
#
# 1. Run one FedDLR round by hand with the `lowrank` functions, and see exactly what is sent
#    down and up, and how many bytes that costs.
# 2. Check that the simulator `fl_sim.run` does precisely the same thing.
# 3. Compare FedAvg and FedDLR per round and per byte, and read the per-round compression
#    errors and ranks that the convergence analysis consumes.
# 4. See why the classifier layer is kept dense, and how an adaptive (energy) rank policy
#    behaves when it is applied round after round.

# %%
import math
import warnings

import matplotlib.pyplot as plt
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import fl_sim
from fl_sim.evaluation import evaluate
from fl_sim.plots import plot_compression_errors, plot_metric, plot_ranks
from fl_sim.presets import DEMO_CONFIG
from lowrank import compress_state, state_nbytes

torch.set_num_threads(1)
plt.rcParams["figure.figsize"] = (6.5, 4)

# %% [markdown]
# ## 1. The setting
#
# We use the toolkit's tested demo setting: scikit-learn's digits (8 x 8 images, 10 classes)
# split over **N = 20 clients** with a Dirichlet(0.5) label skew (each client sees mostly a
# few classes — "non-IID" data, notebook 2), an MLP 64 -> 200 -> 200 -> 10, **E = 10** local
# SGD steps of minibatch size 10 per round, learning rate 0.2, and all clients taking part in
# every round. FedDLR uses the rank policy `ratio:0.25` on both sides (keep a quarter of
# each layer's full rank) and keeps the output layer `net.out` dense (section 6 shows why).

# %%
cfg = DEMO_CONFIG.replace(algorithm="feddlr", rounds=1)
print(cfg)
sim = fl_sim.setup(cfg)  # data, model template, local trainer, random streams
data = sim.data
print(f"\n{data.num_clients} clients, sizes {data.client_sizes.tolist()}")
w0 = sim.initial_params()  # the global model w_0, a dict name -> tensor
for name, p in w0.items():
    print(f"{name:16s} {tuple(p.shape)}")

# %% [markdown]
# ## 2. One round by hand
#
# ### Step 1 — server: compress the global model and broadcast it (downlink)
#
# The server truncates every weight matrix of $w_r$ with the downlink policy and sends the
# factors $U$ ($m \times r$) and $V$ ($n \times r$). Biases (vectors) and the classifier
# (override `None`) go dense. `compress_state` does this for a whole state dict and reports
# the bytes of the payload. Because all clients get the same message, the downlink costs
# N times this payload (the toolkit counts every client's copy, as a unicast link would).

# %%
down = compress_state(w0, cfg.policy_down, overrides=cfg.policy_overrides)
dense_bytes = state_nbytes(w0)
print(f"{'tensor':16s} {'shape':>11s} {'sent as':>14s} {'bytes':>8s} {'dense bytes':>12s}")
for name, entry in down.entries.items():
    shape = tuple(w0[name].shape)
    rank = down.ranks.get(name)
    how = f"rank {rank}" if rank is not None and rank < min(shape) else "dense"
    print(f"{name:16s} {str(shape):>11s} {how:>14s} {entry.nbytes:8d} "
          f"{w0[name].numel() * 4:12d}")
print(f"total per client: {down.nbytes} bytes instead of {dense_bytes} "
      f"({dense_bytes / down.nbytes:.2f}x fewer)")
err_server = math.sqrt(down.sq_error)
print(f"server compression error ||C_s(w_0) - w_0|| = {err_server:.3f} "
      f"(||w_0|| = {math.sqrt(sum(float(p.square().sum()) for p in w0.values())):.3f})")

# %% [markdown]
# Each client rebuilds the dense model $\hat w_0 = C_s(w_0) = UV^\top$ from the factors.
# The error above is large in round 1 because a randomly initialized network has a flat
# spectrum (notebook 1): truncating it to a quarter of its rank removes much of it. We will
# see that from round 2 on it is tiny.
#
# ### Step 2 — clients: local training
#
# Every client starts from $\hat w_0$ and runs E = 10 SGD steps on its own data. The
# simulator's `LocalTrainer` trains all 20 clients at once (the parameters carry a leading
# client dimension); `sim.streams.batches` is the random stream that draws the minibatches.

# %%
start = down.decompress()
N = data.num_clients
clients = torch.arange(N)
stacked_start = {n: p.unsqueeze(0).expand(N, *p.shape) for n, p in start.items()}
local, last_losses = sim.trainer.train(stacked_start, clients, 0, sim.streams.batches)
print("local models:", {n: tuple(p.shape) for n, p in local.items()})
print("last minibatch loss per client:", [round(float(v), 2) for v in last_losses])

# %% [markdown]
# ### Step 3 — clients: compress the local models and upload (uplink)
#
# Each client truncates its *final local model* $w^k$ (not its update!) with the uplink
# policy and uploads the factors. With `batched=True`, `compress_state` handles all clients
# in one call and reports the bytes per client.

# %%
up = compress_state(local, cfg.policy_up, overrides=cfg.policy_overrides, batched=True)
print("bytes uploaded per client:", up.nbytes_per_item[:5], "...")
print("ranks of client 0:", {n: int(r[0]) for n, r in up.ranks.items()})
print(f"uplink total: {up.nbytes} bytes; downlink total: {N * down.nbytes} bytes")

# %% [markdown]
# ### Step 4 — server: rebuild and average
#
# The server rebuilds each upload $C_c(w^k)$ and forms the weighted average
# $w_{1} = \sum_k p_k\, C_c(w^k)$ with $p_k = n_k / n$ (client k's share of the data).
# The *client-side* compression error that enters the analysis is the error of that average,
# $\|\sum_k p_k (C_c(w^k) - w^k)\|$.

# %%
p = torch.as_tensor(data.weights)  # p_k, float64, sums to 1
received = up.decompress()
w1 = {n: torch.tensordot(p.to(t.dtype), t, dims=1) for n, t in received.items()}
print("p_k:", [round(float(v), 3) for v in p])
acc0 = evaluate(sim.model, w0, data.test_x, data.test_y, data.task).accuracy
acc1 = evaluate(sim.model, w1, data.test_x, data.test_y, data.task).accuracy
print(f"test accuracy: w_0 {acc0:.3f} -> w_1 {acc1:.3f}")

# %% [markdown]
# ### Same round, with the simulator
#
# `fl_sim.run(cfg).history` performs these four steps (in `fl_sim/algorithms/model_compression.py`)
# and records what was sent. With the same seed it draws the same minibatches, so its
# global model after one round must be identical to ours.

# %%
result = fl_sim.run(cfg)  # .history: what was recorded; .params: the final global model
rec = result.history.records[0]
gap = max(float((w1[n] - result.params[n]).abs().max()) for n in w1)
print(f"max |our w_1 - simulator's w_1| = {gap:.2e}")
print(f"recorded: bytes_down {rec.bytes_down}, bytes_up {rec.bytes_up}, "
      f"err_server {rec.err_server:.4f}, err_client {rec.err_client:.4f}")
assert gap < 1e-6
assert rec.bytes_down == N * down.nbytes and rec.bytes_up == up.nbytes
assert math.isclose(rec.err_server, err_server, rel_tol=1e-6)

# %% [markdown]
# ### Exercise 1 — the client-side error by hand
#
# Compute $e_c = \|\sum_k p_k (C_c(w^k) - w^k)\|$ for our hand-made round: for every tensor,
# form the weighted sum over clients of (received − local), then take the Frobenius norm of the
# whole model (the square root of the sum of squares over all tensors).
#
# **Predict first**: the clients' errors point in different directions. Will $e_c$ be
# smaller than Jensen's bound $\sqrt{\sum_k p_k \|C_c(w^k) - w^k\|^2}$ by more than half
# (ratio below 0.5)? Write `True` or `False` in `my_prediction`.

# %% tags=["exercise"]
my_prediction = False  # your prediction: e_c / Jensen's bound < 0.5?
# HINT: for each tensor n, sum_k p[k] * (received[n][k] - local[n][k]); then the global norm
# BEGIN SOLUTION
my_err_client = math.sqrt(sum(
    float(torch.tensordot(p.to(received[n].dtype), received[n] - local[n], dims=1).square().sum())
    for n in local))
# END SOLUTION
print(f"e_c = {my_err_client:.4f}")

# %% tags=["check"]
assert math.isclose(my_err_client, rec.err_client, rel_tol=1e-4), (my_err_client, rec.err_client)
# the weighted sum of the errors is no bigger than the weighted sum of the error norms (Jensen)
jensen = math.sqrt(float((p * up.sq_error).sum()))
assert my_err_client <= jensen
print(f"correct (Jensen's upper bound sqrt(sum_k p_k ||C_c(w^k) - w^k||^2) = {jensen:.4f})")
print("your prediction was",
      "right" if my_prediction == (my_err_client / jensen < 0.5) else "wrong",
      f"(ratio {my_err_client / jensen:.2f})")

# %% [markdown]
# ## 3. Many rounds: FedAvg vs FedDLR
#
# Now 40 rounds of each. FedAvg is the same loop with no compression on either side.

# %%
ROUNDS = 40
base = DEMO_CONFIG.replace(rounds=ROUNDS)
runs = {
    "FedAvg": fl_sim.run(base.replace(algorithm="fedavg")).history,
    "FedDLR (reconstructed), ratio:0.25": fl_sim.run(base.replace(algorithm="feddlr")).history,
}
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
plot_metric(runs, "test_accuracy", x="round", ax=axes[0])
plot_metric(runs, "test_accuracy", x="bytes", ax=axes[1])
axes[0].set_title("Test accuracy per round")
axes[1].set_title("Test accuracy per byte sent")
fig.tight_layout()
for name, h in runs.items():
    print(f"{name:36s} final accuracy {h.column('test_accuracy')[-1]:.3f}, "
          f"total {h.cumulative_bytes[-1] / 1e6:6.1f} MB")

# %% [markdown]
# **Left:** per round, FedDLR learns more slowly than FedAvg: each round its clients start
# from a truncated model and the server averages truncated models, so some of every round's
# progress is thrown away. **Right:** the same curves against the cumulative bytes sent
# (up + down, all clients). Every FedDLR round costs about half of a FedAvg round, so the
# FedDLR curve is squeezed to the left. Whether it lies above or below FedAvg at a given
# byte budget is the honest question to ask of any compression method. Here the two curves
# lie almost on top of each other: per byte, FedDLR at `ratio:0.25` is about as good as
# FedAvg on this small problem — no worse, but not clearly better either. What it does
# offer is a model that stays low-rank (section 4) and exports as a smaller network
# (notebook 6). The demo (`python -m fl_sim demo`, 60 rounds) ends at about 0.95 for FedDLR
# vs 0.96 for FedAvg with about 2x fewer bytes.

# %% [markdown]
# ## 4. The compression errors, round by round
#
# The simulator records two numbers per round:
#
# * `err_server` $= e_{s,r} = \|C_s(w_r) - w_r\|$: how far the broadcast model is from the
#   true global model;
# * `err_client` $= e_{c,r} = \|\sum_k p_k (C_c(w^k) - w^k)\|$: how far the average of the
#   uploads is from the average of the true local models.
#
# These are exactly the inputs of the toolkit's convergence analysis (`docs/theory.md`,
# notebook 4, built on Li et al., ICLR 2020 — our own derivation, not the paper's theorem):
# the distance to the optimum obeys a recursion of the form
# $d_{r+1} \le \sqrt{\rho_r (d_r + e_{s,r})^2 + \beta_r} + e_{c,r}$, so the measured errors of
# a run give a bound for that run.

# %%
dlr = runs["FedDLR (reconstructed), ratio:0.25"]
fig, ax, _ = plot_compression_errors(dlr)
ax.set_yscale("log")
ax.set_title("FedDLR: compression errors per round (ratio:0.25)")
fig.tight_layout()

# %% [markdown]
# The server error collapses after round 1. The reason is instructive: the first broadcast
# cuts the random initialization down to rank 50; the clients then add small updates and
# truncate again, and the average of their uploads stays very close to a rank-50 matrix. From
# then on the *model itself* is low-rank, and truncating it costs almost nothing. The client
# error stays larger, because each client's local update adds directions that its own
# truncation partly removes. Both errors are small compared with the norm of the model
# (about 10 here), but they act in every round.
#
# ## 5. Ranks: fixed vs adaptive policies
#
# With `ratio:0.25` the ranks are fixed: 16 for `fc1` (200 x 64) and 50 for `fc2` (200 x 200).
# An *adaptive* policy lets the spectrum decide. Let us run `energy:0.9` (keep 90% of each
# layer's energy) and plot the ranks it picks on the downlink and, averaged over clients, on
# the uplink. A rank of min(m, n) means the layer was sent dense (its factors would not have
# been smaller).

# %%
energy_run = fl_sim.run(base.replace(algorithm="feddlr", policy_down="energy:0.9",
                                     policy_up="energy:0.9")).history
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
plot_ranks(energy_run, side="down", ax=axes[0])
plot_ranks(energy_run, side="up", ax=axes[1])
axes[0].set_title("energy:0.9 - server (downlink) ranks")
axes[1].set_title("energy:0.9 - client (uplink) ranks, mean")
for ax in axes:
    ax.set_yscale("log")
fig.tight_layout()
runs["FedDLR (reconstructed), energy:0.9"] = energy_run
for name, h in runs.items():
    print(f"{name:36s} final accuracy {h.column('test_accuracy')[-1]:.3f}, "
          f"total {h.cumulative_bytes[-1] / 1e6:6.1f} MB")

# %% [markdown]
# At first `fc2` is sent dense (drawn at rank 200): keeping 90% of the energy of a freshly
# initialized 200 x 200 layer needs about 100 directions, where factors are no longer smaller
# than the matrix. `fc1` (200 x 64) is truncated from round 1. Once a layer is truncated, its
# rank *ratchets down*: every round the truncation removes 10% of the energy, the local
# training puts only a little back, so the next spectrum is more concentrated and the
# threshold is met with fewer directions. After a few dozen rounds both hidden layers have
# rank 4 or 5. This is cheap (few bytes) but the model loses capacity, and accuracy suffers.
# With `energy:0.99` the opposite happens on this MLP: 99% of the energy of the random
# initialization needs more than half of the rank, where factors are no smaller than the
# dense matrix, so every layer is sent dense and FedDLR becomes FedAvg and saves nothing.
# An energy threshold controls the error per round, not the bytes or the accuracy; the
# per-round errors are still recorded and feed the analysis the same way.
#
# ## 6. Why the classifier layer stays dense
#
# The output layer `net.out` is 10 x 200. At `ratio:0.25` it would get rank
# ceil(0.25 · 10) = 3: the logits of 10 classes would be forced into a 3-dimensional
# subspace, so the network cannot separate all classes well — and the layer is tiny
# (2,000 numbers), so compressing it saves almost nothing. A short run without the override:

# %%
no_override = fl_sim.run(base.replace(algorithm="feddlr", policy_overrides={})).history
compare = {"FedDLR, classifier dense": dlr, "FedDLR, classifier at rank 3": no_override}
fig, ax, _ = plot_metric(compare, "test_accuracy", x="round")
ax.set_title("Effect of compressing the 10-class output layer")
fig.tight_layout()
print("ranks down without override:", no_override.records[-1].ranks_down)
for name, h in compare.items():
    print(f"{name:30s} final accuracy {h.column('test_accuracy')[-1]:.3f}")
print(f"bytes per round: {dlr.records[0].bytes_up + dlr.records[0].bytes_down} with the dense "
      f"classifier vs {no_override.records[0].bytes_up + no_override.records[0].bytes_down}")

# %% [markdown]
# Keeping the classifier dense costs about 5% more bytes per round and buys about ten points
# of accuracy.
# In general, small or "bottleneck" layers (the first and last) are usually left uncompressed
# in low-rank training.
#
# ### Exercise 2 — predict the bytes of a round
#
# For the policy `fixed:8` on both sides (classifier and biases dense), compute by hand how
# many bytes **one client** receives per round: each compressed weight matrix costs
# r(m + n) float32 values, every other tensor its size. Then the whole round (up + down,
# 20 clients). Then change the rank (4, 20) and see the check follow.
#
# **Predict first**: what fraction of the dense model's bytes does one client receive at
# rank 8? Write it in `my_fraction` (e.g. 0.5).

# %% tags=["exercise"]
rank = 8
my_fraction = 0.5  # your prediction
shapes = {n: tuple(t.shape) for n, t in w0.items()}
# HINT: loop over shapes; 2-D tensors except the classifier ("out") cost min(r, m, n)(m + n) * 4
# BEGIN SOLUTION
per_client = 0
for name, shape in shapes.items():
    if len(shape) == 2 and "out" not in name:
        m, n_cols = shape
        per_client += min(rank, m, n_cols) * (m + n_cols) * 4
    else:
        per_client += math.prod(shape) * 4
round_bytes = 2 * N * per_client  # down to every client and up from every client
# END SOLUTION
print(f"per client: {per_client} bytes; per round: {round_bytes} bytes")

# %% tags=["check"]
pol = f"fixed:{rank}"
check = fl_sim.run(DEMO_CONFIG.replace(algorithm="feddlr", rounds=1, policy_down=pol,
                                       policy_up=pol)).history
assert check.records[0].bytes_down_per_client[0] == per_client
assert check.records[0].bytes_up + check.records[0].bytes_down == round_bytes
fraction = per_client / sum(4 * t.numel() for t in w0.values())
print(f"correct: {fraction:.3f} of the dense bytes (you predicted {my_fraction})")

# %% [markdown]
# ### Exercise 3 — bytes to reach a target accuracy
#
# How many megabytes does each method need before its test accuracy first reaches 0.9?
# Fill in `bytes_to_target`, which returns the cumulative bytes at the first round whose
# accuracy is at least `target` (or `None` if never).
#
# **Predict first**: which method gets there with fewer bytes? Write its name (a key of
# `runs`) in `my_pick`. Then try the targets 0.85 and 0.93.

# %% tags=["exercise"]
target = 0.9
my_pick = "FedAvg"  # your prediction: a key of runs


def bytes_to_target(history, target):
    # HINT: walk zip(history.column("test_accuracy"), history.cumulative_bytes)
    # BEGIN SOLUTION
    for acc, sent in zip(history.column("test_accuracy"), history.cumulative_bytes, strict=True):
        if acc >= target:
            return sent
    return None
    # END SOLUTION


for name, h in runs.items():
    b = bytes_to_target(h, target)
    print(f"{name:36s}", "never" if b is None else f"{b / 1e6:6.1f} MB")

# %% tags=["check"]
for h in runs.values():
    b = bytes_to_target(h, target)
    accs, cum = h.column("test_accuracy"), h.cumulative_bytes
    if b is None:
        assert max(accs) < target
    else:
        i = cum.index(b)
        assert accs[i] >= target and all(a < target for a in accs[:i])
reached = {k: bytes_to_target(h, target) for k, h in runs.items()}
best = min((k for k in reached if reached[k] is not None), key=reached.get, default=None)
print("correct; your prediction was", "right" if my_pick == best else f"wrong ({best})")

# %% [markdown]
# ## Summary
#
# * One FedDLR round: the server sends rank-r factors of the global model (downlink), each
#   client trains from the rebuilt model and uploads rank-r factors of its local model
#   (uplink), the server averages the rebuilt uploads.
# * Bytes per round drop by the factor the ranks allow (about 2x at `ratio:0.25` on this MLP),
#   at some cost in accuracy per round.
# * The per-round errors $e_s$ and $e_c$ are recorded by the simulator and feed the
#   convergence analysis (notebook 4). After round 1 the global model is itself low-rank.
# * Fixed policies fix the bytes; energy policies adapt the rank but, applied every round to
#   the model itself, can ratchet the rank down (or, at 0.99 here, never compress).
# * Keep the classifier dense.
