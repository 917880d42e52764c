"""`lookup` source: a small CSV reference file in the app folder, marked for broadcast."""

from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame

from datahub_assets.engines.read_ops import CsvFormat
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import SourceFiles, check_exists, read_with
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
    """CSV with a header; every column a string (codes such as `007` keep leading zeros).
    Marked for broadcast (a hint: nothing on DuckDB, whose joins pick their build side)."""
    path = lookup_path(source, ctx)
    check_exists(path, source.id)
    files = SourceFiles(path, source.id, ctx)
    engine = ctx.active_engine
    df = read_with(files, lambda: engine.read_csv(files, CsvFormat(header=True)))
    return engine.broadcast(df)
