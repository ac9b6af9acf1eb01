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
# # 8. Low-rank federated methods side by side
#
# FedDLR (reconstructed from the abstract of Qiao, Yu, Zhang & Letaief, 2021) is one of
# several ways to use low-rank structure in federated learning. This notebook runs the
# methods the toolkit implements on one small problem and asks, for each: **what travels**
# on each link, **what the clients train**, how many **bytes** a round costs, and how
# **accurate** the model gets.
#
# * `fedavg`: the dense model travels both ways; clients train dense weights.
# * `feddlr` (reconstructed): factors of the truncated global model down, factors of each
#   truncated local model up; clients train dense weights; the model truncated once is the
#   compact export.
# * `feddlr_ef` (**our extension**): factors of $C(w - h)$ down (EF21-P), factors of
#   $C(\Delta_k - g_k)$ up (EF21); clients train dense weights and keep state $h$, $g_k$.
# * `fedhm` (Yao et al. 2021): the server SVD-factorizes the global model, $U\sqrt{S}$ and
#   $\sqrt{S}V^\top$ go down; clients train the factors; the server averages the products
#   $U_kV_k$ and factorizes again. The model stays factorized.
# * `fedlmt` (ICML 2024): a pre-factorized model $W = UV$; clients train $U$, $V$, which
#   travel both ways and are averaged **separately**.
# * `fedpara` (ICLR 2022): $W = (X_1Y_1)\odot(X_2Y_2)$, rank up to $r^2$ from
#   $2r(m+n)$ numbers; the four factors travel and are averaged.
# * `fedmud` (ICML 2025, AAD variant): $W = w + AB$ with $A$ frozen and regenerated from a
#   seed each round; clients train only $B$; up goes $B_k$, down a seed and last round's
#   averaged $B$; the model stays dense.
#
# How the simulator trains factors: the model itself is factorized. A config selects the
# variant with `model_kwargs={"factorization": ...}` (`fl_sim.models.factorize_model`), so
# local training (vectorized over clients) differentiates through $W = UV$, the Hadamard
# product, or $w + AB$ like through any other layer. All bytes are counted by one rule
# (`lowrank/accounting.py`).
#
# **Learning goals**
#
# 1. Tell apart methods that compress the *model* (FedDLR, FedHM), train a *factorized
#    model* (FedLMT, FedPara) or compress the *update* (FedMUD, FedDLR-EF).
# 2. Read the byte ledger of each, including the catch-up bytes of stateful downlinks.
# 3. See why FedMUD's averaging is exact and FedLMT's is not.

# %%
import warnings

import matplotlib.pyplot as plt
import torch

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import fl_sim
from fl_sim.plots import plot_metric
from fl_sim.presets import DEMO_CONFIG
from lowrank import state_nbytes

torch.set_num_threads(1)
plt.rcParams["figure.figsize"] = (6.5, 4)

# %% [markdown]
# ## 1. One setting, every method
#
# Digits over 10 non-IID clients (Dirichlet 0.5), full participation, an MLP
# 64 -> 100 -> 100 -> 10, E = 10 local steps of batch 10, learning rate 0.2, 20 rounds
# (small, so the notebook runs in about a minute). Every low-rank method keeps the same
# rank, `ceil(0.25 min(m, n))` of each hidden layer (16 of the 100 x 64 layer, 25 of the
# 100 x 100 one), and leaves the classifier dense; FedPara's rank comes from its parameter
# ratio $\gamma$.

# %%
ROUNDS = 20
base = DEMO_CONFIG.replace(num_clients=10, rounds=ROUNDS, model_kwargs={"hidden": (100, 100)})
RANK = "ratio:0.25"


def model_kwargs(factorization, **kw):
    return {"hidden": (100, 100), "factorization": factorization, **kw}


configs = {
    "fedavg": base.replace(algorithm="fedavg"),
    "feddlr": base.replace(algorithm="feddlr", policy_down=RANK, policy_up=RANK),
    "feddlr_ef": base.replace(algorithm="feddlr_ef", policy_down=RANK, policy_up=RANK),
    "fedhm": base.replace(algorithm="fedhm", model_kwargs=model_kwargs("lowrank", rank=RANK)),
    "fedlmt": base.replace(algorithm="fedlmt", model_kwargs=model_kwargs("lowrank", rank=RANK)),
    "fedpara": base.replace(algorithm="fedpara",
                            model_kwargs=model_kwargs("hadamard", gamma=0.1)),
    "fedmud": base.replace(algorithm="fedmud", model_kwargs=model_kwargs("mud", rank=RANK)),
}
results = {name: fl_sim.run(cfg) for name, cfg in configs.items()}
runs = {name: r.history for name, r in results.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
plot_metric(runs, "test_accuracy", x="round", ax=axes[0])
plot_metric(runs, "test_accuracy", x="bytes", ax=axes[1])
axes[0].set_title("Test accuracy per round")
axes[1].set_title("Test accuracy per byte (up + down, all clients)")
fig.tight_layout()

# %% [markdown]
# ## 2. What each one sends and trains
#
# The table reads the byte ledger of round 2 (round 1 of FedMUD downloads the dense
# weights once: clients hold nothing yet), the number of parameters the clients train, and
# the final accuracy.

# %%
print(f"{'method':10s} {'up kB/client':>12s} {'down kB/client':>14s} {'trained params':>14s} "
      f"{'total MB':>9s} {'final acc':>9s}")
for name, res in results.items():
    rec = res.history.records[1]
    trained = sum(p.numel() for n, p in res.params.items()
                  if not (name == "fedmud" and n.endswith((".weight", ".A"))
                          and n.rsplit(".", 1)[0] + ".B" in res.params))
    print(f"{name:10s} {rec.bytes_up_per_client[0] / 1e3:12.1f} "
          f"{rec.bytes_down_per_client[0] / 1e3:14.1f} {trained:14,d} "
          f"{res.history.cumulative_bytes[-1] / 1e6:9.2f} "
          f"{res.history.column('test_accuracy')[-1]:9.3f}")

# %% [markdown]
# ### Exercise 1 — the bytes of a factorized model, before running it
#
# FedLMT's clients upload their whole factorized model: $U$ ($m \times r$) and $V$
# ($r \times n$) of each hidden layer, the biases, and the dense classifier (10 x 100 plus
# 10 biases), all float32. **Predict first**: which uploads fewer bytes per client per
# round, FedLMT at `ratio:0.25` (ranks 16 and 25) or FedPara at $\gamma = 0.1$? Write
# `"fedlmt"` or `"fedpara"` in `prediction`. Then compute `lmt_up`, FedLMT's upload in
# bytes, from the shapes alone (64 -> 100 -> 100 -> 10); the check reads the ledger.

# %% tags=["exercise"]
prediction = "fedpara"  # "fedlmt" or "fedpara"
# HINT: sum r (m + n) over the two hidden layers, add 2 x 100 + 10 x 100 + 10, times 4 bytes
# BEGIN SOLUTION
lmt_up = 4 * (16 * (100 + 64) + 25 * (100 + 100) + 2 * 100 + 10 * 100 + 10)
# END SOLUTION
print(f"FedLMT uploads {lmt_up:,} bytes per client per round")

# %% tags=["check"]
ledger = {name: res.history.records[1].bytes_up_per_client[0] for name, res in results.items()}
assert lmt_up == ledger["fedlmt"], (lmt_up, ledger["fedlmt"])
assert lmt_up == state_nbytes(results["fedlmt"].params), "the upload is the whole model"
answer = min(("fedlmt", "fedpara"), key=ledger.get)
print(f"correct (FedPara: {ledger['fedpara']:,} bytes); your prediction was",
      "right" if prediction == answer else f"wrong ({answer})")

# %% [markdown]
# Things to notice:
#
# * FedDLR, FedDLR-EF, FedHM and FedLMT send the same rank-16/25 factors each way, so the
#   same bytes; they differ in *what* the factors are of (the model, a difference, a
#   trained factorization) and in what the server does with them.
# * FedMUD's uplink is only $B$ (r x n numbers per layer) plus the dense classifier and
#   biases; its downlink is one seed and last round's averaged $B$, because every client
#   regenerates the frozen $A$ from the seed and updates its own copy of the weights.
# * FedPara at $\gamma = 0.1$ (ranks 10 and 12 per Hadamard factor) sends slightly *more*
#   than the rank-16/25 factors here, yet its Hadamard product can reach rank $r^2$ (100
#   and 144, i.e. full rank).
# * The accuracy column is one seed of a small run: `python -m experiments` compares the
#   methods over seeds and settings (docs/results.md).

# %% [markdown]
# ## 3. Exact and inexact averaging
#
# FedLMT averages the factors $U$ and $V$ *separately*; the product of the averages is not
# the average of the products, so the server's model is not the average of the clients'
# models. FedHM averages the products and truncates again (an SVD on the server). FedMUD
# shares $A$ between all clients, so $\frac1K\sum_k A B_k = A \bar B$: its averaging is
# exact. The exercise checks the first claim on random factors.
#
# ### Exercise 2 — the product of averages
#
# Draw factors $U_k$ (20 x 3) and $V_k$ (3 x 15) for 4 clients. **Predict first**: the
# relative gap $\|\bar U \bar V - \overline{UV}\| / \|\overline{UV}\|$ with independent
# factors, and with all $U_k$ equal (as FedMUD's shared $A$): `"zero"`, `"small"` (below
# 0.1) or `"large"` for each. Then write `averaging_gap(U, V)` for stacks `U` (K, m, r) and
# `V` (K, r, n).

# %%
gen = torch.Generator().manual_seed(0)
U = torch.randn(4, 20, 3, generator=gen, dtype=torch.float64)
V = torch.randn(4, 3, 15, generator=gen, dtype=torch.float64)
shared_U = U[:1].expand(4, 20, 3)

# %% tags=["exercise"]
prediction = {"independent": "large", "shared U": "zero"}
# HINT: (U @ V).mean(0) is the average of the products
# BEGIN SOLUTION
def averaging_gap(U, V):
    avg_of_products = (U @ V).mean(0)
    product_of_avgs = U.mean(0) @ V.mean(0)
    return float(torch.linalg.norm(product_of_avgs - avg_of_products)
                 / torch.linalg.norm(avg_of_products))
# END SOLUTION
print(f"separate factors: gap {averaging_gap(U, V):.3f}; "
      f"shared U: gap {averaging_gap(shared_U, V):.1e}")

# %% tags=["check"]
loop_avg = sum(U[k] @ V[k] for k in range(4)) / 4  # the average of the products, by hand
loop_gap = float(torch.linalg.norm(sum(U) / 4 @ (sum(V) / 4) - loop_avg)
                 / torch.linalg.norm(loop_avg))
assert abs(averaging_gap(U, V) - loop_gap) < 1e-12, (averaging_gap(U, V), loop_gap)
assert averaging_gap(U, V) > 0.1, "independent factors: averaging them is not exact"
assert averaging_gap(shared_U, V) < 1e-12, "a shared factor makes the average exact"
print("correct; your prediction was",
      "right" if prediction == {"independent": "large", "shared U": "zero"} else
      "wrong (large, zero)")

# %% [markdown]
# ## 4. Catch-up bytes under partial participation
#
# FedDLR-EF and FedMUD broadcast *changes*; a client can apply one only if it holds the
# state it applies to. With 3 of 10 clients per round, most participants sat out the last
# rounds and must first receive what they missed, or the state dense, whichever is smaller
# (`fl_sim/algorithms/catch_up.py`). The ledger charges exactly that, so their downlink
# costs more per participant than at full participation.

# %%
partial = base.replace(participation="scheme2", clients_per_round=3, rounds=6)
partial_runs = {}
for name in ("feddlr", "feddlr_ef", "fedmud"):
    partial_runs[name] = fl_sim.run(partial.replace(
        algorithm=configs[name].algorithm, model_kwargs=configs[name].model_kwargs,
        policy_down=RANK, policy_up=RANK))
    h = partial_runs[name].history
    down = [round(b / 1e3, 1) for r in h.records[1:] for b in r.bytes_down_per_client]
    print(f"{name:10s} download kB per participant, rounds 2-6: {down}")

# %% [markdown]
# ### Exercise 3 — predict FedDLR-EF's catch-up ledger
#
# FedDLR-EF's message has the same size `message` every round (fixed ranks), and the dense
# replica costs `dense` bytes. A participant receives the messages it missed since it last
# took part (every client is in sync at round 0), or the replica dense if that is smaller;
# a client listed twice in one round pays once. **Predict first**: what does a client that
# sat out just *one* round (so it missed 2 messages, counting this round's) download:
# `"2 messages"` or `"dense"`? Then write `predicted_downloads(history)`: one list per round
# of the bytes each participant (`record.clients`, in order) receives.

# %%
ef_hist = partial_runs["feddlr_ef"].history
message = ef_hist.records[0].bytes_down_per_client[0]  # round 1: everyone missed 1 message
dense = state_nbytes(partial_runs["feddlr_ef"].params)
print(f"message {message:,} bytes, dense replica {dense:,} bytes")

# %% tags=["exercise"]
prediction = "dense"  # "2 messages" or "dense"
# HINT: remember the last round each client took part in (0 for all at the start)
# BEGIN SOLUTION
def predicted_downloads(history):
    last, out = {}, []
    for rec in history.records:
        row = []
        for c in rec.clients:
            row.append(min(dense, (rec.round - last.get(c, 0)) * message))
            last[c] = rec.round
        out.append(row)
    return out
# END SOLUTION
print(predicted_downloads(ef_hist))

# %% tags=["check"]
assert predicted_downloads(ef_hist) == [r.bytes_down_per_client for r in ef_hist.records]
answer = "dense" if 2 * message >= dense else "2 messages"
print("correct: your ledger is the simulator's; your prediction was",
      "right" if prediction == answer else f"wrong ({answer})")

# %% [markdown]
# FedDLR's downlink is the same every time (it sends the model's factors, stateless);
# FedDLR-EF's and FedMUD's vary with how long a client was away, and never exceed the dense
# state plus what every participant receives anyway. Here a message is half the dense
# replica, so a client that missed one round already downloads the replica dense: with 3
# of 10 clients per round, FedDLR-EF's downlink saves almost nothing. That is why
# docs/results.md runs FedDLR-EF in a cross-silo setting too (20 clients, all in every
# round), where nobody is stale and a round costs exactly FedDLR's bytes.
#
# ## Summary
#
# * Low-rank methods differ in *what* is low-rank: the model each round (FedDLR, FedHM),
#   a model trained in factorized form (FedLMT, FedPara), or the update (FedMUD, and the
#   differences of FedDLR-EF).
# * At equal rank, FedDLR, FedDLR-EF, FedHM and FedLMT cost the same bytes per round; the
#   update methods need state on the clients and pay catch-up bytes when clients sit out.
# * A shared frozen factor (FedMUD) makes averaging exact; averaging two factors separately
#   (FedLMT) does not.
