"""The watermarks of incremental sources: what a committed run read up to, where it is kept,
and the new one of a run (`execute/incremental.py` reads the slices; `mongo/source.py` and
`readers/database.py` use the same state and values, below both in the import graph).

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
whose property is the marker `{"type": "reset", "value": ""}`).

A run's new watermark is max(column) of the rows it reads (`max_watermark`: one aggregate
job); the column must be of a supported type (`resolve_column`).
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
from datahub_assets.iceberg.read import TableNotFoundError, load_table
from datahub_assets.spec.models import TableRef

PROPERTY_PREFIX = "datahub.watermark."
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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
            return current().timestamp_literal(self.value)
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


def resolve_column(df: DataFrame, source_id: str, column: str) -> T.StructField:
    """The field of `df` the incremental `column` names (exact name first, then ignoring
    case), of a supported type."""
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


def max_watermark(df: DataFrame, col: Column, dtype: T.DataType) -> Watermark | None:
    """max(col) over `df` as a Watermark (one aggregate job); None when there is no row."""
    if isinstance(dtype, T.TimestampType):
        micros = current().max_micros(df, col)
        if micros is None:
            return None
        value = (EPOCH + timedelta(microseconds=micros)).isoformat(timespec="microseconds")
        return Watermark(type="timestamp", value=value)
    row = df.agg(F.max(col).cast("string")).first()
    text = row[0] if row is not None else None
    return None if text is None else Watermark(type=dtype.simpleString(), value=text)
