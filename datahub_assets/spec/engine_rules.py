"""The `engine` a pipeline asks for, and what keeps a pipeline off DuckDB.

The requested engine is the pipeline's `engine=`, else its app.yaml's `engine:`, else the
deployment's DATAHUB_ENGINE (`resolve_requested`). A pipeline runs on DuckDB only if nothing in
it needs Spark (`duckdb_blockers`):

- database (JDBC) and MongoDB sources, database targets: DuckDB has no reader/writer for them;
- Spark SQL in the definition (derive/filter/join/select/sort/deduplicate expressions, sql
  queries, expression checks, cast types) that sqlglot cannot translate from Spark SQL to
  DuckDB SQL, that calls a function DuckDB does not have (an unknown function after
  translation that `duckdb_functions()` does not list), or a function whose DuckDB namesake
  gives other values (`DIFFERENT_RESULTS`: `hash`);
- a regex check's pattern that DuckDB's RE2 does not accept (Java-only syntax such as
  look-arounds and back-references).

An explicit engine="duckdb" (from the pipeline, app.yaml or DATAHUB_ENGINE) with a blocker is a
load error at the blocker's file:line (`engine_errors`, run by the loader for each pipeline);
`auto` runs such a pipeline on Spark and says why (engines/choice.py). The SQL checks import
sqlglot (and duckdb for the function list, once per process) only when a pipeline is checked,
and a Spark SQL text is translated once per process however many pipelines repeat it.
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from datahub_assets.spec.errors import SpecError
from datahub_assets.spec.models import Cast as CastStep
from datahub_assets.spec.models import (
    DatabaseSource,
    DatabaseTarget,
    Deduplicate,
    Derive,
    ExpressionCheck,
    Filter,
    Join,
    MongoSource,
    Pipeline,
    PipelineSpec,
    RegexCheck,
    Select,
    Sort,
    Sql,
)

APP_YAML = "app.yaml"
DEFAULT_ORIGIN = "DATAHUB_ENGINE"
_SHOWN = 80  # characters of a Spark SQL text quoted in a message


@dataclass(frozen=True)
class EngineBlocker:
    """One construct of a pipeline that DuckDB cannot run, where it is written and why."""

    file: str
    line: int
    column: int
    what: str
    """The construct, e.g. `<database> source "users"`, `condition= on <filter>`."""
    why: str
    """Why DuckDB cannot run it."""

    def __str__(self) -> str:
        return f"{self.what} ({self.file}:{self.line}): {self.why}"


def resolve_requested(
    pipeline_engine: str | None,
    app_engine: str | None,
    default_engine: str,
    file: str,
    line: int,
) -> tuple[str, str]:
    """(engine, origin): the pipeline's engine= (origin `pipeline <file>:<line>`), else
    app.yaml's (`app.yaml`), else the deployment's default (`DATAHUB_ENGINE`)."""
    if pipeline_engine:
        return pipeline_engine, f"pipeline {file}:{line}"
    if app_engine:
        return app_engine, APP_YAML
    return default_engine, DEFAULT_ORIGIN


def engine_errors(pipeline: Pipeline, file: str, requested: str, origin: str) -> list[SpecError]:
    """Load errors of a pipeline whose requested engine is `duckdb`: one per blocker, at the
    blocker's line. Other engines: none (nothing is translated)."""
    if requested != "duckdb":
        return []
    where = (
        f"engine= on <pipeline> at {origin.removeprefix('pipeline ')}"
        if origin.startswith("pipeline ")
        else f"from {origin}"
    )
    return [
        SpecError(
            b.file,
            b.line,
            b.column,
            f"{b.what} cannot run on DuckDB: {b.why}; the pipeline's engine is "
            f'"duckdb" ({where}): set engine="spark", or engine="auto" to run it on '
            "Spark while it has this",
        )
        for b in duckdb_blockers(pipeline, file)
    ]


# --------------------------------------------------------------------------- blockers


_BLOCKERS: dict[int, tuple[EngineBlocker, ...]] = {}


def blockers_of(spec: PipelineSpec) -> tuple[EngineBlocker, ...]:
    """What keeps `spec` off DuckDB (`duckdb_blockers` of its pipeline); empty when it can run
    there. Computed on first use (a run on `auto`), not at load: load refuses them only for
    an explicit engine="duckdb"; kept while the spec lives."""
    key = id(spec)
    found = _BLOCKERS.get(key)
    if found is None:
        found = _BLOCKERS[key] = duckdb_blockers(spec.pipeline, spec.file)
        weakref.finalize(spec, _BLOCKERS.pop, key, None)
    return found


def duckdb_blockers(pipeline: Pipeline, file: str) -> tuple[EngineBlocker, ...]:
    """Everything in `pipeline` that DuckDB cannot run, in definition order (empty: it can)."""
    out: list[EngineBlocker] = []

    def add(node: Any, what: str, why: str) -> None:
        loc = node.loc or pipeline.loc
        line, column = (loc.line, loc.column) if loc else (0, 0)
        out.append(EngineBlocker(file, line, column, what, why))

    for src in pipeline.sources:
        if isinstance(src, DatabaseSource):
            add(src, f'<database> source "{src.id}"', "DuckDB has no JDBC reader")
        elif isinstance(src, MongoSource):
            add(src, f'<mongo> source "{src.id}"', "DuckDB has no MongoDB reader")
    for target in pipeline.targets:
        if isinstance(target, DatabaseTarget):
            name = target.table_name or target.id or ""
            add(target, f'<database> target "{name}"', "DuckDB has no JDBC writer")
    for node, what, form, text in _spark_sql(pipeline):
        problem = _sql_problem(form, text)
        if problem:
            add(node, what, problem)
    for check in pipeline.checks:
        if isinstance(check, RegexCheck):
            problem = _regex_problem(check.pattern)
            if problem:
                add(check, f'pattern= on <regex> check of "{check.column}"', problem)
    return tuple(sorted(out, key=lambda b: (b.line, b.column)))


def _spark_sql(pipeline: Pipeline) -> Iterator[tuple[Any, str, str, str]]:
    """(node, what, form, text) of every Spark SQL text in the definition; `form` says how
    the text is parsed: expr (an expression), select (a select list), order (an order-by
    list) or query (a statement)."""
    for step in pipeline.transformations:
        if isinstance(step, Derive):
            yield step, f'expr= on <derive column="{step.column}">', "expr", step.expr
        elif isinstance(step, Filter):
            yield step, "condition= on <filter>", "expr", step.condition
        elif isinstance(step, Join):
            yield step, "condition= on <join>", "expr", step.condition
            if step.select:
                yield step, "select= on <join>", "select", step.select
        elif isinstance(step, Select):
            yield step, "columns= on <select>", "select", step.columns
        elif isinstance(step, Sort):
            yield step, "orderBy= on <sort>", "order", step.order_by
        elif isinstance(step, Deduplicate) and step.order_by:
            yield step, "orderBy= on <deduplicate>", "order", step.order_by
        elif isinstance(step, Sql):
            yield step, f'the query of <sql output="{step.output}">', "query", step.query
        elif isinstance(step, CastStep):
            for column, type_ in step.types:
                yield step, f'type "{type_}" of column {column} on <cast>', "type", type_
    for check in pipeline.checks:
        if isinstance(check, ExpressionCheck):
            yield check, "expr= on <expression> check", "expr", check.expr


DIFFERENT_RESULTS = {
    "hash": "Spark's is a 32-bit Murmur3, DuckDB's hash() a different 64-bit hash",
}
"""Spark functions that translate to a DuckDB function of the same name with other values."""

_WRAP: dict[str, Callable[[str], str]] = {
    "expr": lambda t: t,
    "select": lambda t: f"SELECT {t}",
    "order": lambda t: f"SELECT 1 ORDER BY {t}",
    "query": lambda t: t,
    "type": lambda t: f"CAST(NULL AS {t})",
}


def _shown(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SHOWN else flat[: _SHOWN - 1] + "…"


def _reason(exc: Exception) -> str:
    """sqlglot's message without its terminal highlighting: the first parse error's
    description and position, else the text."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else None
    if first and first.get("description"):
        text = str(first["description"])
        if first.get("col"):
            text += f" (at character {first['col']})"
    else:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    return " ".join(text.split())[:200]


@functools.lru_cache(maxsize=8192)
def _sql_problem(form: str, text: str) -> str | None:
    """Why the Spark SQL `text` cannot run on DuckDB (None: it can)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ErrorLevel, SqlglotError

    try:
        tree = sqlglot.parse_one(_WRAP[form](text), read="spark")
        duck = tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
        back = sqlglot.parse_one(duck, read="duckdb")
    except (SqlglotError, ValueError, TypeError, RecursionError) as exc:
        reason = _reason(exc)
        return f'Spark SQL "{_shown(text)}" does not translate to DuckDB SQL ({reason})'
    differ = sorted({f.name.lower() for f in tree.find_all(exp.Anonymous)} & set(DIFFERENT_RESULTS))
    if differ:
        why = "; ".join(f"{name}(): {DIFFERENT_RESULTS[name]}" for name in differ)
        return f'Spark SQL "{_shown(text)}" would give different values on DuckDB ({why})'
    pattern = _untranslated_pattern(tree)
    if pattern:
        return f'Spark SQL "{_shown(text)}" would give different values on DuckDB ({pattern})'
    missing = sorted(
        {
            f.name.lower()
            for f in back.find_all(exp.Anonymous)
            if f.name.lower() not in duckdb_function_names()
        }
    )
    if missing:
        names = ", ".join(f"{m}()" for m in missing)
        return f'Spark SQL "{_shown(text)}" calls {names}, which DuckDB does not have'
    return None


_STRFTIME_CODE = re.compile(r"%-?[A-Za-z]")


def _untranslated_pattern(tree: Any) -> str | None:
    """A date_format pattern sqlglot leaves (partly) untranslated for DuckDB's strftime:
    letters it has no code for (`SSS`, fractions of a second) stay as written, and quoted
    literals (`'T'`) become a concatenation of pattern pieces."""
    from sqlglot import exp

    for node in tree.find_all(exp.TimeToStr):
        fmt = node.args.get("format")
        if fmt is None:
            continue
        text = fmt.this if isinstance(fmt, exp.Literal) else None
        rest = _STRFTIME_CODE.sub("", text.replace("strict", "")) if text is not None else "'"
        if text is None or re.search(r"[A-Za-z]", rest):
            return (
                "a date_format pattern with fractions of a second or quoted literals, which "
                "DuckDB's strftime would print as written"
            )
    return None


_LOCK = threading.Lock()


@functools.cache
def _connection() -> Any:
    import duckdb

    return duckdb.connect(":memory:")


def _query(sql: str, params: list | None = None) -> list[tuple]:
    """Rows of `sql` on a private in-memory DuckDB (one per process, calls serialised)."""
    with _LOCK:
        return _connection().execute(sql, params or []).fetchall()


@functools.cache
def duckdb_function_names() -> frozenset[str]:
    """Lower-case names of DuckDB's functions and macros (an in-memory database's
    `duckdb_functions()`, read once per process). The Python functions the DuckDB engine
    registers on its connections (`engines/duckdb/udfs.py`) are not among them: Spark SQL never
    names them (the engine's translation calls them), so they decide nothing here."""
    rows = _query("SELECT DISTINCT function_name FROM duckdb_functions()")
    return frozenset(str(name).lower() for (name,) in rows)


@functools.lru_cache(maxsize=1024)
def _regex_problem(pattern: str) -> str | None:
    """Why DuckDB's regular expressions (RE2) reject the Java regex `pattern` (None: they
    accept it)."""
    import duckdb

    try:
        _query("SELECT regexp_matches('', ?)", [pattern])
    except duckdb.Error as exc:
        reason = " ".join(str(exc).split())[:200]
        return (
            f'the pattern "{_shown(pattern)}" is not valid in DuckDB\'s regular expressions '
            f"(RE2: no look-arounds or back-references): {reason}"
        )
    return None


__all__ = [
    "EngineBlocker",
    "blockers_of",
    "duckdb_blockers",
    "duckdb_function_names",
    "engine_errors",
    "resolve_requested",
]
