"""Shared pieces of the file readers: path checks, schemaRef loading, load policy."""

from __future__ import annotations

import glob
import shutil
from glob import has_magic
from pathlib import Path

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, DataFrameReader
from pyspark.sql.types import StructType

from datahub_assets.execute import schemas
from datahub_assets.execute.context import ExecContext
from datahub_resources.s3 import to_spark as spark_path


class SourceError(ValueError):
    """A source cannot be read: names the source id and the offending path or value."""


def _local(path: str) -> str | None:
    """The filesystem path of a local path (plain or file://), else None."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def check_exists(path: str, source_id: str) -> None:
    """A local path or glob must match at least one file or folder.

    Hadoop brace patterns (`{a,b}`) and remote paths (s3://) are left to Spark, whose
    error is translated by `resolve`.
    """
    local = _local(path)
    if local is None or "{" in local:
        return
    # glob.glob takes an absolute pattern with wildcards in any folder, as Spark does;
    # Path.glob takes only patterns relative to a fixed folder
    if not glob.glob(local):  # noqa: PTH207
        raise SourceError(f"source {source_id!r}: no file matches path {path!r}")


def schema_for(ref: str, ctx: ExecContext) -> StructType:
    """The StructType of a schemaRef (relative to the app folder, or s3://)."""
    path = ctx.app_path(ref)
    local = _local(path)
    return schemas.schema_for(ctx.spec, ref, local if local is not None else path)


def reader(ctx: ExecContext, schema_ref: str | None) -> DataFrameReader:
    """A DataFrameReader with the explicit schema of `schema_ref`, if any."""
    r = ctx.spark.read
    return r.schema(schema_for(schema_ref, ctx)) if schema_ref else r


__all__ = [
    "SourceError",
    "check_exists",
    "duck_call",
    "duck_files",
    "duck_root",
    "options",
    "reader",
    "resolve",
    "schema_for",
    "spark_path",
]


def duck_files(
    path: str, source_id: str, ctx: ExecContext | None = None, parquet: bool = False
) -> list[str]:
    """The local files a path names, for the DuckDB engine. DuckDB's httpfs extension
    cannot be installed offline, so the objects of an s3:// path are downloaded into the
    run's folder first (`s3_download`; `duck_call` reads them into the run's database and
    removes the copies)."""
    from datahub_assets.engines.duckdb import read as duckdb_read

    local = _local(path)
    if local is None:
        if ctx is None or not path.startswith(("s3://", "s3a://")):
            raise SourceError(
                f"source {source_id!r}: {path!r}: the DuckDB engine reads local files and "
                "s3:// objects only"
            )
        files = s3_download(path, source_id, ctx, parquet)
    else:
        files = duckdb_read.parquet_files(local) if parquet else duckdb_read.local_files(local)
    if not files:
        raise SourceError(f"source {source_id!r}: no file matches path {path!r}")
    return files


def duck_root(path: str, source_id: str, ctx: ExecContext) -> str | None:
    """The local folder a parquet source reads (its `key=value` sub-folders are partition
    columns), or None for files and globs."""
    local = _local(path)
    if local is None:  # downloaded S3 objects keep their keys under the run folder
        key = path.split("://", 1)[1].rstrip("/")
        local = str(s3_folder(ctx, source_id) / key)
        return local if not has_magic(key) else None
    return local if Path(local).is_dir() else None


def s3_folder(ctx: ExecContext, source_id: str):
    """Where the S3 objects of a source are downloaded for the DuckDB engine: below the
    pipeline's own work folder (two pipelines of a run may have sources of one id)."""
    return ctx.work_folder / "_s3" / source_id


def s3_download(path: str, source_id: str, ctx: ExecContext, parquet: bool) -> list[str]:
    """Download the objects matching `path` (a glob; a folder for parquet: every object below
    it) to `s3_folder/<bucket>/<key>`; the local paths."""
    from datahub_assets.ingest.store import default_s3_client, store_for

    store = store_for(path, ctx.s3_client or default_s3_client, ctx.settings)
    pattern = path
    if parquet and store.stat(path) is None:  # a folder of part files
        pattern = path.rstrip("/") + "/**"
    folder = s3_folder(ctx, source_id)
    out = []
    for info in sorted(store.list(pattern), key=lambda i: i.path):
        key = info.path.split("://", 1)[1]
        if parquet and Path(key).name.startswith(("_", ".")):
            continue
        target = folder / key
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(store.localize(info.path, str(target.parent / ".dl"))).replace(target)
        out.append(str(target))
    return out


def duck_call(source_id: str, path: str, read, ctx: ExecContext | None = None):
    """`read()` on the DuckDB engine, its errors as a SourceError naming the source. For an
    s3:// path (`ctx` given) the rows are computed into the run's database, the downloaded
    copies removed and the file column names the objects (s3a://, as Spark's does)."""
    from datahub_assets.engines.api import current
    from datahub_assets.engines.duckdb import read as duckdb_read

    try:
        df = read()
        if ctx is not None and _local(path) is None:
            folder = s3_folder(ctx, source_id)
            df = duckdb_read.rebase_files(df, f"file:{folder}/", "s3a://").localCheckpoint()
            shutil.rmtree(folder, ignore_errors=True)
        return df
    except SourceError:
        raise
    except (*current().errors, ValueError, OSError) as exc:
        first_line = str(exc).strip().split("\n", 1)[0][:600]
        raise SourceError(f"source {source_id!r} ({path}): {first_line}") from None


def options(**values: object) -> dict[str, str]:
    """Reader options without the unset ones, as strings Spark understands."""
    out = {}
    for key, value in values.items():
        if value is not None:
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def resolve(df: DataFrame, source_id: str, path: str) -> DataFrame:
    """Analyse `df` now, so a missing path or bad option fails here with the source id."""
    try:
        df.isLocal()  # analyses the plan on the server: paths, schema inference, options
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise SourceError(f"source {source_id!r}: no file matches path {path!r}") from None
        first_line = str(exc).strip().split("\n", 1)[0][:600]
        raise SourceError(f"source {source_id!r} ({path}): {first_line}") from None
    return df
