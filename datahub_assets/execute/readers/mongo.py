"""`mongo` source: parallel `_id`-range reads with pymongo on the Spark workers.

The implementation lives in `datahub_assets.execute.mongo` (see `mongo/source.py`); in a
pipeline run the runner calls `mongo.source.read_mongo_source`, which also quarantines
misfit documents and pushes the incremental watermark into the query.
"""

from __future__ import annotations

from datahub_assets.execute.mongo.source import read_mongo

__all__ = ["read_mongo"]
