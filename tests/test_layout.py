"""The house: the folders of explorer/ import only from the ones before them, and nothing imports in a circle."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "explorer"
# the order data flows (docs/design.md §5); a module may import from its own layer or a lower one
LAYER = {"__init__": 0, "config": 0, "filecheck": 0, "files": 0, "names": 0, "options": 0, "version": 0, "data": 1, "model": 2,
         "method": 3, "training": 4, "evaluation": 5, "analysis": 5, "experiment": 6, "ui": 7, "__main__": 7}


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    return {".".join(f.relative_to(package).with_suffix("").parts): f for f in package.rglob("*.py")}


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


def _graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    mods = _modules(package)
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def _upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    def layer(m: str) -> int:
        return LAYER[m.split(".")[0]]

    return sorted((a, b) for a, deps in graph.items() for b in deps if layer(b) > layer(a))


def test_no_module_imports_from_a_later_layer():
    upward = _upward(_graph())
    assert not upward, f"imports against the flow of data: {upward}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
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
    return cycles


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_planted_violation(tmp_path):
    """A package with one upward import (data -> experiment, relative and absolute) and one circle (model.a <->
    model.b), read by the same checker: both are reported, and nothing else."""
    pkg = tmp_path / "explorer"
    files = {"__init__.py": "", "config.py": "import json\n",
             "data/__init__.py": "", "data/corpus.py": "from ..experiment.stages import run\nfrom ..config import x\n",
             "data/other.py": "from explorer.experiment import stages\n",
             "model/__init__.py": "", "model/a.py": "from .b import f\n", "model/b.py": "from .a import g\n",
             "experiment/__init__.py": "", "experiment/stages.py": "from ..data.corpus import c\n"}
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    graph = _graph(pkg)
    assert _upward(graph) == [("data.corpus", "experiment.stages"), ("data.other", "experiment.__init__"),
                              ("data.other", "experiment.stages")]
    assert sorted(map(tuple, _cycles(graph))) == [("data.corpus", "experiment.stages", "data.corpus"),
                                                   ("model.a", "model.b", "model.a")]


def test_only_ui_imports_streamlit():
    offenders = [n for n, p in _modules().items() if not n.startswith("ui")
                 and any(isinstance(x, (ast.Import, ast.ImportFrom)) and "streamlit" in ast.unparse(x)
                         for x in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not offenders
