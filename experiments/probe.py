"""``python -m experiments.probe SETTING FEDAVG_ROUNDS SPEC...``: one configuration against
FedAvg over seeds 0-2, outside the grid (how the targets were pursued).

``SETTING`` is a base of :mod:`experiments.settings`: ``mlp`` (digits, Dirichlet(1),
100 clients, K = 20), ``m1d`` (MNIST-1D MLP, same protocol), ``cnn``, ``silo`` (digits
MLP, 20 clients all in every round) or ``m1dsilo``. FedAvg runs ``FEDAVG_ROUNDS``
rounds; each ``SPEC`` is ``algorithm,policy[,field=value...]`` (the policy on both
links; for FedHM, FedLMT, FedMUD the rank of the factorized model, for FedPara its
gamma, e.g. ``fedpara,0.1,lr=0.0125``; fields of :class:`fl_sim.SimConfig` with an
int, float or str value, e.g. ``rounds=70`` or ``lr=0.1``). Prints final accuracy
(mean ± std over seeds), total MB, the byte ratio against FedAvg and the accuracy gap
in points.
"""

from __future__ import annotations

import sys

import torch

from .runner import Runner, seed_stats
from .settings import CNN_BASE, MLP_BASE, MNIST1D_BASE, SILO_CHANGES, SOTA, factorized_kwargs

BASES = {"mlp": MLP_BASE, "m1d": MNIST1D_BASE, "cnn": CNN_BASE,
         "silo": MLP_BASE.replace(**SILO_CHANGES), "m1dsilo": MNIST1D_BASE.replace(**SILO_CHANGES)}
SEEDS = (0, 1, 2)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in BASES:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    runner = Runner(verbose=False)
    base = BASES[argv[0]].replace(rounds=int(argv[1]))

    def show(label, cfg):
        st = seed_stats(runner.seeds(cfg, SEEDS))
        print(f"{argv[0]} R={cfg.rounds} {label:30s} acc {st.acc_mean:.4f} ± {st.acc_std:.4f}  "
              f"{st.total_bytes / 1e6:8.2f} MB"
              + (f"  ({st.diverged} seed(s) diverged at every lr tried, excluded)"
                 if st.diverged else ""), flush=True)
        return st

    fedavg = show("fedavg", base.replace(algorithm="fedavg"))
    for spec in argv[2:]:
        algorithm, policy, *fields = spec.split(",")
        changes = {"algorithm": algorithm, "policy_down": policy, "policy_up": policy}
        if algorithm in SOTA:  # a factorized model: the policy is its rank (FedPara: gamma)
            changes = {"algorithm": algorithm,
                       "model_kwargs": factorized_kwargs(algorithm, policy)}
        for kv in fields:
            key, value = kv.split("=")
            changes[key] = type(getattr(base, key))(value)
        st = show(spec, base.replace(**changes))
        print(f"   ratio {fedavg.total_bytes / st.total_bytes:.2f}x gap "
              f"{100 * (st.acc_mean - fedavg.acc_mean):+.2f} pt", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
