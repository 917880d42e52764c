"""The run records table `ops_gold.pipeline_runs` (asset `ops/gold/pipeline_runs`).

One row per pipeline per finished run (columns: `COLUMNS`). Written by pyiceberg from Arrow,
without Spark: a sync adds a few rows at a time, far below what is worth a Spark job, and the
sensor that writes them must not depend on the Spark server being up.

Exactly once: the table holds its own cursor. Every commit is one snapshot whose summary
carries `datahub.runs-cursor` = the event-log storage id of the last run-terminating event
(RUN_SUCCESS / RUN_FAILURE / RUN_CANCELED) whose records it contains; the rows and the cursor
are therefore committed together or not at all. A writer reads the cursor from the current
snapshot and commits (`multi_commit.commit_tables`, which never retries: pyiceberg's own
Transaction would re-apply a failed append on top of the new head) with the requirement that
main is still that snapshot, so two writers racing (the sensor and a manual materialisation)
cannot both append the same runs: the second commit fails, and the next sync starts from
the new cursor. Rolling the table back rolls the
cursor back with it, and the runs after it are recorded again.

The table stays small in files the way the file ledger does (`ingest/ledger.py`): manifests
merged on append, and once the current snapshot has more than `COMPACT_AFTER_FILES` data
files the next commit rewrites every row into one file and expires all but the newest
`KEEP_SNAPSHOTS` snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, GreaterThanOrEqual
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.update.snapshot import ExpireSnapshots
from pyiceberg.types import (
    DoubleType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)

from datahub_assets.iceberg.multi_commit import change_of, commit_tables
from datahub_assets.spec.models import TableRef
from datahub_resources.iceberg import ensure_namespace

RUNS_REF = TableRef(app="ops", layer="gold", table="pipeline_runs")
CURSOR_PROPERTY = "datahub.runs-cursor"
COMPACT_AFTER_FILES = 64
KEEP_SNAPSHOTS = 100
PROPERTIES = {
    "commit.manifest-merge.enabled": "true",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
    # pyiceberg's Transaction retries a failed append on top of the new head: that would
    # record the same runs twice, under a stale cursor. Never retry; the next sync re-reads.
    "commit.retry.num-retries": "0",
}

_TARGET = StructType(
    NestedField(101, "asset_key", StringType(), required=False),
    NestedField(102, "iceberg_table", StringType(), required=False),
    NestedField(103, "rows_written", LongType(), required=False),
    NestedField(104, "snapshot_id", LongType(), required=False),
)
COLUMNS: tuple[tuple[str, Any, str], ...] = (
    ("run_id", StringType(), "Dagster run id"),
    ("pipeline", StringType(), "<app>.<pipeline id>"),
    ("app", StringType(), "application"),
    ("layer", StringType(), "layer of the pipeline's targets"),
    ("op", StringType(), "Dagster op (step) name, <app>__<id>"),
    ("job", StringType(), "Dagster job of the run (__ASSET_JOB for asset runs)"),
    ("trigger", StringType(), "schedule, file drop, automation, sensor, backfill or manual"),
    ("trigger_name", StringType(), "schedule/sensor name, backfill id, or the re-executed run"),
    ("status", StringType(), "the pipeline's outcome: success, failed, skipped, canceled"),
    ("run_status", StringType(), "the whole run's outcome: SUCCESS, FAILURE, CANCELED"),
    ("started_at", TimestamptzType(), "pipeline step start (the run's start if it never ran)"),
    ("ended_at", TimestamptzType(), "pipeline step end (the run's end if it never ran)"),
    ("duration_s", DoubleType(), "step duration in seconds (null when it never started)"),
    (
        "rows_read",
        LongType(),
        "rows read: datahub/rows_read; for a file drop, the batch's rows + malformed/invalid rows",
    ),
    ("rows_written", LongType(), "rows written over all targets (datahub/rows_written)"),
    (
        "targets",
        ListType(100, _TARGET, element_required=False),
        "per target: asset key, Iceberg table, rows written, snapshot id",
    ),
    ("checks_passed", IntegerType(), "asset checks that passed"),
    ("checks_failed", IntegerType(), "error-severity checks that failed"),
    ("checks_warned", IntegerType(), "warn-severity checks that failed"),
    ("error_class", StringType(), "exception class raised by the pipeline"),
    ("error_message", StringType(), "its message (first 4,000 characters)"),
    ("error_signature", StringType(), "class + message with numbers, ids and paths removed"),
    ("event_id", LongType(), "event-log storage id of the run's terminal event (the cursor)"),
    ("recorded_at", TimestamptzType(), "when this row was written"),
)

SCHEMA = Schema(
    *(
        NestedField(i, name, t, required=False, doc=doc)
        for i, (name, t, doc) in enumerate(COLUMNS, start=1)
    )
)


def ensure_table(catalog: Catalog) -> Table:
    """The run records table, created (with the `ops_gold` namespace) when missing."""
    ident = (RUNS_REF.namespace, RUNS_REF.table)
    try:
        return catalog.load_table(ident)
    except NoSuchTableError:
        pass
    ensure_namespace(catalog, RUNS_REF.namespace)
    return catalog.create_table_if_not_exists(ident, schema=SCHEMA, properties=PROPERTIES)


def cursor_of(table: Table) -> int:
    """The storage id of the last terminal event recorded (-1: nothing yet)."""
    snapshot = table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return -1
    return int(snapshot.summary.get(CURSOR_PROPERTY) or -1)


def to_arrow(table: Table, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """`rows` in the Arrow form of the table's schema (the catalog's field ids)."""
    return pa.Table.from_pylist(list(rows), schema=table.schema().as_arrow())


def _data_files(table: Table) -> int:
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    total = snapshot.summary.get("total-data-files") if snapshot.summary else None
    return int(total) if total is not None else sum(1 for _ in table.scan().plan_files())


def _expired(table: Table) -> list[int]:
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    newest = sorted(
        table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number), reverse=True
    )
    return [s.snapshot_id for s in newest[KEEP_SNAPSHOTS:] if s.snapshot_id not in protected]


def commit(table: Table, rows: Sequence[dict[str, Any]], cursor: int) -> Table:
    """Append `rows` and move the cursor to `cursor` in one snapshot (see the module doc).
    Raises pyiceberg's CommitFailedException when another writer committed first."""
    snapshot_properties = {CURSOR_PROPERTY: str(cursor)}
    new = to_arrow(table, rows)
    txn = table.transaction()
    if _data_files(table) <= COMPACT_AFTER_FILES:
        txn.append(new, snapshot_properties=snapshot_properties)
    else:
        existing = table.scan().to_arrow().cast(new.schema)
        txn.overwrite(pa.concat_tables([existing, new]), snapshot_properties=snapshot_properties)
        expired = _expired(table)
        if expired:
            ExpireSnapshots(txn).by_ids(expired).commit()
    # one catalog commit that requires main to be the snapshot the cursor was read from
    # (commit_tables never retries, whatever the table's properties say)
    commit_tables(table.catalog, [change_of(txn)])
    return table.catalog.load_table(table.name())


def read_rows(
    catalog: Catalog, since: datetime | None = None, columns: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Records whose pipeline started at or after `since` (all when None), as dicts."""
    try:
        table = catalog.load_table((RUNS_REF.namespace, RUNS_REF.table))
    except NoSuchTableError:
        return []
    if table.current_snapshot() is None:
        return []
    # pyiceberg 0.12 declares its predicates as pydantic models: the type checker sees the
    # model's synthesized __init__, not the (term, literal) one that runs
    row_filter = (
        GreaterThanOrEqual("started_at", since.isoformat())  # pyright: ignore[reportCallIssue]
        if since
        else AlwaysTrue()
    )
    scan = table.scan(row_filter=row_filter, selected_fields=tuple(columns) if columns else ("*",))
    return scan.to_arrow().to_pylist()
