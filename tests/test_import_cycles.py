"""No import cycles between cnnlab's modules, function-local imports included.

A function-local import hides a cycle from Python at start-up, not from the reader: the two
modules still depend on each other, and the order they may be imported in becomes a rule nobody
wrote down. So every import statement counts, wherever it is: ``import cnnlab.x``, ``from
cnnlab.x import y`` (an edge to ``cnnlab.x.y`` when that is a module, else to ``cnnlab.x``) and
relative imports. A package's ``__init__`` importing its own submodules (re-exports) counts too.
Only imports under ``if TYPE_CHECKING:`` are left out: they never run.

The graph is read from the source files with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "cnnlab"


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    where: str  # file:line of the import statement


def module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module and package under ``src/package``."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) blocks."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
    return skipped


def imports_of(name: str, path: Path, modules: dict[str, Path], src: Path = SRC) -> list[Edge]:
    """The edges from module ``name`` to the modules of the package it imports, anywhere in it."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skipped = _type_checking_only(tree)
    is_package = path.name == "__init__.py"
    edges = []

    def add(target: str, node: ast.AST) -> None:
        while target and target not in modules:  # `import cnnlab.x.name`: the longest module prefix
            target = target.rpartition(".")[0]
        if target and target != name:
            edges.append(Edge(name, target, f"{path.relative_to(src).as_posix()}:{node.lineno}"))

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                add(candidate if candidate in modules else module, node)
    return edges


def import_graph(src: Path = SRC, package: str = PACKAGE) -> tuple[dict[str, set[str]], list[Edge]]:
    modules = module_files(src, package)
    edges = [edge for name, path in modules.items() for edge in imports_of(name, path, modules, src)]
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for edge in edges:
        graph[edge.source].add(edge.target)
    return graph, edges


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; each component sorted, components in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return sorted(components)


def describe_cycles(graph: dict[str, set[str]], edges: list[Edge]) -> list[str]:
    """One paragraph per cycle: its modules, and the import statements that close it."""
    out = []
    for component in strongly_connected_components(graph):
        if len(component) < 2:
            continue
        members = set(component)
        inside = sorted({(e.source, e.target, e.where) for e in edges if e.source in members and e.target in members})
        lines = [f"{len(component)} modules: {', '.join(component)}"]
        lines += [f"    {source} -> {target}  ({where})" for source, target, where in inside]
        out.append("\n".join(lines))
    return out


# --------------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / PACKAGE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_checker_finds_hidden_relative_and_reexport_cycles(tmp_path):
    src = _write(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "def f():\n    from cnnlab import b  # function-local\n",
            "b.py": "import cnnlab.a\n",
            "pkg/__init__.py": "from .inner import thing  # re-export\n",
            "pkg/inner.py": "from .. import pkg\nthing = 1\n",
            "c.py": "from cnnlab.pkg.inner import thing\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from cnnlab import e\n",
            "e.py": "import cnnlab.d\n",
        },
    )
    graph, edges = import_graph(src)
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [["cnnlab.a", "cnnlab.b"], ["cnnlab.pkg", "cnnlab.pkg.inner"]]
    assert graph["cnnlab.c"] == {"cnnlab.pkg.inner"}  # `from x import name`: the module x
    assert graph["cnnlab.d"] == set()  # TYPE_CHECKING imports never run
    [report] = [r for r in describe_cycles(graph, edges) if "cnnlab.a" in r]
    assert "cnnlab/a.py:2" in report


def test_no_import_cycles_in_cnnlab():
    graph, edges = import_graph()
    assert len(graph) > 50  # the whole package was read
    cycles = describe_cycles(graph, edges)
    assert not cycles, "import cycles in src/cnnlab:\n" + "\n".join(cycles)
