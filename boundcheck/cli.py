"""``python -m boundcheck check ...`` and ``python -m boundcheck grid ...``."""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from pathlib import Path

from fl_sim.json_file import write_json

from .check import check
from .problems import ridge_problem, synthetic_problem

__all__ = ["main"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=]+", "_", text).strip("_")[:120]


def _batch(text: str) -> int | None:
    if text == "full":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--batch-size: an integer or 'full', got {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m boundcheck",
                                 description="Check the FedDLR bound against simulator runs.")
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="one configuration: JSON report and PNG plot")
    c.add_argument("--problem", choices=("ridge", "synthetic"), default="ridge")
    c.add_argument("--max-samples-per-client", type=int, default=200,
                   help="synthetic: cap on client sizes (<= 50 makes clients equal)")
    c.add_argument("--lam", type=float, default=None,
                   help="L2 weight (default 0.1 ridge, 0.01 synthetic)")
    c.add_argument("--synthetic-size", default=None,
                   help="synthetic: clients,dim,classes,max samples per client (default "
                        "10,60,10 and --max-samples-per-client)")
    c.add_argument("--algorithm", default="feddlr",
                   choices=("fedavg", "feddlr", "feddlr_up", "feddlr_down", "feddlr_ef"))
    c.add_argument("--policy", default="energy:0.9", help="rank policy of both sides")
    c.add_argument("--policy-down", default=None)
    c.add_argument("--policy-up", default=None)
    c.add_argument("--local-steps", "-E", type=int, default=5)
    c.add_argument("--rounds", type=int, default=30)
    c.add_argument("--batch-size", type=_batch, default=5,
                   help="minibatch size (with replacement), or 'full' for full-batch GD")
    c.add_argument("--lr", type=float, default=None, help="constant step (default 1/(4L))")
    c.add_argument("--lr-schedule", choices=("constant", "li"), default="constant")
    c.add_argument("--participation", choices=("full", "scheme1", "scheme2"), default="full")
    c.add_argument("--clients-per-round", type=int, default=None)
    c.add_argument("--seeds", type=int, default=5)
    c.add_argument("--constants", choices=("round", "global", "ball"), default="round")
    c.add_argument("--drift", choices=("lemma3", "measured"), default="lemma3",
                   help="divergence term of Li et al.'s Lemma 1: their Lemma 3 (a-priori, "
                        "default) or measured at every local step (a-posteriori; full "
                        "participation only; docs/theory.md §11.1)")
    c.add_argument("--bound", choices=("li", "exact", "local"), default="li",
                   help="main bound: Li et al.'s recursion (default), the exact affine map "
                        "of ridge plus measured compression errors (docs/theory.md §12.3), or "
                        "local GD/SGD with the drift at the optimum (ridge or logistic, §13); "
                        "Li et al.'s is kept in the JSON either way")
    c.add_argument("--out", default="boundcheck_out", help="output folder")
    pr = sub.add_parser("predict", help="predictions from the theory alone vs runs")
    pr.add_argument("what", choices=("floors", "local-steps", "budget"),
                    help="floors: error floor per rank policy (docs/theory.md §12.4); "
                         "local-steps: FedAvg rounds to a target against E (§12.2, §12.5); "
                         "budget: the best policy under a byte budget (§12.4)")
    pr.add_argument("--budget-bytes", type=int, default=48000,
                    help="budget: bytes of both directions, all clients (full batch)")
    pr.add_argument("--predictor", choices=("auto", "exact", "linearised"), default="auto",
                    help="budget: the compressed map itself (exact; auto) or linearised at w* "
                         "(asymptotic for logistic; docs/theory.md §13.5)")
    pr.add_argument("--policies", default="none,fixed:1,fixed:2,fixed:3,energy:0.9,energy:0.99",
                    help="comma-separated rank policies of both sides ('none': FedAvg)")
    pr.add_argument("--local-steps", "-E", type=int, default=5, help="floors: E")
    pr.add_argument("--E-values", default="1,2,5,10,20", help="local-steps: the E compared")
    pr.add_argument("--target-sq", type=float, default=4e-3,
                    help="local-steps: target of E||w - w*||^2")
    pr.add_argument("--rounds", type=int, default=60)
    pr.add_argument("--batch-size", type=_batch, default=None,
                    help="minibatch size, or 'full' (default: full for floors, 5 for "
                         "local-steps)")
    pr.add_argument("--seeds", type=int, default=3)
    pr.add_argument("--problem", choices=("ridge", "synthetic"), default="ridge",
                    help="local-steps, budget: ridge or FedProx synthetic logistic (full "
                         "batch; docs/theory.md §12.5, §13.5)")
    pr.add_argument("--lam", type=float, default=None,
                    help="L2 weight (default 0.1 ridge, 0.5 synthetic)")
    pr.add_argument("--lr", type=float, default=None, help="constant step (default 1/(4L))")
    pr.add_argument("--synthetic-size", default="10,20,5,100",
                    help="synthetic: clients,dim,classes,max samples per client")
    pr.add_argument("--out", default="boundcheck_out", help="output folder")
    g = sub.add_parser("grid", help="the full validation grid: markdown table, JSON, plots")
    g.add_argument("--out", default="docs/figures/bounds")
    g.add_argument("--seeds", type=int, default=5)
    g.add_argument("--quick", action="store_true", help="tiny problems and rounds (smoke test)")
    g.add_argument("--no-floors", action="store_true")
    return ap


def _cmd_check(a) -> int:
    from .plots import plot_report

    if a.problem == "ridge":
        prob = ridge_problem(lam=0.1 if a.lam is None else a.lam)
    elif a.synthetic_size is not None:
        n, dim, classes, cap = (int(v) for v in a.synthetic_size.split(","))
        prob = synthetic_problem(num_clients=n, dim=dim, num_classes=classes,
                                 max_samples_per_client=cap,
                                 lam=0.01 if a.lam is None else a.lam)
    else:
        prob = synthetic_problem(max_samples_per_client=a.max_samples_per_client,
                                 lam=0.01 if a.lam is None else a.lam)
    c = prob.convex
    kw = dict(algorithm=a.algorithm, policy_down=a.policy_down or a.policy,
              policy_up=a.policy_up or a.policy, local_steps=a.local_steps, rounds=a.rounds,
              batch_size=a.batch_size, participation=a.participation,
              clients_per_round=a.clients_per_round or (
                  None if a.participation == "full" else max(1, prob.num_clients // 2)))
    if a.lr_schedule == "li":
        kw.update(lr_schedule="li", lr_mu=c.mu, lr_gamma=max(8 * c.L / c.mu, a.local_steps))
    elif a.lr is not None:
        kw.update(lr=a.lr)
    rep = check(prob.config(**kw), prob, a.seeds, constants=a.constants, drift=a.drift,
                bound=a.bound)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = _slug(rep.label)
    rep.save_json(out / f"{stem}.json")
    fig, _, _ = plot_report(rep, other_drift=True)
    fig.savefig(out / f"{stem}.png", dpi=100, bbox_inches="tight")
    s = rep.summary()
    drift = "" if rep.constants["bound"] == "local" else f", drift {s['drift']}"  # Li's option
    print(f"{rep.label}\n  bound {rep.constants['bound']}{drift}: tightness "
          f"{s['tightness']:.3g}, max ratio "
          f"{s['max_ratio']:.3g}, min ratio (r>=1) {s['min_ratio_after_0']:.3g}, "
          f"holds: {s['holds']}\n"
          f"  wrote {out / (stem + '.json')} and .png")
    if rep.constants["bound"] == "local":
        print(f"  Li et al. on the same runs: max ratio {rep.constants['li_max_ratio']:.3g}, "
              f"last round {rep.constants['tightness_li']:.3g}")
    if rep.constants["bound"] == "exact":  # the FedAvg part is an expectation (§12.3)
        ok = rep.constants["exact"]["holds_within_3_standard_errors"]
        print(f"  holds within 3 standard errors of the seed mean and float64 rounding: {ok}")
        return 0 if ok else 1
    return 0 if rep.holds else 1


def _cmd_predict(a) -> int:
    import matplotlib.pyplot as plt
    import numpy as np

    from .predict import predict_budget, predict_floors, predict_local_steps

    if a.problem == "synthetic":
        if a.what == "floors":
            raise SystemExit("--problem synthetic: 'predict local-steps' or 'predict budget'")
        n, dim, classes, cap = (int(v) for v in a.synthetic_size.split(","))
        prob = synthetic_problem(num_clients=n, dim=dim, num_classes=classes,
                                 max_samples_per_client=cap,
                                 lam=0.5 if a.lam is None else a.lam)
    else:
        prob = ridge_problem(lam=0.1 if a.lam is None else a.lam)
    if a.what == "local-steps":
        Es = [int(e) for e in a.E_values.split(",")]
        if a.problem == "synthetic":
            batch = None
        else:
            batch = 5 if a.batch_size is None else a.batch_size
        res = predict_local_steps(prob, Es, a.target_sq, a.rounds, list(range(a.seeds)), batch,
                                  a.lr)
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = (f"predict_local_steps_b{batch}" if a.problem == "ridge"
                else f"predict_local_steps_{_slug(prob.name)}_full")
        write_json(out / f"{stem}.json", res.to_dict() | {
            "command": "python -m boundcheck predict " + " ".join(sys.argv[2:])})
        fig, ax = plt.subplots(figsize=(6, 3.5))
        big = a.rounds + 1
        ax.plot(Es, [big if r is None else r for r in res.predicted_rounds], "o-",
                label="predicted (exact theory)" if a.problem == "ridge"
                else "predicted (linearised at w*)")
        ax.plot(Es, [big if r is None else r for r in res.measured_rounds], "s--",
                label=f"measured (mean of {a.seeds} seeds)")
        ax.set_xscale("log")
        ax.set_xlabel("local steps E")
        ax.set_ylabel(f"rounds to E||w - w*||^2 <= {a.target_sq:g} (top: never)")
        ax.legend(fontsize=7)
        fig.savefig(out / f"{stem}.png", dpi=100, bbox_inches="tight")
        for E, p, m in zip(Es, res.predicted_rounds, res.measured_rounds, strict=True):
            print(f"E = {E:3d}: predicted rounds {p}, measured {m}")
        print(f"best E: predicted {res.predicted_best_E}, measured {res.measured_best_E}; "
              f"wrote {out / (stem + '.json')} and .png")
        return 0
    pols = [p.strip() for p in a.policies.split(",") if p.strip()]
    if a.what == "budget":
        res = predict_budget(prob, pols, a.budget_bytes, a.local_steps, list(range(a.seeds)),
                             a.predictor, a.lr)
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = f"predict_budget_{a.budget_bytes}B_E={a.local_steps}"
        if a.problem == "synthetic":
            stem += f"_{_slug(prob.name)}_{res.predictor}"
        write_json(out / f"{stem}.json", res.to_dict() | {
            "command": "python -m boundcheck predict " + " ".join(sys.argv[2:])})
        for pol, p, m, rp, rm_ in zip(pols, res.predicted_dist_sq, res.measured_dist_sq,
                                      res.predicted_rounds, res.measured_rounds, strict=True):
            print(f"{pol:>12}: predicted {p:.6g} after {rp:g} rounds, measured {m:.6g} after "
                  f"{rm_:g} rounds")
        print(f"best: predicted {res.predicted_best}, measured {res.measured_best}; bytes "
              f"match: {res.bytes_match}; wrote {out / (stem + '.json')}")
        return 0
    res = predict_floors(prob, pols, a.local_steps, a.rounds, list(range(a.seeds)),
                         a.batch_size)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    batch = "full" if a.batch_size is None else f"b{a.batch_size}"
    stem = f"predict_floors_E={a.local_steps}_{batch}"
    bounds = None
    if a.batch_size is None:  # the a-priori bound covers full batch (docs/theory.md §12.4)
        from .floors import floor_bounds
        bounds = floor_bounds(prob, pols, a.local_steps, a.rounds, list(range(a.seeds)))
    write_json(out / f"{stem}.json", res.to_dict() | {
        "bound": None if bounds is None else bounds.to_dict(),
        "command": "python -m boundcheck predict " + " ".join(sys.argv[2:])})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(pols))
    w = 0.4 if bounds is None else 0.27
    if bounds is not None:
        ax.bar(x - w, bounds.floor_bound, w, label="a-priori bound (§12.4)")
    ax.bar(x - (0.2 if bounds is None else 0.0), res.predicted, w,
           label="predicted (theory, before any run)")
    ax.bar(x + (0.2 if bounds is None else w), res.measured, w,
           label=f"measured (mean of {a.seeds} seeds)")
    ax.set_xticks(x, pols, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(r"floor of $E\|w - w^\star\|^2$")
    ax.set_title(f"ridge, E={a.local_steps}, batch {batch}, {a.rounds} rounds", fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(out / f"{stem}.png", dpi=100, bbox_inches="tight")
    for i, (pol, p, m, r) in enumerate(zip(pols, res.predicted, res.measured, res.ratio,
                                           strict=True)):
        b = "" if bounds is None else (f"bound {bounds.floor_bound[i]:.9g} "
                                       f"(bound/measured {bounds.ratio[i]:.9g}, basin "
                                       f"{bounds.basin_radius[i]:.3g}, entered at rounds "
                                       f"{bounds.entry_round[i]}), ")
        print(f"{pol:>12}: {b}predicted {p:.6g}, measured {m:.6g}, predicted/measured {r:.4g}")
    if bounds is not None:
        print(f"bound holds on every run: {bounds.holds}; same ordering (bound): "
              f"{bounds.same_ordering}")
    print(f"same ordering: {res.same_ordering}; wrote {out / (stem + '.json')} and .png")
    return 0


def _cmd_grid(a) -> int:
    import matplotlib.pyplot as plt
    import torch

    from fl_sim.report import code_version

    from .grid import markdown_table, row_holds, run_grid
    from .plots import plot_report

    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = out / "grid_progress.jsonl"
    if progress.exists():
        progress.unlink()
    res = run_grid(seeds=a.seeds, quick=a.quick, with_floors=not a.no_floors, save_each=out)
    table = markdown_table(res.reports)
    cmd = "python -m boundcheck grid " + " ".join(sys.argv[2:])
    machine = f"{platform.machine()}, {platform.processor() or platform.system()}, python " \
              f"{platform.python_version()}, torch {torch.__version__}"
    parts = [f"Command: `{cmd}`  ", f"Commit: {code_version()}  ",
             f"Machine: {machine}; {res.seconds / 60:.1f} min.", "", table, ""]
    if res.floors is not None:
        parts += ["FixedRank error floors (ridge, E=5, constant step 1/(4L)):", "",
                  res.floors.markdown(), ""]
    all_hold = all(row_holds(r) for r in res.reports)
    parts.append(f"All {len(res.reports)} checks hold (Li et al. strictly, exact within 3 "
                 f"standard errors): {all_hold}.")
    md = [r for r in res.reports if r.summary()["holds_measured_drift"] is not None]
    md_hold = all(r.summary()["holds_measured_drift"] for r in md)
    parts.append(f"With measured drift (full participation): all {len(md)} hold: {md_hold}.")
    all_hold = all_hold and md_hold
    (out / "table.md").write_text("\n".join(parts) + "\n")
    payload = {"reports": [r.summary() | {"config": r.config, "constants": {
        k: v for k, v in r.constants.items()
        if k not in ("B_rounds", "G2_rounds", "C_rounds", "divergence_steps")} | {
        k: {kk: vv for kk, vv in (r.constants.get(k) or {}).items() if kk != "bound_dist_sq"}
        or None for k in ("lemma3_drift", "measured_drift")}}
        for r in res.reports],
        "floors": None if res.floors is None else res.floors.to_dict(),
        "seconds": res.seconds, "machine": machine}
    write_json(out / "grid.json", payload)
    # a few plots: FedAvg and FedDLR at E=5 with full participation, per problem
    for rep in res.reports:
        cfg = rep.config
        if cfg["local_steps"] == 5 and cfg["participation"] == "full" and \
                cfg["lr_schedule"] == "constant" and (
                    cfg["algorithm"] == "fedavg" or cfg["policy_up"] == "fixed:2"):
            fig, _, _ = plot_report(rep, other_drift=True)
            fig.savefig(out / f"{_slug(rep.label)}.png", dpi=80, bbox_inches="tight")
            plt.close(fig)
    progress.unlink(missing_ok=True)
    print(f"wrote {out / 'table.md'}, {out / 'grid.json'} and plots; all hold: {all_hold}")
    return 0 if all_hold else 1


def main(argv: list[str] | None = None) -> int:
    from fl_sim.cli_errors import one_line_parser
    from fl_sim.output_dir import check_output_dir

    a = one_line_parser(_parser()).parse_args(argv)  # usage errors: one line (issue 11)
    check_output_dir(a.out, "--out")  # before any simulation: a bad folder costs nothing
    t = time.perf_counter()
    code = {"check": _cmd_check, "predict": _cmd_predict, "grid": _cmd_grid}[a.command](a)
    print(f"({time.perf_counter() - t:.1f}s)")
    return code
