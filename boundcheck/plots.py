"""Plots of a check: measured mean with the min-max band over seeds, and the bound."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .report import BoundReport

__all__ = ["plot_report"]


def plot_report(report: BoundReport, ax: Axes | None = None, title: str | None = None,
                other_drift: bool = False) -> tuple[Figure, Axes, dict]:
    """Bound and measured ``E||w_r - w*||^2`` against rounds, log scale.

    Parameters
    ----------
    report : BoundReport
        A check's result.
    ax : Axes, optional
        Where to draw; a new figure if omitted.
    title : str, optional
        Axes title; the report's label if omitted.
    other_drift : bool, default False
        Also draw the bound with the other drift variant (Lemma 3 vs measured,
        docs/theory.md §11.1) where the report has it (full participation).

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        The plotted arrays: ``rounds``, ``measured`` (mean over seeds), ``min`` and
        ``max`` (the band), ``bound``, and ``bound_other`` (``None`` unless drawn).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    r = report.rounds
    ax.fill_between(r, report.measured_min, report.measured_max, color="C0", alpha=0.25,
                    linewidth=0, label=f"measured, min-max over {len(report.seeds)} seeds")
    ax.plot(r, report.measured_dist_sq, color="C0", label="measured mean")
    drift = report.constants.get("drift", "lemma3")
    names = {"lemma3": "drift by Lemma 3", "measured": "measured drift"}
    main = ("bound (exact map + measured compression errors)"
            if report.constants.get("bound") == "exact"
            else f"bound (a-posteriori recursion, {names.get(drift, drift)})")
    ax.plot(r, report.bound_dist_sq, color="C3", linestyle="--", label=main)
    li = (report.constants.get("li") or {}).get("bound_dist_sq")
    if li is not None:
        ax.plot(r, li, color="C1", linestyle="-.", label="Li et al.'s recursion")
    other_name = "measured" if drift == "lemma3" else "lemma3"
    other = (report.constants.get(f"{other_name}_drift") or {}).get("bound_dist_sq") \
        if other_drift else None
    if other is not None:
        ax.plot(r, other, color="C2", linestyle=":",
                label=f"bound ({names[other_name]})")
    ax.set_yscale("log")
    ax.set_xlabel("round r")
    ax.set_ylabel(r"$E\,\|w_r - w^\star\|^2$")
    ax.set_title(title if title is not None else report.label, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    data = {"rounds": r, "measured": report.measured_dist_sq, "min": report.measured_min,
            "max": report.measured_max, "bound": report.bound_dist_sq,
            "bound_other": None if other is None else np.asarray(other, dtype=np.float64)}
    return fig, ax, data
