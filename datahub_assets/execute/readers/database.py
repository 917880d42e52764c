"""`database` source (JDBC): not implemented yet."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.models import DatabaseSource


def read_database(source: DatabaseSource, ctx: ExecContext) -> DataFrame:
    raise NotImplementedError(
        f"source {source.id!r}: database (JDBC) sources are not implemented yet"
    )
