"""Find the Python assets of every app: `<pipelines dir>/<app>/python/*.py`.

Each module is imported by file path (once per file version: a changed file is imported
again on reload) and its module-level `dg.AssetsDefinition` objects are collected. Every
asset must be keyed `[app, layer, name]` with `app` its folder's app and `layer` one of the
layers, like the XML assets; an asset stored by the Iceberg IO manager is a platform table
that XML pipelines may read (`spec.loader` asks `discover` for them). Problems (syntax
errors, failing imports, bad or duplicate keys, a table also written by an XML pipeline, an
input naming no table) are returned as located SpecErrors, reported with the XML ones by
`datahub validate` and at definitions load.
"""

from __future__ import annotations

import contextvars
import importlib.util
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import dagster as dg

from datahub_assets.spec.errors import SpecError
from datahub_assets.spec.limits import MAX_DEFINITION_BYTES
from datahub_assets.spec.models import LAYERS, TableRef
from datahub_resources.iceberg_io import IO_MANAGER_KEY

FOLDER = "python"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Importing:
    """The module being imported: `table_asset` defaults its app and location from it."""

    app: str
    file: str
    """Relative to the pipelines folder (as definition files are reported)."""
    owner: str | None = None


CURRENT: contextvars.ContextVar[Importing | None] = contextvars.ContextVar(
    "datahub_python_importing", default=None
)


@dataclass(frozen=True)
class PythonTable:
    ref: TableRef
    file: str
    line: int
    upstream: tuple[dg.AssetKey, ...] = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Discovered:
    assets: list[dg.AssetsDefinition] = field(default_factory=list)
    tables: dict[TableRef, PythonTable] = field(default_factory=dict)
    errors: list[SpecError] = field(default_factory=list)


_CACHE: dict[Path, tuple[tuple[int, int], list[dg.AssetsDefinition] | SpecError]] = {}


def python_files(root: Path) -> list[tuple[str, Path]]:
    """(app, file) of every `<app>/python/*.py` under `root`, sorted."""
    out = []
    if not root.is_dir():
        return out
    for app_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = app_dir / FOLDER
        if folder.is_dir():
            out += [
                (app_dir.name, f)
                for f in sorted(folder.glob("*.py"))
                if not f.name.startswith((".", "_"))
            ]
    return out


def _owner(app_dir: Path) -> str | None:
    """The app's owner from app.yaml (Dagster form: an email or `team:<name>`), cheaply."""
    import yaml

    for name in ("app.yaml", "app.yml"):
        path = app_dir / name
        if path.is_file():
            try:
                if path.stat().st_size > MAX_DEFINITION_BYTES:
                    return None
                owner = (yaml.safe_load(path.read_text("utf-8")) or {}).get("owner")
            except Exception:  # noqa: BLE001 - reported, located, by the spec loader
                return None
            if not owner:
                return None
            owner = str(owner).strip()
            if "@" in owner or owner.startswith("team:"):
                return owner
            return f"team:{re.sub(r'[^A-Za-z0-9_.-]', '-', owner)}"
    return None


def _failure_line(exc: BaseException, path: Path) -> int:
    """The line of `path` in the exception's traceback (the innermost), else 0."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno or 0
    return line


def _import(app: str, path: Path, rel: str) -> list[dg.AssetsDefinition] | SpecError:
    stat = path.stat()
    stamp = (stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(path)
    if cached and cached[0] == stamp:
        return cached[1]
    name = f"datahub_python_assets__{app}__{re.sub(r'[^A-Za-z0-9_]', '_', path.stem)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # a .py file always has one
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    token = CURRENT.set(Importing(app, rel, _owner(path.parent.parent)))
    result: list[dg.AssetsDefinition] | SpecError
    try:
        spec.loader.exec_module(module)
        result = _collect(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        result = SpecError(rel, exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}")
    except Exception as exc:
        sys.modules.pop(name, None)
        first = (str(exc).splitlines() or [""])[0]
        result = SpecError(
            rel,
            _failure_line(exc, path),
            0,
            f"importing the Python assets failed: {type(exc).__name__}: {first}",
        )
    finally:
        CURRENT.reset(token)
    _CACHE[path] = (stamp, result)
    return result


def _collect(module: ModuleType) -> list[dg.AssetsDefinition]:
    seen: dict[int, dg.AssetsDefinition] = {}
    for value in vars(module).values():
        if isinstance(value, dg.AssetsDefinition):
            seen.setdefault(id(value), value)
    return list(seen.values())


def definition_line(asset: dg.AssetsDefinition, key: dg.AssetKey) -> int:
    """The line an asset is defined at: `datahub/definition` metadata, else its function."""
    where = str(asset.specs_by_key[key].metadata.get("datahub/definition", ""))
    if ":" in where and where.rsplit(":", 1)[1].isdigit():
        return int(where.rsplit(":", 1)[1])
    fn = getattr(getattr(asset.op, "compute_fn", None), "decorated_fn", None)
    code = getattr(fn, "__code__", None)
    return code.co_firstlineno if code else 0


def _key_problem(key: dg.AssetKey, app: str) -> str | None:
    path = key.path
    if len(path) != 3 or path[0] != app or path[1] not in LAYERS or not NAME.match(path[2]):
        return (
            f"asset key {key.to_user_string()} is not [{app}, <layer>, <name>] with layer one "
            f"of {', '.join(LAYERS)} and a name of letters, digits and _; use "
            "datahub_assets.python.table_asset(layer=..., name=...)"
        )
    return None


def _upstream(asset: dg.AssetsDefinition, key: dg.AssetKey) -> tuple[dg.AssetKey, ...]:
    return tuple(d.asset_key for d in asset.specs_by_key[key].deps)


def discover(root: Path, written: Mapping[TableRef, str] | None = None) -> Discovered:
    """Every Python asset under `root`; `written` maps the XML pipelines' tables to their
    `file:line` (a Python asset may not write one; its inputs must name a known asset)."""
    root = Path(root)
    written = written or {}
    found = Discovered()
    where: dict[dg.AssetKey, tuple[str, int]] = {}
    for app, path in python_files(root):
        rel = path.relative_to(root).as_posix()
        result = _import(app, path, rel)
        if isinstance(result, SpecError):
            found.errors.append(result)
            continue
        for asset in result:
            found.assets.append(asset)
            for key in asset.keys:
                line = definition_line(asset, key)
                problem = _key_problem(key, app)
                if problem:
                    found.errors.append(SpecError(rel, line, 0, problem))
                    continue
                if key in where:
                    file, first = where[key]
                    found.errors.append(
                        SpecError(
                            rel,
                            line,
                            0,
                            f"asset {key.to_user_string()} is already "
                            f"defined at {file}:{first}; asset keys must be unique",
                        )
                    )
                    continue
                where[key] = (rel, line)
                ref = TableRef(app=key.path[0], layer=key.path[1], table=key.path[2])  # pyright: ignore[reportArgumentType] - layer checked above
                if ref in written:
                    found.errors.append(
                        SpecError(
                            rel,
                            line,
                            0,
                            f"table {ref} is already written by "
                            f"{written[ref]}; each table has one writer",
                        )
                    )
                    continue
                if asset.get_io_manager_key_for_asset_key(key) == IO_MANAGER_KEY:
                    found.tables[ref] = PythonTable(ref, rel, line, _upstream(asset, key))
    _check_inputs(found, where, written)
    return found


def _check_inputs(
    found: Discovered, where: Mapping[dg.AssetKey, tuple[str, int]], written: Mapping
) -> None:
    """A Python asset's dependency that looks like a platform table must be one."""
    known = {dg.AssetKey(ref.asset_path) for ref in written} | set(where)
    for asset in found.assets:
        for key in asset.keys:
            if key not in where:
                continue
            file, line = where[key]
            for dep in _upstream(asset, key):
                if dep in known or len(dep.path) != 3 or dep.path[1] not in LAYERS:
                    continue
                found.errors.append(
                    SpecError(
                        file,
                        line,
                        0,
                        f"asset {key.to_user_string()} reads "
                        f"{'.'.join(dep.path)}, which no XML pipeline or Python asset "
                        "writes",
                    )
                )


def cycles(pipelines: Sequence, found: Discovered) -> list[SpecError]:
    """Dependency cycles through a Python asset (XML -> Python -> XML -> ...), which the spec
    loader cannot see (it knows Python tables, not what Python assets read); one error per
    cycle, at the first Python asset on it."""
    deps: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for spec in pipelines:
        upstream = {dg.AssetKey(ref.asset_path) for ref in spec.upstream}
        for target in spec.targets:
            deps.setdefault(dg.AssetKey(target.ref.asset_path), set()).update(upstream)
    python = {dg.AssetKey(t.ref.asset_path): t for t in found.tables.values()}
    for key, table in python.items():
        deps.setdefault(key, set()).update(table.upstream)
    errors, reported = [], set()
    for start in sorted(python, key=lambda k: k.to_user_string()):
        path = _path_back(start, deps)
        if path is None or frozenset(path) in reported:
            continue
        reported.add(frozenset(path))
        table = python[start]
        names = " -> ".join(k.to_user_string() for k in [start, *path])
        errors.append(
            SpecError(
                table.file,
                table.line,
                0,
                f"assets form a dependency cycle: {names} (each reads the next one's table)",
            )
        )
    return errors


def _path_back(start: dg.AssetKey, deps: Mapping[dg.AssetKey, set[dg.AssetKey]]):
    """A dependency path from `start` back to itself, or None."""
    stack, seen = [(start, [])], set()
    while stack:
        key, path = stack.pop()
        for dep in deps.get(key, ()):
            if dep == start:
                return [*path, dep]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, [*path, dep]))
    return None
