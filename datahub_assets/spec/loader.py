"""Load every pipeline under DATAHUB_PIPELINES_DIR into a validated Project.

Layout (contract section 1): `<dir>/<app>/{raw,bronze,silver,gold,service}/*.xml|*.yaml|*.yml`
plus an optional `<app>/app.yaml`, and job pipelines in `<app>/jobs/` (read first: the
parameters a job declares may be used by the pipelines it runs; resolved last, against the
loaded pipelines: `spec/jobs.py`). `schemas/` and `lookups/` are not pipelines. Every
problem in every file is raised together.

Each file is read under a guard (`_guarded`): whatever goes wrong while reading one file
(its SpecErrors, bad UTF-8, a file over the size limit of spec/limits.py, or an unexpected
exception) becomes that file's located errors, and the other files are still read.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from datahub_assets.spec.engine_rules import engine_errors, resolve_requested
from datahub_assets.spec.errors import SpecError, SpecErrors
from datahub_assets.spec.job_models import JobPipeline
from datahub_assets.spec.jobs import JobCheck, job_parameters, read_job_text
from datahub_assets.spec.limits import MAX_DEFINITION_BYTES, size_problem
from datahub_assets.spec.models import (
    LAYER_ALIASES,
    LAYERS,
    AppConfig,
    Pipeline,
    PipelineSpec,
    Project,
    ReferentialCheck,
    ResolvedTarget,
    TableRef,
    TableSource,
)
from datahub_assets.spec.schema_files import SchemaFile
from datahub_assets.spec.secrets_policy import policy_errors
from datahub_assets.spec.validate import CRON_HELP, PipelineCheck, canonical_layer, cron_problem
from datahub_assets.spec.xml_reader import read_pipeline_xml
from datahub_assets.spec.yaml_reader import read_app_yaml, read_pipeline_yaml

APP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
LAYER_DIRS = (*LAYERS, *LAYER_ALIASES)
SKIPPED_DIRS = ("jobs", "schemas", "lookups", "python")  # python/: datahub_assets/python/
SUFFIXES = (".xml", ".yaml", ".yml")
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def read_pipeline_text(text: str, file: str) -> Pipeline:
    """Read one pipeline definition; the format follows the file name's suffix."""
    if file.endswith(".xml"):
        return read_pipeline_xml(text, file)
    return read_pipeline_yaml(text, file)


ParseFn = Callable[[str, str], Pipeline]


class ParseCache:
    """`read_pipeline_text` remembered by (file name, exact text), for a process that loads
    the same project again and again with a few files changed (the service validates each
    change as the whole project would load with it). Parsing is about half of a load; a hit
    is what a fresh parse returns, since pipelines are frozen models and the key is the
    exact input; a file's SpecErrors are remembered too, other exceptions are not. At most
    `size` entries, least recently used first out; thread-safe."""

    def __init__(self, read: ParseFn = read_pipeline_text, size: int = 20_000) -> None:
        self.read = read
        self.size = size
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple[str, str], Pipeline | list[SpecError]] = OrderedDict()

    def __call__(self, text: str, file: str) -> Pipeline:
        key = (file, text)
        with self._lock:
            hit = self._done.get(key)
            if hit is not None:
                self._done.move_to_end(key)
        if hit is None:
            try:
                hit = self.read(text, file)
            except SpecErrors as exc:
                hit = list(exc.errors)
            with self._lock:
                self._done[key] = hit
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
        if isinstance(hit, list):
            raise SpecErrors(list(hit))
        return hit


@dataclass(eq=False)
class _Loaded:
    app: str
    file: str
    pipeline: Pipeline
    targets: list[ResolvedTarget]
    schemas: dict[str, SchemaFile] = field(default_factory=dict)


@dataclass
class _State:
    root: Path
    errors: list[SpecError] = field(default_factory=list)
    apps: dict[str, AppConfig] = field(default_factory=dict)
    loaded: list[_Loaded] = field(default_factory=list)
    broken_apps: set[str] = field(default_factory=set)
    default_engine: str = "spark"
    jobs: list[tuple[str, str, JobPipeline]] = field(default_factory=list)
    job_params: dict[str, frozenset[str]] = field(default_factory=dict)
    parse: ParseFn = read_pipeline_text

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def err(self, file: str, message: str, node: Any = None) -> None:
        loc = getattr(node, "loc", None)
        line, col = (loc.line, loc.column) if loc else (0, 0)
        self.errors.append(SpecError(file, line, col, message))


def read_definition(path: Path, rel: str) -> str:
    """The text of a definition file, read no further than the size limit (a bigger file
    is refused without being read whole)."""
    with path.open("rb") as handle:
        data = handle.read(MAX_DEFINITION_BYTES + 1)
    too_big = size_problem(max(len(data), path.stat().st_size))
    if too_big:
        raise SpecErrors([SpecError(rel, 1, 1, too_big)])
    return data.decode("utf-8")


def _guarded(state: _State, rel: str, read: Callable[[], _T]) -> _T | None:
    """`read()` (which reads the file `rel`), or None with its problems in `state.errors`:
    its SpecErrors, bad UTF-8 at its line, or an unexpected exception, named, at line 1.
    One file's trouble never stops the load of the others."""
    try:
        return read()
    except SpecErrors as exc:
        state.errors += exc.errors
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1 if isinstance(exc.object, bytes) else 0
        state.errors.append(SpecError(rel, line, 0, f"not UTF-8 text: {exc.reason}"))
    except Exception as exc:  # noqa: BLE001 - the guard: one file's error, never the load's
        _log.debug("unexpected error reading %s", rel, exc_info=True)
        text = str(exc)
        text = text if len(text) <= 300 else f"{text[:300]}..."
        state.errors.append(
            SpecError(
                rel,
                1,
                1,
                f"could not be read: {type(exc).__name__}: {text} (an unexpected error in "
                "the loader: please report it with this file; until it is fixed, change "
                "or remove the file)",
            )
        )
    return None


def load_project(
    pipelines_dir: Path, default_engine: str | None = None, *, parse: ParseFn | None = None
) -> Project:
    """Read and validate every app under `pipelines_dir`; raises SpecErrors listing all errors.

    `default_engine`: the engine of pipelines that name none, neither themselves nor in
    app.yaml (default: DATAHUB_ENGINE); a pipeline on engine "duckdb" that DuckDB cannot run
    is a load error (spec/engine_rules.py). `parse`: reads one definition's text (default
    `read_pipeline_text`; a ParseCache in a process that loads the project repeatedly)."""
    root = Path(pipelines_dir)
    if default_engine is None:
        from datahub_resources.settings import Settings

        default_engine = Settings.from_env().engine
    state = _State(root, default_engine=default_engine, parse=parse or read_pipeline_text)
    if not root.is_dir():
        raise SpecErrors([SpecError(str(root), 0, 0, "pipelines directory not found")])
    app_dirs = []
    for app_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not APP_NAME.match(app_dir.name):
            state.err(
                app_dir.name,
                f'app folder name "{app_dir.name}" is not valid; allowed: '
                "lowercase letters, digits and _, starting with a letter",
            )
            continue
        app_dirs.append(app_dir)
        _read_jobs(state, app_dir)
    state.job_params = job_parameters(state.jobs)
    for app_dir in app_dirs:
        _load_app(state, app_dir)
    specs = _resolve(state)
    check = JobCheck(
        specs, state.broken_apps, {app: config.notifications for app, config in state.apps.items()}
    )
    jobs = check.resolve(state.jobs)
    state.errors += check.errors
    pipelines = [(item.app, item.file, item.pipeline) for item in state.loaded]
    state.errors += policy_errors(state.apps, pipelines, state.jobs)
    if state.errors:
        raise SpecErrors(state.errors)
    return Project(root=str(root), apps=state.apps, pipelines=tuple(specs), jobs=tuple(jobs))


def _read_jobs(state: _State, app_dir: Path) -> None:
    folder = app_dir / "jobs"
    if not folder.is_dir():
        return
    for file in sorted(folder.iterdir()):
        if not (file.is_file() and file.suffix in SUFFIXES) or file.name.startswith("."):
            continue
        rel = state.rel(file)
        job = _guarded(state, rel, lambda f=file, r=rel: read_job_text(read_definition(f, r), r))
        if job is not None:
            state.jobs.append((app_dir.name, rel, job))


def _load_app(state: _State, app_dir: Path) -> None:
    app = app_dir.name
    config = AppConfig()
    for name in ("app.yaml", "app.yml"):
        if (app_dir / name).is_file():
            path, rel = app_dir / name, state.rel(app_dir / name)
            config = (
                _guarded(state, rel, lambda p=path, r=rel: read_app_yaml(read_definition(p, r), r))
                or AppConfig()
            )
            problem = cron_problem(config.maintenance.schedule)
            if problem:
                state.err(
                    state.rel(path),
                    f'maintenance.schedule "{config.maintenance.schedule}" is not a '
                    f"cron expression: {problem}; {CRON_HELP}",
                    config.maintenance,
                )
    state.apps[app] = config
    for entry in sorted(app_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if entry.suffix in SUFFIXES and entry.name not in ("app.yaml", "app.yml"):
                state.err(
                    state.rel(entry),
                    "pipeline files belong in a layer folder; allowed: "
                    + ", ".join(f"{app}/{d}/" for d in LAYERS),
                )
            continue
        if entry.name in SKIPPED_DIRS:
            continue
        if entry.name not in LAYER_DIRS:
            state.err(
                state.rel(entry),
                f'unknown folder "{entry.name}" in app {app}; allowed: '
                + ", ".join((*LAYER_DIRS, *SKIPPED_DIRS)),
            )
            continue
        for file in sorted(entry.iterdir()):
            if file.is_file() and file.suffix in SUFFIXES:
                _load_file(state, app, entry.name, file, config)


def _load_file(state: _State, app: str, folder: str, path: Path, config: AppConfig) -> None:
    rel = state.rel(path)
    loaded = _guarded(state, rel, lambda: _check_file(state, app, folder, path, config))
    if loaded is None:
        state.broken_apps.add(app)
        return
    state.loaded.append(loaded)


def _check_file(state: _State, app: str, folder: str, path: Path, config: AppConfig) -> _Loaded:
    """One pipeline file read and checked alone; its rule errors go to `state.errors`."""
    rel = state.rel(path)
    pipeline = state.parse(read_definition(path, rel), rel)
    check = PipelineCheck(pipeline, rel)
    params = state.job_params.get(f"{app}.{pipeline.id}", frozenset())
    check.run(folder, config, params, app_dir=state.root / app)
    targets = check.resolve_targets(app)
    state.errors += check.errors
    engine, origin = resolve_requested(
        pipeline.engine, config.engine, state.default_engine, rel, _line(pipeline)
    )
    state.errors += engine_errors(pipeline, rel, engine, origin)
    return _Loaded(app, rel, pipeline, targets, check.schemas)


def _line(p: Pipeline) -> int:
    return p.loc.line if p.loc else 0


def _resolve(state: _State) -> list[PipelineSpec]:
    ids: dict[tuple[str, str], _Loaded] = {}
    tables: dict[TableRef, _Loaded] = {}
    for item in state.loaded:
        key = (item.app, item.pipeline.id)
        if key in ids:
            first = ids[key]
            state.err(
                item.file,
                f'pipeline id="{item.pipeline.id}" is already used by '
                f"{first.file}:{_line(first.pipeline)}; ids must be unique "
                f"within app {item.app}",
                item.pipeline,
            )
        ids.setdefault(key, item)
        for target in item.targets:
            if target.ref in tables:
                other = tables[target.ref]
                state.err(
                    item.file,
                    f"table {target.ref} is already written by "
                    f"{other.file}:{_line(other.pipeline)}; each table has "
                    "one writing pipeline",
                    target.target,
                )
            tables.setdefault(target.ref, item)
    known = {**tables, **_python_tables(state, tables)}
    specs, edges = [], {}
    for item in state.loaded:
        refs = _source_refs(state, item, known)
        _referenced_tables(state, item, known)
        upstream = tuple(dict.fromkeys(refs.values()))
        edges[item] = [(tables[r], r) for r in upstream if r in tables]
        config = state.apps[item.app]
        meta = item.pipeline.metadata
        specs.append(
            PipelineSpec(
                app=item.app,
                file=item.file,
                line=_line(item.pipeline),
                pipeline=item.pipeline,
                targets=tuple(item.targets),
                upstream=upstream,
                source_refs=refs,
                owner=meta.owner or config.owner,
                tags={**config.tags, **meta.tags},
                connections=_connections_used(item.pipeline, config),
                schemas=item.schemas,
                app_engine=config.engine,
            )
        )
    _cycles(state, edges)
    return sorted(specs, key=lambda s: (s.app, s.file))


def _python_tables(state: _State, tables: dict[TableRef, _Loaded]) -> dict:
    """Tables written by the Python assets of `<app>/python/*.py` (datahub_assets/python/),
    which XML pipelines may read; importing them here puts their errors with the others."""
    from datahub_assets.python.discovery import discover

    found = discover(state.root, {r: f"{i.file}:{_line(i.pipeline)}" for r, i in tables.items()})
    state.errors += found.errors
    return found.tables


def _connections_used(pipeline, config) -> dict:
    named = (getattr(n, "connection", None) for n in (*pipeline.sources, *pipeline.targets))
    names: set[str] = {name for name in named if name is not None}
    return {name: config.connections[name] for name in sorted(names) if name in config.connections}


def _source_refs(state: _State, item: _Loaded, tables: dict) -> dict[str, TableRef]:
    refs: dict[str, TableRef] = {}
    for src in item.pipeline.sources:
        if not isinstance(src, TableSource):
            continue
        parts = src.ref.split(".")
        if len(parts) == 2:
            parts = [item.app, *parts]
        if len(parts) != 3 or canonical_layer(parts[1]) not in LAYERS:
            state.err(
                item.file,
                f'ref="{src.ref}" on <table> source is not a table '
                "reference; allowed: <app>.<layer>.<table> or <layer>.<table> "
                f"with layer one of {', '.join(LAYERS)}",
                src,
            )
            continue
        ref = TableRef.model_validate(
            {"app": parts[0], "layer": canonical_layer(parts[1]), "table": parts[2]}
        )
        if ref not in tables:
            if ref.app not in state.broken_apps:
                near = difflib.get_close_matches(str(ref), [str(t) for t in tables], n=3)
                hint = f"; near matches: {', '.join(near)}" if near else ""
                state.err(
                    item.file,
                    f'ref="{src.ref}" on <table> source names no table '
                    f"target in the project ({ref}){hint}",
                    src,
                )
            continue
        refs[src.id] = ref
    return refs


def _referenced_tables(state: _State, item: _Loaded, tables: dict) -> None:
    """The table of every referential check exists (its build adds it as a dependency)."""
    for check in item.pipeline.checks:
        if not isinstance(check, ReferentialCheck):
            continue
        parts = check.ref.split(".")
        if len(parts) not in (3, 4):
            continue  # reported by the pipeline's own rules
        app, layer, table = ([item.app, *parts] if len(parts) == 3 else parts)[:3]
        ref = f"{app}.{canonical_layer(layer)}.{table}"
        known = {str(t) for t in tables}
        if ref not in known and app not in state.broken_apps:
            near = difflib.get_close_matches(ref, sorted(known), n=3)
            hint = f"; near matches: {', '.join(near)}" if near else ""
            state.err(
                item.file,
                f'ref="{check.ref}" on <referential> names no table target in the project '
                f"({ref}){hint}",
                check,
            )


def _cycles(state: _State, edges: dict) -> None:
    """Report every cycle among pipelines through table references, once each."""
    reported: set[frozenset[str]] = set()
    done: set[int] = set()

    def key(item: _Loaded) -> str:
        return f"{item.app}.{item.pipeline.id}"

    def visit(item: _Loaded, stack: list[tuple[_Loaded, TableRef | None]]) -> None:
        if id(item) in done:
            return
        on_stack = [s[0] for s in stack]
        for producer, ref in edges.get(item, []):
            if producer in on_stack:
                cycle = [*stack[on_stack.index(producer) :], (producer, ref)]
                names = frozenset(key(c[0]) for c in cycle)
                if names not in reported:
                    reported.add(names)
                    path = " -> ".join(key(c[0]) for c in cycle)
                    via = ", ".join(str(c[1]) for c in cycle[1:])
                    state.err(
                        item.file,
                        "pipelines form a cycle through table references: "
                        f"{path} (each reads the next one's table: {via})",
                        item.pipeline,
                    )
                continue
            visit(producer, [*stack, (producer, ref)])
        done.add(id(item))

    for item in sorted(edges, key=key):
        visit(item, [(item, None)])
