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
# # 1. Low-rank approximation: the operator behind FedDLR
#
# FedDLR (Qiao, Yu, Zhang & Letaief, 2021) saves communication in federated learning by
# sending *low-rank approximations* of the model's weight matrices instead of the matrices
# themselves, on both links (server -> clients and clients -> server). Before we look at
# federated learning at all (notebooks 2 and 3), this notebook studies the single operation
# the whole method rests on: **truncating a matrix to rank r with the SVD**.
#
# > The paper's full text is not available to us; the toolkit *reconstructs* FedDLR from its
# > abstract. Everything in this notebook is standard linear algebra and does not depend on
# > that reconstruction.
#
# **Learning goals**
#
# 1. Read a singular value spectrum and say whether a matrix is "low-rank enough" to compress.
# 2. Check the Eckart–Young–Mirsky theorem numerically: the error of the best rank-r
#    approximation is exactly the energy in the discarded singular values.
# 3. Know the four rank policies of the toolkit (`FixedRank`, `RankRatio`, `EnergyThreshold`,
#    `ErrorBudget`) and predict which rank each picks.
# 4. Use randomized SVD, compare its error with the Halko–Martinsson–Tropp bound, and see what
#    power iterations buy.
# 5. Trade bytes against error: a rank-r factorization of an m x n matrix costs r(m+n) numbers,
#    so it only pays when r < mn/(m+n).

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits

from lowrank import (
    EnergyThreshold,
    ErrorBudget,
    FixedRank,
    RankRatio,
    compress_matrix,
    exact_svd,
    parse_policy,
    randomized_svd,
)

torch.set_num_threads(1)  # small matrices: one thread is fastest and deterministic
torch.manual_seed(0)
plt.rcParams["figure.figsize"] = (6.5, 4)

# %% [markdown]
# ## 1. A real weight matrix
#
# We train a small multilayer perceptron (64 -> 200 -> 200 -> 10, the model the later
# notebooks use) on scikit-learn's handwritten digits (1,797 images of 8 x 8 pixels, shipped
# with scikit-learn, so nothing is downloaded). This is plain centralized training with
# minibatch SGD — no federation yet. We keep a copy of the middle layer's weights *before*
# training so we can compare the two spectra.

# %%
X, y = load_digits(return_X_y=True)
X = torch.tensor(X / 16.0, dtype=torch.float32)  # pixel values 0..16 -> [0, 1]
y = torch.tensor(y)
gen = torch.Generator().manual_seed(0)
perm = torch.randperm(len(X), generator=gen)
train_idx, test_idx = perm[:1400], perm[1400:]

model = torch.nn.Sequential(
    torch.nn.Linear(64, 200), torch.nn.ReLU(),
    torch.nn.Linear(200, 200), torch.nn.ReLU(),
    torch.nn.Linear(200, 10),
)
W_init = model[2].weight.detach().clone()  # the 200 x 200 hidden layer at initialization

opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
for _epoch in range(20):
    order = train_idx[torch.randperm(len(train_idx), generator=gen)]
    for i in range(0, len(order), 32):
        batch = order[i:i + 32]
        loss = torch.nn.functional.cross_entropy(model(X[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()

with torch.no_grad():
    test_acc = float((model(X[test_idx]).argmax(1) == y[test_idx]).float().mean())
W = model[2].weight.detach().clone()  # trained 200 x 200 hidden layer
print(f"test accuracy after 20 epochs: {test_acc:.3f}")

# %% [markdown]
# ## 2. Singular value spectra
#
# Every real m x n matrix factors as $W = U \,\mathrm{diag}(s)\, V^\top$ with orthonormal
# columns in $U$ and $V$ and singular values $s_1 \ge s_2 \ge \dots \ge 0$. Keeping only the
# first r triplets gives $W_r = U_{:,:r}\,\mathrm{diag}(s_{:r})\,V_{:,:r}^\top$, which can be
# sent as two thin matrices, $U_{:,:r}\mathrm{diag}(s_{:r})$ ($m \times r$) and $V_{:,:r}$
# ($n \times r$).
#
# How good $W_r$ is depends only on how fast the singular values decay. We compare four
# matrices:
#
# * the hidden layer at initialization (random: a flat spectrum),
# * the same layer after training,
# * the *change* training made, $W - W_{init}$ (what update-compression methods send; see
#   notebook 7),
# * a synthetic 300 x 200 matrix built with a known, fast-decaying spectrum $s_j = 0.9^{j}$.

# %%
def synthetic_matrix(m, n, spectrum, seed=0):
    """A random m x n matrix with the given singular values (random orthonormal U, V)."""
    g = torch.Generator().manual_seed(seed)
    k = len(spectrum)
    U, _ = torch.linalg.qr(torch.randn(m, k, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, k, generator=g, dtype=torch.float64))
    return U @ torch.diag(spectrum) @ V.T


s_true = 0.9 ** torch.arange(200, dtype=torch.float64)
A = synthetic_matrix(300, 200, s_true)

matrices = {
    "hidden layer at init": W_init,
    "hidden layer trained": W,
    "training update W - W_init": W - W_init,
    "synthetic, s_j = 0.9^j": A,
}
spectra = {name: exact_svd(M.double()).S for name, M in matrices.items()}

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for name, s in spectra.items():
    axes[0].semilogy(np.arange(1, len(s) + 1), s.numpy(), label=name)
    energy = torch.cumsum(s**2, 0) / (s**2).sum()
    axes[1].plot(np.arange(1, len(s) + 1), energy.numpy(), label=name)
axes[0].set_xlabel("index j")
axes[0].set_ylabel("singular value $s_j$ (log scale)")
axes[0].set_title("Singular value spectra")
axes[0].set_ylim(1e-4, None)
axes[1].set_xlabel("rank r")
axes[1].set_ylabel(r"kept energy $\sum_{j\leq r} s_j^2 / \|W\|_F^2$")
axes[1].set_title("Cumulative energy")
axes[1].axhline(0.99, color="gray", ls=":", lw=1)
axes[1].legend(fontsize="small")
for ax in axes:
    ax.grid(alpha=0.3)
fig.tight_layout()

# %% [markdown]
# What to read from these curves:
#
# * The **random initialization** has a flat spectrum: no direction is more important than
#   another, so any truncation throws away a proportional share of the matrix.
# * **Training** adds a few large singular values on top of the random bulk (the left plot's
#   first few points rise), but the bulk remains. To keep 99% of the energy (dotted line) the
#   trained layer still needs well over half of its 200 directions. This is an honest and
#   important fact: *weights of small trained networks are not very low-rank*, so a rank
#   policy that asks for 99% of the energy barely compresses them.
# * The **training update** is much more low-rank than the weights: training moves the weights
#   in a few directions. Compressing updates instead of models is the idea behind PowerSGD
#   (Vogels et al., 2019) and is compared with FedDLR in notebook 7.
# * The **synthetic** matrix decays geometrically, the ideal case for low-rank compression.

# %%
def rank_for_energy(s, tau):
    """Smallest r with sum_{j<=r} s_j^2 >= tau * sum_j s_j^2."""
    energy = torch.cumsum(s.double() ** 2, 0) / (s.double() ** 2).sum()
    return int((energy < tau).sum()) + 1


for name, s in spectra.items():
    print(f"{name:28s} rank for 90% energy: {rank_for_energy(s, 0.9):3d}, "
          f"for 99%: {rank_for_energy(s, 0.99):3d} (of {len(s)})")

# %% [markdown]
# ## 3. Eckart–Young–Mirsky, checked numerically
#
# The theorem: among all matrices of rank at most r, the truncated SVD $W_r$ is the closest
# to $W$ in Frobenius norm, and the error it makes is exactly the *tail energy*
#
# $$\|W - W_r\|_F^2 = \sum_{j > r} s_j^2 .$$
#
# `compress_matrix(W, policy)` performs the truncation and records the squared error it
# actually made (`.sq_error`, computed in float64 from the reconstruction). Let us compare
# it with the tail energy for every rank of the trained layer.

# %%
s_W = spectra["hidden layer trained"]
ranks = np.arange(1, 201)
measured = np.array([float(compress_matrix(W.double(), FixedRank(int(r))).sq_error)
                     for r in ranks])
tail = np.array([float((s_W[r:] ** 2).sum()) for r in ranks])

# a competitor: a *random* rank-r projection of W (not optimal)
g = torch.Generator().manual_seed(1)
random_err = []
for r in ranks:
    Q, _ = torch.linalg.qr(torch.randn(200, int(r), generator=g, dtype=torch.float64))
    random_err.append(float(((W.double() - W.double() @ Q @ Q.T) ** 2).sum()))

fig, ax = plt.subplots()
ax.semilogy(ranks, tail, lw=4, alpha=0.4, label=r"tail energy $\sum_{j>r} s_j^2$")
ax.semilogy(ranks, measured, "k--", label="measured $\\|W - W_r\\|_F^2$ (truncated SVD)")
ax.semilogy(ranks, random_err, label="random rank-r projection (for contrast)")
ax.set_xlabel("rank r")
ax.set_ylabel("squared Frobenius error")
ax.set_title("Eckart–Young: SVD truncation error equals the tail energy")
ax.grid(alpha=0.3)
ax.legend()

max_rel_gap = np.max(np.abs(measured - tail)[:-1] / tail[:-1])
print(f"largest relative gap between measured error and tail energy: {max_rel_gap:.2e}")
assert max_rel_gap < 1e-8

# %% [markdown]
# The two curves coincide to rounding error, and any other rank-r matrix (here: projecting onto
# random directions) does worse. This identity is what lets the convergence analysis of
# FedDLR (notebook 4 and `docs/theory.md`) bound the compression error *before* training:
# if a policy keeps a fraction τ of the energy, the squared error is at most $(1-\tau)\|W\|_F^2$.

# %% [markdown]
# ## 4. Rank policies: who picks the rank?
#
# FedDLR needs a rule that chooses r for each layer in each round. The toolkit offers four
# (the paper selects ranks adaptively; its exact rule is not public):
#
# | policy | rank chosen | string form |
# |---|---|---|
# | `FixedRank(r)` | r (clipped to min(m, n)) | `"fixed:8"` |
# | `RankRatio(rho)` | ceil(rho · min(m, n)) | `"ratio:0.25"` |
# | `EnergyThreshold(tau)` | smallest r keeping a fraction tau of the energy | `"energy:0.99"` |
# | `ErrorBudget(eps)` | smallest r with tail energy <= eps² (absolute error) | `"error:0.5"` |
#
# The first two ignore the spectrum (so bytes are known in advance); the last two adapt to it
# (so the error is known in advance). Let us apply all of them to our matrices.

# %%
policies = {
    "FixedRank(8)": FixedRank(8),
    "RankRatio(0.25)": RankRatio(0.25),
    "EnergyThreshold(0.9)": EnergyThreshold(0.9),
    "EnergyThreshold(0.99)": EnergyThreshold(0.99),
    "ErrorBudget(1.0)": ErrorBudget(1.0),
}
print(f"{'policy':24s}" + "".join(f"{name[:22]:>26s}" for name in matrices))
for pname, policy in policies.items():
    row = []
    for M in matrices.values():
        f = compress_matrix(M.double(), policy)
        row.append(f"r={f.rank:3d}, err={float(f.relative_sq_error):.3f}")
    print(f"{pname:24s}" + "".join(f"{cell:>26s}" for cell in row))
print("\n(err = relative squared error ||W - W_r||^2 / ||W||^2)")
print("parse_policy('energy:0.99') ->", parse_policy("energy:0.99"))

# %% [markdown]
# Notice:
#
# * `FixedRank` and `RankRatio` give the same rank for every 200-column matrix, whatever its
#   content — the error then varies wildly (small for the synthetic matrix, large for the
#   random initialization).
# * `EnergyThreshold(0.99)` gives a small rank for the synthetic matrix but keeps about
#   70% of the directions of the trained layer (141 of 200): an energy threshold guarantees the
#   error, not the savings. On the MLPs of these notebooks FedDLR with `energy:0.99` therefore
#   saves almost nothing, which is why the later notebooks use `ratio:0.25`.
# * `ErrorBudget` uses an *absolute* error, so it depends on the scale of the weights.

# %% [markdown]
# ### Exercise 1 — pick a rank for a 5% error
#
# For the trained layer `W`, find the smallest rank r whose relative squared error
# $\|W - W_r\|_F^2 / \|W\|_F^2$ is at most 0.05, *using only the spectrum* `s_W` (no call to
# `compress_matrix`). Hint: relative error = tail energy / total energy.
#
# **Predict first**: read the cumulative-energy plot above (a 5% error means 95% of the
# energy kept) and write your guess in `my_guess`; then compute the exact rank. Afterwards,
# change the target (0.01, 0.2) and see the check adapt.

# %% tags=["exercise"]
target = 0.05
my_guess = 100  # your prediction, read off the plot
# HINT: s2 = s_W**2; the relative error of rank r is s2[r:].sum() / s2.sum() (torch.cumsum)
# BEGIN SOLUTION
s2 = s_W.double() ** 2
rel_err = 1 - torch.cumsum(s2, 0) / s2.sum()  # rel_err[r - 1] = relative error of rank r
my_rank = int((rel_err > target).sum()) + 1  # errors decrease with r: count those too large
# END SOLUTION
print("smallest rank with relative error <=", target, ":", my_rank, f"(you guessed {my_guess})")

# %% tags=["check"]
# check: the rank meets the target, and one rank less does not
f = compress_matrix(W.double(), FixedRank(my_rank))
assert float(f.relative_sq_error) <= target + 1e-12, "error above the target"
if my_rank > 1:
    f_less = compress_matrix(W.double(), FixedRank(my_rank - 1))
    assert float(f_less.relative_sq_error) > target, "a smaller rank also meets the target"
# and it agrees with the toolkit's policy for the same target
assert my_rank == compress_matrix(W.double(), EnergyThreshold(1 - target)).rank
print("correct")

# %% [markdown]
# ## 5. Randomized SVD and the Halko–Martinsson–Tropp bound
#
# An exact SVD of an m x n matrix costs O(mn·min(m, n)). When only the top k triplets are
# needed, a *randomized* SVD is cheaper (Halko, Martinsson & Tropp 2011, "HMT"):
#
# 1. draw a Gaussian test matrix $\Omega$ with $k + p$ columns (p = *oversampling*);
# 2. $Q = \mathrm{orth}(A\Omega)$ — an orthonormal basis of a random sample of A's range;
# 3. take an exact SVD of the small matrix $Q^\top A$ and map it back with Q.
#
# HMT's Theorem 10.5 bounds the expected error of the *untruncated* sketch (rank k + p):
#
# $$\mathbb{E}\,\|A - QQ^\top A\|_F \le \Big(1 + \frac{k}{p-1}\Big)^{1/2}
#   \Big(\sum_{j>k} s_j^2\Big)^{1/2}, \qquad p \ge 2.$$
#
# In the toolkit, `randomized_svd(A, k + p, oversampling=0, power_iters=0)` draws exactly
# k + p columns and returns the SVD of $Q^\top A$ lifted by Q, so its reconstruction
# $U\,\mathrm{diag}(S)\,V^\top$ is $QQ^\top A$. We estimate the expectation by averaging 100
# draws for a few oversampling values, on the synthetic matrix and on the trained layer.

# %%
def reconstruction(svd):
    return svd.U @ torch.diag_embed(svd.S) @ svd.V.mT


def hmt_experiment(M, k, oversamplings, draws=100, seed=0):
    s = exact_svd(M).S
    optimal = float(torch.sqrt((s[k:] ** 2).sum()))
    g = torch.Generator().manual_seed(seed)
    rows = []
    for p in oversamplings:
        errs = [float(torch.linalg.norm(M - reconstruction(
            randomized_svd(M, k + p, oversampling=0, power_iters=0, generator=g))))
            for _ in range(draws)]
        bound = math.sqrt(1 + k / (p - 1)) * optimal
        rows.append((p, float(np.mean(errs)), float(np.max(errs)), bound, optimal))
    return rows


k = 10
oversamplings = [2, 3, 5, 10, 20]
results = {"synthetic": hmt_experiment(A, k, oversamplings),
           "trained layer": hmt_experiment(W.double(), k, oversamplings)}
for name, rows in results.items():
    print(f"{name}: k={k}, optimal rank-k error {rows[0][4]:.4f}")
    for p, mean, worst, bound, _ in rows:
        print(f"  p={p:2d}: mean error {mean:.4f} (worst of 100 {worst:.4f}) <= bound {bound:.4f}")
        assert mean <= bound

fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, (name, rows) in zip(axes, results.items(), strict=True):
    ps = [r[0] for r in rows]
    ax.plot(ps, [r[1] for r in rows], "o-", label=r"measured mean $\|A - QQ^\top A\|_F$")
    ax.plot(ps, [r[3] for r in rows], "s--", label="HMT Thm 10.5 bound")
    ax.axhline(rows[0][4], color="k", ls=":", label="optimal rank-k error (Eckart–Young)")
    ax.set_xlabel("oversampling p (sketch has k + p columns)")
    ax.set_ylabel("Frobenius error")
    ax.set_title(f"Randomized SVD, k = {k}: {name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
fig.tight_layout()

# %% [markdown]
# The bound holds for both matrices, with room to spare: it is a worst case over all spectra.
# For the fast-decaying synthetic matrix, with enough oversampling (p >= 10 here) the sketch
# with k + p columns is even *better* than the best rank-k matrix — it has more than k
# columns! For the trained layer, whose tail is heavy, the optimal rank-10 error is large
# anyway and the sketch approaches it as p grows.
#
# ### Power iterations
#
# In practice one wants a rank-k result (not k + p), and the sketch is improved by q *power
# (subspace) iterations*: $Q = \mathrm{orth}((AA^\top)^q A\Omega)$, which raises the singular
# values to the power 2q + 1 and so separates the wanted directions from the tail (HMT
# Cor. 10.10). The default in the toolkit is p = 10, q = 2. Below: the rank-k error of the
# randomized SVD, relative to the optimum, as q grows.

# %%
def rank_k_ratio(M, k, q, draws=20, seed=0):
    s = exact_svd(M).S
    optimal = float(torch.sqrt((s[k:] ** 2).sum()))
    g = torch.Generator().manual_seed(seed)
    errs = [float(torch.linalg.norm(M - reconstruction(
        randomized_svd(M, k, oversampling=5, power_iters=q, generator=g)))) for _ in range(draws)]
    return float(np.mean(errs)) / optimal


qs = [0, 1, 2, 3]
fig, ax = plt.subplots()
for name, M in {"synthetic": A, "trained layer": W.double()}.items():
    ax.plot(qs, [rank_k_ratio(M, 20, q) for q in qs], "o-", label=name)
ax.axhline(1.0, color="k", ls=":", label="optimal (exact SVD)")
ax.set_xlabel("power iterations q")
ax.set_ylabel("mean rank-k error / optimal error")
ax.set_title("Randomized SVD (k = 20, p = 5): power iterations close the gap")
ax.set_xticks(qs)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()

# %% [markdown]
# ### Exercise 2 — how many power iterations are enough?
#
# For the trained layer, find the smallest number of power iterations q for which the
# randomized rank-20 SVD (p = 5) is within 2% of the optimal error on average
# (`rank_k_ratio(...) <= 1.02`).
#
# **Predict first** from the plot: 0, 1, 2 or 3? Write it in `my_q`. Then change the
# tolerance (1.05, 1.005) and see how the answer moves.

# %% tags=["exercise"]
tolerance = 1.02
my_q = 0  # your prediction
# HINT: try q = 0, 1, 2, ... and stop at the first with rank_k_ratio(W.double(), 20, q) <= tolerance
# BEGIN SOLUTION
q_needed = next(q for q in range(10) if rank_k_ratio(W.double(), 20, q) <= tolerance)
# END SOLUTION
print("power iterations needed:", q_needed, f"(you predicted {my_q})")

# %% tags=["check"]
assert rank_k_ratio(W.double(), 20, q_needed) <= tolerance
assert q_needed == 0 or rank_k_ratio(W.double(), 20, q_needed - 1) > tolerance
print("correct; your prediction was", "right" if my_q == q_needed else "wrong")

# %% [markdown]
# ## 6. Bytes versus error
#
# A rank-r factorization of an m x n matrix sends $r(m+n)$ numbers (4 bytes each in
# float32) instead of $mn$. It is only worth sending when $r(m+n) < mn$, i.e.
# $r < mn/(m+n)$ — for a square 200 x 200 layer that is r < 100, *half* the full rank.
# (The toolkit sends a layer dense whenever factors would not be smaller.)
#
# The plot shows, for every rank, the bytes of the factors against the relative error, for
# the trained layer and for a 200 x 200 matrix with the synthetic spectrum. The vertical line
# is the dense size.

# %%
A_square = synthetic_matrix(200, 200, s_true, seed=1).float()
fig, ax = plt.subplots()
for name, M in {"trained layer": W, "synthetic (0.9^j)": A_square}.items():
    nbytes, errors = [], []
    for r in range(1, 201):
        f = compress_matrix(M, FixedRank(r))
        nbytes.append(f.nbytes / 1e3)
        errors.append(float(f.relative_sq_error))
    ax.semilogy(nbytes, np.maximum(errors, 1e-12), label=name)
dense_kb = 200 * 200 * 4 / 1e3
ax.axvline(dense_kb, color="k", ls=":", label=f"dense matrix ({dense_kb:.0f} kB)")
ax.set_xlabel("bytes sent for the factors (kB), r(m+n)·4")
ax.set_ylabel(r"relative squared error $\|W-W_r\|_F^2/\|W\|_F^2$")
ax.set_title("Bytes-error trade-off of rank-r truncation (200 x 200)")
ax.set_ylim(1e-8, 2)
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()

# %% [markdown]
# For the synthetic matrix a few kilobytes buy a tiny error. For the trained layer, halving
# the bytes (r = 50) leaves a relative squared error of about 17%, and past the dense
# line factors are pointless. Whether that error hurts *training* is the subject of notebook 3.
#
# ### Exercise 3 — a byte budget
#
# You may send at most 25% of the dense bytes for the trained 200 x 200 layer. What is the
# largest rank that fits, and what relative error does it leave? Fill in `r_budget` using the
# formula r(m+n)·4 <= budget.
#
# **Predict first**: will the relative error at that rank be below or above 20%? (The
# plot above has the answer for r = 50.) Write `True` in `my_below_20` if you think below.

# %% tags=["exercise"]
m, n = W.shape
budget = 0.25 * m * n * 4  # bytes; then try 0.1 or 0.4
my_below_20 = True  # your prediction
# HINT: the factors of rank r cost r * (m + n) * 4 bytes
# BEGIN SOLUTION
r_budget = int(budget // ((m + n) * 4))
# END SOLUTION
f_budget = compress_matrix(W, FixedRank(r_budget))
print(f"rank {r_budget}: {f_budget.nbytes} bytes of {budget:.0f} allowed, "
      f"relative error {float(f_budget.relative_sq_error):.3f}")

# %% tags=["check"]
assert f_budget.nbytes <= budget, "over budget"
assert compress_matrix(W, FixedRank(r_budget + 1)).nbytes > budget, "a larger rank still fits"
below = float(f_budget.relative_sq_error) < 0.2
print("correct; your prediction was", "right" if my_below_20 == below else "wrong")

# %% [markdown]
# ## Summary
#
# * Truncated SVD is the optimal rank-r approximation; its squared error is the tail energy
#   of the spectrum (Eckart–Young–Mirsky).
# * Rank policies either fix the bytes (`FixedRank`, `RankRatio`) or the error
#   (`EnergyThreshold`, `ErrorBudget`). Trained weights of small MLPs have heavy spectral
#   tails, so an energy threshold of 0.99 keeps most of the rank and saves little.
# * Randomized SVD obeys the HMT bound; a couple of power iterations bring it close to exact.
# * Factors cost r(m+n) numbers: compression needs r < mn/(m+n).
#
# Next: notebook 2 introduces federated averaging and non-IID data; notebook 3 puts this
# operator on both links of a federated round.
