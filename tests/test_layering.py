"""The import structure stays a layered, cycle-free graph.

Two checks, drawn in ``docs/architecture.md``:

- package arrows point one way (``fl_sim -> lowrank``, ``theory -> lowrank``; only
  ``boundcheck`` and ``experiments`` use several packages), checked by importing every
  module in a fresh interpreter and looking at ``sys.modules``;
- no import cycle among modules, checked statically: every module of every package is
  parsed with :mod:`ast`, including imports inside functions (lazy imports) and relative
  imports, so a cycle that is hidden behind a lazy import is found too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("lowrank", "theory", "fl_sim", "boundcheck", "experiments")


@pytest.mark.parametrize(("package", "forbidden"), [
    ("lowrank", ["fl_sim", "theory", "boundcheck", "experiments"]),
    ("theory", ["fl_sim", "boundcheck", "experiments"]),
    ("fl_sim", ["theory", "boundcheck", "experiments"]),
    ("boundcheck", ["experiments"]),
])
def test_package_does_not_import_forbidden_packages(package, forbidden):
    code = (f"import sys, {package}, pkgutil, importlib\n"
            f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
            f"    if not m.name.endswith('__main__'):\n"
            f"        importlib.import_module(m.name)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({forbidden!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]", f"{package} imports {out}"


# --------------------------------------------------------------------------- static module graph


def module_files(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Map every module of ``packages`` (dotted name) to its file.

    Parameters
    ----------
    root : pathlib.Path
        The repository root, holding one folder per package.
    packages : iterable of str
        Top-level package names.

    Returns
    -------
    dict of str to pathlib.Path
        ``"fl_sim.cli"`` for ``fl_sim/cli.py``, ``"fl_sim.algorithms"`` for
        ``fl_sim/algorithms/__init__.py``.
    """
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` test is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, at any depth, except under ``if TYPE_CHECKING:``."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        children: Iterable[ast.AST] = node.orelse
    else:
        children = ast.iter_child_nodes(node)
    for child in children:
        yield from _import_nodes(child)


def _resolve(target: str, modules: Mapping[str, Path]) -> str | None:
    """The longest prefix of dotted ``target`` that is one of ``modules``, if any."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return None


def module_imports(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` imports, lazily or not.

    ``import a.b`` and ``from a.b import c`` give an edge to ``a.b``, or to ``a.b.c`` when
    ``c`` is itself a module. Relative imports are resolved against the importing module's
    package (``from .x import y`` in ``p.m`` gives ``p.x``); the implicit imports of parent
    packages are not edges, so a package ``__init__`` may import its own submodules.

    Parameters
    ----------
    name : str
        Dotted name of the importing module.
    path : pathlib.Path
        Its file.
    modules : mapping of str to pathlib.Path
        All modules of the graph (from :func:`module_files`); other imports are ignored.

    Returns
    -------
    set of str
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [f"{stem}.{alias.name}" for alias in node.names] or [stem]
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved is not None and resolved != name:
                edges.add(resolved)
    return edges


def import_graph(root: Path = ROOT, packages: Iterable[str] = PACKAGES) -> dict[str, set[str]]:
    """The module-level import graph of ``packages``: module -> modules it imports.

    Parameters
    ----------
    root : pathlib.Path
        The repository root.
    packages : iterable of str
        Top-level package names.

    Returns
    -------
    dict of str to set of str
    """
    modules = module_files(root, packages)
    return {name: module_imports(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of ``graph`` that has a cycle.

    Parameters
    ----------
    graph : mapping of str to iterable of str
        Node -> its successors.

    Returns
    -------
    list of list of str
        Each cycle as ``[a, b, ..., a]`` (first node repeated at the end), starting from
        the smallest node of its component; empty when the graph is acyclic.
    """
    succ = {node: sorted(set(targets)) for node, targets in graph.items()}
    for targets in list(succ.values()):
        for t in targets:
            succ.setdefault(t, [])
    # Tarjan's strongly connected components (iterative).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(succ):
        if start in index:
            continue
        work = [(start, iter(succ[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(succ[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    cycles = []
    for component in components:
        members = set(component)
        first = min(component)
        if len(component) == 1 and first not in succ[first]:
            continue
        # shortest path back to `first` inside the component (breadth-first)
        parent: dict[str, str] = {}
        frontier = [first]
        end = None
        while frontier and end is None:
            following = []
            for node in frontier:
                for t in succ[node]:
                    if t == first:
                        end = node
                        break
                    if t in members and t not in parent:
                        parent[t] = node
                        following.append(t)
                if end is not None:
                    break
            frontier = following
        path = [end]
        while path[-1] != first:
            path.append(parent[path[-1]])
        cycles.append([*reversed(path), first])
    return sorted(cycles)


def test_find_cycles_reports_readable_chains():
    assert find_cycles({"a": ["b"], "b": ["c"], "c": []}) == []
    assert find_cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["d"]}) == [
        ["a", "b", "c", "a"], ["d", "d"]]
    # two cycles through `a` in one component: the shortest one is reported
    assert find_cycles({"a": ["b", "c"], "b": ["x"], "x": ["a"], "c": ["a"]}) == [
        ["a", "c", "a"]]


def test_import_graph_sees_lazy_relative_and_skips_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .b import g\nelse:\n    import json\n"
        "def f():\n    from .sub import c\n    return c\n")
    (pkg / "b.py").write_text("from pkg.sub.c import h\nfrom . import a\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "c.py").write_text("from .. import b\nimport numpy\n")
    graph = import_graph(tmp_path, ["pkg"])
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.c"},  # lazy; the TYPE_CHECKING import of .b is skipped
        "pkg.b": {"pkg.sub.c", "pkg.a"},
        "pkg.sub": set(),
        "pkg.sub.c": {"pkg.b"},  # `from .. import b` is the module pkg.b
    }
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.c", "pkg.b", "pkg.a"]]


def test_import_graph_covers_every_package():
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} == set(PACKAGES)
    assert "fl_sim.federated_data" in graph["fl_sim.simulator"]
    assert "lowrank" in {t.split(".")[0] for t in graph["fl_sim.algorithms.model_compression"]}


def test_no_import_cycle_among_modules():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles among modules:\n" + "\n".join(
        "  " + " -> ".join(cycle) for cycle in cycles)
