"""Strongly convex federated problems: the simulator's data, its ConvexProblem, w*.

The constants must be those of the *exact* training arrays the simulator uses. The
simulator casts its float32 inputs to the run's dtype (float64 for checks), which is
exact, so the float64 copies of ``data.client_x(k)``, ``data.client_y(k)`` below are
the very numbers the runs train on; ``p_k`` are the simulator's weights
``data.weights`` (``n_k / n``).

Parameter naming: the models are a bias-free ``nn.Linear`` called ``linear``, whose
weight ``(out, d)`` is the theory's ``W (d, out)`` transposed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fl_sim import SimConfig
from fl_sim.federated_data import FederatedData, build_federated_data
from theory.constants import ConvexProblem, logistic_problem
from theory.constants import ridge_problem as _ridge_convex

__all__ = ["PARAM", "Problem", "problem_from_data", "ridge_problem", "synthetic_problem"]

PARAM = "linear.weight"  # the only parameter of the bias-free linreg / logreg models


@dataclass(frozen=True, eq=False)
class Problem:
    """A federated strongly convex problem as both the simulator and the theory see it."""

    name: str  # label, e.g. "ridge" or "synthetic(1,1)"
    data: FederatedData  # built once with a fixed data seed; passed to every run
    convex: ConvexProblem  # L, mu, Gamma, w*, F* on the same float64 arrays
    spec: dict[str, Any] = field(default_factory=dict)  # how it was built (for reports)

    @property
    def dataset(self) -> str:
        """SimConfig.dataset of the runs."""
        return self.data.name

    @property
    def model(self) -> str:
        """SimConfig.model: ``linreg`` (ridge) or ``logreg`` (logistic)."""
        return "linreg" if self.convex.kind == "ridge" else "logreg"

    @property
    def lam(self) -> float:
        """The theory's lambda = the simulator's weight_decay."""
        return self.convex.lam

    @property
    def num_clients(self) -> int:
        return self.convex.num_clients

    @property
    def balanced(self) -> bool:
        """All ``p_k = 1/N`` (needed by the scheme-II bound of Li et al.)."""
        p = self.convex.p
        return bool(np.allclose(p, 1.0 / p.size, rtol=1e-12, atol=0.0))

    def w_star_params(self) -> dict[str, torch.Tensor]:
        """``w*`` in the model's naming and layout (float64): ``{"linear.weight": W*^T}``."""
        return {PARAM: torch.from_numpy(np.ascontiguousarray(self.convex.w_star.T))}

    def default_lr(self) -> float:
        """``1/(4L)``: the largest constant step Li et al.'s Lemma 1 allows."""
        return 1.0 / (4.0 * self.convex.L)

    def config(self, **changes: Any) -> SimConfig:
        """A SimConfig for this problem (float64, CPU, constant step 1/(4L)); ``changes`` win."""
        base = dict(dataset=self.dataset, model=self.model, weight_decay=self.lam,
                    num_clients=self.num_clients, dtype="float64", device="cpu",
                    lr=self.default_lr(), lr_schedule="constant", batch_size=5,
                    algorithm="feddlr", rounds=30, local_steps=5, seed=0,
                    policy_overrides={})  # one weight matrix: every policy applies to it
        base.update(changes)
        return SimConfig(**base)

    def summary(self) -> dict[str, Any]:
        """Plain numbers for a report."""
        c = self.convex
        return {"name": self.name, "kind": c.kind, "num_clients": c.num_clients,
                "shape_W": list(c.shape), "client_sizes": [int(x.shape[0]) for x in c.X],
                "lam": c.lam, "L": c.L, "mu": c.mu, "kappa": c.L / c.mu, "Gamma": c.Gamma,
                "F_star": c.F_star, "w_star_norm": float(np.linalg.norm(c.w_star)),
                "w_star_error_bound": c.w_star_error_bound, "balanced": self.balanced,
                "spec": dict(self.spec)}


def problem_from_data(data: FederatedData, lam: float, *, name: str | None = None,
                      tol: float = 1e-10, spec: dict[str, Any] | None = None) -> Problem:
    """The ConvexProblem of a simulator dataset, on its exact training arrays.

    Parameters
    ----------
    data : FederatedData
        Flat inputs; regression (ridge) or classification (logistic regression).
    lam : float
        The L2 weight ``lambda`` (the runs' ``weight_decay``); ``> 0`` for logistic.
    name : str, optional
        Label; defaults to ``data.name``.
    tol : float
        Gradient-norm target of the logistic solver.
    spec : dict, optional
        Recorded in reports.
    """
    if len(data.input_shape) != 1:
        raise ValueError(f"data: needs flat inputs for a linear model, got {data.input_shape}")
    xs = [data.client_x(k).cpu().double().numpy() for k in range(data.num_clients)]
    p = data.weights
    if data.task == "regression":
        ys = [data.client_y(k).cpu().double().numpy() for k in range(data.num_clients)]
        convex = _ridge_convex(list(zip(xs, ys, strict=True)), lam, weights=p)
    else:
        ys = [data.client_y(k).cpu().numpy() for k in range(data.num_clients)]
        convex = logistic_problem(list(zip(xs, ys, strict=True)), data.num_outputs, lam,
                                  tol=tol, weights=p)
    return Problem(name or data.name, data, convex, dict(spec or {}))


def ridge_problem(
    num_clients: int = 10,
    samples_per_client: int = 50,
    dim: int = 20,
    out_dim: int = 5,
    spectrum: Any = None,
    heterogeneity: float = 0.3,
    noise_std: float = 0.1,
    lam: float = 0.1,
    data_seed: int = 0,
    test_fraction: float = 0.2,
) -> Problem:
    """The ridge teacher (fl_sim.generated_data.ridge_teacher) with its closed-form constants.

    Defaults: 10 clients x 50 samples (40 train after the 20% test split, so balanced),
    ``W (20 x 5)`` with the decaying spectrum ``s_i = 2^-(i-1)``, heterogeneity 0.3,
    ``lam = 0.1``.
    """
    if spectrum is None:
        spectrum = 0.5 ** np.arange(min(dim, out_dim))
    spectrum = [float(s) for s in np.asarray(spectrum, dtype=np.float64)]
    spec = dict(num_clients=num_clients, samples_per_client=samples_per_client, dim=dim,
                out_dim=out_dim, spectrum=spectrum, heterogeneity=heterogeneity,
                noise_std=noise_std, lam=lam, data_seed=data_seed, test_fraction=test_fraction)
    data = build_federated_data("ridge", num_clients, seed=data_seed, test_fraction=test_fraction,
                                samples_per_client=samples_per_client, dim=dim, out_dim=out_dim,
                                spectrum=spectrum, heterogeneity=heterogeneity,
                                noise_std=noise_std)
    return problem_from_data(data, lam, name="ridge", spec=spec)


def synthetic_problem(
    num_clients: int = 10,
    max_samples_per_client: int | None = 200,
    dim: int = 60,
    num_classes: int = 10,
    fedprox_alpha: float = 1.0,
    beta: float = 1.0,
    lam: float = 1e-2,
    data_seed: int = 0,
    test_fraction: float = 0.2,
    tol: float = 1e-10,
) -> Problem:
    """FedProx synthetic(alpha, beta) with L2-regularized multinomial logistic regression.

    Every FedProx client has at least 50 samples, so ``max_samples_per_client <= 50``
    makes all clients equal (balanced ``p_k``, as scheme II's bound needs).
    """
    spec = dict(num_clients=num_clients, max_samples_per_client=max_samples_per_client,
                dim=dim, num_classes=num_classes, fedprox_alpha=fedprox_alpha, beta=beta,
                lam=lam, data_seed=data_seed, test_fraction=test_fraction)
    data = build_federated_data("synthetic", num_clients, seed=data_seed,
                                test_fraction=test_fraction, dim=dim, num_classes=num_classes,
                                fedprox_alpha=fedprox_alpha, beta=beta,
                                max_samples_per_client=max_samples_per_client)
    cap = "" if max_samples_per_client is None else f", n<={max_samples_per_client}"
    return problem_from_data(data, lam, name=f"synthetic({fedprox_alpha:g},{beta:g}){cap}",
                             tol=tol, spec=spec)
