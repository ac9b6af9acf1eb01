"""The result of a check: bound vs measured, round by round, with every constant used."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_sim.json_file import JsonFile, from_jsonable, to_jsonable

__all__ = ["BoundReport"]

_ARRAYS = ("rounds", "bound_dist_sq", "measured_dist_sq", "measured_min", "measured_max",
           "ratio", "e_s", "e_c", "etas_first", "bound_excess", "measured_excess")


@dataclass(frozen=True, eq=False)
class BoundReport(JsonFile):
    """Bound on ``E||w_r - w*||^2`` against its estimate over seeds, rounds ``r = 0..R``.

    ``ratio = bound / measured`` (squared distances). ``holds`` is True iff the bound
    is at least the measured mean at every round. Arrays are float64 numpy arrays.
    """

    label: str  # e.g. "ridge feddlr fixed:2/fixed:2 E=5 full"
    config: dict[str, Any]  # SimConfig.to_dict() of seed 0 (the seed field varies)
    seeds: list[int]  # the runs' seeds (the data seed is fixed: one problem, one w*)
    problem: dict[str, Any]  # Problem.summary(): L, mu, Gamma, kappa, ||w*||, ...
    constants: dict[str, Any]  # how sigma^2, G^2 were obtained, B and its terms, C, d0, ...
    rounds: np.ndarray  # (R+1,) 0..R
    bound_dist_sq: np.ndarray  # (R+1,) the bound d_r^2 (w* solver error included)
    measured_dist_sq: np.ndarray  # (R+1,) mean over seeds of ||w_r - w*||^2
    measured_min: np.ndarray  # (R+1,) min over seeds
    measured_max: np.ndarray  # (R+1,) max over seeds
    ratio: np.ndarray  # (R+1,) bound / measured
    e_s: np.ndarray  # (R,) RMS over seeds of the recorded err_server
    e_c: np.ndarray  # (R,) RMS over seeds of the recorded err_client
    etas_first: np.ndarray  # (R,) step size of each round's first local step
    bound_excess: np.ndarray  # (R+1,) L/2 d_r^2: bound on E F(w_r) - F*
    measured_excess: np.ndarray  # (R+1,) mean over seeds of F(w_r) - F(w*_hat)
    checks: dict[str, Any] = field(default_factory=dict)  # cross-checks (common start, ...)

    # ------------------------------------------------------------------ summary
    @property
    def holds(self) -> bool:
        """Bound >= measured at every round (distance and excess)."""
        return bool(np.all(self.bound_dist_sq >= self.measured_dist_sq)
                    and np.all(self.bound_excess >= self.measured_excess))

    @property
    def min_ratio(self) -> float:
        return float(np.min(self.ratio))

    @property
    def max_ratio(self) -> float:
        return float(np.max(self.ratio))

    @property
    def tightness(self) -> float:
        """Bound / measured at the last round."""
        return float(self.ratio[-1])

    @property
    def num_rounds(self) -> int:
        return int(self.rounds[-1])

    def violations(self) -> list[int]:
        """Rounds where the bound is below the measured value."""
        bad = (self.bound_dist_sq < self.measured_dist_sq) | (
            self.bound_excess < self.measured_excess)
        return [int(r) for r in self.rounds[bad]]

    def summary(self) -> dict[str, Any]:
        """One row of a table."""
        md = self.constants.get("measured_drift") or {}
        return {"label": self.label, "rounds": self.num_rounds, "seeds": len(self.seeds),
                "tightness": self.tightness, "max_ratio": self.max_ratio,
                "min_ratio": self.min_ratio, "holds": self.holds,
                "B": self.constants.get("B"), "G2": self.constants.get("G2"),
                "dominant": self.constants.get("dominant_B_term"),
                "tightness_global": self.constants.get("tightness_global_constants"),
                "drift": self.constants.get("drift", "lemma3"),
                "tightness_measured_drift": md.get("tightness"),
                "min_ratio_measured_drift": md.get("min_ratio_after_0"),
                "holds_measured_drift": md.get("holds"),
                "holds_within_3_standard_errors": (self.constants.get("exact") or {}).get(
                    "holds_within_3_standard_errors"),
                "min_ratio_after_0": float(np.min(self.ratio[1:])) if self.ratio.size > 1
                else self.min_ratio}

    # ---------------------------------------------------------------- JSON I/O
    def to_dict(self) -> dict[str, Any]:
        """Every field and the summary, as plain JSON types (``to_jsonable``)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["summary"] = self.summary()
        return to_jsonable(out)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BoundReport:
        """Inverse of :meth:`to_dict` (``"inf"``/``"nan"`` strings back to floats)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in from_jsonable(data).items() if k in names}
        for k in _ARRAYS:
            kw[k] = np.asarray(kw[k], dtype=np.float64)
        return cls(**kw)

