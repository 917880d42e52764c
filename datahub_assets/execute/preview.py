"""A pipeline run on a sample of its sources that writes nothing (the portal's Preview).

`preview_pipeline(spec, ctx, catalog, sample_rows)` reads each source through the platform's
own readers (`execute.readers.read_source`, the mongo reader, a source's `onInvalid` gate),
keeps its first `sample_rows` rows, applies the pipeline's transformations
(`execute.transforms.apply_steps`), runs each table target's row validation and schema-drift
gate (`execute.quality.prepare_table`, which stages nothing) and its checks
(`execute.checks.evaluate_checks`) on the resulting frame, and returns the first rows of every
target. It never calls the write path (`iceberg.tables.write_tables`), the exports, the
file-drop planner (no file moves, no ledger) or the watermarks.

Sampling: a file source whose path matches more than `MAX_FILES` files reads the first ones
(in name order) through a folder of links in a private temporary folder, removed afterwards;
every source frame is cut to `sample_rows` rows before the transformations. DuckDB has no
JDBC or MongoDB reader, so those sources are sampled in Python into the run's DuckDB
database: a `database` source runs `SELECT * FROM (<its statement>) LIMIT n` through the
Python driver (`sample_database`), a `mongo` source reads its first documents through the
run's own planner and document converter (`sample_mongo`).
"""

from __future__ import annotations

import glob
import shutil
import tempfile
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pyiceberg.catalog import Catalog
from pyspark.sql import DataFrame

from datahub_assets.engines.api import use
from datahub_assets.engines.columns import type_string
from datahub_assets.execute.checks import CheckOutcome, evaluate_checks
from datahub_assets.execute.checks.outcome import json_safe
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.outcomes import PipelineRunError
from datahub_assets.execute.quality import Prepared, prepare_table, validate_source
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.sources import SourceError
from datahub_assets.execute.transforms import apply_steps
from datahub_assets.iceberg.read import TableNotFoundError, load_table
from datahub_assets.spec.check_targets import checks_by_target, referenced, table_targets
from datahub_assets.spec.models import PipelineSpec, ReferentialCheck, TableRef, TableTarget

MAX_FILES = 3
STATEMENT_TIMEOUT_S = 30
"""A file source previews at most this many of its files."""
FILE_KINDS = ("csv", "json", "parquet")


@dataclass
class TargetPreview:
    """One target's first rows and its checks' outcomes (table targets only)."""

    ref: TableRef
    kind: str
    columns: list[tuple[str, str]]
    rows: list[list[Any]]
    checks: list[CheckOutcome] = field(default_factory=list)


def _where(spec: PipelineSpec, node: Any) -> str:
    line = node.loc.line if getattr(node, "loc", None) else spec.line
    return f"{spec.file}:{line}"


@contextmanager
def sampled_files(source: Any, ctx: ExecContext) -> Iterator[Any]:
    """`source` reading at most `MAX_FILES` of its local files: a copy of it whose path is a
    private folder of links to the first files (the source itself when it has few files, or
    is not a local file source)."""
    path = getattr(source, "path", None)
    if source.kind not in FILE_KINDS or not path:
        yield source
        return
    local = ctx.data_path(path)
    if "://" in local or "{" in local:
        yield source
        return
    if Path(local).is_dir():
        yield source  # a folder (parquet partitions): its layout matters, read as written
        return
    files = sorted(p for p in glob.glob(local) if Path(p).is_file())  # noqa: PTH207
    if len(files) <= MAX_FILES:
        yield source
        return
    folder = Path(tempfile.mkdtemp(prefix="datahub-preview-"))
    try:
        for i, f in enumerate(files[:MAX_FILES]):
            (folder / f"{i:02d}_{Path(f).name}").symlink_to(Path(f).resolve())
        yield source.model_copy(update={"path": str(folder)})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def query_rows(ep: Any, sql: str, params: tuple = (), timeout_s: int = STATEMENT_TIMEOUT_S):
    """(column names, rows) of one read-only statement on endpoint `ep` (`execute.jdbc`),
    through the Python driver, under a statement timeout. Raises `JdbcError` (connecting) or
    `SourceError`, both free of the password."""
    conn = ep.connect(autocommit=True)
    try:
        cur = conn.cursor()
        try:  # PostgreSQL: milliseconds; MariaDB: seconds (MySQL has neither: no bound)
            if ep.dialect.name == "postgresql":
                cur.execute(f"SET statement_timeout = {int(timeout_s) * 1000}")
            else:
                cur.execute(f"SET SESSION max_statement_time = {int(timeout_s)}")
        except Exception:  # noqa: BLE001, S110 - a server without the setting reads unbounded
            pass
        cur.execute(sql, params or None)
        names = [d[0] for d in cur.description or ()]
        return names, [tuple(r) for r in cur.fetchall()]
    except Exception as exc:  # noqa: BLE001 - the driver's error, scrubbed
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise SourceError(f"{ep.dialect.label} answered: {ep.scrub(first)}") from None
    finally:
        conn.close()


def _arrow(names: list[str], rows: list[tuple]) -> Any:
    """Rows as a pyarrow Table (types from the values; a column of nulls only, or of mixed
    kinds, is a string column)."""
    import pyarrow as pa

    arrays = []
    for i, _ in enumerate(names):
        values = [r[i] for r in rows]
        try:
            arr = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = pa.array([None if v is None else str(v) for v in values], pa.string())
        if pa.types.is_null(arr.type):
            arr = arr.cast(pa.string())
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, names=names)


def sample_database(source: Any, ctx: ExecContext, n: int) -> DataFrame:
    """The first `n` rows of a `database` source: its statement as a run renders it
    (`readers.database`: quoted table, typed parameter literals) wrapped in
    `SELECT * FROM (...) dh_preview LIMIT n`, read by the Python driver into the run's DuckDB
    database (DuckDB has no JDBC reader)."""
    from datahub_assets.engines.duckdb.read import from_arrow
    from datahub_assets.execute.readers.database import _Reader

    reader = _Reader(source, ctx)
    sql = f"SELECT * FROM ({reader.base}) dh_preview LIMIT {int(n)}"
    try:
        names, rows = query_rows(reader.ep, sql)
    except SourceError as exc:
        raise SourceError(f"source {source.id!r}: reading {reader.ep.url} failed: {exc}") from None
    return from_arrow(_arrow(names, rows))


def sample_mongo(source: Any, ctx: ExecContext, n: int) -> DataFrame:
    """The first `n` documents of a `mongo` source, planned as a run plans them
    (`mongo.read.plan_read`: schemaRef or inferred schema, filter, projection) and converted
    by the run's worker (misfits follow onInvalid: fail, or left out), in one range read that
    stops after the first batch covering `n` rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import to_arrow_schema

    from datahub_assets.engines.duckdb.read import from_arrow
    from datahub_assets.execute.mongo import worker
    from datahub_assets.execute.mongo.read import plan_read, secrets_of
    from datahub_assets.execute.transforms.flatten import flatten_frame

    plan = plan_read(source, ctx)
    policy = source.on_invalid or "fail"
    out_schema = T.StructType(
        [T.StructField(f.name, f.dataType, True) for f in plan.schema.fields]
        + [T.StructField(c, T.StringType(), True) for c in worker.EXTRA_COLUMNS]
    )
    arrow_schema = to_arrow_schema(out_schema, timezone="UTC")
    config = {
        "uri": plan.uri,
        "secrets": secrets_of(plan.uri),
        "database": source.database,
        "collection": source.collection,
        "queries": [plan.base_filter],
        "projection": plan.projection,
        "schema": plan.schema,
        "arrow_schema": arrow_schema,
        "defaults": plan.defaults,
        "policy": "fail" if policy == "fail" else "drop",
        "source_id": source.id,
        "undot": bool(plan.projection and any("." in k for k in plan.projection)),
        "batch_size": max(1, min(int(n), 2000)),
    }
    parts = iter([pa.record_batch([pa.array([0])], names=["part"])])
    read = cast(Generator[Any, None, None], worker.make_reader(config)(parts))
    batches, count = [], 0
    try:
        for batch in read:
            batches.append(batch)
            count += batch.num_rows
            if count >= n:
                break
    except Exception as exc:  # noqa: BLE001 - the worker's errors are scrubbed of the URI
        raise SourceError(f"source {source.id!r}: {exc}") from None
    finally:
        read.close()
    table = pa.Table.from_batches(batches, schema=arrow_schema)
    table = table.filter(pc.is_null(table[worker.REASON])).slice(0, n)  # pyright: ignore[reportAttributeAccessIssue]
    table = table.select([f.name for f in plan.schema.fields])
    df = from_arrow(table)
    return flatten_frame(df, name=source.id) if source.flatten else df


def _read(spec: PipelineSpec, ctx: ExecContext, source: Any, n: int, gate: Prepared) -> DataFrame:
    ref = spec.source_refs.get(source.id)
    into = next((t.ref for t in table_targets(spec)), None)
    where = _where(spec, source)
    if source.kind == "mongo":
        return sample_mongo(source, ctx, n)
    if source.kind == "database":
        return sample_database(source, ctx, n)

    def read(s: Any) -> DataFrame:
        return read_source(s, ctx, ref).limit(n)

    if getattr(source, "on_invalid", None) and getattr(source, "schema_ref", None):
        return validate_source(ctx, source, read, into, where, gate)
    return read(source)


def _datasets(spec: PipelineSpec, ctx: ExecContext, n: int, stack: ExitStack) -> dict:
    gate = Prepared(df=None)
    datasets: dict[str, DataFrame] = {}
    for source in spec.pipeline.sources:
        try:
            sampled = stack.enter_context(sampled_files(source, ctx))
            datasets[source.id] = _read(spec, ctx, sampled, n, gate)
        except Exception as exc:
            raise PipelineRunError(
                f"{_where(spec, source)}: source '{source.id}' ({source.kind}) failed: {exc}"
            ) from exc
    try:
        return apply_steps(spec.pipeline.transformations, datasets, ctx)
    except Exception as exc:
        raise PipelineRunError(f"{spec.file}: transformation failed: {exc}") from exc


def _loaded(catalog: Catalog, spec: PipelineSpec) -> dict:
    out = {}
    for t in table_targets(spec):
        try:
            out[t.ref] = load_table(catalog, t.ref)
        except TableNotFoundError:
            out[t.ref] = None
    return out


def _rows(df: DataFrame, n: int) -> list[list[Any]]:
    return [[json_safe(v) for v in row] for row in df.limit(n).collect()]


def _columns(df: DataFrame) -> list[tuple[str, str]]:
    return [(f.name, type_string(f.dataType)) for f in df.schema.fields]


def preview_pipeline(
    spec: PipelineSpec, ctx: ExecContext, catalog: Catalog, sample_rows: int = 200
) -> list[TargetPreview]:
    """Every target of `spec` computed from a sample of its sources, with its checks; writes
    nothing (see the module docstring). Raises `PipelineRunError` (starting with file:line)
    when a source, transformation or blocking gate fails."""
    if ctx.read_table is None:
        from datahub_assets.iceberg.read import read_table

        ctx.read_table = lambda ref: read_table(ctx.spark, catalog, ref)
    ctx.spec = ctx.spec or spec
    with use(ctx.active_engine), ExitStack() as stack:
        datasets = _datasets(spec, ctx, sample_rows, stack)
        loaded = _loaded(catalog, spec)
        by_target = checks_by_target(spec)
        out = []
        for t in spec.targets:
            df = datasets[t.dataset]
            checks: list[CheckOutcome] = []
            if isinstance(t.target, TableTarget):
                where = _where(spec, t.target)
                prepared = prepare_table(
                    ctx, catalog, t, df, by_target[t.ref], where, Prepared(df=None), loaded
                )
                assert prepared.df is not None
                df = prepared.df
                refs = {
                    c.check_name: referenced(spec, c)[0]
                    for c in by_target[t.ref]
                    if isinstance(c, ReferentialCheck)
                }
                checks = list(prepared.checks) + evaluate_checks(
                    ctx.spark, df, by_target[t.ref], ctx, referenced=refs
                )
            out.append(
                TargetPreview(t.ref, t.target.kind, _columns(df), _rows(df, sample_rows), checks)
            )
        return out
