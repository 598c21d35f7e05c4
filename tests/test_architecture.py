"""The shape of the package (docs/ARCHITECTURE.md): no import cycle among ftguard's modules
(imports under ``TYPE_CHECKING`` aside), no module over 400 lines, the CLI wired in one place.

The import graph is read from the source (``ast``), not by importing: an import inside a
function counts too, because a cycle through a lazy import is still a cycle a reader has to
untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ftguard"
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _owner(name: str) -> str | None:
    """The module ``name`` refers to (a function imported from it counts as the module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.package = module if MODULES[module].name == "__init__.py" else \
            module.rpartition(".")[0]
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[:len(parts) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            self._add(full if full in MODULES else base)

    def _add(self, name: str) -> None:
        owner = _owner(name) if name.startswith("ftguard") else None
        if owner and owner != self.module:
            self.found.add(owner)


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        visitor = _Imports(module)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        graph[module] = visitor.found
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_real_imports() -> None:
    assert len(MODULES) > 100 and "ftguard.cli.main" in MODULES  # the real package was read
    graph = import_graph()
    assert "ftguard.compare" in graph["ftguard.api"] or "ftguard.record" in graph["ftguard.api"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_400_lines(module: str) -> None:
    lines = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module]} has {lines} lines (at most {MAX_LINES})"


def test_cli_main_only_wires_and_nothing_imports_it() -> None:
    graph = import_graph()
    entry_points = ("ftguard.cli", "ftguard.__main__")  # the package's `main`, python -m
    importers = [m for m, deps in graph.items() if "ftguard.cli.main" in deps
                 and m not in entry_points]
    assert importers == [], f"modules importing ftguard.cli.main: {importers}"
    commands = [m for m in MODULES if m.startswith("ftguard.cli.")
                and m not in ("ftguard.cli.main", "ftguard.cli.options",
                              "ftguard.cli.interrupts")]
    assert len(commands) >= 10, commands
    for module in commands:
        tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "add_parser" in names, f"{module} has no add_parser(commands, common)"
