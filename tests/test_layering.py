"""Dependencies point one way: fl_sim -> lowrank, theory -> lowrank (DESIGN §2)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("package", "forbidden"), [
    ("lowrank", ["fl_sim", "theory", "boundcheck"]),
    ("theory", ["fl_sim", "boundcheck"]),
    ("fl_sim", ["theory", "boundcheck"]),
])
def test_package_does_not_import_forbidden_packages(package, forbidden):
    code = (f"import sys, {package}, pkgutil, importlib\n"
            f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
            f"    if not m.name.endswith('__main__'):\n"
            f"        importlib.import_module(m.name)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({forbidden!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", f"{package} imports {out}"
