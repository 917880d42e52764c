"""Source readers (contract 4.1): one module per source kind, dispatched on `source.kind`.

`read_source(source, ctx, table_ref=None)` returns the source's DataFrame; a missing
file path, a bad schemaRef or option fails at once with a `SourceError` naming the
source id. `loadPolicy="eager"` materialises the source before it is returned.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import DataFrame

from datahub_assets.engines.api import current
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers.csv import read_csv
from datahub_assets.execute.readers.database import read_database
from datahub_assets.execute.readers.json import read_json
from datahub_assets.execute.readers.lookup import read_lookup
from datahub_assets.execute.readers.mongo import read_mongo
from datahub_assets.execute.readers.parquet import read_parquet
from datahub_assets.execute.readers.table import read_table_source
from datahub_assets.execute.schemas import SchemaError
from datahub_assets.execute.sources import SourceError, materialise
from datahub_assets.spec.models import TableRef

__all__ = ["READERS", "SourceError", "materialise", "read_source"]

READERS: dict[str, Callable[..., DataFrame]] = {
    "csv": read_csv,
    "json": read_json,
    "parquet": read_parquet,
    "lookup": read_lookup,
    "database": read_database,
    "mongo": read_mongo,
}


def read_source(
    source, ctx: ExecContext, table_ref: TableRef | None = None, corrupt: bool = False
) -> DataFrame:
    """The DataFrame of `source`; `table_ref` is the resolved table of a `table` source.
    `corrupt`: csv/json sources keep malformed records in the helper column
    `_corrupt_record` (`execute.malformed.check` splits them off)."""
    if source.kind == "table":
        df = read_table_source(source, ctx, table_ref)
    elif source.kind in READERS:
        try:
            if corrupt and source.kind in ("csv", "json"):
                df = READERS[source.kind](source, ctx, corrupt=True)
            else:
                df = READERS[source.kind](source, ctx)
        except SchemaError as exc:
            raise SourceError(f"source {source.id!r}: {exc}") from exc
    else:
        raise SourceError(f"source {source.id!r}: unknown source kind {source.kind!r}")
    if source.load_policy == "eager":
        df = materialise(df)
        if source.kind == "lookup":
            df = current().broadcast(df)
        ctx.log.debug("source %s materialised (loadPolicy=eager)", source.id)
    return df
