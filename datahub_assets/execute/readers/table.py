"""`table` source: another pipeline's target table."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.sources import SourceError
from datahub_assets.spec.models import TableRef, TableSource


def read_table_source(
    source: TableSource, ctx: ExecContext, table_ref: TableRef | None
) -> DataFrame:
    """Read the resolved `table_ref` (PipelineSpec.source_refs[source.id]) via ctx.read_table."""
    if table_ref is None:
        raise SourceError(
            f"source {source.id!r}: table source {source.ref!r} was given no resolved TableRef"
        )
    if ctx.read_table is None:
        raise SourceError(f"source {source.id!r}: no table reader configured to read {table_ref}")
    return ctx.read_table(table_ref)
