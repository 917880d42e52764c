"""`mongo` source: not implemented yet."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.models import MongoSource


def read_mongo(source: MongoSource, ctx: ExecContext) -> DataFrame:
    raise NotImplementedError(f"source {source.id!r}: mongo sources are not implemented yet")
