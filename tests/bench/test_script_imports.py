"""The scripts outside the package import only names cnnlab still has.

Benchmarks and the docs' scripts import cnnlab lazily, inside the function that needs it, so that
``--help`` answers at once. A name moved inside the package then breaks a script only when that
one section runs, long after the change: ``benchmarks/kernels.py --only rates`` once failed this
way. This test reads every ``from cnnlab... import ...`` in those scripts, wherever it sits, and
checks that each name exists.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted([*(REPO / "benchmarks").glob("*.py"), *(REPO / "docs").rglob("*.py")])


def cnnlab_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every ``from cnnlab... import name`` in the file, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "cnnlab":
            found.extend((node.lineno, node.module, alias.name) for alias in node.names)
    return found


def test_the_scripts_are_found():
    assert REPO / "benchmarks" / "kernels.py" in SCRIPTS
    assert any(cnnlab_imports(path) for path in SCRIPTS)


def test_a_missing_name_is_caught(tmp_path):
    script = tmp_path / "script.py"
    script.write_text("def section():\n    from cnnlab.backend import NO_SUCH_NAME\n")
    assert missing_names(script) == ["script.py:2: cnnlab.backend has no NO_SUCH_NAME"]


def missing_names(path: Path) -> list[str]:
    missing = []
    for line, module_name, name in cnnlab_imports(path):
        module = importlib.import_module(module_name)
        if name != "*" and not hasattr(module, name):
            try:  # a submodule not imported by its package yet
                importlib.import_module(f"{module_name}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{path.name}:{line}: {module_name} has no {name}")
    return missing


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_cnnlab_name_a_script_imports_exists(path):
    assert missing_names(path) == []
