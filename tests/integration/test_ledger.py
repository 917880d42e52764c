"""The ledger of ingested files: creation, lookups (small and large), as-of reads, compaction,
and a ledger change committed atomically with the data rows it describes."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table.update import AssertRefSnapshotId
from pyiceberg.types import LongType, NestedField

from datahub_assets.execute.drops import ledger_change
from datahub_assets.iceberg.multi_commit import change_of, commit_tables
from datahub_assets.ingest import ledger as ledger_mod
from datahub_assets.ingest.ledger import (
    COMPACT_AFTER_FILES,
    LEDGER_PROPERTIES,
    LedgerEntry,
    data_file_count,
    ensure_ledger,
    ingested,
    ledger_ref,
    read_ledger,
)
from tests.support.iceberg import folder_catalog

REF = ledger_ref("shop", "orders_drop")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def catalog(tmp_path):
    catalog = folder_catalog(tmp_path)
    yield catalog
    catalog.engine.dispose()


def _entry(n: int, status: str = "ingested", **kw) -> LedgerEntry:
    return LedgerEntry(
        fingerprint=f"fp{n:05d}",
        source_id="orders",
        path=f"/in/f{n}.csv",
        size=100 + n,
        modified=T0,
        status=status,
        rows=n,
        run_id="run-1",
        **kw,
    )


def _record(catalog, *entries: LedgerEntry) -> int:
    """Commit `entries` to the ledger; the ledger's new snapshot id."""
    commit_tables(catalog, [ledger_change(ensure_ledger(catalog, REF), entries)])
    return catalog.load_table((REF.namespace, REF.table)).current_snapshot().snapshot_id


def test_ledger_identity_and_creation(catalog):
    assert (REF.namespace, REF.table) == ("shop_raw", "orders_drop__files")
    table = ensure_ledger(catalog, REF)
    for key, value in LEDGER_PROPERTIES.items():
        assert table.properties[key] == value
    assert [f.name for f in table.schema().fields][:3] == ["fingerprint", "source_id", "path"]
    assert all(not f.required for f in table.schema().fields)
    assert ensure_ledger(catalog, REF).metadata.table_uuid == table.metadata.table_uuid


def test_ensure_ledger_loses_a_creation_race_gracefully(catalog, monkeypatch):
    winner = ensure_ledger(catalog, REF)
    load = catalog.load_table
    calls = []

    def not_yet_then_load(identifier):  # the first load runs before the other process created
        calls.append(identifier)
        if len(calls) == 1:
            raise NoSuchTableError("not yet")
        return load(identifier)

    monkeypatch.setattr(catalog, "load_table", not_yet_then_load)
    assert ensure_ledger(catalog, REF).metadata.table_uuid == winner.metadata.table_uuid


def test_missing_or_empty_ledger_has_ingested_nothing(catalog):
    assert ingested(catalog, REF, ["fp00001"]) == {}
    ensure_ledger(catalog, REF)
    assert ingested(catalog, REF, ["fp00001"]) == {}
    assert ingested(catalog, REF, []) == {}


def test_lookup_hits_misses_and_rejected(catalog):
    _record(
        catalog,
        _entry(1),
        _entry(2),
        _entry(3, status="rejected", rule="empty", reason="file is empty"),
    )
    found = ingested(catalog, REF, ["fp00001", "fp00003", "fp00099"])
    assert set(found) == {"fp00001"}
    entry = found["fp00001"]
    assert (entry.path, entry.size, entry.rows, entry.modified) == ("/in/f1.csv", 101, 1, T0)
    assert entry.ingested_at is not None
    assert entry.ingested_at.tzinfo is not None
    rejected = [
        e
        for e in read_ledger(catalog.load_table((REF.namespace, REF.table)))
        if e.status == "rejected"
    ]
    assert [(e.fingerprint, e.rule, e.reason) for e in rejected] == [
        ("fp00003", "empty", "file is empty")
    ]


def test_large_lookup_matches_in_arrow(catalog, monkeypatch):
    monkeypatch.setattr(ledger_mod, "IN_FILTER_MAX", 50)
    _record(catalog, *[_entry(n) for n in range(0, 300, 3)])
    wanted = [f"fp{n:05d}" for n in range(200)]  # more than IN_FILTER_MAX
    found = ingested(catalog, REF, wanted)
    assert sorted(found) == [f"fp{n:05d}" for n in range(0, 200, 3)]
    assert found["fp00099"].rows == 99
    assert ingested(catalog, REF, [f"fp{n:05d}" for n in range(1, 200, 3)]) == {}


def test_read_as_of_a_ledger_snapshot(catalog):
    first = _record(catalog, _entry(1))
    _record(catalog, _entry(2))
    assert set(ingested(catalog, REF, ["fp00001", "fp00002"])) == {"fp00001", "fp00002"}
    assert set(ingested(catalog, REF, ["fp00001", "fp00002"], snapshot_id=first)) == {"fp00001"}
    with pytest.raises(ValueError, match="no snapshot"):
        ingested(catalog, REF, ["fp00001"], snapshot_id=12345)


def test_bad_entries_are_refused(catalog):
    table = ensure_ledger(catalog, REF)
    with pytest.raises(ValueError, match="status 'done'"):
        ledger_change(table, [_entry(1, status="done")])
    with pytest.raises(ValueError, match="twice"):
        ledger_change(table, [_entry(1), _entry(1)])
    with pytest.raises(ValueError, match="no time zone"):
        ledger_change(table, [LedgerEntry("fp1", status="ingested", modified=datetime(2024, 1, 1))])
    with pytest.raises(ValueError, match="at least one"):
        ledger_change(table, [])


def test_a_ledger_change_requires_main_unmoved(catalog):
    table = ensure_ledger(catalog, REF)
    change = ledger_change(table, [_entry(1)])
    assert AssertRefSnapshotId(ref="main", snapshot_id=None) in change.requirements
    _record(catalog, _entry(2))  # another run recorded a file meanwhile
    with pytest.raises(CommitFailedException):
        commit_tables(catalog, [change])
    assert set(ingested(catalog, REF, ["fp00001", "fp00002"])) == {"fp00002"}


def test_compaction_keeps_every_row_in_one_file(catalog):
    for n in range(COMPACT_AFTER_FILES + 1):
        _record(catalog, _entry(n))
    table = catalog.load_table((REF.namespace, REF.table))
    assert data_file_count(table) == COMPACT_AFTER_FILES + 1
    head = table.current_snapshot().snapshot_id
    # old metadata files are pruned after commit_tables too (previous-versions-max=20)
    metadata_dir = Path(table.metadata.location.removeprefix("file://")) / "metadata"
    assert len(list(metadata_dir.glob("*.metadata.json"))) <= 21

    change = ledger_change(table, [_entry(1000)])
    assert AssertRefSnapshotId(ref="main", snapshot_id=head) in change.requirements
    commit_tables(catalog, [change])

    table = catalog.load_table((REF.namespace, REF.table))
    assert data_file_count(table) == 1
    assert len(list(table.scan().plan_files())) == 1
    fingerprints = sorted(e.fingerprint for e in read_ledger(table))
    assert fingerprints == sorted(
        [f"fp{n:05d}" for n in range(COMPACT_AFTER_FILES + 1)] + ["fp01000"]
    )
    found = ingested(catalog, REF, ["fp00000", "fp00064", "fp01000"])
    assert set(found) == {"fp00000", "fp00064", "fp01000"}
    assert found["fp00064"].modified == T0
    # and the next change is an append again
    _record(catalog, _entry(1001))
    assert data_file_count(catalog.load_table((REF.namespace, REF.table))) == 2


def test_compaction_expires_old_snapshots(catalog, monkeypatch):
    monkeypatch.setattr(ledger_mod, "COMPACT_AFTER_FILES", 3)
    monkeypatch.setattr(ledger_mod, "KEEP_SNAPSHOTS", 2)
    for n in range(4):
        _record(catalog, _entry(n))
    _record(catalog, _entry(4))  # compacts
    table = catalog.load_table((REF.namespace, REF.table))
    assert len(table.metadata.snapshots) <= 4  # 2 kept + the old head + delete/append pair
    assert len(read_ledger(table)) == 5
    assert data_file_count(table) == 1


def test_ledger_commits_with_the_data(catalog):
    catalog.create_namespace_if_not_exists("shop_bronze")
    data = catalog.create_table(
        ("shop_bronze", "orders"), Schema(NestedField(1, "id", LongType(), required=False))
    )
    ensure_ledger(catalog, REF)
    _record(catalog, _entry(9))  # the ledger moves after the data change is built...
    txn = data.transaction()
    txn.append(pa.table({"id": pa.array([1, 2], pa.int64())}))
    stale_ledger = ledger_change(catalog.load_table((REF.namespace, REF.table)), [_entry(1)])
    _record(catalog, _entry(8))  # ...and again before the commit: the ledger change is stale
    with pytest.raises(CommitFailedException, match="orders_drop__files"):
        commit_tables(catalog, [change_of(txn), stale_ledger])
    assert catalog.load_table(("shop_bronze", "orders")).current_snapshot() is None
    assert ingested(catalog, REF, ["fp00001"]) == {}

    txn = catalog.load_table(("shop_bronze", "orders")).transaction()
    txn.append(pa.table({"id": pa.array([1, 2], pa.int64())}))
    data_change = change_of(txn)
    snapshot_id = data_change.updates[0].snapshot.snapshot_id
    entry = _entry(1, snapshot_id=snapshot_id)
    commit_tables(
        catalog,
        [data_change, ledger_change(catalog.load_table((REF.namespace, REF.table)), [entry])],
    )
    data = catalog.load_table(("shop_bronze", "orders"))
    assert data.current_snapshot().snapshot_id == snapshot_id
    assert ingested(catalog, REF, ["fp00001"])["fp00001"].snapshot_id == snapshot_id


def test_ledger_on_postgres_with_racing_creators(postgres_url, tmp_path):
    """Processes creating the same ledger at once all end up with the one table."""
    ref = ledger_ref(f"pg{uuid.uuid4().hex[:8]}", "orders_drop")
    writers = 4
    # opened up front: the first SqlCatalog on a fresh database creates the catalog's own
    # tables, which pyiceberg does not do race-safely
    catalogs = [folder_catalog(tmp_path, postgres_url) for _ in range(writers)]
    barrier = threading.Barrier(writers, timeout=60)
    uuids: list[str] = []
    errors: list[BaseException] = []

    def create(own) -> None:
        try:
            barrier.wait()
            uuids.append(str(ensure_ledger(own, ref).metadata.table_uuid))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(c,)) for c in catalogs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for c in catalogs[1:]:
        c.engine.dispose()
    assert not errors
    assert len(uuids) == writers
    assert len(set(uuids)) == 1

    catalog = catalogs[0]
    try:
        commit_tables(
            catalog,
            [ledger_change(ensure_ledger(catalog, ref), [_entry(1), _entry(2, status="rejected")])],
        )
        assert set(ingested(catalog, ref, ["fp00001", "fp00002", "fp00003"])) == {"fp00001"}
    finally:
        catalog.engine.dispose()
