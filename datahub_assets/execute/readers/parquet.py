"""`parquet` source."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import SourceFiles, check_exists, read_with
from datahub_assets.spec.models import ParquetSource


def read_parquet(source: ParquetSource, ctx: ExecContext) -> DataFrame:
    """Parquet files matching a glob (or a folder of them); the schema is the files'."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    files = SourceFiles(path, source.id, ctx)
    engine = ctx.active_engine
    return read_with(files, lambda: engine.read_parquet(files))
