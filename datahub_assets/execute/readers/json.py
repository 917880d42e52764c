"""`json` source: JSON lines (default) or multi-line JSON documents."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers._files import check_exists, options, reader, resolve
from datahub_assets.spec.models import JsonSource


def read_json(source: JsonSource, ctx: ExecContext) -> DataFrame:
    """One record per line, or `multiline=true` for whole-file documents (a top-level
    array gives one row per element). schemaRef gives an explicit schema, else inferred."""
    path = ctx.data_path(source.path)
    check_exists(path, source.id)
    df = reader(ctx, source.schema_ref).options(**options(multiLine=source.multiline)).json(path)
    return resolve(df, source.id, path)
