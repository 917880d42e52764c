"""`csv` source: delimited files matching a glob."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F
from datahub_assets.engines.duckdb import read as duckdb_read
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.malformed import CORRUPT_OPTIONS, FILE_COL, with_corrupt
from datahub_assets.execute.readers._files import (
    check_exists,
    duck_call,
    duck_files,
    options,
    reader,
    resolve,
    schema_for,
    spark_path,
)
from datahub_assets.spec.models import CsvSource


def read_csv(source: CsvSource, ctx: ExecContext, corrupt: bool = False) -> DataFrame:
    """Options: header, delimiter (sep), inferSchema (ignored with schemaRef), quote,
    escape, encoding, nullValue, dateFormat; schemaRef gives an explicit schema.
    Without schemaRef or inferSchema every column is a string.

    `corrupt`: read in PERMISSIVE mode with the helper columns `_corrupt_record` (the raw
    line of a malformed record) and `__dh_file` (`execute.malformed` splits them off)."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    if ctx.on_duckdb:
        return read_csv_duckdb(source, ctx, path, corrupt)
    spath = spark_path(path)
    opts = options(
        header=source.header,
        sep=source.delimiter,
        inferSchema=source.infer_schema and not source.schema_ref,
        quote=source.quote,
        escape=source.escape,
        encoding=source.encoding,
        nullValue=source.null_value,
        dateFormat=source.date_format,
    )
    if not corrupt:
        return resolve(reader(ctx, source.schema_ref).options(**opts).csv(spath), source.id, path)
    if source.schema_ref:
        schema = schema_for(source.schema_ref, ctx)
    else:  # the header's names (or _c0..), typed by inferSchema when asked for
        schema = resolve(ctx.spark.read.options(**opts).csv(spath), source.id, path).schema
    df = ctx.spark.read.schema(with_corrupt(schema)).options(**opts, **CORRUPT_OPTIONS).csv(spath)
    return resolve(df.select("*", F.col("_metadata.file_path").alias(FILE_COL)), source.id, path)


def csv_options(source: CsvSource) -> duckdb_read.CsvOptions:
    return duckdb_read.CsvOptions(
        header=source.header,
        delimiter=source.delimiter,
        quote=source.quote,
        escape=source.escape,
        encoding=source.encoding,
        null_value=source.null_value,
        date_format=source.date_format,
    )


def read_csv_duckdb(source: CsvSource, ctx: ExecContext, path: str, corrupt: bool) -> DataFrame:
    """`read_csv` on the DuckDB engine (`engines.duckdb.read`: Spark's columns and types)."""
    files = duck_files(path, source.id, ctx)
    schema = schema_for(source.schema_ref, ctx) if source.schema_ref else None
    return duck_call(
        source.id,
        path,
        lambda: duckdb_read.read_csv(
            files,
            csv_options(source),
            schema=schema,
            infer=bool(source.infer_schema) and schema is None,
            corrupt=corrupt,
        ),
        ctx,
    )
