"""`datahub_assets.ingest` and `datahub_assets.execute` must not import each other in a
cycle: the package-level import graph between the two is acyclic (every import, also the
ones inside functions, read with `ast` without importing anything)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "datahub_assets"
PACKAGES = ("ingest", "execute")


def _imported_modules(path: Path, package: str) -> set[str]:
    """Absolute module names `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = ["datahub_assets", package, *path.relative_to(ROOT / package).with_suffix("").parts]
    if here[-1] == "__init__":
        here = here[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + (1 if path.name == "__init__.py" else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def package_edges() -> dict[str, set[str]]:
    """{package: the other packages of PACKAGES it imports}, with the importing files."""
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in _imported_modules(path, package):
                for other in PACKAGES:
                    if other != package and module.startswith(f"datahub_assets.{other}"):
                        edges[package].add(f"{other} ({path.relative_to(ROOT)}: {module})")
    return edges


def test_the_walker_sees_imports_inside_functions_and_relative_ones(tmp_path):
    pkg = tmp_path / "datahub_assets" / "ingest"
    pkg.mkdir(parents=True)
    source = pkg / "x.py"
    source.write_text(
        "def f():\n    from datahub_assets.execute.runner import run_pipeline\n"
        "from ..execute import drops\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path / "datahub_assets"
    try:
        found = _imported_modules(source, "ingest")
    finally:
        ROOT = saved
    assert "datahub_assets.execute.runner" in found
    assert "datahub_assets.execute.drops" in found


def test_ingest_and_execute_do_not_import_each_other_in_a_cycle():
    edges = package_edges()
    ingest_to_execute = {e for e in edges["ingest"] if e.startswith("execute")}
    execute_to_ingest = {e for e in edges["execute"] if e.startswith("ingest")}
    assert execute_to_ingest, "the walker found no execute -> ingest import at all"
    assert not (ingest_to_execute and execute_to_ingest), (
        "import cycle between datahub_assets.ingest and datahub_assets.execute; ingest "
        f"imports: {sorted(ingest_to_execute)}"
    )
    assert not ingest_to_execute, f"ingest must not import execute: {sorted(ingest_to_execute)}"
