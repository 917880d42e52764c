"""`json` source: JSON lines (default) or multi-line JSON documents."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import SourceFiles, check_exists, read_with, schema_for
from datahub_assets.spec.models import JsonSource


def read_json(source: JsonSource, ctx: ExecContext, corrupt: bool = False) -> DataFrame:
    """One record per line, or `multiline=true` for whole-file documents (a top-level
    array gives one row per element). schemaRef gives an explicit schema, else inferred.

    `corrupt`: read in PERMISSIVE mode with the helper columns `_corrupt_record` and
    `__dh_file` (`execute.malformed` splits them off), also with an inferred schema."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    files = SourceFiles(path, source.id, ctx)
    schema = schema_for(source.schema_ref, ctx) if source.schema_ref else None
    engine = ctx.active_engine
    return read_with(
        files, lambda: engine.read_json(files, bool(source.multiline), schema, corrupt)
    )
