"""tools/course.py: the student and solution versions, and the student check that CI runs.

The check must catch what the exercise convention forbids (docs/course/exercises.md): a
check that passes without the solution, a cell outside the exercises that fails in the
student version (e.g. one that uses an exercise's variable), an exercise that never reaches
its stub. Each case is a small notebook executed by a real kernel.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import nbformat
import pytest

from tools import course

HEADER = textwrap.dedent("""\
    # ---
    # jupyter:
    #   kernelspec:
    #     display_name: Python 3
    #     language: python
    #     name: python3
    # ---
    """)


def source(*cells: str) -> str:
    """A jupytext percent source made of ``cells`` (each starting with its ``# %%`` line)."""
    return HEADER + "\n" + "\n\n".join(inspect.cleandoc(c) + "\n" for c in cells)


GOOD = [
    """# %%
    base = 3""",
    """# %% [markdown]
    # Exercise 1: predict `double`, then compute it.""",
    """# %% tags=["exercise"]
    # HINT: twice base
    # BEGIN SOLUTION
    double = 2 * base
    # END SOLUTION""",
    """# %% tags=["check"]
    assert double == 6""",
    """# %% tags=["exercise"]
    def triple(x):
        # BEGIN SOLUTION
        return 3 * x
        # END SOLUTION""",
    """# %% tags=["check"]
    assert triple(base) == 9""",
    """# %%
    print(base + 1)""",
]


def write(tmp_path: Path, cells: list[str], name: str = "nb.py") -> Path:
    path = tmp_path / name
    path.write_text(source(*cells), encoding="utf-8")
    return path


def test_student_version_replaces_each_block_by_a_stub_at_its_indentation(tmp_path):
    nb = course.convert(course.read_source(write(tmp_path, GOOD)), student=True)
    exercise_1, exercise_2 = nb.cells[2].source, nb.cells[4].source
    assert exercise_1 == '# HINT: twice base\nraise NotImplementedError("twice base")'
    assert "2 * base" not in exercise_1
    assert exercise_2.splitlines() == [
        "def triple(x):",
        f"    raise NotImplementedError({course.DEFAULT_HINT!r})".replace("'", '"')]
    assert course.exercises(nb) == [(2, 3), (4, 5)]


def test_solution_version_keeps_the_answer_without_markers(tmp_path):
    nb = course.convert(course.read_source(write(tmp_path, GOOD)), student=False)
    assert nb.cells[2].source == "# HINT: twice base\ndouble = 2 * base"
    assert "SOLUTION" not in "".join(c.source for c in nb.cells)


@pytest.mark.parametrize(("cells", "message"), [
    (["# %% tags=[\"exercise\"]\n# BEGIN SOLUTION\nx = 1", "# %% tags=[\"check\"]\nx"],
     "without '# END SOLUTION'"),
    (["# %%\n# BEGIN SOLUTION\nx = 1\n# END SOLUTION"], "outside an 'exercise' cell"),
    (["# %% tags=[\"exercise\"]\nx = 1", "# %% tags=[\"check\"]\nx"], "without '# BEGIN"),
    (["# %% tags=[\"exercise\"]\ny = (\n# BEGIN SOLUTION\n1\n# END SOLUTION\n)"],
     "not valid Python"),
])
def test_broken_markers_are_one_line_errors_naming_the_cell(tmp_path, cells, message):
    with pytest.raises(course.ConventionError, match=message) as err:
        course.convert(course.read_source(write(tmp_path, cells)), student=True,
                       name="nb.py")
    assert "nb.py: cell 0" in str(err.value) and "\n" not in str(err.value)


def test_an_exercise_needs_a_check_right_after_it(tmp_path):
    cells = [GOOD[2].replace("base", "3"), "# %%\nprint(1)", GOOD[3]]
    nb = course.read_source(write(tmp_path, cells))
    with pytest.raises(course.ConventionError, match="followed by one 'check'"):
        course.exercises(nb, "nb.py")


def test_write_versions_writes_plain_notebooks(tmp_path):
    src = write(tmp_path, GOOD, "01_demo.py")
    written = course.write_versions([src], tmp_path / "student", student=True)
    assert written == [tmp_path / "student" / "01_demo.ipynb"]
    nb = nbformat.read(str(written[0]), as_version=4)
    assert "jupytext" not in nb.metadata
    assert "NotImplementedError" in nb.cells[2].source


def test_check_passes_a_notebook_that_follows_the_convention(tmp_path):
    report = course.check_student(write(tmp_path, GOOD))
    assert report.problems == []
    assert (report.exercises, report.other_cells) == (2, 2)


def test_check_fails_a_check_that_passes_unsolved_and_a_later_cell_using_the_answer(tmp_path):
    cells = list(GOOD)
    cells[3] = '# %% tags=["check"]\nassert base == 3  # does not test the answer'
    cells[6] = "# %%\nprint(double)  # uses the exercise's variable"
    report = course.check_student(write(tmp_path, cells))
    assert len(report.problems) == 2, report.problems
    assert "cell 3 (check of exercise 1): passes without the solution" in report.problems[0]
    assert "cell 6 (outside the exercises): NameError" in report.problems[1]


def test_check_fails_an_exercise_that_breaks_before_its_stub_and_too_few_exercises(tmp_path):
    cells = GOOD[:4]
    cells[2] = cells[2].replace("# HINT: twice base", "1 / 0")
    report = course.check_student(write(tmp_path, cells))
    assert any("1 exercises, the convention asks for 2-4" in p for p in report.problems)
    assert any("(exercise 1): the student version raised ZeroDivisionError: division by "
               "zero before its NotImplementedError stub" in p
               for p in report.problems)


def test_cli_check_exit_code_and_summary(tmp_path, capsys):
    cells = list(GOOD)
    cells[5] = '# %% tags=["check"]\nprint("no assert")'
    assert course.main(["check", str(write(tmp_path, cells))]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "0 passed, 1 failed" in out


def test_site_reader_takes_outputs_only_from_a_fully_executed_identical_copy(tmp_path):
    text = source(*GOOD)
    solution = course.convert(course.read_source(write(tmp_path, GOOD)), student=False)
    executed = course.executed_copy(solution, tmp_path)  # nothing executed yet
    assert executed is None
    done = nbformat.v4.new_notebook(cells=[nbformat.from_dict(dict(c)) for c in solution.cells])
    for i, cell in enumerate(done.cells):
        if cell.cell_type == "code":
            cell.execution_count = i
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{i}\n")]
    nbformat.write(done, str(tmp_path / "done.ipynb"))
    assert course.executed_copy(solution, tmp_path) is not None
    done.cells[-1].execution_count = None  # the last cell did not run
    nbformat.write(done, str(tmp_path / "done.ipynb"))
    assert course.executed_copy(solution, tmp_path) is None
    # site_reads uses build/course/solutions; with no copy there it returns no outputs
    nb = course.site_reads(text.replace("base = 3", "base = 3  # changed"))
    assert "mystnb" not in nb.metadata
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.skipif(not (Path("/usr/bin/chromium").exists()
                         and Path("/usr/bin/chromedriver").exists()),
                    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")
def test_browser_check_sees_raw_math_and_broken_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "fig.png")
    plt.close(fig)
    (tmp_path / "page.html").write_text(
        "<html><head><title>t</title></head><body><article><p>raw $$x^2$$ left</p>"
        "<img src='fig.png'><img src='missing.png'></article></body></html>",
        encoding="utf-8")
    [report] = course.browse(tmp_path, ["page.html"], tmp_path / "shots")
    assert report.title == "t" and report.math == 0
    assert (report.images, report.broken_images) == (1, 1)
    assert report.raw_math and "$$x^2$$" in report.raw_math[0]
    assert Path(report.screenshot).stat().st_size > 1000


def test_run_seconds_spans_first_start_to_last_reply():
    cells = [nbformat.v4.new_code_cell("a"), nbformat.v4.new_code_cell("b"),
             nbformat.v4.new_markdown_cell("text")]
    cells[0].metadata["execution"] = {"iopub.execute_input": "2026-11-30T08:00:00.000Z",
                                      "shell.execute_reply": "2026-11-30T08:00:01.000Z"}
    cells[1].metadata["execution"] = {"iopub.execute_input": "2026-11-30T08:00:01.500Z",
                                      "shell.execute_reply": "2026-11-30T08:00:02.500Z"}
    assert course.run_seconds(nbformat.v4.new_notebook(cells=cells)) == 2.5
    assert course.run_seconds(nbformat.v4.new_notebook(cells=cells[2:])) is None
