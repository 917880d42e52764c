"""Incremental sources (contract 4.1): `<incremental column="updated_at"/>`.

Only rows whose column is above the source's last committed watermark are read; the
watermark advances only when the run's table targets commit. The watermarks themselves (where
they are kept, reset, the new one of a run) are `execute/watermarks.py`; the names below
re-export them for the runner and the CLI. A pipeline with an incremental source and no
table target is an error.

Database sources slice on the database instead (`readers/database.py`): rows with
`watermark <= column <= newest`, the boundary rows merged on the targets' keys.

Reading: rows with `column > watermark` (all rows on the first run), then ONE small
aggregate job computes the new watermark = max(column) of those rows, and the frame is also
bounded by `column <= new watermark`: the rows written are exactly the rows the watermark
covers even if files arrive while the run is going (those are read by the next run). Rows
with a null in the column are never read (null is above no watermark). Supported column
types: integral, decimal, float/double, string, date, timestamp, timestamp_ntz.
`loadPolicy="eager"` caches only the new rows.

No new rows: the source is empty, the watermark is kept, and the run still commits (an empty
append adds a snapshot that changes no data and records the watermark again), so the assets
report rows=0. Note that an `overwrite` target replaces the table with the run's rows, so
with an incremental source and no new rows it empties the table: incremental sources are
meant for `append` and `merge` targets.

Concurrency: the runner checks at staging time that the first table target is still at the
snapshot its watermark was read from (and the commit asserts that snapshot), so two runs
racing over the same rows cannot both commit.
"""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F, current
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.readers.database import read_increment
from datahub_assets.execute.sources import materialise
from datahub_assets.execute.watermarks import (
    PROPERTY_PREFIX,
    IncrementalError,
    Watermark,
    WatermarkState,
    load_state,
    max_watermark,
    reset_watermarks,
    resolve_column,
)
from datahub_assets.spec.models import TableRef

__all__ = [
    "PROPERTY_PREFIX",
    "IncrementalError",
    "Watermark",
    "WatermarkState",
    "load_state",
    "read_incremental",
    "reset_watermarks",
]


def read_incremental(
    source, ctx: ExecContext, table_ref: TableRef | None, previous: Watermark | None
) -> tuple[DataFrame, Watermark | None]:
    """(new rows of `source`, watermark to record) given its committed watermark.

    A `database` source computes its slice on the database (`readers.database.read_increment`:
    inclusive at the watermark, merged on keys); every other source is read and filtered here.
    """
    eager = source.load_policy == "eager"
    if source.kind == "database":
        df, newest = read_increment(source, ctx, previous)
        return (materialise(df) if eager else df), newest
    lazy = source.model_copy(update={"load_policy": "onDemand"}) if eager else source
    df = read_source(lazy, ctx, table_ref)
    column = resolve_column(df, source.id, source.incremental.column)
    col = F.col(f"`{column.name}`")
    if previous is None:
        df = df.where(col.isNotNull())
    else:
        if previous.type != column.dataType.simpleString():
            ctx.log.info(
                "source %s: watermark recorded as %s, column %s is now %s",
                source.id,
                previous.type,
                column.name,
                column.dataType.simpleString(),
            )
        df = df.where(col > previous.literal())
    if eager:
        df = materialise(df)
    newest = max_watermark(df, col, column.dataType)
    if newest is None:
        df = df.where(F.lit(False))
        ctx.log.info(
            "source %s: no rows above watermark %s",
            source.id,
            previous.value if previous else "(none)",
        )
        return df, previous
    df = df.where(col <= newest.literal())
    if eager and source.kind == "lookup":
        df = current().broadcast(df)
    ctx.log.info(
        "source %s: reading rows with %s in (%s, %s]",
        source.id,
        column.name,
        previous.value if previous else "-inf",
        newest.value,
    )
    return df, newest
