"""Markdown tables, PNG figures and the results report from the experiments' numbers.

Tables are GitHub markdown from :func:`tabulate.tabulate` (cells formatted here, so
numeric parsing is off). Plot helpers take ``ax=None`` and return ``(fig, ax, data)``
with ``data`` the plotted numbers; :func:`write_figures` composes them. This module
never selects a matplotlib backend (``python -m experiments`` does).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from tabulate import tabulate

from .runner import format_lrs, lr_tries

__all__ = ["comm_table", "computation_table", "convex_table", "diverged_runs", "engines_text",
           "hyperparams_table", "pareto_front", "paired_table", "plot_convex_floors",
           "plot_paired", "plot_pareto", "plot_policies", "plot_setting", "policy_table",
           "targets", "verdicts", "write_figures", "write_report"]

SOTA = ("fedhm", "fedlmt", "fedpara", "fedmud")  # experiments/settings.py: the state of the art


def _family(label: str) -> str:
    """``feddlr``, ``feddlr_ef``, a SOTA method name, or ``other`` for a row label."""
    first = label.split(" ")[0]
    if first in ("feddlr", "feddlr_ef") or first in SOTA:
        return first
    return "other"

DPI = 80


def _f(v, fmt=".3f", none="-") -> str:
    if v is None or (isinstance(v, float) and (math.isnan(v) or math.isinf(v))):
        return none if not (isinstance(v, float) and math.isinf(v)) else "inf"
    return format(v, fmt)


def _md(rows: list[list[str]], headers: list[str]) -> str:
    return tabulate(rows, headers, tablefmt="github", disable_numparse=True)


def comm_table(setting: dict) -> str:
    """Experiment 1: one row per algorithm of a setting, with its caption line."""
    headers = ["algorithm", "final acc (mean ± std)", "Δ vs FedAvg", "up MB", "down MB",
               "total MB", "bytes ratio vs FedAvg", "MB to target (reached)",
               "to-target ratio", "s/round"]
    base_lr = setting.get("config", {}).get("lr")

    def label(r: dict) -> str:  # runs that diverged at the base lr ran again at lr/2
        lrs = r.get("lrs", [base_lr])
        out = r["algorithm"] if lrs in ([base_lr], []) else \
            f"{r['algorithm']} (lr {', '.join(f'{v:g}' for v in lrs)}†)"
        return out + "".join(f" — **seed {d['seed']} diverged at lr "
                             f"{format_lrs(d['lrs'])}** (excluded)"
                             for d in r.get("diverged", []))

    rows = [[label(r), _f(r['acc_mean'], '.4f', 'diverged') + (
                 f" ± {r['acc_std']:.4f}" if math.isfinite(r['acc_mean']) else ""),
             f"{_f(100 * r['acc_gap'], '+.2f')} pt", _f(r['up_mb'], '.1f'),
             _f(r['down_mb'], '.1f'), _f(r['total_mb'], '.1f'), f"{_f(r['ratio'], '.2f')}x",
             f"{_f(r['to_target_mb'], '.1f')} ({r['reached']}/{r['seeds']})",
             f"{_f(r['to_target_ratio'], '.2f')}x", _f(r['seconds_per_round'], '.3f')]
            for r in setting["rows"]]
    n_div = sum(len(r.get("diverged", [])) for r in setting["rows"])
    return (f"Target accuracy {setting['target']:.2f} (95% of FedAvg's mean final accuracy, "
            f"rounded down); {setting['rounds']} rounds, seeds {setting['seeds']}. † = a "
            f"seed diverged at lr {base_lr} and ran again at half the rate (the same rule "
            f"for every algorithm, experiments/runner.py)."
            + (f" **{n_div} seed run(s) diverged at all three rates** (named in the row): "
               "they are left out of that row's means, curve and seed count."
               if n_div else "") + "\n\n" + _md(rows, headers))


def diverged_runs(results: dict) -> list[str]:
    """One line per seed that diverged at every rate tried, over every section."""
    out = []
    for s in results.get("communication", []):
        for r in s["rows"]:
            out += [f"{s['title']}: {r['algorithm']}, seed {d['seed']}, lr "
                    f"{format_lrs(d['lrs'])}" for d in r.get("diverged", [])]
    for r in (results.get("hyperparams") or {}).get("rows", []):
        if r.get("diverged"):
            out.append(f"hyperparameter grid: {r['method']} {r['knob']} lr {r['lr']:g}, "
                       f"{r['diverged']} seed(s)")
    return out


def policy_table(p: dict) -> str:
    """Experiment 2a: one row per rank policy."""
    headers = ["run", "a-priori q² (max layer)", "measured ‖C_s(w_R)−w_R‖²/‖w_R‖²",
               "ranks sent down (last round)", "predicted MB/round", "measured MB/round",
               "total MB", "final acc"]
    rows = [[r["label"], f"{r['q2']:.3f}", _f(r.get("measured_rel_err2"), ".1e"),
             str(r.get("ranks_down", "-") or "all dense"),
             _f(r["predicted_mb_per_round"], ".3f", "adaptive"), f"{r['mb_per_round']:.3f}",
             f"{r['total_mb']:.1f}", f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f}"]
            for r in p["rows"]]
    return _md(rows, headers)


def _param_label(v: Any) -> str:
    return "IID" if v is None else (f"N={v[0]}, K={v[1]}" if isinstance(v, list | tuple)
                                    else str(v))


def paired_table(rows: list[dict], key: str, extra: tuple[str, ...] = ()) -> str:
    """Experiment 2b-d: FedAvg next to FedDLR for each value of ``key``."""
    headers = [key, "FedAvg acc", "FedDLR acc", "gap (pt)", "FedAvg MB", "FedDLR MB", "ratio",
               *extra]
    table = [[_param_label(r[key]), f"{r['fedavg_acc']:.4f} ± {r['fedavg_std']:.4f}",
              f"{r['feddlr_acc']:.4f} ± {r['feddlr_std']:.4f}", f"{100 * r['gap']:.2f}",
              f"{r['fedavg_mb']:.1f}", f"{r['feddlr_mb']:.1f}", f"{r['ratio']:.2f}x",
              *(_f(r[e], ".4f") for e in extra)]
             for r in rows]
    return _md(table, headers)


def convex_table(c: dict) -> str:
    """Experiment 2e: the bound's floors and choices next to the convex runs."""
    headers = ["rank (fixed, both sides)", "q² a priori", "e_s (RMS)", "e_c (RMS)",
               "floor a priori d∞²", "floor a posteriori d∞²", "measured floor ‖w−w*‖²",
               "bound/measured", "rounds to target: bound", "measured", "bytes/round pred",
               "measured", "final acc"]
    rows = []
    for r in c["rows"]:
        ratio = r["floor_aposteriori"] / r["floor_measured"] if r["floor_measured"] else math.nan
        rows.append([str(r["rank"]), f"{r['q2']:.2f}", f"{r['e_s']:.3g}", f"{r['e_c']:.3g}",
                     _f(r["floor_apriori"], ".3g", "none"), f"{r['floor_aposteriori']:.3g}",
                     f"{r['floor_measured']:.3g}", f"{ratio:.3g}",
                     _f(r["rounds_pred"], "d", "never"),
                     _f(r["rounds_measured"], "d", "not in run"),
                     f"{r['bytes_per_round_pred']:,}", f"{r['bytes_per_round_measured']:,.0f}",
                     f"{r['acc_mean']:.4f}"])
    return _md(rows, headers)


def computation_table(c: dict) -> str:
    """Experiment 3: the exported compact model against the dense one."""
    b = c["batches"]
    headers = ["policy", "trained by", "ranks", "params dense → compact",
               "MACs/sample dense → compact", "acc dense", "acc compact",
               *(f"{x}: dense / compact ms (speed-up)" for x in b)]
    rows = []
    for r in c["rows"]:
        rows.append([
            r["policy"], r["source"], str(r["ranks"]),
            f"{r['params_dense']:,} → {r['params_compact']:,} "
            f"({r['params_dense'] / r['params_compact']:.2f}x)",
            f"{r['flops_dense']:,} → {r['flops_compact']:,} "
            f"({r['flops_dense'] / r['flops_compact']:.2f}x)",
            f"{r['acc_dense']:.4f}", f"{r['acc_compact']:.4f}",
            *(f"{r['timing'][x]['dense_ms']:.3f} / {r['timing'][x]['compact_ms']:.3f} "
              f"({r['timing'][x]['speedup']:.2f}x)" for x in b)])
    return _md(rows, headers)


def engines_text(e: dict) -> str:
    """Experiment 4: seconds per round of fl_sim and, if it ran, Flower."""
    headers = ["engine", "algorithm", f"median s/round (rounds 2..{e['rounds']})", "final acc"]
    rows = [["fl_sim (vectorized)", algo, f"{v['median_s']:.4f}", _f(v["final_acc"], ".4f")]
            for algo, v in e["fl_sim"].items()]
    fl = e["flower"]
    if fl.get("status") == "ran":
        rows.append([f"Flower {fl['flwr_version']} simulation (Ray, "
                     f"{fl['num_cpus_per_client']} CPU per client)", "fedavg",
                     f"{fl['median_s']:.4f}", f"{fl['accuracy'][-1]:.4f}"])
        after = (f"Flower / fl_sim per-round time for FedAvg: **{fl['ratio_to_fl_sim']:.1f}x**"
                 f" (Flower's first round, with actor start-up, took "
                 f"{fl['seconds_per_round'][0]:.1f} s and is excluded; whole Flower run "
                 f"{fl['total_seconds']:.1f} s).")
    else:
        after = f"Flower: {fl['status']}"
    return _md(rows, headers) + "\n\n" + after


def targets(results: dict) -> dict:
    """The issue's two targets, evaluated on the measured numbers."""
    within, at5 = None, None
    for s in results["communication"]:
        for r in s["rows"]:
            if not r["algorithm"].startswith("feddlr ") or r["ratio"] <= 1.0 + 1e-9:
                continue  # rows that send as much as FedAvg (layers left dense) do not count
            if r["acc_gap"] >= -0.01 and (within is None or r["ratio"] > within[0]):
                within = (r["ratio"], s["title"], r)
            if r["ratio"] >= 5 and (at5 is None or r["acc_gap"] > at5[0]):
                at5 = (r["acc_gap"], s["title"], r)
    comm = {"met": bool(within and within[0] >= 5)}
    if within:
        comm.update(ratio=within[0], setting=within[1], algorithm=within[2]["algorithm"],
                    gap_pt=100 * within[2]["acc_gap"])
    if at5:
        comm.update(at5_gap_pt=100 * at5[0], at5_setting=at5[1],
                    at5_algorithm=at5[2]["algorithm"], at5_ratio=at5[2]["ratio"])
    comp_rows = (results.get("computation") or {}).get("rows", [])
    big = results["computation"]["batches"][-1] if comp_rows else None
    comp = None
    for r in comp_rows:
        if r["source"] != "feddlr":
            continue
        loss = r["acc_dense"] - r["acc_compact"]
        sp = r["timing"][big]["speedup"]
        if loss <= 0.01 and (comp is None or sp > comp["speedup"]):
            comp = {"policy": r["policy"], "speedup": sp, "loss_pt": 100 * loss, "batch": big,
                    "acc_compact": r["acc_compact"]}
    ef = None  # issue 13: FedDLR-EF within 1 point of FedAvg at >= 5x fewer bytes
    for s in results["communication"]:
        for r in s["rows"]:
            if _family(r["algorithm"]) == "feddlr_ef" and r["acc_gap"] >= -0.01 and (
                    ef is None or r["ratio"] > ef["ratio"]):
                ef = {"ratio": r["ratio"], "setting": s["title"], "algorithm": r["algorithm"],
                      "gap_pt": 100 * r["acc_gap"]}
    fedavg_acc = max((r["acc_dense"] for r in comp_rows
                      if r["source"] == "fedavg truncated"), default=None)
    vs = None  # any compact model >= 2x faster than the dense model at <= 1 point below FedAvg
    for r in comp_rows:
        if fedavg_acc is None:
            break
        loss = fedavg_acc - r["acc_compact"]
        sp = r["timing"][big]["speedup"]
        if loss <= 0.01 and (vs is None or sp > vs["speedup"]):
            vs = {"policy": r["policy"], "source": r["source"], "speedup": sp,
                  "loss_pt": 100 * loss, "batch": big}
    return {"communication": comm,
            "computation": {"met": bool(comp and comp["speedup"] >= 2), **(comp or {})},
            "feddlr_ef": {"met": bool(ef and ef["ratio"] >= 5), **(ef or {})},
            "compact_vs_fedavg": {"met": bool(vs and vs["speedup"] >= 2), **(vs or {})}}


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Labels of the points ``(label, total_mb, acc)`` no other point dominates.

    A point dominates another if it sends no more bytes and is at least as accurate,
    and is strictly better in one of the two. Returned in increasing bytes.
    """
    front = []
    for label, mb, acc in points:
        dominated = any((m2 <= mb and a2 >= acc) and (m2 < mb or a2 > acc)
                        for l2, m2, a2 in points if l2 != label)
        if not dominated:
            front.append((mb, label))
    return [label for _, label in sorted(front)]


def _dominates(a: dict, b: dict) -> bool:
    return (a["total_mb"] <= b["total_mb"] and a["acc_mean"] >= b["acc_mean"]
            and (a["total_mb"] < b["total_mb"] or a["acc_mean"] > b["acc_mean"]))


def _named(row: dict) -> str:
    """A row's algorithm, saying when its numbers rest on fewer seeds (some diverged)."""
    n = len(row.get("diverged") or [])
    return row["algorithm"] + (f" [{n} seed{'s' if n > 1 else ''} diverged: mean of the rest]"
                               if n else "")


def verdicts(results: dict) -> list[dict]:
    """One verdict per claim of the paper and per setting, from the measured rows.

    Communication: in each setting that ran the low-rank state of the art (FedHM, FedLMT,
    FedPara, FedMUD), FedDLR (or FedDLR-EF) *beats* it if every state-of-the-art row is
    dominated (no more bytes, no less accuracy) by one of its rows, *loses* if every one
    of its rows is dominated by a state-of-the-art row, and is *mixed* otherwise.
    Computation: at each policy, FedDLR's compact model against FedHM's and FedLMT's
    natively factorized models of the same rank (accuracy and multiply-adds): *beats* if
    it is at least as accurate and as cheap as each, and strictly better in one; *ties*
    if neither is better than the other.
    """
    out = []
    for s in results["communication"]:
        ran = [r for r in s["rows"] if math.isfinite(r["acc_mean"])]  # not all diverged
        sota = [r for r in ran if _family(r["algorithm"]) in SOTA]
        if not sota:
            continue
        for fam in ("feddlr", "feddlr_ef"):
            ours = [r for r in ran if _family(r["algorithm"]) == fam
                    and r["ratio"] > 1.0 + 1e-9]
            if not ours:
                continue
            beaten = [_named(t) for t in sota if any(_dominates(o, t) for o in ours)]
            lost = [_named(o) for o in ours if any(_dominates(t, o) for t in sota)]
            verdict = ("beats" if len(beaten) == len(sota) else
                       "loses" if len(lost) == len(ours) else "mixed")
            out.append({"claim": "communication", "setting": s["title"], "method": fam,
                        "verdict": verdict,
                        "evidence": f"dominates {len(beaten)}/{len(sota)} SOTA rows "
                                    f"({', '.join(beaten) or 'none'}); {len(lost)}/{len(ours)} "
                                    f"of its rows dominated ({', '.join(lost) or 'none'})"})
    comp = (results.get("computation") or {}).get("rows", [])
    for pol in dict.fromkeys(r["policy"] for r in comp):
        rows = {r["source"]: r for r in comp if r["policy"] == pol}
        ours, natives = rows.get("feddlr"), [rows[k] for k in rows if k.endswith("(native)")]
        if ours is None or not natives:
            continue
        def better(a: dict, b: dict) -> bool:  # as accurate, as cheap, strictly one
            return (a["acc_compact"] >= b["acc_compact"]
                    and a["flops_compact"] <= b["flops_compact"]
                    and (a["acc_compact"] > b["acc_compact"]
                         or a["flops_compact"] < b["flops_compact"]))

        wins = [n["source"] for n in natives if better(ours, n)]
        losses = [n["source"] for n in natives if better(n, ours)]
        verdict = ("beats" if len(wins) == len(natives) else
                   "loses" if len(losses) == len(natives) else
                   "ties" if not wins and not losses else "mixed")
        out.append({"claim": "computation", "setting": f"MLP compact model, {pol}",
                    "method": "feddlr", "verdict": verdict,
                    "evidence": f"FedDLR compact acc {ours['acc_compact']:.4f}, "
                                f"{ours['flops_compact']:,} MACs; " + "; ".join(
                                    f"{n['source']} {n['acc_compact']:.4f}, "
                                    f"{n['flops_compact']:,} MACs" for n in natives)})
    return out


def hyperparams_table(h: dict) -> str:
    """Experiment 5: every cell of the equal-budget grid, best cell of each method marked."""
    headers = ["method", "knob", "lr", "final acc (mean ± std)", "total MB", "best?"]
    def acc(r: dict) -> str:
        a = (f"{r['acc_mean']:.4f} ± {r['acc_std']:.4f}" if math.isfinite(r["acc_mean"])
             else "diverged")
        return a + (f" ({r['diverged']} seed(s) diverged at lr {format_lrs(lr_tries(r['lr']))}, "
                    "excluded)" if r.get("diverged") else "")

    rows = [[r["method"], r["knob"], f"{r['lr']:g}", acc(r), _f(r['total_mb'], '.1f'),
             "**best**" if h["best"].get(r["method"]) is r
             or h["best"].get(r["method"]) == r else ""] for r in h["rows"]]
    return _md(rows, headers)


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_setting(setting: dict, x: str = "round", ax: Axes | None = None,
                 legend: bool = True) -> tuple[Figure, Axes, dict[str, dict[str, list]]]:
    """Mean test accuracy of every algorithm of one setting, with the target line.

    Parameters
    ----------
    setting : dict
        One entry of ``results["communication"]`` (its ``curves`` and ``target``).
    x : {"round", "mb"}
        Horizontal axis: round, or cumulative MB sent (log scale).
    ax : Axes, optional
        Where to draw; a new figure if omitted.
    legend : bool, default True
        Draw the legend.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        Label -> ``{"x": [...], "accuracy": [...]}``, the plotted points.
    """
    if x not in ("round", "mb"):
        raise ValueError(f"x: expected 'round' or 'mb', got {x!r}")
    fig, ax = _axes(ax, (5.5, 3.8))
    data = {}
    for label, c in setting["curves"].items():
        ls = "-" if label.startswith(("fedavg", "feddlr ")) else "--"
        xs = c["round"] if x == "round" else c["cumulative_mb"]
        ax.plot(xs, c["accuracy"], ls, label=label, lw=1.2)
        data[label] = {"x": list(xs), "accuracy": list(c["accuracy"])}
    ax.axhline(setting["target"], color="grey", lw=0.8, ls=":")
    ax.set_ylabel("test accuracy (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.set_ylim(max(0.0, setting["target"] - 0.4), 1.0)
    if x == "round":
        ax.set_xlabel("round")
    else:
        ax.set_xlabel("cumulative MB (up + down, all clients)")
        ax.set_xscale("log")
    if legend:
        ax.legend(fontsize=7, loc="lower right")
    return fig, ax, data


def plot_pareto(setting: dict, ax: Axes | None = None
                ) -> tuple[Figure, Axes, dict[str, tuple[float, float]]]:
    """Final accuracy against total MB of every algorithm of a setting, Pareto front drawn.

    Parameters
    ----------
    setting : dict
        One entry of ``results["communication"]`` (its ``rows``).
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        Label -> ``(total_mb, acc_mean)``, the plotted points (the front is
        :func:`pareto_front` of them).
    """
    fig, ax = _axes(ax, (6.5, 4.2))
    markers = {"feddlr": "o", "feddlr_ef": "s", "other": "x", **dict.fromkeys(SOTA, "^")}
    data = {}
    for r in setting["rows"]:
        if not math.isfinite(r["acc_mean"]):  # every seed diverged: nothing to plot
            continue
        fam = _family(r["algorithm"])
        ax.errorbar(r["total_mb"], r["acc_mean"], yerr=r["acc_std"], fmt=markers[fam],
                    ms=5, capsize=2, label=r["algorithm"])
        data[r["algorithm"]] = (r["total_mb"], r["acc_mean"])
    front = pareto_front([(k, mb, a) for k, (mb, a) in data.items()])
    ax.plot([data[k][0] for k in front], [data[k][1] for k in front], "k:", lw=1,
            label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("total MB (up + down, all clients)")
    ax.set_ylabel("final test accuracy (mean ± std)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right", ncol=2)
    return fig, ax, data


def plot_policies(policy: dict, ax: Axes | None = None
                  ) -> tuple[Figure, Axes, dict[str, tuple[float, float]]]:
    """Final accuracy against total MB, one point per rank policy.

    Parameters
    ----------
    policy : dict
        ``results["parameters"]["policy"]`` (its ``rows``).
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        Row label -> ``(total_mb, acc_mean)``, the plotted points.
    """
    fig, ax = _axes(ax, (4.0, 3.6))
    data = {}
    for r in policy["rows"]:
        kind = r["policy"].split(":")[0]
        ax.scatter(r["total_mb"], r["acc_mean"],
                   marker={"-": "*", "ratio": "o", "fixed": "s"}.get(kind, "^"))
        ax.annotate(r["label"].replace("feddlr ", ""), (r["total_mb"], r["acc_mean"]),
                    fontsize=6)
        data[r["label"]] = (r["total_mb"], r["acc_mean"])
    ax.set_xlabel("total MB")
    ax.set_ylabel("final accuracy")
    ax.set_xscale("log")
    ax.set_title("rank policy")
    ax.grid(alpha=0.3)
    return fig, ax, data


def plot_paired(rows: list[dict], key: str, title: str = "", ax: Axes | None = None
                ) -> tuple[Figure, Axes, dict[str, list]]:
    """FedAvg and FedDLR final accuracy (mean ± std) for each value of one parameter.

    Parameters
    ----------
    rows : list of dict
        ``results["parameters"][...]["rows"]``.
    key : str
        The parameter's column: ``"E"``, ``"N,K"`` or ``"alpha"``.
    title : str
        Axes title.
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        ``ticks`` (the parameter values as labels), ``fedavg``, ``fedavg_std``,
        ``feddlr``, ``feddlr_std``: the plotted values, one per row.
    """
    fig, ax = _axes(ax, (4.0, 3.6))
    xs = list(range(len(rows)))
    data = {"ticks": [("IID" if r[key] is None else
                       (f"{r[key][0]},{r[key][1]}" if isinstance(r[key], list | tuple)
                        else f"{r[key]:g}")) for r in rows]}
    for name, marker, label in (("fedavg", "o", "fedavg"), ("feddlr", "s", "feddlr ratio:0.25")):
        data[name] = [r[f"{name}_acc"] for r in rows]
        data[f"{name}_std"] = [r[f"{name}_std"] for r in rows]
        ax.errorbar(xs, data[name], data[f"{name}_std"], marker=marker, label=label, capsize=3)
    ax.set_xticks(xs, data["ticks"])
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig, ax, data


def plot_convex_floors(convex: dict, ax: Axes | None = None
                       ) -> tuple[Figure, Axes, dict[int, dict[str, Any]]]:
    """Convex twin: measured ``||w_r - w*||^2`` per rank, dashed at the bound's floor.

    Parameters
    ----------
    convex : dict
        ``results["parameters"]["convex"]`` (its ``rows``).
    ax : Axes, optional
        Where to draw; a new figure if omitted.

    Returns
    -------
    fig : Figure
    ax : Axes
    data : dict
        Rank -> ``{"dist_sq": [...], "floor": float}``, the plotted curve and line.
    """
    fig, ax = _axes(ax, (6.5, 3.8))
    data = {}
    for r in convex["rows"]:
        line, = ax.plot(range(1, len(r["dist_curve"]) + 1), r["dist_curve"],
                        label=f"rank {r['rank']}")
        ax.axhline(r["floor_aposteriori"], color=line.get_color(), ls="--", lw=0.8)
        data[r["rank"]] = {"dist_sq": list(r["dist_curve"]), "floor": r["floor_aposteriori"]}
    ax.set_yscale("log")
    ax.set_xlabel("round")
    ax.set_ylabel("‖w_r − w*‖² (mean over seeds); dashed: bound's floor")
    ax.set_title("convex twin: logistic regression")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig, ax, data


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def write_figures(results: dict, out: Path) -> list[Path]:
    """One PNG per communication setting, ``parameters.png`` and ``convex_floors.png``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in results["communication"]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
        plot_setting(s, "round", ax=axes[0], legend=False)
        plot_setting(s, "mb", ax=axes[1])
        fig.suptitle(s["title"] + f", {len(s['seeds'])} seeds")
        paths.append(_save(fig, out / f"comm_{s['name']}.png"))
        fig, _, _ = plot_pareto(s)
        fig.suptitle(s["title"])
        paths.append(_save(fig, out / f"pareto_{s['name']}.png"))
    par = results.get("parameters")
    if not par:  # a partial report (python -m experiments --partial)
        return paths
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    plot_policies(par["policy"], ax=axes[0])
    for ax, key, title in ((axes[1], "E", "local steps E"), (axes[2], "NK", "clients N, K"),
                           (axes[3], "alpha", "Dirichlet alpha (right: IID)")):
        name = {"E": "E", "NK": "N,K", "alpha": "alpha"}[key]
        plot_paired(par[key]["rows"], name, title, ax=ax)
    paths.append(_save(fig, out / "parameters.png"))
    fig, _, _ = plot_convex_floors(par["convex"])
    paths.append(_save(fig, out / "convex_floors.png"))
    return paths


def _parameters_section(par: dict, c: dict, figures_rel: str) -> list[str]:
    """Section 2 of the report: the key parameters and the convex twin."""
    pol = par["policy"]
    return ["## 2. Key parameters", "",
          f"MLP, Dirichlet(1.0), 100 clients, K = 20, E = 10, {par['base']['rounds']} rounds, "
          f"seeds {par['seeds']}; FedDLR uses ratio:0.25 on both links unless the row says "
          "otherwise.", "",
          "### Rank policy (threshold)", "", policy_table(pol), "",
          f"Theory (§5-6): the error floor increases with the a-priori error q² of the "
          f"policies, so accuracy should fall as q² grows. Spearman correlation of q² with "
          f"the accuracy drop: **{_f(pol['spearman_q2_vs_acc_drop'], '.2f')}** (1 = same "
          f"order). Best policy under a byte budget of {pol['budget_mb']:.1f} MB (a quarter of "
          f"FedAvg's): measured **{pol['measured_best']}**, predicted (smallest q² that fits, "
          f"bytes from `theory.costs.round_bytes`) **{pol['predicted_best']}**.", "",
          "### Local steps E", "", paired_table(par["E"]["rows"], "E"), "",
          f"Theory: a model-compression error is amplified by 1/(1−ρ), ρ = (1−μη)^E, so the "
          f"FedAvg−FedDLR gap should shrink as E grows (while B grows with (E−1)²G²). Gap "
          f"decreasing in E: **{par['E']['gap_decreases']}** (Spearman E vs gap "
          f"{_f(par['E']['spearman_E_vs_gap'], '.2f')}).", "",
          "### Clients N and sampled K", "",
          paired_table(par["NK"]["rows"], "N,K", ("C_over_4E2G2",)), "",
          f"Theory (§4): partial participation adds C = (N−K)/(N−1)·4E²G²/K to B; a larger C "
          f"should lower accuracy. Spearman C vs FedAvg accuracy: "
          f"**{_f(par['NK']['spearman_C_vs_acc'], '.2f')}** (−1 = as predicted).", "",
          "### Non-IID level", "", paired_table(par["alpha"]["rows"], "alpha"), "",
          f"Theory: heterogeneity raises Γ and G², hence B and the floor: accuracy should rise "
          f"with alpha. Spearman alpha vs accuracy: FedAvg "
          f"**{_f(par['alpha']['spearman_alpha_vs_fedavg_acc'], '.2f')}**, FedDLR "
          f"**{_f(par['alpha']['spearman_alpha_vs_feddlr_acc'], '.2f')}** (1 = as predicted).",
          "", f"![parameters]({figures_rel}/parameters.png)", "",
          "### Convex twin: the bound's numbers against the runs", "",
          f"Multinomial logistic regression on the same digits features, "
          f"λ = {c['lam']}, 20 clients (Dirichlet 1.0), full participation, constant step "
          f"η = 1/(4L) = {c['eta']:.4f}, E = {c['E']}, B = 10, {c['rounds']} rounds, seeds "
          f"{c['seeds']}, float64. Constants: L = {c['L']:.3f} (Böhning), μ = λ, "
          f"Γ ≤ {c['Gamma']:.3g}, G² = {c['G2']:.3g} and max σ_k² = {c['sigma2_max']:.3g} "
          f"evaluated at w*, w_0 and the runs' final models (not a sup over every local "
          f"iterate: the numbers are indicative, not certified), B = {c['B']:.3g}, "
          f"ρ = {c['rho']:.4f}, ‖w*‖ = {c['w_star_norm']:.3f}, d_0 = {c['d0']:.3f}. "
          f"Errors e_s, e_c: RMS of the measured ones over the last half of the rounds. "
          f"Targets: the bound's d ≤ {c['target_pred_dist']:.3g} (1.1 × its largest "
          f"floor); the runs' ‖w−w*‖² ≤ {c['target_meas_dist_sq']:.3g} (10 × FedAvg's "
          f"measured floor). d_0² = {c['d0'] ** 2:.3g}"
          + (": every floor of the bound lies above d_0², so the bound is vacuous here "
             "(0 rounds to its own target, no guarantee below the starting distance)."
             if c.get("vacuous") else "."), "", convex_table(c), "",
          f"Cheapest candidate under a byte budget (FedAvg's bytes to its target): bound "
          f"**{c['best_pred']}**, runs **{c['best_measured']}**.", "",
          f"![convex]({figures_rel}/convex_floors.png)", ""]


def write_report(results: dict, path: Path, figures_rel: str, discussion: str) -> Path:
    meta, par = results["meta"], results.get("parameters")
    c = par["convex"] if par else None
    t = targets(results)
    tc, tp = t["communication"], t["computation"]
    target_rows = [
        ["FedDLR within 1 point of FedAvg with >= 5x fewer total bytes (one realistic setting)",
         "largest byte saving within 1 point: "
         + (f"{tc['ratio']:.2f}x ({tc['algorithm']}, {tc['setting']}, {tc['gap_pt']:+.2f} pt)"
            if "ratio" in tc else "none (every compressing FedDLR row loses > 1 point)")
         + (f"; best accuracy at >= 5x: {tc['at5_gap_pt']:+.2f} pt ({tc['at5_algorithm']}, "
            f"{tc['at5_ratio']:.2f}x, {tc['at5_setting']})" if "at5_gap_pt" in tc else ""),
         "yes" if tc["met"] else "**no**"],
        ["compact model >= 2x faster at <= 1 point loss",
         (f"best: {_f(tp.get('speedup'), '.2f')}x ({tp.get('policy')}, {tp.get('batch')}, "
          f"{_f(tp.get('loss_pt'), '.2f')} pt vs its dense model)"
          if results.get("computation") else "not measured in this report"),
         "yes" if tp["met"] else "**no**" if results.get("computation") else "-"]]
    te, tv = t["feddlr_ef"], t["compact_vs_fedavg"]
    target_rows += [
        ["FedDLR-EF (our extension) within 1 point of FedAvg at >= 5x fewer total bytes",
         (f"largest byte saving within 1 point: {te['ratio']:.2f}x ({te['algorithm']}, "
          f"{te['setting']}, {te['gap_pt']:+.2f} pt)" if "ratio" in te
          else "none (every FedDLR-EF row loses > 1 point)"),
         "yes" if te["met"] else "**no**"],
        ["a compact model >= 2x faster at <= 1 point below FedAvg's dense model",
         (f"best: {tv['speedup']:.2f}x ({tv['source']}, {tv['policy']}, {tv['batch']}, "
          f"{tv['loss_pt']:+.2f} pt below FedAvg)" if "speedup" in tv
          else "none within 1 point of FedAvg" if results.get("computation")
          else "not measured in this report"),
         "yes" if tv["met"] else "**no**" if results.get("computation") else "-"]]
    verdict_rows = [[v["claim"], v["setting"], v["method"], f"**{v['verdict']}**",
                     v["evidence"]] for v in verdicts(results)]
    L = ["# Results: FedDLR (reconstructed) on the data we have", "",
         "> Generated by `python -m experiments` (tables and figures); the discussion is "
         "`experiments/discussion.md`. The FedDLR paper's full text is not available to "
         "us: the algorithm is reconstructed from its abstract, and the theory is our own "
         "derivation (docs/theory.md), so nothing here reproduces a number *from* the paper.",
         "", "## How this was produced", "",
         f"- Command: `{meta['command']}` ({meta['grid']} mode), "
         + (f"total {meta['seconds'] / 60:.1f} min, " if math.isfinite(meta["seconds"]) else "")
         + f"{meta['runs']} simulator runs"
         + (f" ({meta['jobs']} processes)." if meta.get("jobs", 1) > 1 else "."),
         f"- Code: commit {meta.get('commit', 'unknown (not recorded)')}.",
         f"- Machine: {meta['machine']}.",
         f"- Software: {meta['software']}.", "",
         "## Targets", "",
         _md(target_rows, ["target", "measured", "met?"]), "",
         "## Verdicts on the paper's claims", "",
         "Does FedDLR (reconstructed), or FedDLR-EF (our extension), beat the low-rank "
         "state of the art (FedHM, FedLMT, FedPara, FedMUD)? Communication: 'beats' = "
         "every state-of-the-art row of the setting is dominated (no more bytes, no less "
         "accuracy) by one of its rows; 'loses' = every one of its compressing rows is "
         "dominated by a state-of-the-art row. Computation: FedDLR's compact model against "
         "FedHM's and FedLMT's natively factorized models of the same rank.", "",
         (_md(verdict_rows, ["claim", "setting", "method", "verdict", "evidence"])
          if verdict_rows else "(no setting ran the state of the art)"), "",
         discussion.strip(), "",
         "## 1. Communication efficiency", "",
         "100 clients, K = 20 sampled uniformly per round (scheme2), or, where the title says "
         "cross-silo, 20 clients all in every round; E = 10 local SGD steps of B = 10, lr 0.2 "
         "(CNN and MNIST-1D: 0.1), classifier layer always dense. Bytes count every "
         "participant's download and upload (float32 factors, dense tensors, top-k indices, "
         "bit-packed QSGD levels). `bytes ratio` = FedAvg's total / this run's total; "
         "`to-target ratio` = FedAvg's bytes to the target / this run's (only when every "
         "seed reached it).", ""]
    div = diverged_runs(results)
    L += ([f"**Diverged runs: {len(div)}.** A run that diverges is repeated at half, then a "
           "quarter of the learning rate (the same rule for every method, "
           "experiments/runner.py); these diverged at all three rates and are left out of "
           "their row's means (each is named in its row): " + "; ".join(div) + ".", ""]
          if div else ["No run diverged at all three learning rates it was tried at.", ""])
    for s in results["communication"]:
        L += [f"### {s['title']}", "", comm_table(s), "",
              f"![{s['title']}]({figures_rel}/comm_{s['name']}.png)", "",
              f"![Pareto: {s['title']}]({figures_rel}/pareto_{s['name']}.png)", ""]
    if meta.get("partial"):
        L.insert(L.index("## How this was produced") + 2,
                 f"- **Partial report**: {meta['partial']}. Sections, settings and rows "
                 "whose runs had not finished are left out; the run goes on and the same "
                 "command on the same folder completes it.")
    if par:
        L += _parameters_section(par, c, figures_rel)
    comp = results.get("computation")
    if comp:
        L += ["## 3. Computation: the exported compact model", "",
              f"MLP trained {comp['rounds']} rounds on {comp['partition']} data (100 clients, "
              f"K = 20, seed {comp['seed']}); export by `lowrank.factorize` through "
              f"`fl_sim.export.export_compact` with the server's policy (the classifier stays "
              f"dense); 'fedavg truncated' factorizes the FedAvg model with the same policy "
              f"after training. Timing: median of {comp['repeats']} interleaved forward passes "
              f"per model in one process, {comp['threads']} torch threads.", "",
              computation_table(comp), ""]
    if results.get("engines"):
        L += ["## 4. Simulator performance", "",
              "Workload of `benchmarks/bench_simulator.py`: digits IID, MLP 64-200-200-10, 100 "
              "clients, full participation, E = 10, B = 10, on the default config of "
              "this commit. docs/benchmarks.md holds the benchmark's own records (per "
              "component, idle machine, CPU clock); here the two engines are timed "
              "end to end, by wall clock, in this run:", "",
              engines_text(results["engines"]), ""]
    if results.get("hyperparams"):
        h = results["hyperparams"]
        L += ["## 5. Low-rank methods: one equal-budget hyperparameter grid per method", "",
              f"MLP, Dirichlet(1.0) digits, 100 clients, K = 20, {h['rounds']} rounds, seeds "
              f"{h['seeds']}; every method gets the same cells: its compression knob at the "
              f"same levels (FedPara: its parameter ratio γ, same count) × learning rates "
              f"{h['lrs']} (experiments/hyperparams.py). No hand tuning: the best cell is the "
              f"most accurate one.", "", hyperparams_table(h), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(L) + "\n")
    return path
