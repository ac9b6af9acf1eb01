"""Command line: ``python -m fl_sim {run,compare,demo} ...``.

Every :class:`SimConfig` field is an option (``--local-steps 5``,
``--policy-up energy:0.9``); dict fields take JSON (``--model-kwargs '{"hidden": [64]}'``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from .config import SimConfig
from .history import History

__all__ = ["main", "summary_table", "write_outputs"]


def _field_parser(tp: object):
    """argparse ``type`` for a dataclass field annotation (as a string or a type)."""
    text = str(tp)
    if "dict" in text:
        return json.loads
    if "bool" in text:
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    if "int" in text:
        return lambda s: None if s.lower() == "none" else int(s)
    if "float" in text:
        return lambda s: None if s.lower() == "none" else float(s)
    return lambda s: None if s.lower() == "none" else s


def _add_config_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    for f in dataclasses.fields(SimConfig):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name,
                            type=_field_parser(f.type), default=default,
                            help=f"(default: {default})")


def _config_from(args: argparse.Namespace, **overrides) -> SimConfig:
    names = {f.name for f in dataclasses.fields(SimConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return SimConfig(**values)


def summary_table(histories: dict[str, History], baseline: str | None = None) -> str:
    """Final accuracy, total bytes and the bytes ratio to a baseline, as text."""
    base = histories.get(baseline) if baseline else None
    base_bytes = base.cumulative_bytes[-1] if base else None
    lines = [f"{'algorithm':<16}{'final acc':>10}{'best acc':>10}{'up MB':>10}{'down MB':>10}"
             f"{'total MB':>10}{'bytes ratio':>13}"]
    for label, h in histories.items():
        acc = [a for a in h.column("test_accuracy") if a is not None]
        up, down = sum(h.column("bytes_up")), sum(h.column("bytes_down"))
        ratio = f"{base_bytes / (up + down):.2f}x" if base_bytes else "-"
        final = f"{acc[-1]:.4f}" if acc else "-"
        best = f"{max(acc):.4f}" if acc else "-"
        lines.append(f"{label:<16}{final:>10}{best:>10}{up / 1e6:>10.2f}{down / 1e6:>10.2f}"
                     f"{(up + down) / 1e6:>10.2f}{ratio:>13}")
    if base_bytes:
        lines.append(f"(bytes ratio = {baseline}'s total bytes / this run's total bytes)")
    return "\n".join(lines)


def write_outputs(histories: dict[str, History], out: Path, name: str = "compare") -> list[Path]:
    """Histories (JSON, CSV) and PNG plots into ``out``; returns the written paths."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plots import plot_compression_errors, plot_metric

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for label, h in histories.items():
        written += [h.save_json(out / f"{label}.history.json"),
                    h.save_csv(out / f"{label}.history.csv")]
    task_metric = "test_accuracy" if any(
        a is not None for h in histories.values() for a in h.column("test_accuracy")) \
        else "test_loss"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    plot_metric(histories, task_metric, "round", ax=axes[0])
    plot_metric(histories, task_metric, "bytes", ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / f"{name}_{task_metric}.png", dpi=110)
    written.append(out / f"{name}_{task_metric}.png")
    plt.close(fig)
    for label, h in histories.items():
        if any(h.column("err_server")) or any(h.column("err_client")):
            fig, _ = plot_compression_errors(h)
            fig.savefig(out / f"{label}_compression_errors.png", dpi=110)
            written.append(out / f"{label}_compression_errors.png")
            plt.close(fig)
    return written


def _run_many(configs: dict[str, SimConfig]) -> dict[str, History]:
    from .simulator import run

    return {label: run(cfg, progress=True) for label, cfg in configs.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fl_sim``."""
    parser = argparse.ArgumentParser(prog="python -m fl_sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run one algorithm and write its history and plots")
    _add_config_options(p_run)
    p_cmp = sub.add_parser("compare", help="run several algorithms on one setting")
    p_cmp.add_argument("--algorithms", nargs="+", default=["fedavg", "feddlr"])
    _add_config_options(p_cmp, skip=("algorithm",))
    p_demo = sub.add_parser("demo", help="FedAvg vs FedDLR on digits, non-IID (a few minutes)")
    p_demo.add_argument("--output-dir", default="runs/demo")
    p_demo.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import run_demo

        run_demo(Path(args.output_dir), rounds=args.rounds)
        return 0
    out = Path(args.output_dir or "runs/latest")
    if args.command == "run":
        cfg = _config_from(args, output_dir=str(out))
        histories = _run_many({cfg.algorithm: cfg})
        name = cfg.algorithm
    else:
        histories = _run_many({a: _config_from(args, algorithm=a, output_dir=str(out / a))
                               for a in args.algorithms})
        name = "compare"
    paths = write_outputs(histories, out, name)
    baseline = "fedavg" if "fedavg" in histories else None
    print(summary_table(histories, baseline))
    print(f"\nwrote {len(paths)} files to {out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
