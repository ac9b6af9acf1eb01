"""docs/architecture.md stays true: its paths exist, its diagram draws the real imports,
and each name in its ownership table is defined in the file said to own it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
# the installable packages (pyproject.toml, [tool.setuptools] packages)
PACKAGES = {"lowrank", "theory", "fl_sim", "boundcheck", "experiments"}

_PATH = re.compile(r"^\w[\w.-]*(/[\w.-]*)*$")  # starts with a name: not ".py"


def doc_text() -> str:
    """The text of docs/architecture.md."""
    return DOC.read_text(encoding="utf-8")


def named_paths(text: str) -> set[str]:
    """Repository paths named in backticks: ending in ``.py``, ``.md`` or ``/``, or with a ``/``.

    Parameters
    ----------
    text : str
        Markdown.

    Returns
    -------
    set of str
        Paths relative to the repository root, as written.
    """
    out = set()
    for token in re.findall(r"`([^`\n]+)`", text):
        if _PATH.match(token) and (token.endswith((".py", ".md", "/")) or "/" in token):
            out.add(token)
    return out


def link_targets(text: str) -> set[str]:
    """Targets of relative markdown links ``[text](target)``, without anchors."""
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)}
    return {t for t in targets if t and not re.match(r"^[a-z]+:", t)}


def mermaid_arrows(text: str) -> set[tuple[str, str]]:
    """The ``A --> B`` arrows of the (single) mermaid block.

    Parameters
    ----------
    text : str
        Markdown.

    Returns
    -------
    set of (str, str)
    """
    blocks = re.findall(r"```mermaid\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, f"expected one mermaid block, found {len(blocks)}"
    arrows = set()
    for line in blocks[0].splitlines():
        line = line.strip()
        if not line or line.startswith(("graph", "flowchart", "%%")):
            continue
        match = re.fullmatch(r"(\w+)\s*-->\s*(\w+)", line)
        assert match, f"unexpected mermaid line {line!r}: write plain 'A --> B' arrows"
        arrows.add((match.group(1), match.group(2)))
    return arrows


def imported_folders(folder: str, candidates: set[str]) -> set[str]:
    """Which of ``candidates`` the ``.py`` files under ``folder`` import (absolute imports,
    at any depth, lazy ones included)."""
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found.update(n.split(".")[0] for n in names)
    return (found & candidates) - {folder}


def defined_names(path: Path) -> set[str]:
    """Names bound at the top level of a module (defined, assigned or imported)."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def ownership_rows(text: str) -> list[tuple[str, str, list[str]]]:
    """``(concept, owner, main names)`` of the table under "Concept -> the one file"."""
    section = text.split("## Concept", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("Concept", "") or set(cells[0]) <= {"-", " "}:
            continue
        owner = re.findall(r"`([^`]+)`", cells[1])
        assert len(owner) == 1, f"row {cells[0]!r}: expected one owner, got {cells[1]!r}"
        rows.append((cells[0], owner[0], re.findall(r"`([^`]+)`", cells[2])))
    return rows


# --------------------------------------------------------------------------- the tests


def test_helpers_find_paths_links_and_arrows():
    text = ("see `fl_sim/rng.py`, `docs/`, `CHANGELOG.md`, [x](../README.md#a), "
            "[y](https://example.org), `a --> b`, `nn.Linear`, `(fig, ax)`, `.py`\n"
            "```mermaid\ngraph TD\n    fl_sim --> lowrank\n```\n")
    assert named_paths(text) == {"fl_sim/rng.py", "docs/", "CHANGELOG.md"}
    assert link_targets(text) == {"../README.md"}
    assert mermaid_arrows(text) == {("fl_sim", "lowrank")}


def test_every_named_path_exists():
    text = doc_text()
    paths = named_paths(text)
    assert len(paths) >= 30, f"only {len(paths)} paths found: is the pattern still right?"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    broken = sorted(t for t in link_targets(text) if not (DOC.parent / t).exists())
    assert not broken, f"docs/architecture.md links to missing files: {broken}"


def test_diagram_nodes_are_real_packages_or_script_folders():
    nodes = {n for arrow in mermaid_arrows(doc_text()) for n in arrow}
    assert PACKAGES <= nodes, f"packages missing from the diagram: {sorted(PACKAGES - nodes)}"
    for node in sorted(nodes):
        folder = ROOT / node
        assert folder.is_dir(), f"diagram node {node!r} is not a folder of the repository"
        if node in PACKAGES:
            assert (folder / "__init__.py").is_file(), f"{node!r} is not a package"
        else:
            assert list(folder.glob("*.py")), f"{node!r} holds no Python files"


def test_diagram_draws_exactly_the_real_imports():
    drawn = mermaid_arrows(doc_text())
    nodes = {n for arrow in drawn for n in arrow}
    real = {(a, b) for a in nodes for b in imported_folders(a, nodes)}
    assert drawn == real, (
        f"arrows in the code but not in the diagram: {sorted(real - drawn)}; "
        f"arrows in the diagram but not in the code: {sorted(drawn - real)}")


def test_lowrank_is_at_the_bottom():
    drawn = mermaid_arrows(doc_text())
    assert not [b for a, b in drawn if a == "lowrank"]
    assert {a for a, _ in drawn} >= PACKAGES - {"lowrank"}


@pytest.mark.parametrize(("concept", "owner", "names"), ownership_rows(doc_text()),
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_owner_defines_the_names_the_table_gives(concept, owner, names):
    path = ROOT / owner
    assert path.exists(), f"{concept}: owner {owner} does not exist"
    if path.is_dir():
        return
    missing = [n for n in names if n.isidentifier() and n not in defined_names(path)]
    assert not missing, f"{concept}: {owner} does not define {missing}"


def test_ownership_table_covers_the_core_concepts():
    owners = {owner for _, owner, _ in ownership_rows(doc_text())}
    assert {"lowrank/accounting.py", "lowrank/policies.py", "fl_sim/rng.py",
            "fl_sim/algorithms/__init__.py", "fl_sim/federated_data.py",
            "theory/bounds.py", "boundcheck/check.py", "experiments/"} <= owners
