"""`datahub_assets` and `datahub_resources` have no import cycle: the module import graph, read
from the source with `ast` (nothing is imported), is acyclic.

Every import statement is an edge, wherever it stands: at module level, inside a function or a
method (a function-level import only delays the cycle to the first call, it does not remove it),
relative or absolute. `from a.b import c` is an edge to the module `a.b.c` when it is one, else to
`a.b`; importing `a.b.c` also runs the package `a/b/__init__.py`, an edge too unless that package
encloses the importer (Python has begun importing it before the importer). Imports under
`if TYPE_CHECKING:` never run and are not edges.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("datahub_assets", "datahub_resources")

# Cycles the graph still holds, each as the sorted modules of its strongly connected component.
# Empty when the code has none; a new cycle fails the test, and so does a fixed one left here.
KNOWN_CYCLES: set[tuple[str, ...]] = set()


def module_name(path: Path, root: Path) -> str:
    """`root/a/b/c.py` -> `a.b.c`; `root/a/b/__init__.py` -> `a.b`."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """{module name: file} of every module of `packages` under `root`."""
    return {
        module_name(path, root): path
        for package in packages
        for path in sorted((root / package).rglob("*.py"))
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of `tree`, at any depth, except those under `if TYPE_CHECKING:`
    (its `else:` branch runs and is kept)."""
    if isinstance(tree, ast.Import | ast.ImportFrom):
        yield tree
        return
    if isinstance(tree, ast.If) and _is_type_checking(tree.test):
        children: list[ast.AST] = list(tree.orelse)
    else:
        children = list(ast.iter_child_nodes(tree))
    for child in children:
        yield from _import_nodes(child)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The module a `from ... import` names, relative dots resolved against `importer`."""
    if not node.level:
        return node.module or ""
    here = importer.split(".")
    base = here[: len(here) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(path: Path, importer: str, known: set[str]) -> set[str]:
    """The modules of `known` that running `path` (module `importer`) imports."""
    is_package = path.name == "__init__.py"
    named: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
            continue
        module = _absolute(node, importer, is_package)
        for alias in node.names:
            # `from m import sub` (a submodule) needs m only as its package, `from m import name`
            # needs m itself
            sub = f"{module}.{alias.name}"
            named.add(sub if sub in known else module)
    enclosing = {".".join(importer.split(".")[:i]) for i in range(1, importer.count(".") + 1)}
    if is_package:
        enclosing.add(importer)
    out: set[str] = set()
    for name in named:
        if name in known:
            out.add(name)
        parts = name.split(".")
        out.update(
            parent
            for parent in (".".join(parts[:i]) for i in range(1, len(parts)))
            if parent in known and parent not in enclosing
        )
    out.discard(importer)
    return out


def import_graph(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """{module: the modules of `packages` it imports}."""
    modules = package_modules(root, packages)
    known = set(modules)
    return {name: imported_modules(path, name, known) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """The strongly connected components of `graph` with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[tuple[str, ...]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(tuple(sorted(component)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def one_cycle(graph: dict[str, set[str]], component: tuple[str, ...]) -> list[str]:
    """A shortest import path from the component's first module back to itself."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"{component} is not a cycle")


def _describe(graph: dict[str, set[str]], found: set[tuple[str, ...]]) -> str:
    return "\n".join(
        f"  {', '.join(c)}\n    e.g. {' -> '.join(one_cycle(graph, c))}" for c in sorted(found)
    )


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_walker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg.b import thing\n",
            "pkg/b.py": "from . import c\n",
            "pkg/c.py": "class C:\n    def m(self):\n        from .a import f\n",
        },
    )
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == {("pkg.a", "pkg.b", "pkg.c")}
    assert one_cycle(graph, ("pkg.a", "pkg.b", "pkg.c")) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_the_walker_follows_package_inits_and_skips_type_checking(tmp_path):
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from pkg.sub.x import X\n",
            "pkg/sub/x.py": "from pkg.sub import y\nfrom pkg.other import Z\nX = 1\n",
            "pkg/sub/y.py": "",
            "pkg/other.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.x import X\n"
                "else:\n    import pkg.sub.y\n"
            ),
            "pkg/user.py": "from pkg.sub.y import nothing\n",
        },
    )
    graph = import_graph(tmp_path, ("pkg",))
    # inside its own package, importing a sibling does not re-enter the package's __init__
    assert graph["pkg.sub.x"] == {"pkg.sub.y", "pkg.other"}
    # from outside, importing pkg.sub.y runs pkg/sub/__init__.py first
    assert graph["pkg.user"] == {"pkg.sub", "pkg.sub.y"}
    assert graph["pkg.other"] == {"pkg.sub", "pkg.sub.y"}
    assert cycles(graph) == {("pkg.other", "pkg.sub", "pkg.sub.x")}


def test_the_graph_covers_both_packages():
    graph = import_graph()
    assert "datahub_assets.spec.models" in graph
    assert "datahub_resources.iceberg" in graph
    assert "datahub_assets.spec.models" in graph["datahub_assets.spec.loader"]


def test_ingest_does_not_import_execute():
    """The file-drop store and ledger (`ingest`) sit below the pipeline run (`execute`), which
    imports them; no module of ingest imports one of execute (the two packages stay apart)."""
    graph = import_graph()
    edges = {(a, b) for a, targets in graph.items() for b in targets}
    into = "datahub_assets.execute"
    ingest_to_execute = sorted(
        f"{a} -> {b}"
        for a, b in edges
        if a.startswith("datahub_assets.ingest") and (b == into or b.startswith(f"{into}."))
    )
    assert any(a.startswith(into) and b.startswith("datahub_assets.ingest") for a, b in edges), (
        "the walker found no execute -> ingest import at all"
    )
    assert not ingest_to_execute, f"ingest must not import execute: {ingest_to_execute}"


def test_no_import_cycles_beyond_the_known_ones():
    graph = import_graph()
    found = cycles(graph)
    assert found == KNOWN_CYCLES, (
        f"import cycles (strongly connected modules):\n{_describe(graph, found)}\n"
        f"new: {sorted(found - KNOWN_CYCLES)}\nno longer found: {sorted(KNOWN_CYCLES - found)}"
    )
