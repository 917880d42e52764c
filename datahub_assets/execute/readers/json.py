"""`json` source: JSON lines (default) or multi-line JSON documents."""

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
from datahub_assets.spec.models import JsonSource


def read_json(source: JsonSource, ctx: ExecContext, corrupt: bool = False) -> DataFrame:
    """One record per line, or `multiline=true` for whole-file documents (a top-level
    array gives one row per element). schemaRef gives an explicit schema, else inferred.

    `corrupt`: read in PERMISSIVE mode with the helper columns `_corrupt_record` and
    `__dh_file` (`execute.malformed` splits them off), also with an inferred schema."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    if ctx.on_duckdb:
        files = duck_files(path, source.id, ctx)
        schema = schema_for(source.schema_ref, ctx) if source.schema_ref else None
        return duck_call(
            source.id,
            path,
            lambda: duckdb_read.read_json(files, bool(source.multiline), schema, corrupt),
            ctx,
        )
    spath = spark_path(path)
    opts = options(multiLine=source.multiline)
    if not corrupt:
        df = reader(ctx, source.schema_ref).options(**opts).json(spath)
        return resolve(df, source.id, path)
    schema = (
        schema_for(source.schema_ref, ctx)
        if source.schema_ref
        else resolve(ctx.spark.read.options(**opts).json(spath), source.id, path).schema
    )
    df = ctx.spark.read.schema(with_corrupt(schema)).options(**opts, **CORRUPT_OPTIONS).json(spath)
    return resolve(df.select("*", F.col("_metadata.file_path").alias(FILE_COL)), source.id, path)
