"""`mongo` source: parallel `_id`-range reads with pymongo on the Spark workers.

The implementation lives in `datahub_assets.execute.mongo` (see `mongo/source.py`); in a
pipeline run the runner calls `mongo.source.read_mongo_source`, which also quarantines
misfit documents and pushes the incremental watermark into the query.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.models import MongoSource


def read_mongo(source: MongoSource, ctx: ExecContext) -> DataFrame:
    from datahub_assets.execute.mongo.source import read_mongo as read  # import cycle

    return read(source, ctx)
