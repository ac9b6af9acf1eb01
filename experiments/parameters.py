"""Experiment 2: key parameters, measured next to what the theory predicts.

Two parts:

* **MLP sweeps** (rank policy, local steps E, clients N and sampled K, non-IID level):
  final accuracy and bytes, measured. The convergence analysis (docs/theory.md) is
  for strongly convex objectives, so for the MLP it only predicts *directions*
  (the floor grows with the policies' a-priori error q, shrinks as mu eta E grows,
  grows with the sampling term C and with heterogeneity); we print the direction and
  whether the measurement follows it. Bytes per round are predicted exactly
  (``theory.costs.round_bytes``) for fixed and ratio policies.
* **Convex twin** (multinomial logistic regression + lam/2 ||W||^2 on the same digits
  data, 20 clients, full participation, constant step 1/(4L)): here every constant
  exists (``theory.constants.logistic_problem``), so the bound gives numbers: error
  floor, rounds to a target, the cheapest rank under a byte budget. They are set
  beside the measured ``||w_r - w*||^2``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats
import torch

from fl_sim import SimConfig, make_algorithm
from fl_sim.algorithms import ModelCompression, parse_overrides
from fl_sim.federated_data import FederatedData
from fl_sim.models import build_model
from lowrank import RankPolicy, planned_ranks
from lowrank.accounting import matricized_shape
from lowrank.state import resolve_policy
from theory.approximation import policy_relative_error_bound
from theory.bounds import (
    B_constant,
    RoundMap,
    best_policy_under_budget,
    constant_step_round,
    fixed_point,
    fixed_point_relative,
    rounds_to_target,
)
from theory.constants import logistic_problem
from theory.costs import round_bytes

from .runner import Runner, finished, mean_std, seed_stats
from .settings import MLP_BASE, Grid

__all__ = ["PARAMETER_PARTS", "assemble_parameters", "run_parameter_part", "run_parameters",
           "model_shapes", "policy_q2", "predicted_round_bytes", "run_convex_twin",
           "convex_choices"]


def model_shapes(cfg: SimConfig, data: FederatedData) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of the config's model, from its ``state_dict()``."""
    model = build_model(cfg.model, data.input_shape, data.num_outputs, **cfg.model_kwargs)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def policy_q2(cfg: SimConfig, data: FederatedData, policy: RankPolicy | str) -> float:
    """A-priori bound on the relative squared model error: max over the compressed layers.

    The compressed layers are those of the config's model that ``policy`` reaches
    through the run's own ``policy_overrides`` (an override of ``None`` keeps a layer
    dense; an override policy replaces ``policy`` on its layers).
    """
    overrides = parse_overrides(cfg.policy_overrides)
    bounds = [0.0]
    for name, shape in model_shapes(cfg, data).items():
        layer_policy, mn = resolve_policy(name, policy, overrides), matricized_shape(shape)
        if layer_policy is not None and mn is not None:
            bounds.append(policy_relative_error_bound(layer_policy, *mn))
    return max(bounds)


def predicted_round_bytes(cfg: SimConfig, data: FederatedData,
                          measured: dict | None = None) -> float | None:
    """Bytes of one round of ``cfg``, from ``theory.costs.round_bytes``.

    Shapes come from the model's ``state_dict()``, ranks from the algorithm's own
    policies and overrides (:func:`lowrank.planned_ranks`), the itemsize from the
    config's dtype. Policies that pick ranks from the spectrum are predicted from a
    round's measured ranks (``measured``: a ``RoundRecord`` as a dict, with
    ``ranks_down`` and ``ranks_up``); without them the result is None, as it is for
    algorithms outside the FedDLR family.
    """
    algorithm = make_algorithm(cfg)
    if not isinstance(algorithm, ModelCompression):
        return None
    shapes = model_shapes(cfg, data)
    k = data.num_clients if cfg.participation == "full" else cfg.clients_per_round
    if measured is None:
        down = planned_ranks(shapes, algorithm.down, algorithm.overrides)
        up = planned_ranks(shapes, algorithm.up, algorithm.overrides)
        if down is None or up is None:
            return None
        ranks_down, ranks_up = list(down.values()), list(up.values())
    else:
        ranks_down = [measured["ranks_down"].get(n) for n in shapes]
        ranks_up = [[measured["ranks_up"][n][i] if n in measured["ranks_up"] else None
                     for n in shapes] for i in range(k)]
    itemsize = torch.empty((), dtype=getattr(torch, cfg.dtype)).element_size()
    return float(round_bytes(list(shapes.values()), ranks_down, ranks_up, k, itemsize,
                             algorithm.min_compression_rate).total)


def _spearman(x, y) -> float:
    if len(x) < 3:
        return math.nan
    return float(scipy.stats.spearmanr(x, y).statistic)


def _row(label: str, hs, **extra) -> dict:
    st = seed_stats(hs)  # over the finished seeds; NaN if every seed diverged
    done = finished(hs)
    return {"label": label, "acc_mean": st.acc_mean, "acc_std": st.acc_std,
            "total_mb": st.total_bytes / 1e6,
            "mb_per_round": st.total_bytes / 1e6 / len(done[0].records) if done else math.nan,
            "diverged": st.diverged, **extra}


def _policy_sweep(grid: Grid, runner: Runner, base) -> dict:
    data = runner.data(base)
    fedavg = runner.seeds(base.replace(algorithm="fedavg"), grid.param_seeds)
    rows = [_row("fedavg", fedavg, policy="-", q2=0.0, predicted_mb_per_round=predicted_round_bytes(
        base.replace(algorithm="fedavg"), data) / 1e6)]
    for pol in grid.policies:
        cfg = base.replace(algorithm="feddlr", policy_down=pol, policy_up=pol)
        results = [runner(cfg.replace(seed=s)) for s in grid.param_seeds]
        hs = [r.history for r in results]
        pred = predicted_round_bytes(cfg, data)
        rel = [r.history.records[-1].err_server / max(1e-12, math.sqrt(sum(
            float(v.double().square().sum()) for v in r.params.values()))) for r in results]
        rows.append(_row(f"feddlr {pol}", hs, policy=pol, q2=policy_q2(cfg, data, pol),
                         predicted_mb_per_round=None if pred is None else pred / 1e6,
                         measured_rel_err2=float(np.mean(rel)) ** 2,
                         ranks_down=hs[0].records[-1].ranks_down))
    dlr = rows[1:]
    rho = _spearman([r["q2"] for r in dlr], [-r["acc_mean"] for r in dlr])
    # best policy under a byte budget: a quarter of FedAvg's bytes
    budget = 0.25 * rows[0]["total_mb"]
    fits = [r for r in dlr if r["total_mb"] <= budget]
    measured_best = max(fits, key=lambda r: r["acc_mean"])["label"] if fits else None
    # theory: the floor is increasing in q, so the predicted best is the smallest q that fits
    # (bytes from round_bytes where a priori, measured for the adaptive energy policies)
    fits_pred = [r for r in dlr if (r["predicted_mb_per_round"] or r["mb_per_round"])
                 * base.rounds <= budget]
    predicted_best = min(fits_pred, key=lambda r: (r["q2"], r["total_mb"]))["label"] \
        if fits_pred else None
    return {"rows": rows, "spearman_q2_vs_acc_drop": rho, "budget_mb": budget,
            "measured_best": measured_best, "predicted_best": predicted_best}


def _paired_sweep(name, values, make_cfg, grid: Grid, runner: Runner, extra_fn) -> dict:
    rows = []
    for v in values:
        cfg = make_cfg(v)
        fa = runner.seeds(cfg.replace(algorithm="fedavg"), grid.param_seeds)
        dl = runner.seeds(cfg.replace(algorithm="feddlr"), grid.param_seeds)
        ra, rd = _row("fedavg", fa), _row("feddlr", dl)
        rows.append({name: v, "fedavg_acc": ra["acc_mean"], "fedavg_std": ra["acc_std"],
                     "feddlr_acc": rd["acc_mean"], "feddlr_std": rd["acc_std"],
                     "gap": ra["acc_mean"] - rd["acc_mean"], "fedavg_mb": ra["total_mb"],
                     "feddlr_mb": rd["total_mb"], "ratio": ra["total_mb"] / rd["total_mb"],
                     **extra_fn(v, cfg)})
    return {"rows": rows}


PARAMETER_PARTS = ("policy", "E", "NK", "alpha", "convex")  # independent sweeps


def _nk_cfg(base: SimConfig, v):
    n, k = v
    part = "full" if k >= n else "scheme2"
    return base.replace(num_clients=n, clients_per_round=None if part == "full" else k,
                        participation=part)


def _c_factor(v, cfg):
    n, k = v
    return {"C_over_4E2G2": 0.0 if k >= n else (n - k) / (n - 1) / k}


def _alpha_cfg(base: SimConfig, a):
    if a is None:
        return base.replace(partition="iid", dataset_kwargs={})
    return base.replace(dirichlet_alpha=a)


def run_parameter_part(name: str, grid: Grid, runner: Runner) -> dict:
    """One independent sweep of :data:`PARAMETER_PARTS` (raw rows, no statistics)."""
    base = MLP_BASE.replace(rounds=grid.param_rounds)
    if name == "policy":
        return _policy_sweep(grid, runner, base)
    if name == "E":
        return _paired_sweep("E", grid.local_steps, lambda v: base.replace(local_steps=v),
                             grid, runner, lambda v, c: {})
    if name == "NK":
        return _paired_sweep("N,K", grid.clients, lambda v: _nk_cfg(base, v), grid, runner,
                             _c_factor)
    if name == "alpha":
        return _paired_sweep("alpha", grid.alphas, lambda v: _alpha_cfg(base, v), grid,
                             runner, lambda v, c: {})
    if name == "convex":
        return run_convex_twin(grid, runner)
    raise ValueError(f"part: unknown parameter sweep {name!r}")


def assemble_parameters(grid: Grid, parts: dict[str, dict]) -> dict:
    """The parameters section from the sweeps of :func:`run_parameter_part`."""
    base = MLP_BASE.replace(rounds=grid.param_rounds)
    out = {"base": {k: v for k, v in base.to_dict().items() if k != "algorithm"},
           "seeds": list(grid.param_seeds), "policy": parts["policy"]}
    e = parts["E"]
    gaps = [r["gap"] for r in e["rows"]]
    e["gap_decreases"] = bool(all(b <= a + 1e-9 for a, b in zip(gaps, gaps[1:], strict=False)))
    e["spearman_E_vs_gap"] = _spearman(grid.local_steps, gaps)
    out["E"] = e
    nk = parts["NK"]
    nk["spearman_C_vs_acc"] = _spearman([r["C_over_4E2G2"] for r in nk["rows"]],
                                        [r["fedavg_acc"] for r in nk["rows"]])
    out["NK"] = nk
    al = parts["alpha"]
    hetero = [1e9 if r["alpha"] is None else r["alpha"] for r in al["rows"]]
    al["spearman_alpha_vs_fedavg_acc"] = _spearman(hetero, [r["fedavg_acc"] for r in al["rows"]])
    al["spearman_alpha_vs_feddlr_acc"] = _spearman(hetero, [r["feddlr_acc"] for r in al["rows"]])
    out["alpha"] = al
    out["convex"] = parts["convex"]
    return out


def run_parameters(grid: Grid, runner: Runner) -> dict:
    print(f"[parameters] MLP sweeps, {len(grid.param_seeds)} seeds x {grid.param_rounds} "
          "rounds", flush=True)
    return assemble_parameters(grid, {n: run_parameter_part(n, grid, runner)
                                      for n in PARAMETER_PARTS})


# ----------------------------------------------------------------------- convex twin
def run_convex_twin(grid: Grid, runner: Runner, lam: float = 0.05) -> dict:
    """Logistic regression on digits: the bound's floors and choices next to the runs."""
    seeds = grid.param_seeds
    base = MLP_BASE.replace(model="logreg", num_clients=20, participation="full",
                            clients_per_round=None, rounds=grid.convex_rounds,
                            weight_decay=lam, policy_overrides={}, dtype="float64",
                            dataset_kwargs={})
    print(f"[parameters] convex twin: logreg + {lam}/2 ||W||^2, 20 clients, "
          f"{len(seeds)} seeds x {base.rounds} rounds", flush=True)
    problems, w_stars = {}, {}
    convex_data = runner.data(base)  # the model's shapes (same for every seed)
    for s in seeds:
        data = runner.data(base.replace(seed=s))
        x = data.train_x.double().numpy()
        y = data.train_y.numpy()
        offs, sizes = data.client_offsets.tolist(), data.client_sizes.tolist()
        clients = [(x[o:o + n], y[o:o + n]) for o, n in zip(offs, sizes, strict=True)]
        problems[s] = logistic_problem(clients, 10, lam, tol=1e-9)
        w_stars[s] = {"linear.weight": torch.from_numpy(problems[s].w_star.T.copy())}
    L = max(p.L for p in problems.values())
    eta = 1.0 / (4.0 * L)
    E, B_ = base.local_steps, base.batch_size
    base = base.replace(lr=eta)
    ranks = [None, *grid.convex_ranks]  # None = FedAvg
    runs = {}
    for r in ranks:
        cfg = base.replace(algorithm="fedavg") if r is None else base.replace(
            algorithm="feddlr", policy_down=f"fixed:{r}", policy_up=f"fixed:{r}")
        runs[r] = [runner(cfg.replace(seed=s), w_star=w_stars[s]) for s in seeds]
    final = {(r, s): res.params for r in ranks for res, s in zip(runs[r], seeds, strict=True)}
    runs = {r: [res.history for res in results] for r, results in runs.items()}
    # constants: sigma_k^2 and G^2 at w*, w_0 and every run's final model (max over them)
    sig2, G2, Gamma, wnorm, d0 = None, 0.0, 0.0, 0.0, 0.0
    for s in seeds:
        prob = problems[s]
        pts = [prob.w_star] + [final[r, s]["linear.weight"].double().numpy().T for r in ranks]
        sk = np.array([[prob.sigma2_k_at(k, w, B_) for k in range(prob.num_clients)]
                       for w in pts]).max(axis=0)
        sig2 = sk if sig2 is None else np.maximum(sig2, sk)
        G2 = max(G2, max(prob.G2_at(w, B_) for w in pts))
        Gamma, wnorm = max(Gamma, prob.Gamma), max(wnorm, float(np.linalg.norm(prob.w_star)))
        d0 = max(d0, math.sqrt(runs[None][seeds.index(s)].initial["dist_sq"]))
    p = problems[seeds[0]].p
    mu = lam
    B = B_constant(p, sig2, L, Gamma, E, G2)
    rho, beta = constant_step_round(mu, eta, E, B)
    tail = max(1, base.rounds // 2)
    rows, maps = [], {}
    for r in ranks:
        hs = runs[r]
        es = math.sqrt(np.mean([x ** 2 for h in hs for x in h.column("err_server")[-tail:]]))
        ec = math.sqrt(np.mean([x ** 2 for h in hs for x in h.column("err_client")[-tail:]]))
        maps[r] = RoundMap(rho, beta, e_s=es, e_c=ec)
        post = fixed_point(rho, beta, es, ec) ** 2
        cfg = base.replace(algorithm="fedavg") if r is None else base.replace(
            algorithm="feddlr", policy_down=f"fixed:{r}", policy_up=f"fixed:{r}")
        q2 = 0.0 if r is None else policy_q2(cfg, convex_data, f"fixed:{r}")
        try:
            prior = fixed_point_relative(rho, beta, math.sqrt(q2), math.sqrt(q2), wnorm,
                                         drift_sq=E * E * eta * eta * G2).dist_sq
        except ValueError:
            prior = math.inf
        dist = np.mean([h.column("dist_sq") for h in hs], axis=0)
        pred_bytes = predicted_round_bytes(cfg, convex_data)
        rows.append({"rank": "dense (fedavg)" if r is None else r, "q2": q2, "e_s": es,
                     "e_c": ec, "floor_apriori": prior, "floor_aposteriori": post,
                     "floor_measured": float(np.mean(dist[-tail:])),
                     "acc_mean": mean_std([h.column("test_accuracy")[-1] for h in hs])[0],
                     "bytes_per_round_pred": pred_bytes,
                     "bytes_per_round_measured": float(np.mean(
                         [h.cumulative_bytes[-1] / len(h.records) for h in hs])),
                     "dist_curve": [float(v) for v in dist]})
    out = {"lam": lam, "L": L, "mu": mu, "eta": eta, "E": E, "B": B, "G2": G2,
           "Gamma": Gamma, "sigma2_max": float(np.max(sig2)), "rho": rho, "beta": beta,
           "w_star_norm": wnorm, "d0": d0, "rows": rows, "seeds": list(seeds),
           "rounds": base.rounds, "num_clients": base.num_clients}
    return convex_choices(out)


def convex_choices(c: dict) -> dict:
    """Rounds to a target and the cheapest rank under a byte budget: bound vs runs.

    Bound: target distance 1.1 x the largest a-posteriori floor (every candidate can
    reach it); budget = FedAvg's bytes to it. Runs: target ``||w - w*||^2 <= 10 x``
    FedAvg's measured floor; budget = FedAvg's bytes to it. Recomputed from the stored
    numbers, so ``--rebuild`` can apply it to an existing results.json.
    """
    rows = c["rows"]
    ranks = [None if isinstance(r["rank"], str) else r["rank"] for r in rows]
    maps = {k: RoundMap(c["rho"], c["beta"], e_s=r["e_s"], e_c=r["e_c"])
            for k, r in zip(ranks, rows, strict=True)}
    t_pred = 1.1 * math.sqrt(max(r["floor_aposteriori"] for r in rows))
    t_meas = 10.0 * rows[0]["floor_measured"]
    for row, k in zip(rows, ranks, strict=True):
        row["rounds_pred"] = rounds_to_target(maps[k], c["d0"], t_pred)
        below = [i + 1 for i, v in enumerate(row["dist_curve"]) if v <= t_meas]
        row["rounds_measured"] = below[0] if below else None
    per_round = {k: r["bytes_per_round_pred"] for k, r in zip(ranks, rows, strict=True)}
    budget_pred = (rows[0]["rounds_pred"] or 0) * per_round[None]
    best, _ = best_policy_under_budget(ranks, lambda k: maps[k], lambda k: per_round[k],
                                       c["d0"], t_pred, budget_pred)
    cost = {k: (r["rounds_measured"] * r["bytes_per_round_measured"]
                if r["rounds_measured"] else math.inf) for k, r in zip(ranks, rows, strict=True)}
    fits = [k for k in ranks if cost[k] <= cost[None]]
    best_meas = min(fits, key=lambda k: cost[k]) if fits else None
    name = {None: "dense (fedavg)"}
    c.update(target_pred_dist=t_pred, target_meas_dist_sq=t_meas,
             vacuous=min(r["floor_aposteriori"] for r in rows) >= c["d0"] ** 2,
             best_pred=None if best is None else name.get(best.candidate, best.candidate),
             best_measured=name.get(best_meas, best_meas), budget_pred_bytes=budget_pred,
             budget_measured_bytes=cost[None])
    return c
