"""Command line: ``python -m fl_sim {run,compare,demo} ...``.

Every :class:`SimConfig` field is an option (``--local-steps 5``,
``--policy-up energy:0.9``); dict fields take JSON (``--model-kwargs '{"hidden": [64]}'``).
This module only parses arguments: runs are :func:`fl_sim.run`, presets
:mod:`fl_sim.presets`, tables and files :mod:`fl_sim.report`.

Nothing is lost: the output folder is checked before anything runs; each finished
round is on disk (``<output-dir>/history.jsonl``) before the next starts; after Ctrl-C
or a failure the finished rounds are written as the usual outputs and
``--resume-from <output-dir>`` continues bit-identically. Errors are one line on stderr
(exit 2 for bad input, 1 for a failed run, 130 when interrupted); ``--debug`` adds the
traceback (``fl_sim/cli_errors.py``, ``docs/reliability.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .cli_errors import OneLineParser, error_line, run_cli
from .config import SimConfig
from .history import JOURNAL_NAME, History
from .output_dir import check_output_dir

__all__ = ["add_config_options", "config_from_args", "main"]

_PATH_FIELDS = ("output_dir", "data_dir")  # taken verbatim (a folder may be named "none")


def _none_or(convert: Callable[[str], object], expected: str, optional: bool):
    def parse(text: str) -> object:
        if optional and text.lower() == "none":
            return None
        try:
            return convert(text)
        except (ValueError, TypeError, json.JSONDecodeError):
            raise argparse.ArgumentTypeError(
                f"expected {expected}{' or none' if optional else ''}, got {text!r}") from None

    return parse


def _bool(text: str) -> bool:
    value = {"1": True, "true": True, "yes": True, "on": True,
             "0": False, "false": False, "no": False, "off": False}.get(text.lower())
    if value is None:
        raise ValueError(text)
    return value


def _json_object(text: str) -> dict:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(text)
    return value


def _field_parser(name: str, tp: object) -> Callable[[str], object]:
    """argparse ``type`` for a dataclass field annotation (as a string or a type)."""
    text = str(tp)
    optional = "None" in text.replace("str | None]", "]")  # dict[str, str | None] is not
    if name in _PATH_FIELDS:
        return str
    if text.startswith("dict"):
        return _none_or(_json_object, 'a JSON object such as \'{"hidden": [64]}\'', False)
    if "bool" in text:
        return _none_or(_bool, "true or false", optional)
    if "int" in text:
        return _none_or(int, "an integer", optional)
    if "float" in text:
        return _none_or(float, "a number", optional)
    return _none_or(str, "a string", optional)


def add_config_options(parser: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Add one ``--option`` per :class:`SimConfig` field (``fl_sim.flower`` reuses them).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The (sub)command's parser.
    skip : sequence of str
        Field names not to offer (e.g. ``algorithm`` for ``compare``).
    """
    for f in dataclasses.fields(SimConfig):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name,
                            type=_field_parser(f.name, f.type), default=default,
                            help=f"(default: {default})")


def config_from_args(args: argparse.Namespace, **overrides) -> SimConfig:
    """The :class:`SimConfig` of parsed options, with ``overrides`` applied (validated).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed by a parser that :func:`add_config_options` filled.
    **overrides
        Fields set by the command itself (``output_dir``, ``algorithm``).

    Returns
    -------
    SimConfig
    """
    names = {f.name for f in dataclasses.fields(SimConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values.update(overrides)
    return SimConfig(**values)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m fl_sim", description=__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog="--debug (anywhere): print the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run one algorithm and write its history and plots")
    add_config_options(p_run)
    p_cmp = sub.add_parser("compare", help="run several algorithms on one setting")
    p_cmp.add_argument("--algorithms", nargs="+", default=["fedavg", "feddlr"])
    add_config_options(p_cmp, skip=("algorithm",))
    for p in (p_run, p_cmp):
        p.add_argument("--resume-from", default=None, metavar="PATH",
                       help="continue from a checkpoint file or an output folder holding "
                            "checkpoint.pt (compare: a folder with one subfolder per "
                            "algorithm); written when a run stops early or by "
                            "--checkpoint-every")
    p_demo = sub.add_parser("demo", help="FedAvg vs FedDLR on digits, non-IID (a few minutes)")
    p_demo.add_argument("--output-dir", default="runs/demo")
    p_demo.add_argument("--rounds", type=_none_or(int, "an integer", True), default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fl_sim``: returns the exit code (errors as one line)."""
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes PNG files; it never opens a window
    if args.command == "demo":
        from .demo import run_demo

        run_demo(check_output_dir(args.output_dir, "--output-dir"), rounds=args.rounds)
        return 0
    out = Path(args.output_dir or "runs/latest")
    if args.command == "run":
        configs = {args.algorithm: config_from_args(args, output_dir=str(out))}
        name = args.algorithm
    else:
        configs = {a: config_from_args(args, algorithm=a, output_dir=str(out / a))
                   for a in args.algorithms}
        name = "compare"
    check_output_dir(out, "--output-dir")  # every config is valid and out is writable:
    return _run_all(configs, out, name, args.resume_from, argv)  # only now does work start


def _resume_path(resume_from: str | None, label: str, single: bool) -> Path | None:
    if resume_from is None:
        return None
    path = Path(resume_from)
    if single:
        if not path.exists():
            raise FileNotFoundError(f"--resume-from: no checkpoint at {path}")
        return path
    own = path / label / "checkpoint.pt"
    return own if own.is_file() else None  # compare: an algorithm without one starts afresh


def _run_all(configs: dict[str, SimConfig], out: Path, name: str, resume_from: str | None,
             argv: list[str]) -> int:
    from .report import summary_table, write_outputs
    from .simulator import run

    histories: dict[str, History] = {}
    failures: list[str] = []
    for label, cfg in configs.items():
        try:
            start = _resume_path(resume_from, label, single=name != "compare")
            histories[label] = run(cfg, progress=True, resume_from=start).history
            histories[label].save_json(out / f"{label}.history.json")  # kept whatever follows
        except KeyboardInterrupt:
            done = _salvage(histories, label, cfg)
            if histories:
                write_outputs(histories, out, name)
            raise KeyboardInterrupt(
                f"{label} stopped after round {done} of {cfg.rounds}; the finished rounds are "
                f"in {out}/; resume with: {_resume_command(argv, out)}") from None
        except Exception as exc:
            if name != "compare":
                done = _salvage(histories, label, cfg)
                if done:
                    write_outputs(histories, out, name)
                    print(f"{label} stopped after round {done} of {cfg.rounds}; the finished "
                          f"rounds are in {out}/ (resume with --resume-from {out})")
                raise
            failures.append(f"{label} ({error_line(exc).removeprefix('error: ')})")
            _salvage(histories, label, cfg)
    paths = write_outputs(histories, out, name) if histories else []
    print(summary_table(histories, "fedavg" if "fedavg" in histories else None))
    print(f"\nwrote {len(paths)} files to {out}/")
    if failures:
        raise RuntimeError(f"compare: {len(failures)} of {len(configs)} algorithms failed, "
                           f"the others' outputs are in {out}/: {'; '.join(failures)}")
    return 0


def _salvage(histories: dict[str, History], label: str, cfg: SimConfig) -> int:
    """Put the finished rounds of a stopped run (its journal) into ``histories``."""
    journal = Path(cfg.output_dir) / JOURNAL_NAME
    if not journal.is_file():
        return 0
    history = History.load_jsonl(journal)
    if history.records:
        histories[label] = history
    return len(history.records)


def _resume_command(argv: list[str], out: Path) -> str:
    """The same command with ``--resume-from out`` (replacing any earlier one)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--resume-from":
            skip = True
            continue
        if a.startswith("--resume-from="):
            continue
        kept.append(a)
    return "python -m fl_sim " + shlex.join([*kept, "--resume-from", str(out)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
