"""The house: the folders of explorer/ import only from the ones before them, and nothing imports in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "explorer"
# the order data flows (DESIGN.md §5); a module may import from its own layer or a lower one
LAYER = {"__init__": 0, "config": 0, "files": 0, "names": 0, "version": 0, "data": 1, "model": 2, "method": 3, "training": 4,
         "evaluation": 5, "analysis": 5, "experiment": 6, "ui": 7, "__main__": 7}


def _modules() -> dict[str, Path]:
    return {".".join(f.relative_to(PACKAGE).with_suffix("").parts): f for f in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = ".".join(base + ([node.module] if node.module else []))
        elif node.module and node.module.startswith("explorer"):
            target = node.module.removeprefix("explorer").lstrip(".") or "__init__"
        else:
            continue
        candidates = [target, f"{target}.__init__"] + [f"{target}.{a.name}".lstrip(".") for a in node.names]
        out |= {c for c in candidates if c in mods}
    return out - {name}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def test_no_module_imports_from_a_later_layer():
    def layer(m: str) -> int:
        return LAYER[m.split(".")[0]]

    upward = sorted((a, b) for a, deps in _graph().items() for b in deps if layer(b) > layer(a))
    assert not upward, f"imports against the flow of data: {upward}"


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v, stack)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_violation():
    """The two tests above would catch a planted upward import (they guard something)."""
    graph = _graph()
    assert any(graph.values()), "the import graph is empty: the checker reads nothing"
    assert "data.varieties" in graph["data.corpus"]
    assert LAYER["experiment"] > LAYER["training"] and "training.loop" in graph["experiment.stages"]


def test_only_ui_imports_streamlit():
    offenders = [n for n, p in _modules().items() if not n.startswith("ui")
                 and any(isinstance(x, (ast.Import, ast.ImportFrom)) and "streamlit" in ast.unparse(x)
                         for x in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not offenders
