"""Incremental sources (contract 4.1): `<incremental column="updated_at"/>`.

Only rows whose column is above the source's last committed watermark are read; the
watermark advances only when the run's table targets commit.

Storage: the watermark of source `<id>` lives in the Iceberg snapshot summary of the
pipeline's table targets, property `datahub.watermark.<id>`, as JSON
`{"type": "<Spark type>", "value": "<text>"}` (timestamps: ISO-8601 in UTC with microseconds
and offset, e.g. `2024-01-02T03:04:05.123456+00:00`; other types: Spark's exact text form).
Every table target of the run records the same properties in the same commit as its rows,
so a failed or rolled-back run leaves the watermark where it was. The committed watermark is
read from the FIRST table target: its current snapshot, else the nearest ancestor carrying
the property (snapshots written by something else, e.g. maintenance, are skipped). No table
yet, or no property anywhere in its history: everything is read. Dropping the table resets
the watermark, and so does `datahub watermark reset` (`reset_watermarks`: a data-free snapshot
whose property is the marker `{"type": "reset", "value": ""}`). A pipeline with an
incremental source and no table target is an error.

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

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of
from pyspark.sql import Column, DataFrame

from datahub_assets.engines.api import F, T, current
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers import materialise, read_source
from datahub_assets.execute.readers.database import read_increment
from datahub_assets.iceberg.read import TableNotFoundError, load_table
from datahub_assets.spec.models import TableRef

PROPERTY_PREFIX = "datahub.watermark."
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)
RESET = "reset"


def _supported() -> tuple:
    """The column types an incremental source can slice on (of the running engine's T)."""
    return (*_types(T.NumericType), T.StringType, T.DateType, T.TimestampType, T.TimestampNTZType)


def _types(t) -> tuple:
    return t if isinstance(t, tuple) else (t,)


class IncrementalError(ValueError):
    """An incremental source cannot be read (missing column, unsupported type, bad state)."""


@dataclass(frozen=True)
class Watermark:
    """The highest value of an incremental column a committed run has read."""

    type: str
    """Spark type of the column (`DataType.simpleString()`: timestamp, bigint, date...)."""
    value: str
    """Text form: ISO-8601 UTC for `timestamp`, Spark's cast-to-string otherwise."""

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "value": self.value}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Watermark:
        data = json.loads(text)
        return cls(type=str(data["type"]), value=str(data["value"]))

    def literal(self) -> Column:
        """The watermark as a typed Spark literal."""
        if self.type == "timestamp":
            if current().is_duckdb:  # no timestamp_micros in sqlframe; DuckDB parses ISO-8601
                return F.lit(self.value).cast("timestamp")
            micros = (datetime.fromisoformat(self.value) - EPOCH) // MICRO
            return F.timestamp_micros(F.lit(micros))
        return F.lit(self.value).cast(self.type)


@dataclass
class WatermarkState:
    """Watermarks of one run: those committed before it and those its commit records."""

    ref: TableRef
    """Table whose snapshot summary holds the committed watermarks (first table target)."""
    snapshot_id: int | None
    """Current snapshot of `ref` when the watermarks were read (None: no table yet)."""
    previous: dict[str, Watermark] = field(default_factory=dict)
    current: dict[str, Watermark] = field(default_factory=dict)
    recorded_in: dict[str, int] = field(default_factory=dict)
    """Snapshot that recorded each previous watermark."""

    def properties(self) -> dict[str, str]:
        """Snapshot summary properties recording this run's watermarks."""
        return {PROPERTY_PREFIX + sid: wm.to_json() for sid, wm in sorted(self.current.items())}


def load_state(
    catalog: Catalog,
    ref: TableRef,
    source_ids: list[str],
    loaded: Mapping[TableRef, Table | None] | None = None,
) -> WatermarkState:
    """The committed watermarks of `source_ids`, read from table `ref`'s snapshot history
    (from `loaded` when the caller loaded the table already; None there: no table yet)."""
    if loaded is not None and ref in loaded:
        table = loaded[ref]
        if table is None:
            return WatermarkState(ref=ref, snapshot_id=None)
    else:
        try:
            table = load_table(catalog, ref)
        except TableNotFoundError:
            return WatermarkState(ref=ref, snapshot_id=None)
    current = table.current_snapshot()
    state = WatermarkState(ref=ref, snapshot_id=current.snapshot_id if current else None)
    missing = set(source_ids)
    for snapshot in ancestors_of(current, table.metadata):
        summary: Any = snapshot.summary or {}
        for sid in sorted(missing):
            text = summary.get(PROPERTY_PREFIX + sid)
            if text is None:
                continue
            try:
                found = Watermark.from_json(text)
            except (ValueError, KeyError, TypeError) as exc:
                raise IncrementalError(
                    f"table {ref.identifier}: snapshot {snapshot.snapshot_id} has an unreadable "
                    f"{PROPERTY_PREFIX}{sid} property {text!r}: {exc}"
                ) from exc
            if found.type != RESET:  # a reset marker: as if no run had recorded one
                state.previous[sid] = found
                state.recorded_in[sid] = snapshot.snapshot_id
            missing.discard(sid)
        if not missing:
            break
    return state


def reset_watermarks(catalog: Catalog, ref: TableRef, source_ids: list[str]) -> int | None:
    """Forget the committed watermarks of `source_ids`: one snapshot that adds no data and
    records a reset marker, so the next run reads every row again (history is kept, and a
    rollback past the marker brings the old watermark back). Returns the new snapshot id,
    or None when the table does not exist yet (nothing to reset)."""
    try:
        table = load_table(catalog, ref)
    except TableNotFoundError:
        return None
    marker = Watermark(type=RESET, value="").to_json()
    txn = table.transaction()
    props = {PROPERTY_PREFIX + sid: marker for sid in sorted(source_ids)}
    with txn.update_snapshot(snapshot_properties=props).fast_append():
        pass
    snapshot = txn.commit_transaction().current_snapshot()  # the table as committed
    return snapshot.snapshot_id if snapshot else None


def _resolve_column(df: DataFrame, source_id: str, column: str) -> T.StructField:
    fields = {f.name: f for f in df.schema.fields}
    found = fields.get(column) or next(
        (f for name, f in fields.items() if name.lower() == column.lower()), None
    )
    if found is None:
        raise IncrementalError(
            f"source {source_id!r}: incremental column {column!r} not found; available "
            f"columns: {', '.join(fields) or '(none)'}"
        )
    if not isinstance(found.dataType, _supported()):
        raise IncrementalError(
            f"source {source_id!r}: incremental column {found.name!r} has type "
            f"{found.dataType.simpleString()}; supported: integral, decimal, float, double, "
            "string, date, timestamp, timestamp_ntz"
        )
    return found


def _max_watermark(df: DataFrame, col: Column, dtype: T.DataType) -> Watermark | None:
    """max(col) over `df` as a Watermark (one aggregate job); None when there is no row."""
    if isinstance(dtype, T.TimestampType):
        if current().is_duckdb:  # the newest value itself (a datetime with its zone)
            row = df.agg(F.max(col)).first()
            newest = row[0] if row is not None else None
            if newest is not None and newest.tzinfo is None:  # sqlframe gives UTC, naive
                newest = newest.replace(tzinfo=UTC)
            micros = None if newest is None else (newest - EPOCH) // MICRO
        else:
            row = df.agg(F.unix_micros(F.max(col))).first()
            micros = row[0] if row is not None else None
        if micros is None:
            return None
        value = (EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds")
        return Watermark(type="timestamp", value=value)
    row = df.agg(F.max(col).cast("string")).first()
    text = row[0] if row is not None else None
    return None if text is None else Watermark(type=dtype.simpleString(), value=text)


def read_incremental(
    source, ctx: ExecContext, table_ref: TableRef | None, previous: Watermark | None
) -> tuple[DataFrame, Watermark | None]:
    """(new rows of `source`, watermark to record) given its committed watermark.

    A `database` source computes its slice on the database (`readers.database.read_increment`:
    inclusive at the watermark, merged on keys); every other source is read and filtered here.
    """
    eager = source.load_policy == "eager"
    if source.kind == "database":
        df, newest = read_increment(source, ctx, previous, Watermark)
        return (materialise(df) if eager else df), newest
    lazy = source.model_copy(update={"load_policy": "onDemand"}) if eager else source
    df = read_source(lazy, ctx, table_ref)
    column = _resolve_column(df, source.id, source.incremental.column)
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
    newest = _max_watermark(df, col, column.dataType)
    if newest is None:
        df = df.where(F.lit(False))
        ctx.log.info(
            "source %s: no rows above watermark %s",
            source.id,
            previous.value if previous else "(none)",
        )
        return df, previous
    df = df.where(col <= newest.literal())
    if eager and source.kind == "lookup" and not current().is_duckdb:
        df = F.broadcast(df)
    ctx.log.info(
        "source %s: reading rows with %s in (%s, %s]",
        source.id,
        column.name,
        previous.value if previous else "-inf",
        newest.value,
    )
    return df, newest
