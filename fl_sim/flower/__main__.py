"""``python -m fl_sim.flower {simulate,deploy} ...``: fl_sim's run on Flower.

Every option of ``python -m fl_sim run`` (every :class:`~fl_sim.SimConfig` field),
plus the Flower layer's own: ``--round-timeout``, ``--connect-timeout``,
``--min-replies``, and
``--num-cpus-per-client`` (simulate) or ``--supernodes`` (deploy). Writes what
``python -m fl_sim run`` writes (``<algorithm>.history.json``, CSV, plots) and
``<algorithm>.flower.json``, the wire ledger, then prints both summaries. Errors
follow the project's contract (:mod:`fl_sim.cli_errors`): one line, exit 2 for bad
input, 1 for a failed run, 130 on Ctrl-C (after every started process is ended).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import FLOWER_MISSING, flower_available

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from ..cli import add_config_options  # the same options as `python -m fl_sim run`
    from ..cli_errors import OneLineParser
    from .run_config import FlowerOptions

    defaults = FlowerOptions()
    parser = OneLineParser(prog="python -m fl_sim.flower", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_sim = sub.add_parser("simulate", help="Flower's simulation engine (Ray), one process")
    p_dep = sub.add_parser("deploy", help="one SuperLink and N SuperNodes on 127.0.0.1")
    p_sim.add_argument("--num-cpus-per-client", type=float, default=1.0,
                       help="Ray CPUs per ClientApp (default: 1.0)")
    p_dep.add_argument("--supernodes", type=int, required=True,
                       help="SuperNode processes; client k is served by node k mod N")
    p_dep.add_argument("--startup-timeout", type=float, default=120.0,
                       help="seconds to wait for the SuperLink to listen (default: 120)")
    for p in (p_sim, p_dep):
        p.add_argument("--round-timeout", type=float, default=defaults.round_timeout,
                       help=f"seconds to wait for a round's replies "
                            f"(default: {defaults.round_timeout:g})")
        p.add_argument("--connect-timeout", type=float, default=defaults.connect_timeout,
                       help=f"seconds to wait for the nodes of every client to connect "
                            f"(default: {defaults.connect_timeout:g})")
        p.add_argument("--min-replies", type=int, default=defaults.min_replies,
                       help=f"fewest replies a round may aggregate "
                            f"(default: {defaults.min_replies})")
        add_config_options(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fl_sim.flower``: returns the exit code (errors as one line)."""
    if not flower_available():
        print(f"error: {FLOWER_MISSING}", file=sys.stderr)
        return 2
    from ..cli_errors import run_cli

    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes PNG files; it never opens a window
    from ..cli import config_from_args
    from ..output_dir import check_output_dir
    from ..report import summary_table, write_outputs
    from .ledger import ledger_table
    from .run_config import FlowerOptions

    out = Path(args.output_dir or "runs/latest").resolve()
    cfg = config_from_args(args, output_dir=str(out))
    options = FlowerOptions(round_timeout=args.round_timeout, min_replies=args.min_replies,
                            connect_timeout=args.connect_timeout)
    check_output_dir(out, "--output-dir")  # only now does work start
    if args.command == "simulate":
        from .simulation import simulate

        history, ledger = simulate(cfg, options, num_cpus_per_client=args.num_cpus_per_client)
    else:
        from .deployment import deploy

        history, ledger = deploy(cfg, options, supernodes=args.supernodes,
                                 startup_timeout=args.startup_timeout)
    paths = write_outputs({cfg.algorithm: history}, out, cfg.algorithm)
    print(summary_table({cfg.algorithm: history}))
    print()
    print(ledger_table(ledger))
    print(f"\nwrote {len(paths) + 1} files to {out}/")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
