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

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import fl_sim
from fl_sim import SimConfig
from fl_sim.schedules import make_schedule
from theory.bounds import (
    B_constant,
    RecursionBound,
    check_step_sizes,
    participation_C,
    recursion_bound,
)
from theory.quadratic import (
    LeastSquaresClients,
    aggregation_weights,
    compression_deviation,
    exact_moments,
    last_step_mean,
    mean_square_contraction,
    modal_deviation,
    propagated_noise,
    round_maps,
)

from .problems import Problem
from .report import BoundReport
from .trajectory import Iterates, TrajectoryRecorder

__all__ = [
    "BOUNDS", "BoundVariant", "LiConstants", "ModalErrors", "SeedRuns", "check", "exact_variant",
    "label_of", "li_constants", "li_variant", "modal_errors", "run_seeds", "step_sizes",
    "validate_config",
]

_MODEL_COMPRESSION = ("fedavg", "feddlr", "feddlr_up", "feddlr_down", "feddlr_ef")
# feddlr_ef (error feedback on the model, docs/theory.md §12.6): every participant starts
# from the replica h and the server's new model deviates from the FedAvg aggregate of the
# local models by ||w_{r+1} - sum_k a_k w^k|| = its recorded err_client, so its rounds are
# "FedAvg map plus a measured error vector" like FedDLR's (err_server = ||h - w_r||)
_CONSTANTS = ("round", "global", "ball")
_DRIFTS = ("lemma3", "measured")
BOUNDS = ("li", "exact", "local")
ROUNDING = 1e-12  # relative float64 rounding allowed between the simulator and the closed form
HOLDS_SEMANTICS = (
    "holds: bound >= the mean over seeds at every round, strictly. The exact bound's FedAvg "
    "part is the exact expectation, so for FedAvg (and where the compression term is small) "
    "the seed mean scatters around it by Monte Carlo error and the strict flag is False on "
    "about half the rounds by construction; it is the flag for Li et al.'s bound. "
    "holds_within_3_standard_errors: bound >= measured - 3 SE - 1e-12 measured at every "
    "round, SE the standard error over seeds of (measured - exact FedAvg expectation from "
    "each seed's w_0) and 1e-12 the float64 rounding between simulator and closed form; the "
    "flag to read for --bound exact (and the CLI's exit code). docs/theory.md §12.3.")


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
        raise ValueError(f"algorithm: the recursion covers model compression and FedDLR-EF "
                         f"{_MODEL_COMPRESSION}, not {config.algorithm!r}")
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
    if alg in ("feddlr", "feddlr_ef"):
        pol = (config.policy_down if config.policy_down == config.policy_up
               else f"{config.policy_down}/{config.policy_up}")
        alg = f"{alg} {pol}"
    elif alg == "feddlr_up":
        alg = f"feddlr_up {config.policy_up}"
    elif alg == "feddlr_down":
        alg = f"feddlr_down {config.policy_down}"
    part = "full" if config.participation == "full" else (
        f"{config.participation} K={config.clients_per_round}")
    lr = "li" if config.lr_schedule == "li" else f"lr={config.lr:.3g}"
    batch = "; full batch" if config.batch_size is None else ""
    return f"{problem.name}; {alg}; E={config.local_steps}; {part}; {lr}{batch}"


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


# ------------------------------------------------------------------ 1. the runs
@dataclass(frozen=True)
class SeedRuns:
    """What the runs of one configuration measured, over seeds (step 1 of a check)."""

    seeds: list[int]
    dist_sq: np.ndarray  # (S, R+1) ||w_r - w*_hat||^2 per seed
    train_loss: np.ndarray  # (S, R+1) F(w_r) per seed
    err_server: np.ndarray  # (S, R) ||C_s(w_r) - w_r||
    err_client: np.ndarray  # (S, R) ||sum_k a_k (C_c(w^k) - w^k)||
    divergence: np.ndarray | None  # (S, R, E) sum_k p_k ||w^k - v||^2 (full participation)
    sigma2_rounds: np.ndarray  # (R+1, N) sup over seeds and the round's points
    G2_rounds: np.ndarray  # (R+1,)
    G2_argmax: tuple[int, int, int] | None  # (seed, round, local step) of the sup G^2
    max_radius: float  # farthest observed point from w*
    num_points: int  # points evaluated
    common_start: bool  # every round's clients started at one point
    err_server_gap: float  # max |recorded err_server - observed ||w_hat_r - w_r|| |
    initial: np.ndarray | None = None  # (S, d, out) each seed's w_0 (theory layout)
    iterates: list[Iterates] | None = None  # per seed: w_r, C_s(w_r), last local iterates

    @property
    def d0(self) -> float:
        """RMS over seeds of ``||w_0 - w*_hat||``."""
        return float(np.sqrt(np.mean(self.dist_sq[:, 0])))

    @property
    def e_s(self) -> np.ndarray:
        """(R,) RMS over seeds of the server error."""
        return _rms(self.err_server)

    @property
    def e_c(self) -> np.ndarray:
        """(R,) RMS over seeds of the client (aggregated) error."""
        return _rms(self.err_client)

    @property
    def measured_dist_sq(self) -> np.ndarray:
        """(R+1,) mean over seeds of ``||w_r - w*_hat||^2``."""
        return self.dist_sq.mean(axis=0)

    def measured_excess(self, F_star: float) -> np.ndarray:
        """(R+1,) mean over seeds of ``F(w_r) - F*`` (an underestimate: ``F(w*_hat) >= F*``)."""
        return self.train_loss.mean(axis=0) - F_star


def run_seeds(config: SimConfig, problem: Problem, seeds: Sequence[int],
              progress: bool = False) -> SeedRuns:
    """Run ``config`` once per seed with a :class:`TrajectoryRecorder` watching.

    Raises
    ------
    RuntimeError
        If the clients of a round did not share a start point, the recorded server
        error disagrees with the observed one, or (full participation) the divergence
        was not seen at every local step.
    """
    c = problem.convex
    E, R = config.local_steps, config.rounds
    full = config.participation == "full"
    w_star = problem.w_star_params()
    dist, excess, es, ec, div, w0, its = [], [], [], [], [], [], []
    s2_rounds, g2_rounds = np.zeros((R + 1, c.num_clients)), np.zeros(R + 1)
    radius, npoints, common, es_gap, argmax, g2_best = 0.0, 0, True, 0.0, None, -1.0
    for s in seeds:
        rec = TrajectoryRecorder(c, config.batch_size)
        h = fl_sim.run(config.replace(seed=s), data=problem.data, w_star=w_star,
                       observer=rec.observer).history
        st = rec.stats()
        w0.append(st.initial)
        its.append(st.iterates)
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
    runs = SeedRuns(
        seeds=list(seeds), dist_sq=np.array(dist, dtype=np.float64),
        train_loss=np.array(excess, dtype=np.float64),
        err_server=np.array(es, dtype=np.float64), err_client=np.array(ec, dtype=np.float64),
        divergence=np.array(div, dtype=np.float64) if full else None,
        sigma2_rounds=s2_rounds, G2_rounds=g2_rounds, G2_argmax=argmax, max_radius=radius,
        num_points=npoints, common_start=common, err_server_gap=es_gap,
        initial=None if any(w is None for w in w0) else np.stack(w0),
        iterates=None if any(i is None for i in its) else its)
    if not runs.common_start:
        raise RuntimeError("the clients of a round did not start from a common point: the "
                           "simulator does not implement the analysed algorithm (Lemma 3)")
    scale = max(1.0, float(np.max(runs.err_server)))
    if es_gap > 1e-9 * scale:
        raise RuntimeError(f"recorded err_server differs from ||C_s(w_r) - w_r|| observed "
                           f"through the Observer by {es_gap:.3g}")
    return runs


# ------------------------------------------------------- 2. Li et al.'s constants
@dataclass(frozen=True)
class LiConstants:
    """The constants of Li et al.'s recursion for one configuration (step 2 of a check)."""

    mode: str  # "round", "global" or "ball"
    method: str  # how sigma_k^2, G^2 were obtained (for the report)
    p: np.ndarray  # (N,) client weights
    L: float
    Gamma: float
    E: int
    sigma2_r: np.ndarray  # (R, N) sigma_k^2 used in round r
    G2_r: np.ndarray  # (R,) G^2 used in round r
    sigma2_global: np.ndarray  # (N,) sup over the whole run
    G2_global: float
    B_r: np.ndarray  # (R,) B with Lemma 3's drift 8 (E-1)^2 G_r^2
    divergence: np.ndarray | None  # (R, E) mean over seeds of the measured divergence D_t
    B_steps: np.ndarray | None  # (R, E) B_t = ... + 2 D_t / eta_t^2 (measured drift)
    C_r: np.ndarray  # (R,) partial participation constant (0 for full)
    scheme: str | None  # None (full), "scheme1" or "scheme2"
    K: int | None  # clients per round
    eta_steps: np.ndarray  # (R, E) step sizes

    def terms(self, r: int, drift: str) -> dict[str, float]:
        """The terms of ``B`` in round ``r``."""
        out = {"noise sum p_k^2 sigma_k^2": float(np.sum(self.p**2 * self.sigma2_r[r])),
               "heterogeneity 6 L Gamma": 6.0 * self.L * self.Gamma}
        if drift == "measured":
            out["drift 2 D_t / eta_t^2 (measured, mean over the round's steps)"] = float(
                np.mean(2.0 * self.divergence[r] / self.eta_steps[r] ** 2))
        else:
            out["drift 8 (E-1)^2 G^2"] = 8.0 * (self.E - 1) ** 2 * float(self.G2_r[r])
        return out

    def global_constants(self, drift: str) -> tuple[Any, float]:
        """``(B, C)`` with one sup over the whole run instead of one per round."""
        if drift == "measured":
            B = (B_constant(self.p, self.sigma2_global, self.L, self.Gamma, self.E, 0.0)
                 + 2.0 * self.divergence / self.eta_steps**2)
        else:
            B = B_constant(self.p, self.sigma2_global, self.L, self.Gamma, self.E,
                           self.G2_global)
        C = (participation_C(self.E, self.G2_global, self.K, self.p.size, self.scheme)
             if self.scheme else 0.0)
        return B, C


def li_constants(runs: SeedRuns, config: SimConfig, problem: Problem, etas: np.ndarray,
                 mode: str = "round") -> LiConstants:
    """``sigma_k^2, G^2`` (per round, for the run, or on a ball), then ``B_r``, ``B_t``, ``C_r``."""
    if mode not in _CONSTANTS:
        raise ValueError(f"constants: expected one of {_CONSTANTS}, got {mode!r}")
    c = problem.convex
    E, R = config.local_steps, config.rounds
    # sigma_k^2, G^2 per round (rows 0..R-1 are the rounds; row R is the final model only)
    sigma2_global, g2_global = runs.sigma2_rounds.max(axis=0), float(runs.G2_rounds.max())
    if mode == "round":
        sigma2_r, g2_r = runs.sigma2_rounds[:R], runs.G2_rounds[:R]
        method = ("sup per round over every observed point of that round (every client at "
                  "every local iterate and at w_r), over all seeds")
    elif mode == "global":
        sigma2_r, g2_r = np.tile(sigma2_global, (R, 1)), np.full(R, g2_global)
        method = "sup over every observed point of the run (every client), over all seeds"
    else:
        if config.batch_size is None:
            raise ValueError("constants='ball' needs a minibatch size (batch_size=None has "
                             "sigma^2 = 0; use 'round' or 'global')")
        ball = c.ball_bound(runs.max_radius, config.batch_size, replace=True)
        sigma2_r, g2_r = np.tile(np.asarray(ball.sigma2), (R, 1)), np.full(R, float(ball.G2))
        method = f"ball around w* of radius {runs.max_radius:.6g} (farthest observed point)"
    p = c.p
    B_r = np.array([B_constant(p, sigma2_r[r], c.L, c.Gamma, E, g2_r[r]) for r in range(R)])
    eta_steps = etas.reshape(R, E)
    D = None if runs.divergence is None else runs.divergence.mean(axis=0)  # (R, E)
    B_steps = None
    if D is not None:
        # B_t = sum_k p_k^2 sigma_k^2 + 6 L Gamma + 2 D_t / eta_t^2 (§11.1): Lemma 3's term is
        # dropped (B_constant with G^2 = 0) and the measured divergence put in its place
        base_r = np.array([B_constant(p, sigma2_r[r], c.L, c.Gamma, E, 0.0) for r in range(R)])
        B_steps = base_r[:, None] + 2.0 * D / eta_steps**2
    scheme = None if config.participation == "full" else config.participation
    K = int(config.clients_per_round) if scheme else None
    C_r = np.array([participation_C(E, g, K, c.num_clients, scheme) if scheme else 0.0
                    for g in g2_r])
    return LiConstants(mode, method, p, c.L, c.Gamma, E, sigma2_r, g2_r, sigma2_global,
                       g2_global, B_r, D, B_steps, C_r, scheme, K, eta_steps)


# ---------------------------------------------------------- 3. bound variants
@dataclass(frozen=True)
class BoundVariant:
    """One bound on ``E||w_r - w*||^2`` for the runs, and how it compares (step 3)."""

    name: str  # e.g. "li lemma3", "li measured", "exact"
    bound_dist_sq: np.ndarray  # (R+1,)
    bound_excess: np.ndarray  # (R+1,) bound on E F(w_r) - F*
    ratio: np.ndarray  # (R+1,) bound / measured
    holds: bool  # bound >= measured at every round (distance and excess)
    recursion: RecursionBound | None = None  # the scalar recursion behind it, if any

    @classmethod
    def compare(cls, name: str, bound_dist_sq, bound_excess, runs: SeedRuns, F_star: float,
                recursion: RecursionBound | None = None) -> BoundVariant:
        """Bound against the runs' means."""
        bd = np.asarray(bound_dist_sq, dtype=np.float64)
        bx = np.asarray(bound_excess, dtype=np.float64)
        measured = runs.measured_dist_sq
        with np.errstate(divide="ignore"):
            ratio = bd / measured
        ok = bool(np.all(bd >= measured) and np.all(bx >= runs.measured_excess(F_star)))
        return cls(name, bd, bx, ratio, ok, recursion)

    def brief(self) -> dict[str, Any]:
        """Tightness summary (the report's ``constants[...]`` entries)."""
        rat = self.ratio
        out = {"tightness": float(rat[-1]), "max_ratio": float(np.max(rat)),
               "min_ratio_after_0": float(np.min(rat[1:])) if rat.size > 1 else float(rat[0]),
               "holds": self.holds, "bound_dist_sq": self.bound_dist_sq.tolist()}
        if self.recursion is not None:
            out["beta_first"] = float(self.recursion.beta[0])
        return out


def li_variant(name: str, runs: SeedRuns, problem: Problem, etas: np.ndarray, E: int, B,
               C) -> BoundVariant:
    """Li et al.'s a-posteriori recursion (docs/theory.md §3-§4) with ``B`` and ``C``.

    The runs measure against the solver's ``w*_hat`` with ``||w*_hat - w*|| <= delta``;
    the recursion starts at ``d0 + delta`` and the bound on ``||w_r - w*_hat||^2`` is
    ``(d_r + delta)^2``; the excess bound is ``L/2 d_r^2`` (true ``w*``).
    """
    c = problem.convex
    delta = c.w_star_error_bound
    rec = recursion_bound(runs.d0 + delta, etas, E, c.mu, c.L, B, runs.e_s, runs.e_c, C)
    return BoundVariant.compare(name, (rec.d + delta) ** 2, 0.5 * c.L * rec.d**2, runs,
                                c.F_star, rec)


@dataclass(frozen=True)
class ExactParts:
    """The pieces of the exact-map bound (docs/theory.md §12.3), for the report."""

    fedavg_dist_sq: np.ndarray  # (R+1,) exact E||v_r - w*||^2 of uncompressed FedAvg
    fedavg_dist_sq_seeds: np.ndarray  # (R+1, S) the same from each seed's w_0
    rho_tilde: np.ndarray  # (R,) mean-square contraction of each round's random map
    deviation: np.ndarray  # (R+1,) D_r: bound on the RMS distance to uncompressed FedAvg
    mc_standard_error: np.ndarray  # (R+1,) standard error of measured - predicted over seeds
    norm_bound: np.ndarray  # (R+1,) (sqrt(F_r) + D_r)^2: error norms added as if aligned
    modal: ModalErrors | None  # the coordinate-wise inputs (None: iterates not observed)


@dataclass(frozen=True)
class ModalErrors:
    """The coordinate-wise pieces of the exact bound (docs/theory.md §12.3), per round.

    In the eigenbasis ``u_i`` of ``P`` (coordinates ``u_i^T (.) e_j``), all RMS over seeds:
    ``xi`` the measured error vectors ``P_r e^s_r + (w_{r+1} - sum_k a_k ybar_k)`` (server
    error carried by the mean map, plus the client error and the last local step's noise,
    measured against the clients' expected last step; zero-mean noise alone when nothing
    is compressed on the way up), ``a`` their propagation
    (:func:`theory.quadratic.modal_deviation`); ``mean_sq`` the second moments of the
    noise-free FedAvg trajectory from each seed's ``w_0`` minus ``w*``, ``noise_var`` those
    of the round noise propagated from the observed starts
    (:func:`theory.quadratic.propagated_noise`).
    """

    basis: np.ndarray  # (d, d) eigenvectors of the first round's P
    xi: np.ndarray  # (S, R, d, out) per seed
    a: np.ndarray  # (R+1, S, d, out)
    mean_sq: np.ndarray  # (R+1, S, d, out)
    noise_var: np.ndarray  # (R+1, S, d, out)
    err_client_gap: float  # full batch: max | ||e^c_r|| recomputed - recorded err_client |
    # round 0's server error C_s(w_0) - w_0 is a function of w_0 (known before any noise):
    # carried with its sign in the mean trajectory, from C_s(w_0), instead of as a magnitude
    a_signed0: np.ndarray | None = None  # (R+1, S, d, out) a without round 0's server error
    mean_sq_signed0: np.ndarray | None = None  # (R+1, S, d, out) mean map from C_s(w_0)

    def _per_seed(self, mean_sq: np.ndarray, a: np.ndarray) -> np.ndarray:
        return np.sum((np.sqrt(mean_sq + self.noise_var) + a) ** 2, axis=(2, 3))  # (R+1, S)

    @property
    def bound_dist_sq(self) -> np.ndarray:
        """``(R+1,)``: ``sum_ij (sqrt(mean_sq + noise_var) + a)^2``, mean over seeds.

        Per seed the smaller of the two splits (round 0's server error as a magnitude, or
        signed inside the mean trajectory): both are bounds on that seed's expectation.
        """
        per_seed = self._per_seed(self.mean_sq, self.a)
        if self.a_signed0 is not None:
            per_seed = np.minimum(per_seed, self._per_seed(self.mean_sq_signed0,
                                                           self.a_signed0))
        return per_seed.mean(axis=1)

    @property
    def bound_dist_sq_rms(self) -> np.ndarray:
        """The same with the RMS over seeds of every piece (L2 over seeds and draws)."""
        rms = [np.sqrt(np.mean(x, axis=1)) for x in (self.mean_sq + self.noise_var, self.a**2)]
        return np.sum((rms[0] + rms[1]) ** 2, axis=(1, 2))


def modal_errors(runs: SeedRuns, clients: LeastSquaresClients, config: SimConfig,
                 etas: np.ndarray) -> ModalErrors:
    """Split every round of every seed into mean map, noise and error; bound coordinate-wise.

    Raises
    ------
    RuntimeError
        With full batches, if the recomputed client error differs from the recorded one
        (the aggregation weights or the local step would not be the simulator's).
    """
    E, R = config.local_steps, config.rounds
    scheme = config.participation
    K = None if scheme == "full" else int(config.clients_per_round)
    maps = round_maps(clients, etas, E)
    _, V = np.linalg.eigh(maps[0].P)
    n_seeds = len(runs.seeds)
    xi2 = np.zeros((n_seeds, R, *clients.w_star.shape))
    xi2_0 = np.zeros((n_seeds, *clients.w_star.shape))  # round 0 without the server error
    covs = []
    gap = 0.0
    for r in range(R):
        P = maps[r].P
        starts = np.stack([it.starts[r] for it in runs.iterates])
        covs.append(exact_moments(clients, etas[r * E:(r + 1) * E], E, starts,
                                  config.batch_size, scheme, K).cov)
        for i, it in enumerate(runs.iterates):
            err = P @ (it.starts[r] - it.globals_[r])
            if r == 0:
                err0 = np.zeros_like(err)
            if runs.err_client[i, r] != 0.0:  # something was compressed on the way up
                ids = it.last_ids[r]
                a = aggregation_weights(clients.p, ids, scheme, K)
                eta = float(etas[r * E + it.last_step])
                ec = it.globals_[r + 1] - last_step_mean(clients, it.last[r], ids, a, eta)
                err = err + ec
                if r == 0:
                    err0 = ec
                if config.batch_size is None:
                    gap = max(gap, abs(float(np.linalg.norm(ec)) - runs.err_client[i, r]))
            xi2[i, r] = (V.T @ err) ** 2
            if r == 0:
                xi2_0[i] = (V.T @ err0) ** 2
    if gap > 1e-9 * max(1.0, float(np.max(runs.err_client))):
        raise RuntimeError(f"the client error recomputed from the observed iterates differs "
                           f"from the recorded err_client by {gap:.3g}")
    Ps = [m.P for m in maps]
    a = np.stack([modal_deviation(Ps, np.sqrt(x), V) for x in xi2], axis=1)  # (R+1, S, d, c)
    noise = propagated_noise(Ps, np.stack(covs), V)
    vbar = [runs.initial]
    for m in maps:
        vbar.append(m.P @ vbar[-1] + m.c)
    mean_sq = (V.T @ (np.stack(vbar) - clients.w_star)) ** 2
    # the split with round 0's server error signed: the mean map from C_s(w_0) (= starts[0])
    xi2_s = xi2.copy()
    xi2_s[:, 0] = xi2_0
    a0 = np.stack([modal_deviation(Ps, np.sqrt(x), V) for x in xi2_s], axis=1)
    vbar0 = [runs.initial, np.stack([it.starts[0] for it in runs.iterates])]
    vbar0[1] = maps[0].P @ vbar0[1] + maps[0].c
    for m in maps[1:]:
        vbar0.append(m.P @ vbar0[-1] + m.c)
    mean_sq0 = (V.T @ (np.stack(vbar0) - clients.w_star)) ** 2
    return ModalErrors(V, np.sqrt(xi2), a, mean_sq, noise, gap, a0, mean_sq0)


def exact_variant(runs: SeedRuns, config: SimConfig, problem: Problem,
                  etas: np.ndarray) -> tuple[BoundVariant, ExactParts]:
    """The exact-map bound on ridge (docs/theory.md §12.3), coordinate by coordinate.

    Uncompressed FedAvg ``v_r`` from the seeds' own ``w_0`` has exact moments
    (:func:`theory.quadratic.exact_moments`, same minibatch size, participation and
    steps); the compressed run's distance to it, ``Delta_r``, is bounded coordinate by
    coordinate in the eigenbasis of ``P`` by :func:`theory.quadratic.modal_deviation` from
    the measured error vectors (:func:`modal_errors`), and

        E||w_r - w*||^2 <= sum_{i,j} (||u_i^T (v_r - w*) e_j||_{L2} + a_{r,ij})^2.

    The earlier norm bound ``(sqrt(F_r) + D_r)^2`` (error norms added as if aligned) is kept
    in ``ExactParts.norm_bound``. For FedAvg ``Delta_r = 0`` and the "bound" is the exact
    expectation: the mean over a few seeds then lies above it on about half the rounds,
    by Monte Carlo error (``mc_standard_error``).
    """
    c = problem.convex
    if c.kind != "ridge":
        raise ValueError(f"bound: 'exact' needs a least-squares problem (ridge), not {c.kind}")
    if runs.initial is None:
        raise RuntimeError("the observer did not see w_0 of every seed")
    clients = LeastSquaresClients.from_convex(c)
    E = config.local_steps
    scheme = config.participation
    K = None if scheme == "full" else int(config.clients_per_round)
    modal = None if runs.iterates is None else modal_errors(runs, clients, config, etas)
    mom = exact_moments(clients, etas, E, runs.initial, config.batch_size, scheme, K,
                        w_star=c.w_star)
    rho = np.array([mean_square_contraction(clients, eta_r, config.batch_size, scheme, K)
                    for eta_r in etas.reshape(-1, E)])
    D = compression_deviation(rho, runs.e_s, runs.e_c)
    norm_bound = (np.sqrt(mom.dist_sq) + D) ** 2
    if modal is None:
        bound = norm_bound.copy()
    else:
        bound = np.minimum(modal.bound_dist_sq, norm_bound)
    # round 0 is the bound's input (the seeds' own w_0), not a prediction: the closed form
    # and the simulator's history compute ||w_0 - w*||^2 in different orders (1 ulp apart)
    bound[0] = max(float(norm_bound[0]), float(runs.measured_dist_sq[0]))
    delta = c.w_star_error_bound  # excess: L/2 ||w - w*||^2 with the true w*
    variant = BoundVariant.compare("exact", bound, 0.5 * c.L * (np.sqrt(bound) + delta) ** 2,
                                   runs, c.F_star)
    resid = runs.dist_sq - mom.dist_sq_starts.T  # (S, R+1)
    se = resid.std(axis=0, ddof=1) / math.sqrt(resid.shape[0])
    return variant, ExactParts(mom.dist_sq, mom.dist_sq_starts, rho, D, se, norm_bound, modal)


# ------------------------------------------------------------------ 4. report
def check(
    config: SimConfig,
    problem: Problem,
    seeds: int | Sequence[int] = 5,
    constants: str = "round",
    progress: bool = False,
    drift: str = "lemma3",
    bound: str = "li",
) -> BoundReport:
    """Run ``config`` over ``seeds`` and compare the a-posteriori bound with the runs.

    Runs over seeds (:func:`run_seeds`) -> constants (:func:`li_constants`) -> bound
    variants (:class:`BoundVariant`) -> report (:class:`BoundReport`).

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
        ``B_r`` per round) or of the whole run (``"global"``), or the ball bound of
        ``ConvexProblem.ball_bound`` around w* with the radius of the farthest observed
        point (``"ball"``).
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
    bound : {"li", "exact"}
        The report's main bound: Li et al.'s recursion (with ``drift``), or the exact
        affine map of ridge plus the measured compression errors (docs/theory.md §12.3).
        Li et al.'s bounds are in ``constants`` either way (``lemma3_drift``, ...).

    Returns
    -------
    BoundReport
    """
    if bound not in BOUNDS:
        raise ValueError(f"bound: expected one of {BOUNDS}, got {bound!r}")
    if bound == "exact" and problem.convex.kind != "ridge":
        raise ValueError(f"bound: 'exact' needs the ridge problem (least squares), not "
                         f"{problem.convex.kind}")
    if constants not in _CONSTANTS:
        raise ValueError(f"constants: expected one of {_CONSTANTS}, got {constants!r}")
    if drift not in _DRIFTS:
        raise ValueError(f"drift: expected one of {_DRIFTS}, got {drift!r}")
    if drift == "measured" and config.participation != "full":
        raise ValueError("drift: 'measured' needs full participation; with sampling the "
                         "divergence of Li et al.'s Lemma 1 is over the virtual iterates of "
                         "all N clients, and the unsampled ones are never run "
                         "(docs/theory.md §11.1)")
    etas = validate_config(config, problem)
    runs = run_seeds(config, problem, _seeds(seeds, config.seed), progress)
    consts = li_constants(runs, config, problem, etas, constants)
    E = config.local_steps
    lemma3 = li_variant("li lemma3", runs, problem, etas, E, consts.B_r, consts.C_r)
    meas = (None if consts.B_steps is None else
            li_variant("li measured", runs, problem, etas, E, consts.B_steps, consts.C_r))
    li_main = meas if drift == "measured" else lemma3
    B_glob, C_glob = consts.global_constants(drift)
    glob = li_variant("li global", runs, problem, etas, E, B_glob, C_glob)
    rep = _report(config, problem, runs, consts, drift, li_main, lemma3, meas, glob, etas)
    if bound == "li":
        return dataclasses.replace(rep, constants=rep.constants | {"bound": "li"})
    if bound == "local":  # docs/theory.md §13 (boundcheck/local.py)
        from .local import local_report

        return local_report(rep, runs, config, problem, etas, li_main)
    exact, parts = exact_variant(runs, config, problem, etas)
    measured = runs.measured_dist_sq
    # the exact part is an expectation: the mean over a few seeds scatters around it
    # (3 standard errors), and the simulator's float64 trajectory differs from the closed
    # form by rounding (measured: ~3e-14 relative for full-batch FedAvg; allowance 1e-12)
    slack = 3.0 * parts.mc_standard_error + ROUNDING * measured
    holds_mc = bool(np.all(exact.bound_dist_sq >= measured - slack))
    extra = {
        "bound": "exact",
        "exact": exact.brief() | {
            "holds_within_3_standard_errors": holds_mc,
            "holds_semantics": HOLDS_SEMANTICS,
            "rounding_allowance_relative": ROUNDING,
            "fedavg_dist_sq": parts.fedavg_dist_sq.tolist(),
            "rho_tilde": parts.rho_tilde.tolist(), "deviation": parts.deviation.tolist(),
            "norm_bound_dist_sq": parts.norm_bound.tolist(),
            "norm_bound_max_ratio": float(np.max(parts.norm_bound / measured)),
            "modal_bound_dist_sq": (None if parts.modal is None else
                                    parts.modal.bound_dist_sq.tolist()),
            "modal_bound_dist_sq_rms": (None if parts.modal is None else
                                        parts.modal.bound_dist_sq_rms.tolist()),
            "modal_error_sq": (None if parts.modal is None else
                               np.sum(parts.modal.a**2, axis=(2, 3)).mean(axis=1).tolist()),
            "modal_noise": (None if parts.modal is None else
                            np.sum(parts.modal.noise_var, axis=(2, 3)).mean(axis=1).tolist()),
            "mc_standard_error": parts.mc_standard_error.tolist(),
            "method": "min of sum_ij (sqrt(mean_sq + noise_var)_r,ij + a_r,ij)^2 in the "
                      "eigenbasis u_i of P (boundcheck.check.modal_errors) and the norm "
                      "bound (sqrt(exact E||v_r - w*||^2) + D_r)^2, D_{r+1} = rho~_r (D_r + "
                      "e_s,r) + e_c,r (docs/theory.md §12.3)"},
        "li": li_main.brief(),
        "tightness_li": float(li_main.ratio[-1]),
    }
    return dataclasses.replace(
        rep, constants=rep.constants | extra, bound_dist_sq=exact.bound_dist_sq,
        ratio=exact.ratio, bound_excess=exact.bound_excess)


def _report(config: SimConfig, problem: Problem, runs: SeedRuns, consts: LiConstants,
            drift: str, main: BoundVariant, lemma3: BoundVariant, meas: BoundVariant | None,
            glob: BoundVariant, etas: np.ndarray) -> BoundReport:
    """The BoundReport of a check: the main variant's arrays, every constant used."""
    c = problem.convex
    E, R = config.local_steps, config.rounds
    D, g2_r = consts.divergence, consts.G2_r
    if D is not None and E > 1:
        lemma3_div = 4.0 * consts.eta_steps**2 * (E - 1) ** 2 * g2_r[:, None]
        div_vs_lemma3 = float(np.max(D / lemma3_div))
    else:
        div_vs_lemma3 = None
    B_main = consts.B_steps.max(axis=1) if drift == "measured" else consts.B_r
    last = consts.terms(R - 1, drift)
    last_md = consts.terms(R - 1, "measured") if D is not None else None
    rb = main.recursion
    measured = runs.measured_dist_sq
    consts_out = {
        "method": consts.method, "mode": consts.mode, "B": float(B_main.max()),
        "B_rounds": B_main.tolist(),
        "drift": drift,
        "drift_method": (
            "measured: mean over seeds of sum_k p_k ||v_t - w^k_t||^2 at every local step, "
            "B_t = sum p_k^2 sigma_k^2 + 6 L Gamma + 2 D_t / eta_t^2" if drift == "measured"
            else "Lemma 3: 8 (E-1)^2 G^2 in B"),
        "divergence_steps": None if D is None else D.tolist(),
        "divergence_over_lemma3_max": div_vs_lemma3,
        "lemma3_drift": lemma3.brief(), "measured_drift": None if meas is None else meas.brief(),
        "tightness_lemma3_drift": float(lemma3.ratio[-1]),
        "tightness_measured_drift": None if meas is None else float(meas.ratio[-1]),
        "B_terms_last_round_measured_drift": last_md,
        "dominant_B_term_measured_drift": None if last_md is None else max(last_md,
                                                                           key=last_md.get),
        "B_terms_first_round": consts.terms(0, drift), "B_terms_last_round": last,
        "dominant_B_term": max(last, key=last.get), "G2": float(g2_r.max()),
        "G2_rounds": g2_r.tolist(), "sigma2_max": np.max(consts.sigma2_r, axis=0).tolist(),
        "G2_global_sup": consts.G2_global, "sigma2_global_sup": consts.sigma2_global.tolist(),
        "C_rounds": consts.C_r.tolist(), "C": float(consts.C_r.max()), "K": consts.K,
        "participation": config.participation, "p": consts.p.tolist(), "L": c.L, "mu": c.mu,
        "Gamma": c.Gamma, "d0": runs.d0, "w_star_error_bound": c.w_star_error_bound,
        "num_points": runs.num_points, "max_radius": runs.max_radius,
        "G2_argmax_seed_round_step": runs.G2_argmax,
        "batch_size": config.batch_size, "replace": True, "E": E,
        "eta_first": float(etas[0]), "eta_last": float(etas[-1]),
        "eta_max_allowed": 1.0 / (4.0 * c.L), "lr_schedule": config.lr_schedule,
        "rho_first": float(rb.rho[0]), "beta_first": float(rb.beta[0]),
        "tightness_global_constants": float(glob.bound_dist_sq[-1] / measured[-1]),
    }
    checks = {"common_start": runs.common_start,
              "err_server_vs_observed_max_gap": runs.err_server_gap,
              "monte_carlo_note": "measured = mean over seeds; bound is on the expectation"}
    return BoundReport(
        label=label_of(config, problem), config=config.to_dict(), seeds=runs.seeds,
        problem=problem.summary(), constants=consts_out,
        rounds=np.arange(R + 1, dtype=np.float64), bound_dist_sq=main.bound_dist_sq,
        measured_dist_sq=measured, measured_min=runs.dist_sq.min(axis=0),
        measured_max=runs.dist_sq.max(axis=0), ratio=main.ratio, e_s=runs.e_s, e_c=runs.e_c,
        etas_first=etas.reshape(R, E)[:, 0].copy(), bound_excess=main.bound_excess,
        measured_excess=runs.measured_excess(c.F_star), checks=checks)
