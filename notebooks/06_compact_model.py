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
# # 6. The compact model: from low-rank training to faster inference
#
# FedDLR (reconstructed from the abstract of Qiao, Yu, Zhang & Letaief, 2021; the full paper
# is not available to us) broadcasts a low-rank approximation of the global model every
# round. A by-product is that the final model can be **exported as a factorized network**:
# a rank-r linear layer $W = UV^\top$ ($m \times n$) is computed as two thin layers,
# first $V^\top x$ (n -> r), then $U(\cdot)$ (r -> m). This notebook measures what that buys.
#
# **Learning goals**
#
# 1. Export a FedDLR-trained model with `fl_sim.export.export_compact` and check that the
#    export is exact (it computes the same function as the model the server would broadcast).
# 2. Count parameters and FLOPs: $r(m+n)$ instead of $mn$ per layer.
# 3. Measure inference time honestly (median of repeats, small and large batches), and
#    understand why a speedup needs $r \ll mn/(m+n)$ (half the full rank for a square layer).
# 4. Compare with the simplest alternative: train dense with FedAvg, truncate afterwards.

# %%
import warnings

import matplotlib.pyplot as plt
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import fl_sim
from fl_sim.evaluation import evaluate
from fl_sim.export import export_compact, time_inference
from fl_sim.presets import DEMO_CONFIG
from lowrank import FixedRank, compress_state, factorize

torch.set_num_threads(1)  # timings below are single-threaded
plt.rcParams["figure.figsize"] = (6.5, 4)

# %% [markdown]
# ## 1. Train FedDLR (small setting)
#
# The demo setting of notebook 3: digits over 20 non-IID clients, MLP 64 -> 200 -> 200 -> 10,
# policy `ratio:0.25` on both links, classifier dense, 40 rounds (the demo uses 60). We also
# train FedAvg on the same setting for comparison in section 5.

# %%
ROUNDS = 40
cfg = DEMO_CONFIG.replace(algorithm="feddlr", rounds=ROUNDS)
run_dlr = fl_sim.run(cfg)  # a RunResult: .history, .params (w_R), .simulation
run_avg = fl_sim.run(cfg.replace(algorithm="fedavg"))
h_dlr, h_avg = run_dlr.history, run_avg.history
sim = run_dlr.simulation  # the run's model template (holding w_0) and its data
data = sim.data


def accuracy(model, x=data.test_x, y=data.test_y):
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).double().mean())


print(f"FedDLR: final test accuracy {h_dlr.column('test_accuracy')[-1]:.4f}, "
      f"{h_dlr.cumulative_bytes[-1] / 1e6:.1f} MB sent")
print(f"FedAvg: final test accuracy {h_avg.column('test_accuracy')[-1]:.4f}, "
      f"{h_avg.cumulative_bytes[-1] / 1e6:.1f} MB sent")

# %% [markdown]
# ## 2. Export
#
# `export_compact(model, params, policy, overrides=...)` loads the final global parameters
# $w_R$ into a dense copy of the model and builds a factorized copy: every `nn.Linear` whose
# policy gives a rank r with $r(m+n) < mn$ becomes `FactorizedLinear` = `Linear(n -> r,
# no bias)` followed by `Linear(r -> m)`. With the server's own policy, the compact network
# computes exactly $C_s(w_R)$ — the model the server would broadcast next round.
#
# A subtle point: $w_R$ itself is the *average* of the clients' rank-r uploads, and an average
# of rank-r matrices generally has a higher rank. So the export truncates once more; the
# question is how much that changes. We check both.

# %%
dense, compact, report = export_compact(sim.model, run_dlr.params, cfg.policy_down,
                                        overrides=cfg.policy_overrides)
print(compact)
print(report)

broadcast = compress_state(run_dlr.params, cfg.policy_down,
                           overrides=cfg.policy_overrides)
acc_broadcast = evaluate(sim.model, broadcast.decompress(), data.test_x, data.test_y,
                         data.task).accuracy
print(f"\naccuracy: dense w_R {accuracy(dense):.4f}, C_s(w_R) {acc_broadcast:.4f}, "
      f"compact network {accuracy(compact):.4f}")
print(f"||C_s(w_R) - w_R|| = {broadcast.sq_error ** 0.5:.4f}")

with torch.no_grad():
    out_compact = compact(data.test_x)
    out_broadcast = torch.func.functional_call(sim.model, broadcast.decompress(), (data.test_x,))
gap = float((out_compact - out_broadcast).abs().max())
print(f"max |logits(compact) - logits(C_s(w_R))| = {gap:.2e}")
assert gap < 1e-4  # the factorized network computes the truncated model, up to rounding

# %% [markdown]
# The export error $\|C_s(w_R) - w_R\|$ is tiny — the model FedDLR trains *is* (almost)
# low-rank, because every round truncated it (notebook 3, section 4) — and the three
# accuracies agree.
#
# ## 3. Parameters and FLOPs
#
# A dense layer $m \times n$ has $mn$ weights and needs $mn$ multiply-adds per input row;
# the factorized one has $r(m+n)$ of each. The ratio is
#
# $$\frac{mn}{r(m+n)}, \qquad \text{which exceeds 1 only if } r < \frac{mn}{m+n}.$$
#
# For a square $n \times n$ layer the break-even rank is $n/2$: **a factorization at more
# than half the rank is bigger and slower than the dense layer.**

# %%
def linear_layers(model):
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)}


def macs_per_row(model):
    """Multiply-adds of all Linear layers for one input row (biases ignored)."""
    return sum(mod.in_features * mod.out_features for mod in linear_layers(model).values())


print(f"{'layer':10s} {'shape (m x n)':>14s} {'rank':>5s} {'dense mn':>9s} {'r(m+n)':>8s} "
      f"{'ratio':>6s}")
for name, mod in linear_layers(dense).items():
    layer = name.removeprefix("net.")
    m, n = mod.weight.shape
    r = report.ranks.get(name)
    cost = r * (m + n) if r else m * n
    print(f"{layer:10s} {f'{m} x {n}':>14s} {r or '-':>5} {m * n:9d} {cost:8d} "
          f"{m * n / cost:6.2f}")
params_dense = sum(p.numel() for p in dense.parameters())
params_compact = sum(p.numel() for p in compact.parameters())
print(f"\nparameters: {params_dense:,} -> {params_compact:,} ({report.param_ratio:.2f}x fewer)")
print(f"multiply-adds per input row: {macs_per_row(dense):,} -> {macs_per_row(compact):,} "
      f"({macs_per_row(dense) / macs_per_row(compact):.2f}x fewer)")

# %% [markdown]
# ## 4. Measured inference time
#
# Fewer FLOPs do not automatically mean less time. `time_inference(dense, compact, x)` runs
# both models on the same batch, alternating, and reports the **median** of the repeats (the
# median ignores the occasional slow run caused by other processes). We use one thread and
# two batch sizes: a single row (latency) and a large batch (throughput).

# %%
timings = {}
for batch in (1, 4096):
    x = data.test_x[torch.arange(batch) % data.test_x.shape[0]]
    t = time_inference(dense, compact, x, repeats=100)
    timings[batch] = t
    print(f"batch {batch:5d}: dense {1e6 * t.dense_seconds:8.1f} us, "
          f"compact {1e6 * t.compact_seconds:8.1f} us, speedup {t.speedup:.2f}x")

# %% [markdown]
# For **one row** the compact model is typically no faster, often slower: the work is tiny,
# and the time is dominated by the fixed cost of each layer call in PyTorch — and the compact
# model has *more* layers (two per factorized layer). For a **large batch** the arithmetic
# dominates and the speedup approaches, but stays below, the FLOP ratio. (Your numbers will
# vary with the machine and its load; that is why we report medians and never assert on a
# timing.)
#
# A larger layer shows the FLOP law more clearly. Below, one `Linear(1024 -> 1024)` is
# factorized at several ranks and timed on a batch of 256 rows; the dashed line is the FLOP
# ratio $mn / (r(m+n)) = 512 / r$.

# %%
gen = torch.Generator().manual_seed(0)
big = torch.nn.Sequential(torch.nn.Linear(1024, 1024))
x_big = torch.randn(256, 1024, generator=gen)
ranks = [16, 32, 64, 128, 256, 384, 480]
speedups = []
for r in ranks:
    fact, rep = factorize(big, FixedRank(r))
    speedups.append(time_inference(big, fact, x_big, repeats=20).speedup)

fig, ax = plt.subplots()
ax.loglog(ranks, speedups, "o-", label="measured speedup (median of 20)")
ax.loglog(ranks, [1024 * 1024 / (r * 2048) for r in ranks], "k--", label="FLOP ratio mn / r(m+n)")
ax.axhline(1.0, color="gray", lw=1)
ax.axvline(512, color="red", ls=":", label="break-even rank mn/(m+n) = 512")
ax.set_xticks(ranks, [str(r) for r in ranks])
ax.tick_params(axis="x", which="minor", labelbottom=False)
ax.set_xlabel("rank r of the factorized 1024 x 1024 layer")
ax.set_ylabel("speedup over the dense layer")
ax.set_title("Factorized Linear(1024 -> 1024), batch 256, 1 thread")
ax.grid(alpha=0.3, which="both")
ax.legend(fontsize="small")
fig.tight_layout()
for r, s in zip(ranks, speedups, strict=True):
    print(f"rank {r:4d}: measured {s:5.2f}x, FLOP ratio {512 / r:5.2f}x")

# %% [markdown]
# The measured speedup tracks the FLOP ratio at moderate ranks and falls below it at very
# small ranks (the thin matrix products use the hardware less efficiently). It reaches 1 at
# the break-even rank: **inference speedup needs r well below min(m, n)/2.** At
# `ratio:0.25` a square layer gets at most 2x; a real speedup needs a policy like
# `ratio:0.1` or a fixed small rank — and the accuracy to go with it.
#
# ### Exercise 1 — the break-even rank
#
# The toolkit only factorizes a layer when that makes it smaller: `factorize` keeps a layer
# dense when $r(m+n) \ge mn$. For a `Linear(300 -> 120)` (weight 120 x 300), compute the
# largest rank that is still factorized. Then try other shapes (1024 x 1024, 10 x 200).
#
# **Predict first**: for a square layer the break-even rank is half the full rank. Is it
# above or below half of min(m, n) = 60 for this rectangular one? Write your guess of the
# rank in `my_guess`.

# %% tags=["exercise"]
m, n = 120, 300
my_guess = 60  # your prediction
# HINT: the largest integer r with r (m + n) < m n
# BEGIN SOLUTION
r_break = (m * n - 1) // (m + n)  # largest r with r (m + n) < m n
# END SOLUTION
print("largest rank that is factorized:", r_break, f"(you guessed {my_guess})")

# %% tags=["check"]
layer = torch.nn.Sequential(torch.nn.Linear(n, m))
_, rep_ok = factorize(layer, FixedRank(r_break))
_, rep_no = factorize(layer, FixedRank(r_break + 1))
assert rep_ok.ranks == {"0": r_break}, rep_ok
assert "0" in rep_no.kept_dense, rep_no
print("correct:", rep_no.kept_dense)

# %% [markdown]
# ## 5. Honest comparison: truncate a FedAvg model after training
#
# If all we wanted were a small model at the end, we could train dense with FedAvg and
# truncate once after training ("post-hoc" compression). FedDLR's benefit is different: it
# communicates less *during* training. The table puts the two side by side.

# %%
rows = []
for label, result in (("FedDLR (reconstructed)", run_dlr),
                      ("FedAvg, truncated afterwards", run_avg)):
    for policy in ("ratio:0.25", "fixed:8"):
        d_model, c_model, rep = export_compact(sim.model, result.params, policy,
                                               overrides=cfg.policy_overrides)
        rows.append((label, policy, result.history.cumulative_bytes[-1] / 1e6, rep.param_ratio,
                     accuracy(d_model), accuracy(c_model)))
print(f"{'training':30s} {'export':>11s} {'MB sent':>8s} {'params':>7s} {'acc dense':>9s} "
      f"{'acc compact':>11s}")
for label, policy, mb, ratio, acc_d, acc_c in rows:
    print(f"{label:30s} {policy:>11s} {mb:8.1f} {ratio:6.2f}x {acc_d:9.4f} {acc_c:11.4f}")

# %% [markdown]
# On this small problem, truncating the FedAvg model after training loses little accuracy
# even at `fixed:8` — although notebook 1 showed that its weights are far from low-rank in
# the Frobenius sense. Much of the discarded energy is leftover random initialization that
# the network's function barely depends on: *a large matrix error need not be a large
# function error*. So the compact model alone is not a reason to prefer FedDLR here; FedDLR
# sent about half the bytes to get its (lower-accuracy) model. (A fair comparison of the
# training itself is at equal bytes: notebook 3 shows FedAvg and FedDLR close per byte.)
# Exporting the FedDLR model at a smaller rank than it was trained with (`fixed:8` on a model
# trained at `ratio:0.25`) truncates again and may cost accuracy.
#
# ### Exercise 2 — the largest fixed rank with at least 2x fewer parameters
#
# Find the largest `r` such that exporting the FedDLR model with `FixedRank(r)` (classifier
# kept dense) gives a compact model with at least 2x fewer parameters than the dense one.
# Count by hand first: fc1 (200 x 64) and fc2 (200 x 200) each cost r(m+n) weights plus their
# bias.
#
# **Predict first** with the count above (the classifier 10 x 200 and the biases stay dense):
# write your rank in `my_guess`, then find it with `param_ratio_at` (a search or the closed
# form).

# %% tags=["exercise"]
def param_ratio_at(r):
    return export_compact(sim.model, run_dlr.params, FixedRank(r),
                          overrides=cfg.policy_overrides)[2].param_ratio


my_guess = 30  # your prediction
# HINT: the largest r in 1..64 with param_ratio_at(r) >= 2.0
# BEGIN SOLUTION
r_best = max(r for r in range(1, 65) if param_ratio_at(r) >= 2.0)
# END SOLUTION
_, compact_best, rep_best = export_compact(sim.model, run_dlr.params, FixedRank(r_best),
                                           overrides=cfg.policy_overrides)
print(f"largest rank: {r_best}, {rep_best.param_ratio:.3f}x fewer parameters, "
      f"accuracy {accuracy(compact_best):.4f}")

# %% tags=["check"]
assert param_ratio_at(r_best) >= 2.0
assert param_ratio_at(r_best + 1) < 2.0
print(f"correct (you guessed {my_guess}, off by {abs(my_guess - r_best)})")

# %% [markdown]
# ## Summary
#
# * A model trained with FedDLR is (almost) low-rank, so exporting it as a factorized
#   network is essentially lossless; the export computes exactly the server's broadcast
#   $C_s(w_R)$.
# * Parameters and FLOPs fall from $mn$ to $r(m+n)$ per layer; this pays only for
#   $r < mn/(m+n)$, i.e. below half the rank of a square layer.
# * Wall-clock speedups follow the FLOP ratio for large batches and large layers; for single
#   rows and tiny layers the per-layer overhead dominates and the compact model can be slower.
# * On this small MLP, truncating a dense FedAvg model after training is as compact and at
#   least as accurate; FedDLR's advantage is the communication saved during training.
