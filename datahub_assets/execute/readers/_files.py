"""Shared pieces of the file readers: path checks, schemaRef loading, load policy."""

from __future__ import annotations

import glob

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
    "options",
    "reader",
    "resolve",
    "schema_for",
    "spark_path",
]


def duck_files(path: str, source_id: str, parquet: bool = False) -> list[str]:
    """The local files a path names, for the DuckDB engine (which reads no s3:// path here:
    DuckDB's httpfs extension cannot be installed offline, `engines.choice` keeps such
    sources on Spark)."""
    from datahub_assets.engines import duckdb_read

    local = _local(path)
    if local is None:
        raise SourceError(
            f"source {source_id!r}: {path!r} is not a local path; the DuckDB engine reads "
            "local files only (run the pipeline on Spark)"
        )
    files = duckdb_read.parquet_files(local) if parquet else duckdb_read.local_files(local)
    if not files:
        raise SourceError(f"source {source_id!r}: no file matches path {path!r}")
    return files


def duck_call(source_id: str, path: str, read):
    """`read()` on the DuckDB engine, its errors as a SourceError naming the source."""
    from datahub_assets.engines.api import current

    try:
        return read()
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
