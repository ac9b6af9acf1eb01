"""``python -m experiments [--quick] [--out FOLDER] [--report FILE] [--overwrite] [--jobs N]``.

Runs write to a fresh folder ``runs/experiments/<UTC time>`` by default; the committed
report is rebuilt only when asked explicitly
(``--out docs/results --report docs/results.md --overwrite``): an existing
``results.json`` is never replaced without ``--overwrite``. Output paths are checked
before anything runs; errors are one line (``fl_sim/cli_errors.py``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import time
from pathlib import Path

import torch

from fl_sim.cli_errors import OneLineParser, run_cli
from fl_sim.json_file import read_json, to_jsonable, write_json
from fl_sim.output_dir import check_output_dir
from fl_sim.report import code_version

from .computation import run_computation
from .engines import run_engines
from .parallel import stored_commits, untimed
from .parameters import convex_choices
from .report import targets, write_figures, write_report
from .runner import Runner
from .settings import FULL, QUICK

DISCUSSION = Path(__file__).with_name("discussion.md")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{os.cpu_count()} CPU cores ({cpu}, {platform.machine()}), {gpu}, "
            f"torch threads {torch.get_num_threads()}"
            + (f", load average at start {load[0]:.2f}" if load else ""))


def _fresh_run_folder() -> Path:
    """``runs/experiments/<UTC time>``, with a suffix if that folder exists already."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path("runs/experiments") / stamp
    folder, i = base, 1
    while folder.exists():
        folder, i = base.with_name(f"{stamp}-{i}"), i + 1
    return folder


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit code; errors are one line (``--debug``: traceback)."""
    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    ap = OneLineParser(prog="python -m experiments", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny grid for CI (structure only)")
    ap.add_argument("--out", type=Path, default=None,
                    help="folder for the figures and results.json (default: a fresh "
                         "runs/experiments/<UTC time>)")
    ap.add_argument("--report", type=Path, default=None,
                    help="markdown report (default: <out>/results.md)")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace an existing <out>/results.json (e.g. docs/results)")
    ap.add_argument("--no-flower", action="store_true", help="skip the Flower comparison")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--jobs", type=int, default=1,
                    help="processes for the untimed parts (settings, sweeps, grid); the "
                         "timed parts run afterwards, alone (experiments/parallel.py)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--rebuild", action="store_true",
                    help="no runs: rebuild figures and report from <out>/results.json")
    ap.add_argument("--partial", action="store_true",
                    help="no runs: a report from the parts a run (still going, or stopped) "
                         "stored in <out>/parts, labelled partial; no timed sections")
    ap.add_argument("--figures", type=Path, default=None,
                    help="with --partial: folder for the figures and partial.json "
                         "(default: <out>), e.g. docs/results for the committed report")
    args = ap.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads: expected >= 1, got {args.threads}")
    if args.jobs < 1:
        raise ValueError(f"--jobs: expected >= 1, got {args.jobs}")
    if args.rebuild and args.out is None:
        raise ValueError("--out: --rebuild needs the folder holding results.json")
    if args.partial and (args.out is None or not (args.out / "parts").is_dir()):
        raise ValueError("--out: --partial needs the folder of a run, holding parts/")
    args.out = args.out or _fresh_run_folder()
    if not (args.rebuild or args.partial) and (args.out / "results.json").exists() \
            and not args.overwrite:
        raise ValueError(f"--out: {args.out} already holds results.json; pass --overwrite to "
                         "replace it, or choose another folder")
    check_output_dir(args.out, "--out")  # before any run: a bad folder costs nothing
    if args.report is not None:
        check_output_dir(args.report.parent, "--report")
    import matplotlib

    matplotlib.use("Agg")  # files only; the entry point, not the library, picks the backend
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    grid = QUICK if args.quick else FULL
    report = args.report or args.out / "results.md"
    command = "python -m experiments " + shlex.join(argv)
    machine = _machine()
    if args.rebuild:
        return _rebuild(args.out, report, grid.name)
    if args.partial:
        return _partial(args, grid, report, command, machine)
    t0 = time.perf_counter()
    runner = Runner(verbose=not args.quiet)
    results = untimed(grid, runner, jobs=args.jobs, threads=args.threads,  # --jobs processes
                      cache=args.out / "parts")  # a stopped run resumes from <out>/parts
    results.pop("parts")
    results["computation"] = run_computation(grid, runner)  # timed: alone, in this process
    results["engines"] = run_engines(grid.bench_rounds, runner,
                                     flower=grid.flower and not args.no_flower)
    import numpy

    results["meta"] = {
        "command": command.strip(), "grid": grid.name, "seconds": time.perf_counter() - t0,
        "jobs": args.jobs,
        "runs": runner.runs, "machine": machine, "commit": code_version(),
        "software": f"python {platform.python_version()}, torch {torch.__version__}, "
                    f"numpy {numpy.__version__}, matplotlib {matplotlib.__version__}",
    }
    return _write(results, args.out, report, quick=args.quick)


def _write(results: dict, out: Path, report: Path, quick: bool) -> int:
    results["targets"] = targets(results)
    out.mkdir(parents=True, exist_ok=True)
    figures = write_figures(results, out)
    rel = os.path.relpath(out, report.parent)
    discussion = DISCUSSION.read_text() if DISCUSSION.exists() and not quick else \
        "## Discussion\n\n(quick mode: structure check only; numbers are not meaningful.)"
    write_report(results, report, rel, discussion)
    write_json(out / "results.json", results)
    print(f"\nwrote {report}, {out / 'results.json'} and {len(figures)} figures "
          f"(runs took {results['meta']['seconds'] / 60:.1f} min)")
    print(json.dumps(to_jsonable(results["targets"]), indent=1))
    return 0


def _partial(args, grid, report: Path, command: str, machine: str) -> int:
    """A report from the parts stored so far (``--partial``); results go to partial.json."""
    cache = args.out / "parts"
    results = untimed(grid, Runner(verbose=False), cache=cache, partial=True)
    import matplotlib
    import numpy

    commits = sorted(stored_commits(cache))
    results["meta"] = {
        "command": command.strip(), "grid": grid.name, "seconds": math.nan,
        "runs": sum(len(s["seeds"]) * len(s["rows"]) for s in results["communication"]),
        "machine": machine + " (when the report was assembled)",
        "commit": ", ".join(commits) or "unknown",
        "partial": f"{results.pop('parts')} parts of the {grid.name} grid had finished "
                   f"(stored in {cache}); the compact-model timing and the engines are "
                   "not run in a partial report",
        "software": f"python {platform.python_version()}, torch {torch.__version__}, "
                    f"numpy {numpy.__version__}, matplotlib {matplotlib.__version__}",
    }
    results["targets"] = targets(results)
    folder = args.figures or args.out
    check_output_dir(folder, "--figures")
    figures = write_figures(results, folder)
    discussion = DISCUSSION.read_text() if DISCUSSION.exists() else ""
    write_report(results, report, os.path.relpath(folder, report.parent), discussion)
    write_json(folder / "partial.json", results)
    print(f"wrote {report} and {len(figures)} figures from {results['meta']['partial']}")
    return 0


def _rebuild(out: Path, report: Path, grid: str) -> int:
    """Figures and report again from a stored results.json (e.g. after editing the text)."""
    results = read_json(out / "results.json")
    results["parameters"]["convex"] = convex_choices(results["parameters"]["convex"])
    return _write(results, out, report, quick=results["meta"]["grid"] == "quick")


if __name__ == "__main__":
    raise SystemExit(main())
