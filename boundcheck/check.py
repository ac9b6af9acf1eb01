"""Run a configuration over seeds and compare the a-posteriori bound with the runs.

docs/theory.md, §3-§4 and §10; "Checking the bound against runs" there explains what
is measured and how every constant is obtained. In short, for a run of ``config``
on ``problem`` (fixed data, fixed w*) over ``seeds``:

- ``L, mu, Gamma, w*, F*`` from :mod:`theory.constants` on the training arrays;
- ``p_k`` the simulator's weights;
- step sizes from the config's schedule, refused unless they satisfy
  :func:`theory.bounds.check_step_sizes`;
- ``sigma_k^2, G^2`` the sup over every observed point of every seed, per round or
  over the run (:class:`~boundcheck.trajectory.TrajectoryRecorder`), or a ball bound
  covering them;
- ``e_s,r, e_c,r`` the RMS over seeds of the recorded errors, ``d_0`` the RMS of
  ``||w_0 - w*||``; ``scheme1``/``scheme2`` add Li et al.'s ``C``;
- the divergence term of Li et al.'s Lemma 1 either bounded by their Lemma 3,
  ``8 (E-1)^2 G^2`` in ``B`` (``drift="lemma3"``, the default, a-priori drift), or the
  mean over seeds of the measured ``sum_k p_k ||v_t - w^k_t||^2`` at every local step
  (``drift="measured"``, a-posteriori drift, full participation only; docs/theory.md
  §11.1). Under full participation both are computed; the report's bound is the chosen
  one and ``constants`` holds the other's tightness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

import fl_sim
from fl_sim import SimConfig
from fl_sim.schedules import make_schedule
from theory.bounds import B_constant, check_step_sizes, participation_C

from .problems import Problem
from .recursion import recursion_bound_rounds
from .report import BoundReport
from .trajectory import TrajectoryRecorder

__all__ = ["check", "step_sizes", "validate_config", "label_of"]

_MODEL_COMPRESSION = ("fedavg", "feddlr", "feddlr_up", "feddlr_down")
_CONSTANTS = ("round", "global", "ball")
_DRIFTS = ("lemma3", "measured")


def step_sizes(config: SimConfig) -> np.ndarray:
    """``eta_t`` of all ``R E`` local steps, from the simulator's own schedule."""
    sched = make_schedule(config.lr_schedule, config.lr, mu=config.lr_mu, gamma=config.lr_gamma,
                          decay_steps=config.lr_decay_steps)
    return np.array([sched(t) for t in range(config.rounds * config.local_steps)],
                    dtype=np.float64)


def validate_config(config: SimConfig, problem: Problem) -> np.ndarray:
    """Refuse a run the bound does not cover; return its step sizes.

    Raises
    ------
    ValueError
        Naming the violated condition: step sizes (``eta_t <= 1/(4L)``, non-increasing,
        ``eta_t <= 2 eta_{t+E}``), weight decay != the problem's lambda, an algorithm
        outside the model-compression family, an unbalanced scheme2, float32, a
        model or dataset that is not the problem's.
    """
    if config.dtype != "float64":
        raise ValueError("dtype: bound checks need float64 (the constants are float64)")
    if config.algorithm not in _MODEL_COMPRESSION:
        raise ValueError(f"algorithm: the recursion covers model compression "
                         f"{_MODEL_COMPRESSION}, not {config.algorithm!r} (error feedback / "
                         "update compression is a different algorithm)")
    if config.dataset != problem.dataset or config.model != problem.model:
        raise ValueError(f"dataset/model: the problem is {problem.dataset}/{problem.model}, "
                         f"the config has {config.dataset}/{config.model}")
    if config.model_kwargs.get("bias", False):
        raise ValueError("model_kwargs: bias=True; the convex problem has no bias (append a "
                         "ones column with add_bias_feature instead)")
    if not math.isclose(config.weight_decay, problem.lam, rel_tol=1e-12, abs_tol=0.0):
        raise ValueError(f"weight_decay: {config.weight_decay} != the problem's lambda "
                         f"{problem.lam} (mu, L, w* are computed with lambda)")
    if config.participation == "scheme2" and not problem.balanced:
        raise ValueError("participation: scheme2's bound (Li et al., Lemma 5) assumes "
                         "balanced p_k = 1/N; this problem's clients differ in size")
    etas = step_sizes(config)
    c = problem.convex
    try:
        check_step_sizes(etas, c.L, config.local_steps)
    except ValueError as exc:
        raise ValueError(f"lr: the schedule violates a step condition of the bound: {exc} "
                         f"(L = {c.L:.6g}, mu = {c.mu:.6g}; use lr <= 1/(4L) = "
                         f"{1 / (4 * c.L):.6g} or lr_schedule='li' with lr_mu=mu, "
                         f"lr_gamma=max(8L/mu, E))") from exc
    return etas


def label_of(config: SimConfig, problem: Problem) -> str:
    """A short human label of a configuration."""
    alg = config.algorithm
    if alg == "feddlr":
        pol = (config.policy_down if config.policy_down == config.policy_up
               else f"{config.policy_down}/{config.policy_up}")
        alg = f"feddlr {pol}"
    elif alg == "feddlr_up":
        alg = f"feddlr_up {config.policy_up}"
    elif alg == "feddlr_down":
        alg = f"feddlr_down {config.policy_down}"
    part = "full" if config.participation == "full" else (
        f"{config.participation} K={config.clients_per_round}")
    lr = "li" if config.lr_schedule == "li" else f"lr={config.lr:.3g}"
    return f"{problem.name}; {alg}; E={config.local_steps}; {part}; {lr}"


def _seeds(seeds: int | Sequence[int], base: int) -> list[int]:
    if isinstance(seeds, int | np.integer):
        if seeds < 2:
            raise ValueError(f"seeds: need >= 2 runs to estimate an expectation, got {seeds}")
        return list(range(base, base + int(seeds)))
    out = [int(s) for s in seeds]
    if len(out) < 2 or len(set(out)) != len(out):
        raise ValueError("seeds: need >= 2 distinct seeds")
    return out


def _rms(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(np.square(a), axis=0))


def check(
    config: SimConfig,
    problem: Problem,
    seeds: int | Sequence[int] = 5,
    constants: str = "round",
    progress: bool = False,
    drift: str = "lemma3",
) -> BoundReport:
    """Run ``config`` over ``seeds`` and compare the a-posteriori bound with the runs.

    Parameters
    ----------
    config : SimConfig
        The run (float64; its dataset/model those of ``problem``; ``seed`` is replaced
        by each seed; the data are ``problem.data`` for every seed).
    problem : Problem
        The strongly convex problem (constants, w*).
    seeds : int or sequence of int
        Number of seeds (``config.seed, config.seed + 1, ...``) or the seeds.
    constants : {"round", "global", "ball"}
        ``sigma_k^2, G^2`` as the sup over every observed point (every client at every
        local iterate and global model of every seed) of each round (``"round"``: one
        ``B_r`` per round, see :mod:`boundcheck.recursion`) or of the whole run
        (``"global"``), or the ball bound of ``ConvexProblem.ball_bound`` around w* with
        the radius of the farthest observed point (``"ball"``).
    progress : bool
        Print one line per seed.
    drift : {"lemma3", "measured"}
        The divergence term ``2 E sum_k p_k ||v_t - w^k_t||^2`` of Li et al.'s Lemma 1:
        bounded by their Lemma 3 (``"lemma3"``: ``8 (E-1)^2 G^2`` in ``B``, a-priori), or
        replaced by the mean over seeds ``D_t`` of its observed value at every local step
        (``"measured"``: ``B_t = sum_k p_k^2 sigma_k^2 + 6 L Gamma + 2 D_t / eta_t^2``,
        a-posteriori; docs/theory.md §11.1). ``"measured"`` needs full participation: with
        sampling, Li et al.'s ``v_t`` averages virtual iterates of unsampled clients that
        the run never computes.

    Returns
    -------
    BoundReport
    """
    if constants not in _CONSTANTS:
        raise ValueError(f"constants: expected one of {_CONSTANTS}, got {constants!r}")
    if drift not in _DRIFTS:
        raise ValueError(f"drift: expected one of {_DRIFTS}, got {drift!r}")
    full = config.participation == "full"
    if drift == "measured" and not full:
        raise ValueError("drift: 'measured' needs full participation; with sampling the "
                         "divergence of Li et al.'s Lemma 1 is over the virtual iterates of "
                         "all N clients, and the unsampled ones are never run "
                         "(docs/theory.md §11.1)")
    etas = validate_config(config, problem)
    seed_list = _seeds(seeds, config.seed)
    c = problem.convex
    E, R = config.local_steps, config.rounds
    w_star = problem.w_star_params()

    dist, excess, es, ec, div = [], [], [], [], []
    s2_rounds = np.zeros((R + 1, c.num_clients))
    g2_rounds = np.zeros(R + 1)
    radius, npoints, common, es_gap, argmax, g2_best = 0.0, 0, True, 0.0, None, -1.0
    for s in seed_list:
        rec = TrajectoryRecorder(c, config.batch_size)
        h = fl_sim.run(config.replace(seed=s), data=problem.data, w_star=w_star,
                       observer=rec.observer).history
        st = rec.stats()
        dist.append([h.initial["dist_sq"]] + h.column("dist_sq"))
        excess.append([h.initial["train_loss"]] + h.column("train_loss"))
        es.append(h.column("err_server"))
        ec.append(h.column("err_client"))
        s2_rounds = np.maximum(s2_rounds, st.sigma2_rounds)
        g2_rounds = np.maximum(g2_rounds, st.G2_rounds)
        if st.G2 > g2_best:
            g2_best, argmax = st.G2, (s, *st.argmax_G2)
        radius, npoints = max(radius, st.max_radius), npoints + st.num_points
        common &= st.common_start
        if full:
            d_s = st.divergence
            if d_s is None or d_s.shape[0] < R or d_s.shape[1] != E or \
                    not np.all(np.isfinite(d_s[:R])):
                raise RuntimeError("full participation, but the observer did not see every "
                                   "client at every local step (divergence not measured)")
            div.append(d_s[:R])
        # independent check of the recorded server error: ||w_hat_r - w_r|| seen by the observer
        gaps = np.abs(np.array(st.server_errors) - np.array(es[-1][:len(st.server_errors)]))
        es_gap = max(es_gap, float(gaps.max()) if gaps.size else 0.0)
        if progress:
            print(f"  seed {s}: final dist_sq {dist[-1][-1]:.4g}", flush=True)
    dist, excess = np.array(dist, dtype=np.float64), np.array(excess, dtype=np.float64)
    es, ec = np.array(es, dtype=np.float64), np.array(ec, dtype=np.float64)

    if not common:
        raise RuntimeError("the clients of a round did not start from a common point: the "
                           "simulator does not implement the analysed algorithm (Lemma 3)")
    scale = max(1.0, float(np.max(es)))
    if es_gap > 1e-9 * scale:
        raise RuntimeError(f"recorded err_server differs from ||C_s(w_r) - w_r|| observed "
                           f"through the Observer by {es_gap:.3g}")

    # sigma_k^2, G^2 per round (rows 0..R-1 are the rounds; row R is the final model only)
    sigma2_global, g2_global = s2_rounds.max(axis=0), float(g2_rounds.max())
    if constants == "round":
        sigma2_r, g2_r = s2_rounds[:R], g2_rounds[:R]
        method = ("sup per round over every observed point of that round (every client at "
                  "every local iterate and at w_r), over all seeds")
    elif constants == "global":
        sigma2_r, g2_r = np.tile(sigma2_global, (R, 1)), np.full(R, g2_global)
        method = "sup over every observed point of the run (every client), over all seeds"
    else:
        if config.batch_size is None:
            raise ValueError("constants='ball' needs a minibatch size (batch_size=None has "
                             "sigma^2 = 0; use 'round' or 'global')")
        ball = c.ball_bound(radius, config.batch_size, replace=True)
        sigma2_r, g2_r = np.tile(np.asarray(ball.sigma2), (R, 1)), np.full(R, float(ball.G2))
        method = f"ball around w* of radius {radius:.6g} (farthest observed point)"

    p = c.p
    B_r = np.array([B_constant(p, sigma2_r[r], c.L, c.Gamma, E, g2_r[r]) for r in range(R)])
    eta_steps = etas.reshape(R, E)
    D = np.mean(np.array(div), axis=0) if full else None  # (R, E) mean over seeds
    if D is not None:
        # B_t = sum_k p_k^2 sigma_k^2 + 6 L Gamma + 2 D_t / eta_t^2 (§11.1): Lemma 3's term is
        # dropped (B_constant with G^2 = 0) and the measured divergence put in its place
        base_r = np.array([B_constant(p, sigma2_r[r], c.L, c.Gamma, E, 0.0) for r in range(R)])
        B_steps = base_r[:, None] + 2.0 * D / eta_steps**2
    scheme = None if full else config.participation  # theory spells it as SimConfig does
    K = int(config.clients_per_round) if scheme else None
    C_r = np.array([participation_C(E, g, K, c.num_clients, scheme) if scheme else 0.0
                    for g in g2_r])

    def terms(r: int, mode: str = drift) -> dict[str, float]:
        out = {"noise sum p_k^2 sigma_k^2": float(np.sum(p**2 * sigma2_r[r])),
               "heterogeneity 6 L Gamma": 6.0 * c.L * c.Gamma}
        if mode == "measured":
            out["drift 2 D_t / eta_t^2 (measured, mean over the round's steps)"] = float(
                np.mean(2.0 * D[r] / eta_steps[r] ** 2))
        else:
            out["drift 8 (E-1)^2 G^2"] = 8.0 * (E - 1) ** 2 * float(g2_r[r])
        return out

    delta = c.w_star_error_bound  # ||w*_hat - w*||: the runs measure against w*_hat
    d0 = float(np.sqrt(np.mean(dist[:, 0])))
    e_s, e_c = _rms(es), _rms(ec)
    measured = dist.mean(axis=0)
    measured_excess = excess.mean(axis=0) - c.F_star  # F(w*_hat) >= F*: an underestimate

    def variant(B) -> tuple:
        """The recursion with ``B`` (per round or per step) and how it compares."""
        rec = recursion_bound_rounds(d0 + delta, etas, E, c.mu, c.L, B, e_s, e_c, C_r)
        bd = (rec.d + delta) ** 2
        bx = 0.5 * c.L * rec.d**2
        with np.errstate(divide="ignore"):
            rat = bd / measured
        ok = bool(np.all(bd >= measured) and np.all(bx >= measured_excess))
        return rec, bd, bx, rat, ok

    lemma3 = variant(B_r)
    meas = variant(B_steps) if D is not None else None
    rb, bound_dist_sq, bound_excess, ratio, _ = meas if drift == "measured" else lemma3
    # bound_excess: E F(w_R) - F* <= L/2 d_R^2 (true w*)
    # for comparison: the same bound with one sup over the whole run
    if drift == "measured":
        B_glob = B_constant(p, sigma2_global, c.L, c.Gamma, E, 0.0) + 2.0 * D / eta_steps**2
    else:
        B_glob = B_constant(p, sigma2_global, c.L, c.Gamma, E, g2_global)
    C_glob = participation_C(E, g2_global, K, c.num_clients, scheme) if scheme else 0.0
    glob = recursion_bound_rounds(d0 + delta, etas, E, c.mu, c.L, B_glob, e_s, e_c, C_glob)

    def brief(v) -> dict | None:
        if v is None:
            return None
        rat = v[3]
        return {"tightness": float(rat[-1]), "max_ratio": float(np.max(rat)),
                "min_ratio_after_0": float(np.min(rat[1:])) if rat.size > 1 else float(rat[0]),
                "holds": v[4], "beta_first": float(v[0].beta[0]),
                "bound_dist_sq": v[1].tolist()}

    if D is not None and E > 1:
        lemma3_div = 4.0 * eta_steps**2 * (E - 1) ** 2 * g2_r[:, None]
        div_vs_lemma3 = float(np.max(D / lemma3_div))
    else:
        div_vs_lemma3 = None
    B_main = B_steps.max(axis=1) if drift == "measured" else B_r
    last = terms(R - 1)
    last_md = terms(R - 1, "measured") if D is not None else None
    consts = {
        "method": method, "mode": constants, "B": float(B_main.max()),
        "B_rounds": B_main.tolist(),
        "drift": drift,
        "drift_method": (
            "measured: mean over seeds of sum_k p_k ||v_t - w^k_t||^2 at every local step, "
            "B_t = sum p_k^2 sigma_k^2 + 6 L Gamma + 2 D_t / eta_t^2" if drift == "measured"
            else "Lemma 3: 8 (E-1)^2 G^2 in B"),
        "divergence_steps": None if D is None else D.tolist(),
        "divergence_over_lemma3_max": div_vs_lemma3,
        "lemma3_drift": brief(lemma3), "measured_drift": brief(meas),
        "tightness_lemma3_drift": float(lemma3[3][-1]),
        "tightness_measured_drift": None if meas is None else float(meas[3][-1]),
        "B_terms_last_round_measured_drift": last_md,
        "dominant_B_term_measured_drift": None if last_md is None else max(last_md,
                                                                           key=last_md.get),
        "B_terms_first_round": terms(0), "B_terms_last_round": last,
        "dominant_B_term": max(last, key=last.get), "G2": float(g2_r.max()),
        "G2_rounds": g2_r.tolist(), "sigma2_max": np.max(sigma2_r, axis=0).tolist(),
        "G2_global_sup": g2_global, "sigma2_global_sup": sigma2_global.tolist(),
        "C_rounds": C_r.tolist(), "C": float(C_r.max()), "K": K,
        "participation": config.participation, "p": p.tolist(), "L": c.L, "mu": c.mu,
        "Gamma": c.Gamma, "d0": d0, "w_star_error_bound": delta, "num_points": npoints,
        "max_radius": radius, "G2_argmax_seed_round_step": argmax,
        "batch_size": config.batch_size, "replace": True, "E": E,
        "eta_first": float(etas[0]), "eta_last": float(etas[-1]),
        "eta_max_allowed": 1.0 / (4.0 * c.L), "lr_schedule": config.lr_schedule,
        "rho_first": float(rb.rho[0]), "beta_first": float(rb.beta[0]),
        "tightness_global_constants": float((glob.d[-1] + delta) ** 2 / measured[-1]),
    }
    checks = {"common_start": common, "err_server_vs_observed_max_gap": es_gap,
              "monte_carlo_note": "measured = mean over seeds; bound is on the expectation"}
    return BoundReport(
        label=label_of(config, problem), config=config.to_dict(), seeds=seed_list,
        problem=problem.summary(), constants=consts, rounds=np.arange(R + 1, dtype=np.float64),
        bound_dist_sq=bound_dist_sq, measured_dist_sq=measured, measured_min=dist.min(axis=0),
        measured_max=dist.max(axis=0), ratio=ratio, e_s=e_s, e_c=e_c,
        etas_first=etas.reshape(R, E)[:, 0].copy(), bound_excess=bound_excess,
        measured_excess=measured_excess, checks=checks)
