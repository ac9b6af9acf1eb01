"""Student and solution notebooks from one jupytext source, and the checks of both.

The exercise convention (``docs/course/exercises.md``): in a jupytext percent source
(``notebooks/NN_name.py``) an exercise is a markdown cell with the task, then ONE code
cell ``# %% tags=["exercise"]`` whose reference answer sits between a line
``# BEGIN SOLUTION`` and a line ``# END SOLUTION`` (the nbgrader / otter-grader markers),
then ONE code cell ``# %% tags=["check"]`` with asserts that fail while the exercise is
unsolved. An optional line ``# HINT: <text>`` right above ``# BEGIN SOLUTION`` is kept in
both versions and becomes the student's error message.

Commands (``python -m tools.course --help``)::

    python -m tools.course solutions --out build/course/solutions notebooks/0*.py
    python -m tools.course student   --out build/course/student   notebooks/0*.py
    python -m tools.course check notebooks/0*.py       # every check fails unsolved
    python -m tools.course times build/course/solutions/*.ipynb   # run time of each
    python -m tools.course browser build/site --shots runs/ci/TIME   # headless Chromium

``site_reads`` is the reader the Sphinx site (``docs/conf.py``) uses for the sources: the
solution version, with the outputs of an executed copy under ``build/course/solutions``
when its cells are the same (so CI executes each notebook once, not once more for the site).
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

ROOT = Path(__file__).resolve().parent.parent
EXECUTED_DIR = ROOT / "build" / "course" / "solutions"
BEGIN = re.compile(r"^(?P<indent>\s*)#+\s*BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*#+\s*END SOLUTION\s*$")
HINT = re.compile(r"^\s*#\s*HINT:\s*(?P<hint>.+?)\s*$", re.IGNORECASE)
DEFAULT_HINT = "exercise: replace this line by your solution"
EXERCISE, CHECK = "exercise", "check"
MIN_EXERCISES, MAX_EXERCISES = 2, 4
CELL_TIMEOUT_S = 240


class ConventionError(ValueError):
    """A source that breaks the exercise convention (one line: file and cell)."""


# --------------------------------------------------------------------------- reading


def read_source(path: str | Path) -> NotebookNode:
    """Read a jupytext percent source (or an ``.ipynb``) as a notebook.

    Parameters
    ----------
    path : str or pathlib.Path
        ``notebooks/NN_name.py`` (or ``.ipynb``).

    Returns
    -------
    nbformat.NotebookNode
        The notebook, cells without outputs for a ``.py`` source.
    """
    import jupytext

    return jupytext.read(str(path))


def tags(cell: NotebookNode) -> set[str]:
    """The tags of a cell (``# %% tags=["exercise"]`` in the source)."""
    return set(cell.get("metadata", {}).get("tags", []))


def _where(name: str, index: int) -> str:
    return f"{name}: cell {index}"


# --------------------------------------------------------------------------- the two versions


def _convert_cell(source: str, where: str, student: bool) -> tuple[str, int]:
    """One exercise cell's source in the solution or student version, and its block count."""
    out: list[str] = []
    inside = False
    blocks = 0
    hint = DEFAULT_HINT
    for line in source.splitlines():
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if inside:
                raise ConventionError(f"{where}: '# BEGIN SOLUTION' inside another block")
            inside = True
            blocks += 1
            previous = out[-1] if out else ""
            hint_match = HINT.match(previous)
            hint = hint_match.group("hint") if hint_match else DEFAULT_HINT
            if student:
                out.append(f"{begin.group('indent')}raise NotImplementedError({json.dumps(hint)})")
        elif end:
            if not inside:
                raise ConventionError(f"{where}: '# END SOLUTION' without '# BEGIN SOLUTION'")
            inside = False
        elif not (inside and student):
            out.append(line)
    if inside:
        raise ConventionError(f"{where}: '# BEGIN SOLUTION' without '# END SOLUTION'")
    return "\n".join(out), blocks


def _has_marker(source: str) -> bool:
    return any(BEGIN.match(line) or END.match(line) for line in source.splitlines())


def convert(nb: NotebookNode, student: bool, name: str = "notebook") -> NotebookNode:
    """The solution version (markers removed) or the student version of a source notebook.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        The source notebook (from :func:`read_source`); not modified.
    student : bool
        True: each ``# BEGIN SOLUTION`` ... ``# END SOLUTION`` block becomes one line
        ``raise NotImplementedError("<hint>")`` at the block's indentation. False: the
        marker lines are removed and the reference answer stays.
    name : str
        The file name used in error messages.

    Returns
    -------
    nbformat.NotebookNode
        A new notebook.

    Raises
    ------
    ConventionError
        A marker outside an ``exercise`` cell, an exercise cell without a block,
        unbalanced or nested markers, or a student cell that is no longer valid Python.
    """
    out = copy.deepcopy(nb)
    for index, cell in enumerate(out.cells):
        where = _where(name, index)
        if cell.cell_type != "code":
            continue
        if EXERCISE not in tags(cell):
            if _has_marker(cell.source):
                raise ConventionError(f"{where}: solution markers outside an 'exercise' cell")
            continue
        cell.source, blocks = _convert_cell(cell.source, where, student)
        if blocks == 0:
            raise ConventionError(f"{where}: 'exercise' cell without '# BEGIN SOLUTION'")
        if student:
            try:
                ast.parse(_without_magics(cell.source))
            except SyntaxError as err:
                raise ConventionError(
                    f"{where}: the student version is not valid Python ({err.msg}, line "
                    f"{err.lineno}): put whole statements between the markers") from None
    return out


def _without_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def exercises(nb: NotebookNode, name: str = "notebook") -> list[tuple[int, int]]:
    """The ``(exercise cell, check cell)`` index pairs of a notebook, checked for the convention.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A source, solution or student notebook.
    name : str
        The file name used in error messages.

    Returns
    -------
    list of (int, int)
        Cell indices, in order.

    Raises
    ------
    ConventionError
        An exercise cell whose next code cell is not a ``check`` cell, or a check cell
        that does not follow an exercise cell.
    """
    pairs = []
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    for pos, index in enumerate(code):
        cell_tags = tags(nb.cells[index])
        if EXERCISE in cell_tags and CHECK in cell_tags:
            raise ConventionError(f"{_where(name, index)}: tagged both 'exercise' and 'check'")
        if EXERCISE in cell_tags:
            following = code[pos + 1] if pos + 1 < len(code) else None
            if following is None or CHECK not in tags(nb.cells[following]):
                raise ConventionError(
                    f"{_where(name, index)}: an 'exercise' cell must be followed by one "
                    "'check' code cell")
            pairs.append((index, following))
        elif CHECK in cell_tags:
            if not pairs or pairs[-1][1] != index:
                raise ConventionError(
                    f"{_where(name, index)}: a 'check' cell must follow an 'exercise' cell")
    return pairs


def output_name(source: str | Path) -> str:
    """``notebooks/01_x.py`` -> ``01_x.ipynb``."""
    return Path(source).with_suffix(".ipynb").name


def write_versions(sources: Sequence[str | Path], out_dir: str | Path,
                   student: bool) -> list[Path]:
    """Write the student or solution version of each source into ``out_dir``.

    Parameters
    ----------
    sources : sequence of path
        Jupytext sources.
    out_dir : path
        Created if missing; one ``.ipynb`` per source, without outputs.
    student : bool
        Which version (see :func:`convert`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sources:
        nb = convert(read_source(source), student=student, name=str(source))
        nb.metadata.pop("jupytext", None)  # a plain notebook, not paired to the source
        target = out / output_name(source)
        nbformat.write(nb, str(target))
        written.append(target)
    return written


# --------------------------------------------------------------------------- the student check


@dataclass
class CheckReport:
    """What one student notebook did, cell by cell.

    Attributes
    ----------
    name : str
        The source file.
    exercises : int
        Number of exercise/check pairs.
    other_cells : int
        Code cells outside exercises that ran.
    problems : list of str
        One line each; empty when the notebook follows the convention.
    seconds : float
        Wall time of the execution.
    """

    name: str
    exercises: int = 0
    other_cells: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when there is no problem."""
        return not self.problems


def _error(cell: NotebookNode) -> tuple[str, str] | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", "?"), str(output.get("evalue", ""))[:120]
    return None


def check_student(source: str | Path, timeout: int = CELL_TIMEOUT_S,
                  min_exercises: int = MIN_EXERCISES,
                  max_exercises: int = MAX_EXERCISES) -> CheckReport:
    """Execute the student version of a source cell by cell and check the convention.

    Every ``exercise`` cell must run or stop at its ``NotImplementedError`` stub (a stub
    inside a function body is reached only when the check calls it), every ``check`` cell
    must raise (the check fails while unsolved), and every other code cell must run, so a
    later cell that uses an exercise's variable is caught.

    Parameters
    ----------
    source : path
        A jupytext source; it runs in its own folder, like nbmake runs it.
    timeout : int
        Seconds per cell.
    min_exercises, max_exercises : int
        The number of exercises a notebook must have.

    Returns
    -------
    CheckReport
    """
    from nbclient import NotebookClient

    name = str(source)
    report = CheckReport(name)
    start = time.perf_counter()
    try:
        nb = convert(read_source(source), student=True, name=name)
        pairs = exercises(nb, name)
    except ConventionError as err:
        report.problems.append(str(err))
        return report
    report.exercises = len(pairs)
    if not min_exercises <= len(pairs) <= max_exercises:
        report.problems.append(f"{name}: {len(pairs)} exercises, the convention asks for "
                               f"{min_exercises}-{max_exercises}")
    role = {e: ("exercise", k) for k, (e, _) in enumerate(pairs, 1)}
    role.update({c: ("check", k) for k, (_, c) in enumerate(pairs, 1)})
    os.environ.setdefault("MPLBACKEND", "Agg")
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(Path(source).parent)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            error = _error(cell)
            kind, k = role.get(index, ("other", 0))
            where = _where(name, index)
            if kind == "exercise" and error is not None and error[0] != "NotImplementedError":
                report.problems.append(
                    f"{where} (exercise {k}): the student version raised {error[0]}: "
                    f"{error[1]} before its NotImplementedError stub")
            elif kind == "check" and error is None:
                report.problems.append(f"{where} (check of exercise {k}): passes without "
                                       "the solution; it must fail while unsolved")
            elif kind == "other":
                if error is not None:
                    report.problems.append(
                        f"{where} (outside the exercises): {error[0]}: {error[1]} in the "
                        "student version (does it use an exercise's variable?)")
                else:
                    report.other_cells += 1
    report.seconds = time.perf_counter() - start
    return report


def check_many(sources: Sequence[str | Path], jobs: int = 1,
               timeout: int = CELL_TIMEOUT_S) -> list[CheckReport]:
    """:func:`check_student` on several sources, ``jobs`` kernels at a time.

    Parameters
    ----------
    sources : sequence of path
    jobs : int
        Notebooks executed in parallel (one kernel each).
    timeout : int
        Seconds per cell.

    Returns
    -------
    list of CheckReport
        In the order of ``sources``.
    """
    if jobs <= 1 or len(sources) <= 1:
        return [check_student(s, timeout) for s in sources]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(check_student, sources, [timeout] * len(sources)))


# --------------------------------------------------------------------------- the site's reader


def _sources(nb: NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def executed_copy(nb: NotebookNode, folder: Path = EXECUTED_DIR) -> NotebookNode | None:
    """A fully executed notebook in ``folder`` with exactly the cells of ``nb``, if any.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A solution notebook.
    folder : pathlib.Path
        Where ``make test`` leaves the executed solution notebooks (nbmake ``--overwrite``).

    Returns
    -------
    nbformat.NotebookNode or None
        None when no copy has the same cells, or when one of its code cells did not run or
        raised.
    """
    wanted = _sources(nb)
    for path in sorted(folder.glob("*.ipynb")):
        try:
            candidate = nbformat.read(str(path), as_version=4)
        except (OSError, ValueError):
            continue
        if _sources(candidate) != wanted:
            continue
        code = [c for c in candidate.cells if c.cell_type == "code"]
        if all(c.get("execution_count") is not None and _error(c) is None for c in code):
            return candidate
    return None


def site_reads(text: str, **kwargs: object) -> NotebookNode:
    """myst-nb reader of a jupytext source for the site: the solution version, executed.

    Parameters
    ----------
    text : str
        The ``.py`` source.
    **kwargs
        Unused (myst-nb's reader signature).

    Returns
    -------
    nbformat.NotebookNode
        The solution notebook with the outputs of its executed copy under
        ``build/course/solutions`` and execution turned off for it, or without outputs
        (then myst-nb executes it) when no current executed copy exists.
    """
    import jupytext

    nb = convert(jupytext.reads(text, fmt="py:percent"), student=False)
    executed = executed_copy(nb)
    if executed is None:
        return nb
    for cell, done in zip(nb.cells, executed.cells, strict=True):
        if cell.cell_type == "code":
            cell.outputs = done.outputs
            cell.execution_count = done.execution_count
    nb.metadata["mystnb"] = {"execution_mode": "off"}
    return nb


def run_seconds(nb: NotebookNode) -> float | None:
    """Wall time of an executed notebook, from the cell timestamps nbclient records.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        An executed notebook (e.g. ``build/course/solutions/01_x.ipynb`` after ``make test``).

    Returns
    -------
    float or None
        Seconds from the first cell's start to the last cell's reply; None if not executed.
    """
    from datetime import datetime

    stamps = [datetime.fromisoformat(e[key].replace("Z", "+00:00"))
              for c in nb.cells for e in [c.get("metadata", {}).get("execution", {})]
              for key in ("iopub.execute_input", "shell.execute_reply") if key in e]
    return (max(stamps) - min(stamps)).total_seconds() if stamps else None


# --------------------------------------------------------------------------- the browser check


@dataclass
class PageReport:
    """What headless Chromium saw on one page.

    Attributes
    ----------
    page : str
        Path of the page relative to the site.
    title : str
    math : int
        Rendered MathJax elements (``mjx-container``).
    images : int
        ``<img>`` elements that loaded (natural width > 0).
    broken_images : int
        ``<img>`` elements that did not load.
    raw_math : list of str
        Snippets of the page text (code blocks left out) that still hold TeX delimiters
        (``$$``, ``\\[``, ``\\(``).
    screenshot : str
        Where the screenshot of the top of the page was saved (``NAME.png``; with a
        figure, ``NAME-figure.png`` shows the first one).
    """

    page: str
    title: str = ""
    math: int = 0
    images: int = 0
    broken_images: int = 0
    raw_math: list[str] = field(default_factory=list)
    screenshot: str = ""


RAW_MATH = re.compile(r"\$\$|\\\[|\\\]|\\\(|\\\)")


def browse(site: str | Path, pages: Sequence[str], shots: str | Path,
           chromium: str = "/usr/bin/chromium",
           chromedriver: str = "/usr/bin/chromedriver") -> list[PageReport]:
    """Open pages of the built site in headless Chromium, wait for MathJax, screenshot them.

    Parameters
    ----------
    site : path
        The built site (``build/site``).
    pages : sequence of str
        Pages relative to ``site``.
    shots : path
        Folder for the PNG screenshots (created).
    chromium, chromedriver : str
        Debian's ``chromium`` and ``chromium-driver`` packages.

    Returns
    -------
    list of PageReport
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    shots = Path(shots)
    shots.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    reports = []
    try:
        for page in pages:
            path = (Path(site) / page).resolve()
            if not path.is_file():
                raise FileNotFoundError(f"{path}: page not built")
            driver.get(path.as_uri())
            WebDriverWait(driver, 30).until(
                lambda d: d.execute_script("return document.readyState") == "complete")
            driver.set_script_timeout(30)
            driver.execute_async_script(  # wait until MathJax has typeset the page
                "const done = arguments[arguments.length - 1];"
                "if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
                "  MathJax.startup.promise.then(() => done(true), () => done(false));"
                "else done(false);")
            found = driver.execute_script(
                "const imgs = Array.from(document.querySelectorAll('article img'));"
                "return {title: document.title,"
                " math: document.querySelectorAll('mjx-container').length,"
                " ok: imgs.filter(i => i.complete && i.naturalWidth > 0).length,"
                " broken: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length,"
                " text: (() => {"  # the prose: code blocks may show TeX on purpose
                "   const a = (document.querySelector('article') || document.body)"
                "     .cloneNode(true);"
                "   a.querySelectorAll('pre, code, script, style').forEach(e => e.remove());"
                "   return a.textContent; })()};")
            raw = [found["text"][max(0, m.start() - 30):m.end() + 30].replace("\n", " ")
                   for m in RAW_MATH.finditer(found["text"])]
            shot = shots / (Path(page).stem + ".png")
            driver.save_screenshot(str(shot))
            if found["ok"]:  # a second screenshot with the first figure in view
                driver.execute_script(
                    "const img = document.querySelector('article img');"
                    "window.scrollTo(0, img.getBoundingClientRect().top + window.scrollY - 200);")
                time.sleep(0.5)
                driver.save_screenshot(str(shots / (Path(page).stem + "-figure.png")))
            reports.append(PageReport(page, found["title"], found["math"], found["ok"],
                                      found["broken"], raw[:5], str(shot)))
    finally:
        driver.quit()
    return reports


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``solutions``, ``student``, ``check``, ``browser`` (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m tools.course", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, default in (("solutions", "build/course/solutions"),
                             ("student", "build/course/student")):
        p = sub.add_parser(command, help=f"write the {command} notebooks")
        p.add_argument("sources", nargs="+")
        p.add_argument("--out", default=default)
    p = sub.add_parser("check", help="run the student versions: every check fails, the rest runs")
    p.add_argument("sources", nargs="+")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S, help="seconds per cell")
    p = sub.add_parser("times", help="run time of executed notebooks (cell timestamps)")
    p.add_argument("notebooks", nargs="+")
    p = sub.add_parser("browser", help="open site pages in headless Chromium, screenshots")
    p.add_argument("site")
    p.add_argument("--pages", nargs="+",
                   default=["docs/index.html", "notebooks/01_lowrank_approximation.html"])
    p.add_argument("--shots", required=True, help="folder for the screenshots")
    p.add_argument("--min-math", type=int, default=1,
                   help="rendered formulas each page must have")
    p.add_argument("--min-images", type=int, default=1,
                   help="loaded figures each page must have")
    args = parser.parse_args(argv)

    if args.command in ("solutions", "student"):
        try:
            written = write_versions(args.sources, args.out, student=args.command == "student")
        except ConventionError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"{args.command}: {len(written)} notebooks in {args.out}")
        return 0
    if args.command == "check":
        reports = check_many(args.sources, jobs=args.jobs, timeout=args.timeout)
        for r in reports:
            status = "ok  " if r.ok else "FAIL"
            print(f"{status} {r.name}: {r.exercises} exercises (each check fails unsolved), "
                  f"{r.other_cells} other cells ran, {r.seconds:.1f} s")
            for problem in r.problems:
                print(f"     {problem}")
        bad = sum(not r.ok for r in reports)
        print(f"{len(reports) - bad} passed, {bad} failed")
        return 1 if bad else 0
    if args.command == "times":
        for path in args.notebooks:
            seconds = run_seconds(nbformat.read(path, as_version=4))
            print(f"{path}: " + ("not executed" if seconds is None else f"{seconds:.0f} s"))
        return 0
    reports = browse(args.site, args.pages, args.shots)
    failed = 0
    for r in reports:
        problems = []
        if r.math < args.min_math:
            problems.append(f"{r.math} rendered formulas (< {args.min_math})")
        if r.raw_math:
            problems.append(f"raw TeX left in the text: {r.raw_math}")
        if r.images < args.min_images or r.broken_images:
            problems.append(f"{r.images} figures loaded, {r.broken_images} broken")
        failed += bool(problems)
        print(f"{'ok  ' if not problems else 'FAIL'} {r.page} ({r.title!r}): {r.math} formulas, "
              f"{r.images} figures, screenshot {r.screenshot}")
        for problem in problems:
            print(f"     {problem}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
