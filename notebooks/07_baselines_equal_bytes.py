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
# # 7. FedDLR against update-compression baselines, at equal bytes
#
# FedDLR (reconstructed from the abstract of Qiao, Yu, Zhang & Letaief, 2021; the full text
# is not available to us) compresses **the model** on both links. Most communication-efficient
# FL methods instead compress **the update** $\Delta^k = w^k - w_r$ that a client sends back,
# and leave the downlink dense. This notebook compares them on the same small problem and —
# the only fair way — at equal numbers of bytes.
#
# | algorithm | client uploads | downlink | client memory |
# |---|---|---|---|
# | `fedavg` | its local model, dense | dense | none |
# | `feddlr` | rank-r factors of its **model** | rank-r factors | none |
# | `feddlr_up` | rank-r factors of its **model** | dense | none |
# | `lowrank_update` | rank-r factors of its **update** (PowerSGD-style) | dense | EF + basis |
# | `topk_ef` | k largest entries of its **update** (+ int32 indices) | dense | EF residual |
# | `qsgd` | its **update**, quantized (norm + int8 levels) | dense | none (unbiased) |
#
# (EF = error-feedback residual; `lowrank_update` also keeps a warm-start basis for its one
# power iteration per round.)
#
# **Learning goals**
#
# 1. Compare accuracy against *cumulative bytes*, not rounds.
# 2. Tune each baseline to send about the same bytes per round as FedDLR and compare
#    accuracy at equal bytes.
# 3. Understand the difference between model and update compression, why biased compressors
#    need **error feedback**, and what **unbiasedness** buys QSGD.

# %%
import math
import warnings

import matplotlib.pyplot as plt
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import fl_sim
from fl_sim.plots import plot_metric
from fl_sim.presets import DEMO_CONFIG
from lowrank import QSGD, ErrorFeedback, TopK
from lowrank.accounting import wire_nbytes

torch.set_num_threads(1)
plt.rcParams["figure.figsize"] = (6.5, 4)

# %% [markdown]
# ## 1. Every method with its default setting
#
# The setting is the demo's (notebook 3): digits over 20 non-IID clients (Dirichlet 0.5), an
# MLP 64 -> 200 -> 200 -> 10, E = 10 local steps of batch 10, learning rate 0.2, full
# participation, 40 rounds. FedDLR uses `ratio:0.25` with the classifier dense; the baselines
# use their defaults: `update_rank=4`, `topk_ratio=0.05`, `qsgd_levels=16`.

# %%
ROUNDS = 40
base = DEMO_CONFIG.replace(rounds=ROUNDS)
defaults = {
    "fedavg": base.replace(algorithm="fedavg"),
    "feddlr ratio:0.25": base.replace(algorithm="feddlr"),
    "lowrank_update r=4": base.replace(algorithm="lowrank_update"),
    "topk_ef 5%": base.replace(algorithm="topk_ef"),
    "qsgd s=16": base.replace(algorithm="qsgd"),
}
runs = {name: fl_sim.run(c).history for name, c in defaults.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
plot_metric(runs, "test_accuracy", x="round", ax=axes[0])
plot_metric(runs, "test_accuracy", x="bytes", ax=axes[1])
axes[0].set_title("Test accuracy per round")
axes[1].set_title("Test accuracy per byte (up + down, all clients)")
axes[0].set_ylim(0.5, 1.0)
axes[1].set_ylim(0.5, 1.0)
fig.tight_layout()


# %% [markdown]
# Per round (left), the update-compression methods follow FedAvg closely, while FedDLR lags.
# Per byte (right) the picture changes, because methods send very different amounts. A table
# makes it concrete: bytes per client per round on each link, and the accuracy reached within
# a fixed total budget.

# %%
def accuracy_at_budget(history, budget):
    """Best accuracy among the rounds completed within `budget` total bytes (None if none)."""
    accs = [a for a, b in zip(history.column("test_accuracy"), history.cumulative_bytes,
                              strict=True) if b <= budget]
    return max(accs) if accs else None


def table(histories, budget):
    print(f"{'run':24s} {'up kB':>7s} {'down kB':>8s} {'total MB':>9s} {'final acc':>9s} "
          f"{f'acc @ {budget / 1e6:.0f} MB':>12s}")
    for name, h in histories.items():
        first = h.records[0]
        at = accuracy_at_budget(h, budget)
        print(f"{name:24s} {first.bytes_up_per_client[0] / 1e3:7.1f} "
              f"{first.bytes_down_per_client[0] / 1e3:8.1f} {h.cumulative_bytes[-1] / 1e6:9.1f} "
              f"{h.column('test_accuracy')[-1]:9.3f} {'-' if at is None else f'{at:.3f}':>12s}")


BUDGET = 150e6
table(runs, BUDGET)

# %% [markdown]
# Things to notice:
#
# * A dense model is 220.8 kB. FedAvg sends it both ways.
# * The update methods compress only the **uplink**; their downlink is the dense model, so
#   every round costs at least 20 x 220.8 kB = 4.4 MB however hard the uplink is squeezed.
# * FedDLR compresses **both** links (about 2x each at `ratio:0.25`), so its round costs
#   less than any baseline's here — but it also learns less per round.
# * At this budget the update-compression methods are ahead: their uplinks are tiny and
#   their accuracy per round is close to FedAvg's.

# %% [markdown]
# ## 2. Tuning the baselines to FedDLR's uplink bytes
#
# To compare compressors fairly we match the **uplink** bytes per client per round to
# FedDLR's, read from its first record. Then `feddlr_up` (FedDLR's model compression on the
# uplink only, dense downlink) costs exactly what the update baselines cost in total, and
# `feddlr` costs less because it also compresses the downlink.
#
# * `topk_ef` sends 8 bytes per kept entry (4-byte value + 4-byte index), in every tensor, so
#   a ratio $\approx$ target / (8 · #parameters) matches the target.
# * `lowrank_update` sends $r(m+n)$ floats per weight matrix (if that is smaller than
#   $mn$, else the dense matrix) and the biases dense. We pick the largest rank that fits.
# * `qsgd` sends one int8 level per entry plus a 4-byte norm per tensor: about a quarter of
#   the dense size **whatever the number of levels s** (up to 127). In this toolkit its bytes
#   cannot be tuned with `qsgd_levels`; only the precision changes. (With ideal bit packing
#   an entry would need $\log_2(2s+1)$ bits; `QSGDPayload.nbits_packed` reports that, but the
#   simulator counts bytes as sent, byte-aligned.)

# %%
target = runs["feddlr ratio:0.25"].records[0].bytes_up_per_client[0]
sim = fl_sim.setup(base)
shapes = {n: tuple(p.shape) for n, p in sim.initial_params().items()}
num_params = sum(math.prod(s) for s in shapes.values())
print(f"FedDLR uplink per client per round: {target} bytes "
      f"(dense model: {4 * num_params} bytes, {num_params} parameters)")

topk_ratio = target / (8 * num_params)
print(f"top-k ratio matching it: {topk_ratio:.4f}")

# %% [markdown]
# ### Exercise 1 — the update rank that matches FedDLR's uplink
#
# FedDLR keeps rank 16 of the 64 x 200 layer and rank 50 of the 200 x 200 one
# (`ratio:0.25`). **Predict first**: will the *update* rank that costs the same uplink bytes
# be smaller than 16, between 16 and 50, or larger than 50? Write it in `prediction`.
#
# Then write `lowrank_update_bytes(rank)`: the bytes one client uploads per round with
# `lowrank_update` at that rank. For each tensor: if it has 2 dimensions $m \times n$ and
# $\min(r, m, n)\,(m+n) < mn$ it costs $\min(r,m,n)(m+n) \cdot 4$ bytes, otherwise its dense
# size $4mn$ (vectors always go dense). Set `update_rank` to the largest rank whose bytes do
# not exceed `target`. The check runs one round of the simulator at your rank and compares
# its byte ledger with your function.

# %% tags=["exercise"]
prediction = "between 16 and 50"  # "smaller than 16", "between 16 and 50" or "larger than 50"
# HINT: loop over shapes.values(); m = shape[0], n = prod(shape[1:]) for 2-D tensors
# BEGIN SOLUTION
def lowrank_update_bytes(rank):
    total = 0
    for shape in shapes.values():
        if len(shape) >= 2:
            m, n = shape[0], math.prod(shape[1:])
            r = min(rank, m, n)
            total += r * (m + n) * 4 if r * (m + n) < m * n else m * n * 4
        else:
            total += math.prod(shape) * 4
    return total


update_rank = max(r for r in range(1, 201) if lowrank_update_bytes(r) <= target)
# END SOLUTION
print(f"update rank {update_rank}: {lowrank_update_bytes(update_rank)} bytes "
      f"(target {target})")

# %% tags=["check"]
one_round = fl_sim.run(base.replace(algorithm="lowrank_update", rounds=1,
                                    update_rank=update_rank)).history
sent = one_round.records[0].bytes_up_per_client[0]
assert sent == lowrank_update_bytes(update_rank), (sent, lowrank_update_bytes(update_rank))
assert sent <= target < lowrank_update_bytes(update_rank + 1)
answer = ("smaller than 16" if update_rank < 16 else
          "between 16 and 50" if update_rank <= 50 else "larger than 50")
print("correct; your prediction was", "right" if prediction == answer else f"wrong ({answer})")

# %% [markdown]
# The same rank from the toolkit's own byte rule (`lowrank.accounting.wire_nbytes`, which
# every algorithm's ledger uses), so the rest of the notebook does not depend on your cell:

# %%
def upload_bytes(rank):
    return sum(wire_nbytes(s, rank if len(s) >= 2 else None, 4) for s in shapes.values())


matched_rank = max(r for r in range(1, 201) if upload_bytes(r) <= target)
print(f"matched update rank: {matched_rank}")

# %% [markdown]
# Now the runs at matched uplink bytes (`qsgd` as it is, at about half of the target).

# %%
matched = {
    "fedavg": runs["fedavg"],
    "feddlr ratio:0.25": runs["feddlr ratio:0.25"],
    "feddlr_up ratio:0.25": fl_sim.run(base.replace(algorithm="feddlr_up")).history,
    f"lowrank_update r={matched_rank}": fl_sim.run(
        base.replace(algorithm="lowrank_update", update_rank=matched_rank)).history,
    f"topk_ef {100 * topk_ratio:.1f}%": fl_sim.run(
        base.replace(algorithm="topk_ef", topk_ratio=topk_ratio)).history,
    "qsgd s=16": runs["qsgd s=16"],
}
fig, ax, _ = plot_metric(matched, "test_accuracy", x="bytes")
ax.set_ylim(0.5, 1.0)
ax.set_title(f"Uplink matched to FedDLR's {target / 1e3:.1f} kB per client per round")
fig.tight_layout()
table(matched, BUDGET)

# %% [markdown]
# At the same uplink bytes, compressing the **update** is far more accurate than
# compressing the **model**: `lowrank_update` at rank 36 and `topk_ef` at 24% are
# practically lossless here (they follow FedAvg), while `feddlr_up` loses accuracy at every
# round. The reason is the spectrum (notebook 1): a model's weights carry a heavy tail of
# singular values, an update made of a few SGD steps is nearly low-rank, so the same rank
# captures almost all of an update but only part of a model.
#
# FedDLR's answer is the downlink: the update methods must broadcast the dense model, FedDLR
# does not. Per *total* byte the full `feddlr` therefore sits to the left of `feddlr_up`. With
# the downlink dense, the baselines cannot get below 4.4 MB per round; FedDLR can go as low as
# its ranks allow (`fixed:8` costs 1.2 MB per round; notebook 3), at a price in accuracy.
# Compressing *differences* on the downlink as well, with error feedback, is what
# `feddlr_ef` does (section 4).

# %% [markdown]
# ## 3. Error feedback and unbiasedness
#
# Two properties decide how a compressor $C$ behaves inside training.
#
# **Unbiasedness**, $\mathbb{E}[C(x)] = x$. QSGD rounds each entry up or down at random
# with exactly the probabilities that make it unbiased, so on average nothing is lost; the
# price is extra variance, which SGD tolerates like gradient noise. Top-k and low-rank
# truncation are *deterministic* and *biased*: they always drop the same small part.
#
# **Error feedback** repairs biased compressors: the client keeps what it failed to send,
# $e \leftarrow x + e - C(x + e)$, and adds it to the next message. Nothing is lost for good;
# it is only delayed. `topk_ef` and `lowrank_update` use it; `qsgd` does not need it.
#
# FedDLR's truncation is biased too, and has no error feedback: what a client's truncation
# removes from its model is gone. The analysis (`docs/theory.md`, notebook 4) accordingly
# treats it as a perturbation in every round, which leaves an error floor. In practice the
# FedDLR model becomes low-rank after the first round (notebook 3), so the perturbations are
# small — but they are not corrected.

# %% [markdown]
# ### Exercise 2 — which compressor is unbiased?
#
# **Predict first**: of QSGD with only s = 2 levels and top-10%, which one's *average*
# over many compressions of a fixed vector comes back to the vector? Write `"qsgd"`,
# `"topk"`, `"both"` or `"neither"` in `prediction`.
#
# Then estimate $\mathbb{E}[C(x)]$ by averaging `draws` compressions of `x` with each, and
# compute the relative biases $\|\bar C - x\| / \|x\|$ (`bias_qsgd`, `bias_topk`) and the
# relative error of one single QSGD draw (`single_qsgd`).

# %%
gen = torch.Generator().manual_seed(0)
x = torch.randn(500, generator=gen, dtype=torch.float64)
draws = 4000
qsgd = QSGD(2, generator=gen)  # try s = 1 or s = 16 afterwards
topk = TopK(ratio=0.1)

# %% tags=["exercise"]
prediction = "qsgd"  # "qsgd", "topk", "both" or "neither"
# HINT: C.compress(x).decompress() is one draw; average `draws` of them
# BEGIN SOLUTION
mean_qsgd = sum(qsgd.compress(x).decompress() for _ in range(draws)) / draws
mean_topk = sum(topk.compress(x).decompress() for _ in range(draws)) / draws
bias_qsgd = float(torch.linalg.norm(mean_qsgd - x) / torch.linalg.norm(x))
bias_topk = float(torch.linalg.norm(mean_topk - x) / torch.linalg.norm(x))
single_qsgd = float(torch.linalg.norm(qsgd.compress(x).decompress() - x) / torch.linalg.norm(x))
# END SOLUTION
print(f"QSGD s=2: relative bias {bias_qsgd:.3f}, error of a single draw {single_qsgd:.2f}")
print(f"top-10%:  relative bias {bias_topk:.3f}")

# %% tags=["check"]
assert bias_qsgd < 0.1, "QSGD should be unbiased: its average approaches x"
dropped = torch.linalg.norm(x - topk.compress(x).decompress()) / torch.linalg.norm(x)
assert math.isclose(bias_topk, float(dropped), rel_tol=1e-9), "top-k's average is top-k"
assert single_qsgd > 3 * bias_qsgd, "a single QSGD draw is noisy; the average is not"
print("correct; your prediction was", "right" if prediction == "qsgd" else "wrong (qsgd)")

# %% [markdown]
# A single QSGD draw is far from $x$ (large variance); the average of many draws is close
# to it. Top-k's average is just top-k: the dropped 90% of the entries never arrive.
#
# ### Exercise 3 — error feedback in action
#
# Send the *same* vector `g` `steps` times through top-10%, once plain and once wrapped in
# `ErrorFeedback`, and compare the total received $\sum_t C_t$ with the total that should
# have arrived, `steps * g`. **Predict first**: after 1,000 messages instead of 50, which
# gap is larger, and does the other one grow? Write `"plain grows, ef bounded"`,
# `"both grow"` or `"ef grows, plain bounded"` in `prediction`; then compute `gap_plain`
# and `gap_ef` (norms of received − sent) for `steps = 50`.

# %%
g = torch.randn(500, generator=gen, dtype=torch.float64)
steps = 50  # try 10, 200 or 1000 afterwards
plain, ef = TopK(ratio=0.1), ErrorFeedback(TopK(ratio=0.1))

# %% tags=["exercise"]
prediction = "plain grows, ef bounded"
# HINT: ef.compress(g, name="g") keeps a residual under the name "g"
# BEGIN SOLUTION
received_plain = sum(plain.compress(g).decompress() for _ in range(steps))
received_ef = sum(ef.compress(g, name="g").decompress() for _ in range(steps))
gap_plain = float(torch.linalg.norm(received_plain - steps * g))
gap_ef = float(torch.linalg.norm(received_ef - steps * g))
# END SOLUTION
print(f"after {steps} messages: gap without feedback {gap_plain:.1f}, with feedback {gap_ef:.1f} "
      f"(||g|| = {float(torch.linalg.norm(g)):.1f})")

# %% tags=["check"]
# with feedback the gap is exactly the final residual (a telescoping sum), so it is bounded
assert math.isclose(gap_ef, float(torch.linalg.norm(ef.residuals["g"])), rel_tol=1e-9)
# without feedback the same part of g is dropped every time: the gap grows linearly
dropped = float(torch.linalg.norm(g - TopK(ratio=0.1).compress(g).decompress()))
assert math.isclose(gap_plain, steps * dropped, rel_tol=1e-9)
assert gap_ef < gap_plain, "error feedback should keep the gap smaller"
print("correct; your prediction was",
      "right" if prediction == "plain grows, ef bounded" else "wrong (plain grows, ef bounded)")

# %% [markdown]
# ## 4. Error feedback on both links: FedDLR-EF at FedDLR's bytes
#
# `feddlr_ef` is **our extension** (not the FedDLR paper): it sends the same rank-r factors
# as FedDLR, but of *differences*, with error feedback on both links.
#
# * **Downlink (EF21-P).** The server keeps the model $w$ and a copy of the replica $h$
#   every client holds; it sends $c = C(w - h)$ and both sides set $h \leftarrow h + c$.
# * **Uplink (EF21).** Client $k$ keeps $g_k$, sends $m_k = C(\Delta_k - g_k)$ with
#   $\Delta_k = w^k - h$, and both sides set $g_k \leftarrow g_k + m_k$; the server
#   averages $h + g_k$.
#
# Nothing a truncation drops is lost: it stays in $w - h$ or $\Delta_k - g_k$ and is sent
# later. With full participation every client applies every broadcast, so a round costs
# exactly FedDLR's bytes at the same ranks (with partial participation, a client that sat
# out rounds must catch up; the simulator charges the missed messages or $h$ dense,
# whichever is smaller).

# %%
ef_runs = {
    "fedavg": runs["fedavg"],
    "feddlr ratio:0.25": runs["feddlr ratio:0.25"],
    "feddlr_ef ratio:0.25": fl_sim.run(base.replace(algorithm="feddlr_ef")).history,
}
fig, ax, _ = plot_metric(ef_runs, "test_accuracy", x="bytes")
ax.set_ylim(0.5, 1.0)
ax.set_title("Model compression with and without error feedback, same ranks")
fig.tight_layout()
table(ef_runs, BUDGET)
first_dlr = runs["feddlr ratio:0.25"].records[0]
first_ef = ef_runs["feddlr_ef ratio:0.25"].records[0]
print("bytes per client per round, first round (up, down): feddlr",
      first_dlr.bytes_up_per_client[0], first_dlr.bytes_down_per_client[0],
      "| feddlr_ef", first_ef.bytes_up_per_client[0], first_ef.bytes_down_per_client[0])

# %% [markdown]
# Same bytes per round; compare the final accuracies in the table. Error feedback turns
# FedDLR's per-round truncation error, which theory and notebook 4 treat as a perturbation
# that leaves an error floor, into a *delay*: what one message could not carry is sent in a
# later one. The price is state: each client keeps $h$ and $g_k$, and the compact model is
# no longer a by-product (the final $w$ is a sum of low-rank messages, not low-rank; export it
# by truncating once, as for FedAvg). Notebook 8 sets FedDLR-EF beside the low-rank FL
# methods people use today.

# %% [markdown]
# ## Summary
#
# * Always compare compressed methods by accuracy against **bytes**, with each tuned to a
#   similar budget; a per-round plot flatters every method that sends more.
# * On this problem, at equal uplink bytes, update compression (`lowrank_update`, `topk_ef`
#   with error feedback; unbiased `qsgd`) is nearly as accurate as FedAvg, while model
#   compression (`feddlr_up`) loses accuracy: updates are nearly low-rank, trained weights
#   are not.
# * FedDLR's distinctive advantages are the **compressed downlink** (the baselines here must
#   broadcast the dense model) and the **compact model** it ends with (notebook 6).
# * Biased compressors (top-k, truncated SVD) need error feedback to avoid losing
#   information; unbiased ones (QSGD) trade bias for variance. FedDLR's model truncation is
#   biased and uncorrected, which the theory turns into an error floor (notebook 4).
# * FedDLR-EF (our extension) sends the same factors as FedDLR, of differences, with error
#   feedback on both links: same bytes per round at full participation, stateful clients.
