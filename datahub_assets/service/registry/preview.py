"""Preview: the pipelines of a change run on DuckDB on a sample of their sources; nothing written.

    preview(pipelines_dir, app, files, settings, sample_rows=200, pii=False)
      -> {"tables": [{"pipeline", "file", "table", "kind", "columns": [{"name", "type"}],
                      "rows": [[...], ...], "masked": [...]}],
          "checks": [{"pipeline", "table", "name", "kind", "severity", "passed",
                      "failing_rows", "total_rows", "description", "sample"}],
          "errors": [{"file", "line", "column", "message"}]}

`pipelines_dir` is the project as it would be with the change applied (the registry's
overlay). The project is loaded as `datahub validate` loads it; its load errors come back in
"errors" (those in the change's files first). The pipelines defined in the change's files
are run by `execute.preview.preview_pipeline` (the platform's readers, transformations,
gates and checks; no write path, no export, no file-drop planner, no watermark, no run
record) on a DuckDB connection of their own, with a catalog that refuses every change.
Every pipeline has a time bound (`TIMEOUT_S`, the DuckDB query is interrupted) and the
previews of one process run one at a time (the DuckDB engine's sqlframe session is one per
process). A failing source, transformation or gate is an entry of "errors" located by
file:line, never an exception.

Personal data: columns marked `pii` in the `<columns>` of the pipeline's targets or of the
tables it reads are returned as null (and listed in "masked") unless `pii` is True (the
caller has the pii grant on the app). Values of the app's secrets are removed from the
answer wherever they would appear.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.models import PipelineSpec, Project, TableRef, TableTarget
from datahub_resources.settings import environ

SAMPLE_ROWS_MAX = 1000
TIMEOUT_S = 60.0
MAX_PIPELINES = 10
MIN_SECRET_CHARS = 6
SAMPLED = ("<database> source", "<mongo> source", "<database> target")
_LOCK = threading.Lock()
_LOCATED = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+)(?::(?P<column>\d+))?: (?P<msg>.*)$", re.S)
_CHANGING = ("create", "drop", "purge", "register", "rename", "commit", "update", "remove")
_log = logging.getLogger("datahub.service.preview")


class ReadOnlyCatalog:
    """The platform catalog for reading only: loading and listing pass through, anything
    that would change it raises."""

    def __init__(self, catalog: Any) -> None:
        self._catalog = catalog

    def __getattr__(self, name: str) -> Any:
        if name.startswith(_CHANGING):
            raise PermissionError(f"preview writes nothing: catalog.{name} refused")
        return getattr(self._catalog, name)


def platform_settings(settings: Any, pipelines_dir: Path):
    """The platform `Settings` (datahub_resources) of the service's environment, reading
    definitions from `pipelines_dir` (the overlay) and data from the service's data dir."""
    from datahub_resources.settings import Settings

    if isinstance(settings, Settings):
        base = settings
    elif getattr(settings, "platform", None) is not None:  # ServiceSettings.from_env
        base = settings.platform
    else:  # ServiceSettings made by hand: the environment, with its home and folders
        env = {**environ(), "DATAHUB_HOME": str(settings.home)}
        env["DATAHUB_DATA_DIR"] = str(settings.data_dir)
        base = Settings.from_env(env)
    data_dir = getattr(settings, "data_dir", None) or base.data_dir
    return replace(base, pipelines_dir=Path(pipelines_dir), data_dir=Path(data_dir))


def _error(file: str, line: int, message: str, column: int = 0) -> dict:
    return {"file": file, "line": line, "column": column, "message": message}


def located(message: str, default_file: str, default_line: int = 0) -> dict:
    """A run error's message ("file:line: ...") as a located error."""
    m = _LOCATED.match(message.strip())
    if m:
        return _error(m["file"], int(m["line"]), m["msg"].strip(), int(m["column"] or 0))
    return _error(default_file, default_line, message.strip())


def _load(pipelines_dir: Path, changed: set[str]) -> tuple[Project | None, list[dict]]:
    from datahub_assets.spec.loader import load_project

    try:
        return load_project(pipelines_dir), []
    except SpecErrors as exc:
        errors = [_error(e.file, e.line, e.message, e.column) for e in exc.errors]
        mine = [e for e in errors if e["file"] in changed]
        return None, mine or errors


def changed_files(app: str, files: list[dict]) -> set[str]:
    """The change's files as pipelines-dir relative paths (`<app>/<path>`), deletions out."""
    return {f"{app}/{f['path']}" for f in files if f.get("content") is not None}


def pipelines_of(project: Project, app: str, files: list[dict]) -> list[PipelineSpec]:
    """The pipelines the change defines: those whose file is one of the change's files."""
    changed = changed_files(app, files)
    return [p for p in project.pipelines if p.app == app and p.file in changed]


def pii_columns(project: Project, spec: PipelineSpec) -> set[str]:
    """Names of the columns marked pii in the targets of `spec` and of the tables it reads."""
    tables: list[TableRef] = [t.ref for t in spec.targets] + list(spec.upstream)
    owners = project.by_table()
    names: set[str] = set()
    for ref in tables:
        owner = owners.get(ref)
        for t in owner.targets if owner else ():
            if t.ref != ref or not isinstance(t.target, TableTarget):
                continue
            for col in getattr(t.target, "columns", None) or ():
                if getattr(col, "pii", False):
                    names.add(col.name)
    return names


def _mask(table: dict, pii: set[str]) -> dict:
    masked = [i for i, c in enumerate(table["columns"]) if c["name"] in pii]
    if masked:
        table["rows"] = [
            [None if i in masked else v for i, v in enumerate(r)] for r in table["rows"]
        ]
    table["masked"] = [table["columns"][i]["name"] for i in masked]
    return table


def _mask_sample(sample: list[dict], pii: set[str]) -> list[dict]:
    return [{k: (None if k in pii else v) for k, v in row.items()} for row in sample]


def _check(spec: PipelineSpec, ref: TableRef, c: Any, pii: set[str]) -> dict:
    return {
        "pipeline": spec.key,
        "table": str(ref),
        "name": c.name,
        "kind": c.kind,
        "severity": c.severity,
        "passed": bool(c.passed),
        "failing_rows": int(c.failing_rows),
        "total_rows": int(c.total_rows),
        "description": c.description,
        "sample": _mask_sample(list(c.sample), pii),
    }


def _open_catalog(settings: Any) -> Any:
    from datahub_resources.iceberg import load_catalog

    return ReadOnlyCatalog(load_catalog(settings))


def _run_one(spec: PipelineSpec, settings: Any, catalog: Any, n: int, timeout_s: float):
    from datahub_assets.engines.duckdb.session import duckdb_engine
    from datahub_assets.execute.context import ExecContext
    from datahub_assets.execute.preview import preview_pipeline

    engine = duckdb_engine(settings)
    conn = getattr(engine, "connection", None)
    timer = threading.Timer(timeout_s, conn.interrupt) if conn is not None else None
    ctx = ExecContext(
        spark=engine.session,
        settings=settings,
        app=spec.app,
        run_id=f"preview-{uuid.uuid4().hex[:12]}",
        log=_log,
        spec=spec,
        engine=engine,
        engine_reason="preview",
    )
    try:
        if timer is not None:
            timer.start()
        return preview_pipeline(spec, ctx, catalog, n)
    finally:
        if timer is not None:
            timer.cancel()
        if conn is not None:
            conn.close()


def _timed_out(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ == "InterruptException":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def preview_spec(
    project: Project,
    spec: PipelineSpec,
    settings: Any,
    catalog: Any,
    n: int,
    pii: bool,
    timeout_s: float = TIMEOUT_S,
) -> dict:
    """One pipeline's tables, checks and errors (see the module docstring)."""
    from datahub_assets.execute.outcomes import ChecksFailed
    from datahub_assets.spec.engine_rules import blockers_of

    out: dict[str, list] = {"tables": [], "checks": [], "errors": []}
    # database/mongo sources are sampled in Python, targets never written: not blockers here
    blockers = [b for b in blockers_of(spec) if not b.what.startswith(SAMPLED)]
    if blockers:
        out["errors"] += [
            _error(b.file, b.line, f"{b.what}: {b.why} (preview runs on DuckDB)", b.column)
            for b in blockers
        ]
        return out
    hidden = set() if pii else pii_columns(project, spec)
    try:
        targets = _run_one(spec, settings, catalog, n, timeout_s)
    except ChecksFailed as failed:
        for o in failed.outcomes:
            out["checks"] += [_check(spec, o.ref, c, hidden) for c in o.checks]
        out["errors"].append(located(str(failed), spec.file, spec.line))
        return out
    except Exception as exc:  # noqa: BLE001 - every failure is a located answer, not a 500
        if _timed_out(exc):
            message = f"preview stopped after {timeout_s:g} s; narrow the source or the sample"
            out["errors"].append(_error(spec.file, spec.line, message))
        else:
            out["errors"].append(located(f"{exc}", spec.file, spec.line))
        return out
    for t in targets:
        table = {
            "pipeline": spec.key,
            "file": spec.file,
            "table": str(t.ref),
            "kind": t.kind,
            "columns": [{"name": name, "type": dtype} for name, dtype in t.columns],
            "rows": t.rows,
        }
        out["tables"].append(_mask(table, hidden))
        out["checks"] += [_check(spec, t.ref, c, hidden) for c in t.checks]
    return out


def app_secret_values(app: str) -> list[str]:
    """Values of the environment variables app `app` may name as secrets, and their parts a
    message may quote alone (the password of `user:password`, a URI's user info), to scrub."""
    from datahub_assets.execute.mongo.read import secrets_of
    from datahub_resources.secrets import scope_problem

    values: set[str] = set()
    for name, value in environ().items():
        if len(value) < MIN_SECRET_CHARS or scope_problem(name, app) is not None:
            continue
        values.add(value)
        if "://" in value:
            values.update(secrets_of(value))
        elif ":" in value:
            values.add(value.split(":", 1)[1])
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def scrub(obj: Any, values: list[str]) -> Any:
    """`obj` (JSON-like) with every occurrence of `values` in its strings replaced by ***."""
    if isinstance(obj, str):
        for v in values:
            obj = obj.replace(v, "***")
        return obj
    if isinstance(obj, list):
        return [scrub(v, values) for v in obj]
    if isinstance(obj, dict):
        return {k: scrub(v, values) for k, v in obj.items()}
    return obj


def preview(
    pipelines_dir: Path,
    app: str,
    files: list[dict],
    settings: Any,
    sample_rows: int = 200,
    pii: bool = False,
    timeout_s: float = TIMEOUT_S,
) -> dict:
    """The preview of `files` (the change, already applied in `pipelines_dir`); see the
    module docstring."""
    n = max(1, min(int(sample_rows), SAMPLE_ROWS_MAX))
    result: dict[str, list] = {"tables": [], "checks": [], "errors": []}
    project, errors = _load(Path(pipelines_dir), changed_files(app, files))
    if project is None:
        result["errors"] = errors
        return scrub(result, app_secret_values(app))
    specs = pipelines_of(project, app, files)
    if not specs:
        result["errors"].append(
            _error(
                f"{app}/",
                0,
                "the change defines no pipeline to preview (a preview runs the pipelines "
                "of the change's <layer>/*.xml|yaml files)",
            )
        )
    platform = platform_settings(settings, Path(pipelines_dir))
    with _LOCK:
        catalog = _open_catalog(platform) if specs else None
        for spec in specs[:MAX_PIPELINES]:
            one = preview_spec(project, spec, platform, catalog, n, pii, timeout_s)
            for key in result:
                result[key] += one[key]
    if len(specs) > MAX_PIPELINES:
        skipped = ", ".join(s.file for s in specs[MAX_PIPELINES:])
        result["errors"].append(
            _error(
                skipped.split(", ")[0],
                0,
                f"preview runs {MAX_PIPELINES} pipelines at most; not run: {skipped}",
            )
        )
    return scrub(result, app_secret_values(app))
