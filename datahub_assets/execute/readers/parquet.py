"""`parquet` source."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.duckdb import read as duckdb_read
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import (
    check_exists,
    duck_call,
    duck_files,
    duck_root,
    resolve,
    spark_path,
)
from datahub_assets.spec.models import ParquetSource


def read_parquet(source: ParquetSource, ctx: ExecContext) -> DataFrame:
    """Parquet files matching a glob (or a folder of them); the schema is the files'."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    if ctx.on_duckdb:
        files = duck_files(path, source.id, ctx, parquet=True)
        root = duck_root(path, source.id, ctx)
        return duck_call(source.id, path, lambda: duckdb_read.read_parquet(files, root=root), ctx)
    return resolve(ctx.spark.read.parquet(spark_path(path)), source.id, path)
