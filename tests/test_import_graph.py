"""The package's import graph: the engine never reaches the notebook side, and no circles.

Read from the source with ``ast``, every import counts, including the ones inside functions
(a lazy import is still a dependency; it only moves the moment it bites), except those under
``if TYPE_CHECKING:``, which never run. An edge goes from a
module to each module of ours it names: ``from .x import y`` is an edge to ``x`` (or to
``x.y`` when that is a module). Importing a submodule also runs its parents' ``__init__``, but
that is how packages work, not an edge a module chose, so it is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "dvl_jupyter"
PACKAGE = "dvl_jupyter"
ENGINE = "dvl_jupyter.valuation"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    if level == 0:
        return name or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:`` (imports for type hints only,
    which never run)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and (
                node.test.id == "TYPE_CHECKING"):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    return [n for n in ast.walk(tree) if id(n) not in skip]


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of this package it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, is_package, node.level, node.module)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for target in targets:
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    # a few edges that must be seen, or the test would pass by seeing nothing
    assert "dvl_jupyter.valuation.utils" in graph["dvl_jupyter.display"]
    assert "dvl_jupyter.valuation.fastpath" in graph["dvl_jupyter.valuation.path_choice"]
    assert "dvl_jupyter.valuation.result_io" in graph["dvl_jupyter.valuation.result"]
    assert "dvl_jupyter.valuation.fastpath.kernel" in graph["dvl_jupyter.valuation.fastpath.train"]


def test_cycle_finder_finds_a_planted_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_engine_imports_nothing_from_the_notebook_side():
    graph = import_graph()
    bad = {(m, t) for m, targets in graph.items() if m.startswith(ENGINE)
           for t in targets if not t.startswith(ENGINE)}
    assert not bad, f"engine modules import the notebook side: {sorted(bad)}"


def test_there_is_no_import_circle_in_the_package():
    cycle = _cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
