"""`lookup` source: a small CSV reference file in the app folder, marked for broadcast."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F
from datahub_assets.engines.duckdb import read as duckdb_read
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import (
    check_exists,
    duck_call,
    duck_files,
    resolve,
    spark_path,
)
from datahub_assets.spec.models import LookupSource


def lookup_path(source: LookupSource, ctx: ExecContext) -> str:
    """`path` relative to the app folder; a bare file name is also looked up in `lookups/`."""
    path = ctx.app_path(source.path)
    if "://" not in path and not Path(path).exists():
        in_lookups = ctx.app_path(str(Path("lookups", source.path)))
        if Path(in_lookups).exists():
            return in_lookups
    return path


def read_lookup(source: LookupSource, ctx: ExecContext) -> DataFrame:
    """CSV with a header; every column a string (codes such as `007` keep leading zeros)."""
    path = lookup_path(source, ctx)
    check_exists(path, source.id)
    if ctx.on_duckdb:  # no broadcast hint on DuckDB (its joins pick their own build side)
        files = duck_files(path, source.id, ctx)
        options = duckdb_read.CsvOptions(header=True)
        return duck_call(source.id, path, lambda: duckdb_read.read_csv(files, options), ctx)
    df = resolve(ctx.spark.read.option("header", "true").csv(spark_path(path)), source.id, path)
    return F.broadcast(df)
