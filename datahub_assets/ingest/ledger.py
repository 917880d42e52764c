"""The ledger of ingested files: one Iceberg table per pipeline, `<app>_raw.<pipeline>__files`.

Every landed file version a run handles gets one row: its fingerprint (`FileInfo.fingerprint`),
where it was, what became of it (`ingested` with the rows it added and the data table snapshot
they are in, or `rejected` with the rule and reason) and where it was moved. A file version is
ingested exactly once because its ledger row is committed in the SAME atomic catalog commit as
the rows it adds (`ledger_transaction` stages the uncommitted pyiceberg transaction; the write
path, `iceberg.tables`, commits it together with the data tables' publish): either
both are visible or neither. This package never imports `execute`
(tests/unit/test_import_cycles.py).

Reads stay fast with a large ledger: `ingested` projects the entry columns, filters on status
and fingerprint in the scan (pyiceberg prunes files by column statistics), and for a large
batch of fingerprints reads only the fingerprint column and matches in Arrow before fetching
the few matching rows. Writes keep the table small in files: manifests are merged on append
(`commit.manifest-merge.enabled`), and once the current snapshot has more than
`COMPACT_AFTER_FILES` data files the next change rewrites the whole ledger as one file (and
expires all but the newest `KEEP_SNAPSHOTS` snapshots so the metadata file stays small).
Old metadata files are pruned after each commit (20 kept). No Spark: pyarrow and pyiceberg.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, EqualTo, In
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.table.update.snapshot import ExpireSnapshots
from pyiceberg.types import LongType, NestedField, PrimitiveType, StringType, TimestamptzType

from datahub_assets.spec.models import TableRef
from datahub_resources.iceberg import ensure_namespace

LEDGER_LAYER = "raw"
LEDGER_SUFFIX = "__files"
INGESTED = "ingested"
REJECTED = "rejected"
STATUSES = (INGESTED, REJECTED)
COMPACT_AFTER_FILES = 64  # more data files than this in the current snapshot -> rewrite
KEEP_SNAPSHOTS = 100  # snapshots a compaction keeps (the newest; main's head always)
IN_FILTER_MAX = 1000  # larger lookups match fingerprints in Arrow, not in the scan filter

LEDGER_PROPERTIES = {
    "commit.manifest-merge.enabled": "true",
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "20",
}

_COLUMNS: tuple[tuple[str, PrimitiveType], ...] = (
    ("fingerprint", StringType()),
    ("source_id", StringType()),
    ("path", StringType()),
    ("size", LongType()),
    ("modified", TimestamptzType()),
    ("etag", StringType()),
    ("checksum", StringType()),
    ("status", StringType()),
    ("rule", StringType()),
    ("reason", StringType()),
    ("rows", LongType()),
    ("moved_to", StringType()),
    ("run_id", StringType()),
    ("snapshot_id", LongType()),
    ("ingested_at", TimestamptzType()),
    ("invalid_rows", LongType()),
)

LEDGER_SCHEMA = Schema(
    *(NestedField(i, name, t, required=False) for i, (name, t) in enumerate(_COLUMNS, start=1))
)

_ARROW_TYPES: dict[type[PrimitiveType], pa.DataType] = {
    StringType: pa.string(),
    LongType: pa.int64(),
    TimestamptzType: pa.timestamp("us", tz="UTC"),
}
ARROW_SCHEMA = pa.schema(
    [pa.field(name, _ARROW_TYPES[type(t)], nullable=True) for name, t in _COLUMNS]
)


@dataclass(frozen=True)
class LedgerEntry:
    """One file version a run handled. `path` is as landed, `modified` the file's
    modification time, `snapshot_id` the data table snapshot holding its rows (ingested),
    `rule`/`reason` why it was rejected. Timestamps must be timezone-aware."""

    fingerprint: str
    source_id: str | None = None
    path: str | None = None
    size: int | None = None
    modified: datetime | None = None
    etag: str | None = None
    checksum: str | None = None
    status: str | None = None
    rule: str | None = None
    reason: str | None = None
    rows: int | None = None
    moved_to: str | None = None
    run_id: str | None = None
    snapshot_id: int | None = None
    ingested_at: datetime | None = None
    invalid_rows: int | None = None
    """Malformed or invalid records of an ingested file that were quarantined or dropped."""


_ENTRY_FIELDS = tuple(f.name for f in fields(LedgerEntry))
assert tuple(name for name, _ in _COLUMNS) == _ENTRY_FIELDS


def ledger_ref(app: str, pipeline_id: str) -> TableRef:
    """The ledger of a pipeline: `<app>_raw.<pipeline_id>__files`."""
    return TableRef(app=app, layer=LEDGER_LAYER, table=f"{pipeline_id}{LEDGER_SUFFIX}")


def ensure_ledger(catalog: Catalog, ref: TableRef) -> Table:
    """The ledger table of `ref`, created (with its namespace) when missing. Safe when two
    processes create it at once: the loser loads the winner's table."""
    try:
        table = catalog.load_table((ref.namespace, ref.table))
    except NoSuchTableError:
        pass
    else:  # a ledger created before a column was added gets it (nullable: old rows null)
        if set(LEDGER_SCHEMA.column_names) - set(table.schema().column_names):
            with table.update_schema() as update:
                update.union_by_name(LEDGER_SCHEMA)
            table = catalog.load_table((ref.namespace, ref.table))
        return table
    ensure_namespace(catalog, ref.namespace)
    # create_table_if_not_exists loads the table when the create loses a race
    return catalog.create_table_if_not_exists(
        (ref.namespace, ref.table), schema=LEDGER_SCHEMA, properties=LEDGER_PROPERTIES
    )


# ------------------------------------------------------------------------------ reading


def _entries(rows: pa.Table) -> list[LedgerEntry]:
    present = [name for name in _ENTRY_FIELDS if name in rows.column_names]
    return [LedgerEntry(**row) for row in rows.select(present).to_pylist()]


def _scan(
    table: Table, snapshot_id: int, row_filter: BooleanExpression, columns: tuple[str, ...]
) -> pa.Table:
    return table.scan(
        row_filter=row_filter, selected_fields=columns, snapshot_id=snapshot_id
    ).to_arrow()


def _lookup(table: Table, snapshot_id: int, fingerprints: list[str]) -> list[LedgerEntry]:
    """Ingested entries of `fingerprints`, IN_FILTER_MAX at a time through the scan filter."""
    found: list[LedgerEntry] = []
    for start in range(0, len(fingerprints), IN_FILTER_MAX):
        chunk = fingerprints[start : start + IN_FILTER_MAX]
        # pyright reads pyiceberg's predicates as pydantic models with keyword-only fields;
        # their own __init__ takes (term, values) positionally
        row_filter = And(
            In("fingerprint", chunk),  # pyright: ignore[reportCallIssue]
            EqualTo("status", INGESTED),  # pyright: ignore[reportCallIssue]
        )
        found += _entries(_scan(table, snapshot_id, row_filter, _ENTRY_FIELDS))
    return found


def ingested(
    catalog: Catalog,
    ref: TableRef,
    fingerprints: Collection[str],
    snapshot_id: int | None = None,
    table: Table | None = None,
) -> dict[str, LedgerEntry]:
    """{fingerprint: entry} of the `fingerprints` the ledger records as ingested (rejected
    files are not), as of `snapshot_id` of the ledger (default: its current snapshot).
    A ledger that does not exist yet has ingested nothing. `table`: the ledger as the caller
    loaded it (None: loaded here)."""
    wanted = sorted(set(fingerprints))
    if not wanted:
        return {}
    if table is None:
        try:
            table = catalog.load_table((ref.namespace, ref.table))
        except NoSuchTableError:
            return {}
    if snapshot_id is None:
        current = table.current_snapshot()
        if current is None:
            return {}
        snapshot_id = current.snapshot_id
    elif table.snapshot_by_id(snapshot_id) is None:
        raise ValueError(f"ledger {ref.identifier} has no snapshot {snapshot_id}")
    if len(wanted) > IN_FILTER_MAX:
        # one narrow pass over the fingerprint column, then fetch only the matches
        ingested_only = EqualTo("status", INGESTED)  # pyright: ignore[reportCallIssue] - as above
        known = _scan(table, snapshot_id, ingested_only, ("fingerprint",))
        # pyarrow.compute functions are generated at import: no stubs for a type checker
        is_in = pc.is_in  # pyright: ignore[reportAttributeAccessIssue]
        hits = known.filter(is_in(known["fingerprint"], value_set=pa.array(wanted)))
        wanted = sorted(set(hits["fingerprint"].to_pylist()))
        if not wanted:
            return {}
    result: dict[str, LedgerEntry] = {}
    for entry in _lookup(table, snapshot_id, wanted):
        previous = result.get(entry.fingerprint)
        if previous is None or _later(entry, previous):
            result[entry.fingerprint] = entry
    return result


def _later(a: LedgerEntry, b: LedgerEntry) -> bool:
    """Should not happen (exactly once), but if a fingerprint is in twice: the newest wins."""
    epoch = datetime.min.replace(tzinfo=UTC)
    return (a.ingested_at or epoch) > (b.ingested_at or epoch)


def read_ledger(
    table: Table, snapshot_id: int | None = None, row_filter: BooleanExpression = AlwaysTrue()
) -> list[LedgerEntry]:
    """Every entry of the ledger `table` (for inspection and tests; not for hot paths)."""
    if (snapshot_id or table.current_snapshot()) is None:
        return []
    return _entries(table.scan(row_filter=row_filter, snapshot_id=snapshot_id).to_arrow())


# ------------------------------------------------------------------------------ writing


def _check(entries: Sequence[LedgerEntry]) -> None:
    if not entries:
        raise ValueError("ledger_change needs at least one entry")
    seen: set[str] = set()
    for e in entries:
        if not e.fingerprint:
            raise ValueError(f"ledger entry for {e.path!r} has no fingerprint")
        if e.fingerprint in seen:
            raise ValueError(f"fingerprint {e.fingerprint} ({e.path}) is twice in one change")
        seen.add(e.fingerprint)
        if e.status not in STATUSES:
            raise ValueError(
                f"ledger entry {e.fingerprint} ({e.path}): status {e.status!r} is "
                f"not one of {', '.join(STATUSES)}"
            )
        for name in ("modified", "ingested_at"):
            value = getattr(e, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(
                    f"ledger entry {e.fingerprint} ({e.path}): {name} {value} has no time zone"
                )


def entries_to_arrow(entries: Sequence[LedgerEntry]) -> pa.Table:
    """`entries` as an Arrow table of the ledger schema; a missing ingested_at becomes now."""
    now = datetime.now(UTC)
    rows = [{**asdict(e), "ingested_at": e.ingested_at or now} for e in entries]
    return pa.Table.from_pylist(rows, schema=ARROW_SCHEMA)


def data_file_count(table: Table) -> int:
    """Data files in the ledger's current snapshot (from its summary, else by planning)."""
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0
    total = snapshot.summary.get("total-data-files") if snapshot.summary else None
    if total is not None:
        return int(total)
    return sum(1 for _ in table.scan(snapshot_id=snapshot.snapshot_id).plan_files())


def _expired(table: Table) -> list[int]:
    """Snapshots a compaction drops: all but the newest KEEP_SNAPSHOTS and any ref's head."""
    protected = {ref.snapshot_id for ref in table.metadata.refs.values()}
    newest = sorted(
        table.metadata.snapshots, key=lambda s: (s.timestamp_ms, s.sequence_number), reverse=True
    )
    return [s.snapshot_id for s in newest[KEEP_SNAPSHOTS:] if s.snapshot_id not in protected]


def ledger_transaction(table: Table, entries: Sequence[LedgerEntry]) -> Transaction:
    """An uncommitted transaction adding `entries` to the ledger `table`; do not commit it
    alone: `execute.drops.ledger_change` turns it into a change the write path commits
    together with the data it describes.

    Normally an append; when the current snapshot has more than COMPACT_AFTER_FILES data
    files, an overwrite of the whole ledger with its rows plus `entries` (one file) that also
    expires old snapshots. Either way the change requires main to still be the snapshot it
    was built on: a concurrent ledger commit makes the commit fail (nothing is written)."""
    _check(entries)
    new_rows = entries_to_arrow(entries)
    txn = table.transaction()
    snapshot = table.current_snapshot()
    if data_file_count(table) <= COMPACT_AFTER_FILES:
        txn.append(new_rows)
        return txn
    assert snapshot is not None
    existing = table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
    existing = existing.select(ARROW_SCHEMA.names).cast(ARROW_SCHEMA)
    txn.overwrite(pa.concat_tables([existing, new_rows]))
    expired = _expired(table)
    if expired:
        ExpireSnapshots(txn).by_ids(expired).commit()
    return txn
