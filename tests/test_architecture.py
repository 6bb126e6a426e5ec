"""The package's layering, read from the source: every import (module level or inside a function)
of every file under localize/ is an edge between the subpackages (or top-level modules) involved."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "localize"


def _unit(module: str) -> str:
    """``localize.data.ner`` → ``data``; ``localize.runs`` → ``runs`` (a top-level module is its own unit)."""
    return module.split(".")[1] if module.count(".") >= 1 else module


def import_edges(root: Path = PKG) -> set[tuple[str, str, str]]:
    """``(from unit, to unit, file)`` for every ``localize.*`` import found in ``root``'s files."""
    edges = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        here = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import: resolve against this file's package
                    base = here.split(".")[: len(here.split(".")) - node.level + (rel.name == "__init__")]
                    targets = [".".join(base + ([node.module] if node.module else []))]
                elif node.module:
                    targets = [node.module]
            for t in targets:
                if t.startswith("localize.") and _unit(t) != _unit(here):
                    edges.add((_unit(here), _unit(t), str(path.relative_to(root.parent))))
    return edges


def _cycle(edges: set[tuple[str, str, str]]) -> list[str] | None:
    graph: dict[str, set[str]] = {}
    for a, b, _ in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return path[path.index(m):] + [m] if m in path else [n, m]
            if not state.get(m):
                found = visit(m, path + [m])
                if found:
                    return found
        state[n] = 2
        return None

    for n in sorted(graph):
        if not state.get(n):
            found = visit(n, [n])
            if found:
                return found
    return None


def test_models_never_import_data():
    bad = sorted(f"{f} imports localize.{b}" for a, b, f in import_edges() if a == "models" and b == "data")
    assert not bad, "text → batch belongs in localize/data/ only: " + "; ".join(bad)


def test_no_import_cycle_between_subpackages():
    cycle = _cycle(import_edges())
    assert cycle is None, " → ".join(cycle)


def test_the_checks_catch_a_bad_edge(tmp_path):
    """The parser sees function-level imports, and the cycle finder finds a planted cycle."""
    pkg = tmp_path / "localize"
    (pkg / "models").mkdir(parents=True)
    (pkg / "data").mkdir()
    (pkg / "models" / "m.py").write_text("def f():\n    from localize.data.x import y\n")
    (pkg / "data" / "x.py").write_text("from localize.models import m\n")
    edges = import_edges(pkg)
    assert ("models", "data", "localize/models/m.py") in edges
    assert _cycle(edges) in (["models", "data", "models"], ["data", "models", "data"])


@pytest.mark.parametrize("path", sorted(str(p.relative_to(PKG.parent)) for p in PKG.rglob("*.py")))
def test_files_stay_under_400_lines(path):
    n = len((PKG.parent / path).read_text(encoding="utf-8").splitlines())
    assert n <= 400, f"{path} has {n} lines: split it by concern"
