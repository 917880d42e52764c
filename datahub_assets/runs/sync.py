"""Bring `ops_gold.pipeline_runs` up to date with the Dagster instance.

The cursor is the event-log storage id of the last run-terminating event recorded, read from
the table itself (`store.cursor_of`). One sync:

1. asks the event log for RUN_SUCCESS, RUN_FAILURE and RUN_CANCELED events after the cursor,
   oldest first (`instance.fetch_run_status_changes`, an indexed range query per type; on
   SQLite the run status events are mirrored in the index shard), at most `max_runs` of
   each, and keeps only the prefix below every type's page end, so no event is skipped;
2. loads those runs' RunRecords in one query and turns each into rows (`records.run_rows`:
   one query on the run's own event log), stopping early once `budget_s` is spent;
3. commits the rows and the new cursor in one snapshot (`store.commit`), also when there are
   no rows (runs without a pipeline), so the cursor never re-reads them.

The cost therefore depends on the runs finished since the last sync, not on the history: a
tick over an instance of 10,000 runs with nothing new is three empty index queries and one
catalog load. The first sync of an existing instance backfills its whole history, `max_runs`
at a time (the sensor: one batch per tick; the asset: until done).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException

from datahub_assets.runs.records import TERMINAL, run_rows
from datahub_assets.runs.store import commit, cursor_of, ensure_table

MAX_RUNS = 500
CONFLICTS = 5


@dataclass(frozen=True)
class SyncResult:
    cursor_before: int
    cursor: int
    runs: int
    rows: int
    snapshot_id: int | None
    has_more: bool
    seconds: float

    def summary(self) -> str:
        more = " (more to record)" if self.has_more else ""
        return (
            f"recorded {self.runs} runs as {self.rows} pipeline rows, cursor "
            f"{self.cursor_before} -> {self.cursor}{more} in {self.seconds:.2f} s"
        )


def terminal_events(instance: dg.DagsterInstance, after: int, limit: int) -> tuple[list, bool]:
    """Run-terminating event records after storage id `after`, ascending, contiguous (no
    event of any type is left out below the last one returned); and whether more remain."""
    records, bound = [], None
    for event_type in TERMINAL:
        result = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=after),
            limit=limit,
            ascending=True,
        )
        records.extend(result.records)
        if result.has_more and result.records:
            last = result.records[-1].storage_id
            bound = last if bound is None else min(bound, last)
    records.sort(key=lambda r: r.storage_id)
    if bound is not None:
        records = [r for r in records if r.storage_id <= bound]
    has_more = bound is not None or len(records) > limit
    return records[:limit], has_more


def sync_once(
    instance: dg.DagsterInstance,
    catalog: Catalog,
    *,
    max_runs: int = MAX_RUNS,
    budget_s: float | None = None,
) -> SyncResult:
    """One batch (see the module doc); `budget_s` bounds the time spent reading runs."""
    started = time.monotonic()
    table = ensure_table(catalog)
    before = cursor_of(table)
    events, has_more = terminal_events(instance, before, max_runs)
    if not events:
        return SyncResult(before, before, 0, 0, None, False, time.monotonic() - started)
    run_records = {
        r.dagster_run.run_id: r
        for r in instance.get_run_records(dg.RunsFilter(run_ids=list({e.run_id for e in events})))
    }
    now = datetime.now(UTC)
    rows, cursor, runs = [], before, 0
    for event in events:
        if budget_s is not None and runs and time.monotonic() - started > budget_s:
            has_more = True
            break
        record = run_records.get(event.run_id)
        if record is not None:  # a run deleted since it finished leaves no record
            rows.extend(run_rows(instance, event, record, now))
        cursor, runs = event.storage_id, runs + 1
    table = commit(table, rows, cursor)
    snapshot = table.current_snapshot()
    return SyncResult(
        before,
        cursor,
        runs,
        len(rows),
        snapshot.snapshot_id if snapshot else None,
        has_more,
        time.monotonic() - started,
    )


def sync_all(
    instance: dg.DagsterInstance, catalog: Catalog, *, max_runs: int = MAX_RUNS
) -> list[SyncResult]:
    """Batches until the table has every finished run (a backfill, or a catch-up). A batch
    that loses a commit race to another writer (the sensor) is read again from the new
    cursor, up to `CONFLICTS` times."""
    results, conflicts = [], 0
    while True:
        try:
            result = sync_once(instance, catalog, max_runs=max_runs)
        except CommitFailedException:
            conflicts += 1
            if conflicts > CONFLICTS:
                raise
            continue
        results.append(result)
        if not result.has_more:
            return results
