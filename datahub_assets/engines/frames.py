"""The engine that made a frame or a session, for the operations handed one.

Table storage (`iceberg/`) and CSV exports act on the frame or session they are given, which
may come from either engine, inside a pipeline run or outside one (the IO manager, the SQL
shell, maintenance, tests): `write_ops_of` gives the `engines.write_ops.WriteOps` of the
engine whose session made it (DuckDB's for a sqlframe DuckDB frame or session, else Spark's).
Those operations use only what they are handed. Code that builds columns without a frame
uses the running engine instead (`engines.api.current`, `engines.columns`).
"""

from __future__ import annotations

from typing import Any

from datahub_assets.engines.duckdb.write import DuckDBWriteOps, is_duckdb
from datahub_assets.engines.spark.write import SparkWriteOps
from datahub_assets.engines.write_ops import WriteOps

_DUCKDB = DuckDBWriteOps()
_SPARK = SparkWriteOps()


def write_ops_of(obj: Any) -> WriteOps:
    """The write operations of the engine whose session made `obj` (a frame or a session)."""
    return _DUCKDB if is_duckdb(obj) else _SPARK
