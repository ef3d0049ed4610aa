"""No import cycle in the runtime (issue 19): its modules form a directed acyclic graph, counting every
import, those inside functions too (a lazy import only hides a cycle until the call that needs it)."""
from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

RUNTIME = REPO / "runtime" / "chexmask_rt"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _in_type_checking(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (relative and absolute, at any depth). A package's
``__init__`` counts only where it is imported by name, not as the parent every submodule import runs."""
    files = {_module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    # extension modules, known by their stubs (_core.pyi): imported, importing nothing of the package's Python
    stubs = {_module_name(p, root) for p in root.rglob("*.pyi")} - set(files)
    graph: dict[str, set[str]] = {name: set() for name in [*files, *stubs]}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if _in_type_checking(node, parents):
                continue
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                # "from . import x" depends on the module x; "from .m import name", on m
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in graph else base for a in node.names]
            graph[name] |= {t for t in targets if t in graph and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_runtime_has_no_import_cycle():
    graph = import_graph(RUNTIME)
    assert len(graph) > 20 and sum(map(len, graph.values())) > 40  # the scan sees the package and its imports
    assert cycles(graph) == []


def test_the_scan_finds_cycles_through_lazy_and_relative_imports(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import thing\n")
    (package / "b.py").write_text("def f():\n    from .sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from .. import a\nfrom typing import TYPE_CHECKING\n"
                                          "if TYPE_CHECKING:\n    from ..d import x\n")
    (package / "d.py").write_text("import pkg.sub.c\n")
    graph = import_graph(package)
    assert graph["pkg.sub.c"] == {"pkg.a"} and graph["pkg.d"] == {"pkg.sub.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
