"""Command line: ``python -m fl_sim {run,compare,demo} ...``.

Every :class:`SimConfig` field is an option (``--local-steps 5``,
``--policy-up energy:0.9``); dict fields take JSON (``--model-kwargs '{"hidden": [64]}'``).
This module only parses arguments: runs are :func:`fl_sim.run`, presets
:mod:`fl_sim.presets`, tables and files :mod:`fl_sim.report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import SimConfig

__all__ = ["main"]


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


def _parser() -> argparse.ArgumentParser:
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fl_sim``."""
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes PNG files; it never opens a window
    from .demo import run_demo
    from .report import summary_table, write_outputs
    from .simulator import run

    args = _parser().parse_args(argv)
    if args.command == "demo":
        run_demo(Path(args.output_dir), rounds=args.rounds)
        return 0
    out = Path(args.output_dir or "runs/latest")
    if args.command == "run":
        configs = {args.algorithm: _config_from(args, output_dir=str(out))}
        name = args.algorithm
    else:
        configs = {a: _config_from(args, algorithm=a, output_dir=str(out / a))
                   for a in args.algorithms}
        name = "compare"
    histories = {label: run(cfg, progress=True).history for label, cfg in configs.items()}
    paths = write_outputs(histories, out, name)
    print(summary_table(histories, "fedavg" if "fedavg" in histories else None))
    print(f"\nwrote {len(paths)} files to {out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
