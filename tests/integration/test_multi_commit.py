"""commit_tables: changes to several tables commit in one catalog transaction, all or nothing,
on SQLite (with and without a reliable rowcount) and on a real PostgreSQL catalog."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.update import AssertRefSnapshotId, SetPropertiesUpdate
from pyiceberg.types import LongType, NestedField

from datahub_assets.iceberg.multi_commit import TableChange, change_of, commit_tables
from tests.support.iceberg import folder_catalog, table_column

SCHEMA = Schema(NestedField(1, "id", LongType(), required=False))


def _ids(*ids: int) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


@pytest.fixture(params=["sqlite", "sqlite-no-rowcount", "postgres"])
def catalog(request, tmp_path):
    uri = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    catalog = folder_catalog(tmp_path, uri)
    if request.param == "sqlite-no-rowcount":  # the SELECT ... FOR UPDATE path
        catalog.engine.dialect.supports_sane_rowcount = False
    yield catalog
    catalog.engine.dispose()


def _another_process(catalog, tmp_path) -> Catalog:
    """A catalog of its own (own engine and connections) on the same database."""
    return folder_catalog(tmp_path, catalog.engine.url.render_as_string(hide_password=False))


@pytest.fixture
def namespace(catalog) -> str:
    """A namespace of its own (the PostgreSQL catalog is shared by the whole session)."""
    name = f"mc_{uuid.uuid4().hex[:8]}"
    catalog.create_namespace(name)
    return name


def _table(catalog: Catalog, namespace: str, name: str, *ids: int) -> Table:
    table = catalog.create_table((namespace, name), SCHEMA)
    if ids:
        table.append(_ids(*ids))
    return catalog.load_table((namespace, name))


def _rows(catalog: Catalog, table: Table) -> list[int]:
    return table_column(catalog, table.name(), "id")


def _append(table: Table, *ids: int) -> TableChange:
    txn = table.transaction()
    txn.append(_ids(*ids))
    return change_of(txn)


def _metadata_files(table: Table) -> set[str]:
    folder = Path(table.metadata.location.removeprefix("file://")) / "metadata"
    return {p.name for p in folder.glob("*.metadata.json")}


def test_two_tables_commit_together(catalog, namespace):
    a, b = _table(catalog, namespace, "a", 1), _table(catalog, namespace, "b")
    responses = commit_tables(catalog, [_append(a, 2, 3), _append(b, 10)])

    assert _rows(catalog, a) == [1, 2, 3]
    assert _rows(catalog, b) == [10]
    for table, response in zip((a, b), responses, strict=True):
        fresh = catalog.load_table(table.name())
        assert fresh.metadata_location == response.metadata_location
        assert fresh.current_snapshot().snapshot_id == response.metadata.current_snapshot_id


def test_table_moved_before_staging_commits_nothing(catalog, namespace):
    a, b = _table(catalog, namespace, "a", 1), _table(catalog, namespace, "b", 10)
    changes = [_append(a, 2), _append(b, 11)]
    b.append(_ids(12))  # another run commits to B after the changes were built

    with pytest.raises(CommitFailedException, match=rf"{namespace}\.b"):
        commit_tables(catalog, changes)

    fresh_a = catalog.load_table(a.name())
    assert fresh_a.metadata_location == a.metadata_location
    assert fresh_a.current_snapshot().snapshot_id == a.current_snapshot().snapshot_id
    assert _rows(catalog, a) == [1]
    assert _rows(catalog, b) == [10, 12]


def test_table_moved_between_staging_and_swap_rolls_back(catalog, namespace, tmp_path, monkeypatch):
    """The compare-and-swap itself: B moves after commit_tables loaded and staged it."""
    a, b = _table(catalog, namespace, "a", 1), _table(catalog, namespace, "b", 10)
    before_a = _metadata_files(a)
    # no requirements at all on B: only the swap can notice that it moved
    change_b = TableChange(b, (), (SetPropertiesUpdate(updates={"k": "v"}),))
    other = _another_process(catalog, tmp_path)
    write_metadata = catalog._write_metadata
    moved = []

    def write_then_someone_commits_b(metadata, io, metadata_path):
        write_metadata(metadata=metadata, io=io, metadata_path=metadata_path)
        if not moved:
            other.load_table(b.name()).append(_ids(12))
            moved.append(True)

    monkeypatch.setattr(catalog, "_write_metadata", write_then_someone_commits_b)
    with pytest.raises(CommitFailedException, match=rf"{namespace}\.b"):
        commit_tables(catalog, [_append(a, 2), change_b])

    assert moved
    fresh_a = catalog.load_table(a.name())
    assert fresh_a.metadata_location == a.metadata_location
    assert fresh_a.current_snapshot().snapshot_id == a.current_snapshot().snapshot_id
    assert _rows(catalog, a) == [1]
    assert "k" not in catalog.load_table(b.name()).properties
    assert _rows(catalog, b) == [10, 12]
    assert _metadata_files(a) == before_a  # the unreferenced new metadata file was deleted
    other.engine.dispose()


def test_concurrent_multi_table_commits_stay_consistent(catalog, namespace, tmp_path):
    """Writers racing on the same two tables (in opposite orders): every commit lands on
    both tables or on neither, and none deadlocks."""
    a, b = _table(catalog, namespace, "a"), _table(catalog, namespace, "b")
    writers = 4
    barrier = threading.Barrier(writers, timeout=60)
    outcomes: list[str] = []

    def write(n: int) -> None:
        own = _another_process(catalog, tmp_path)
        try:
            tables = [own.load_table(a.name()), own.load_table(b.name())]
            changes = [_append(t, n) for t in tables]
            barrier.wait()
            try:
                commit_tables(own, changes if n % 2 else changes[::-1])
                outcomes.append("ok")
            except CommitFailedException:
                outcomes.append("moved")
        finally:
            own.engine.dispose()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == writers
    assert "ok" in outcomes
    assert _rows(catalog, a) == _rows(catalog, b)
    assert len(_rows(catalog, a)) == outcomes.count("ok")


def test_a_failing_requirement_names_the_table(catalog, namespace):
    a, b = _table(catalog, namespace, "a", 1), _table(catalog, namespace, "b", 10)
    wrong = TableChange(
        b,
        (AssertRefSnapshotId(ref="main", snapshot_id=None),),
        (SetPropertiesUpdate(updates={"k": "v"}),),
    )
    with pytest.raises(CommitFailedException, match=rf"{namespace}\.b"):
        commit_tables(catalog, [_append(a, 2), wrong])
    assert catalog.load_table(a.name()).metadata_location == a.metadata_location


def test_one_change_and_no_change(catalog, namespace):
    a = _table(catalog, namespace, "a", 1)
    assert commit_tables(catalog, []) == []
    (response,) = commit_tables(catalog, [_append(a, 2)])
    assert catalog.load_table(a.name()).metadata_location == response.metadata_location
    assert _rows(catalog, a) == [1, 2]


def test_a_change_that_changes_nothing_still_guards_its_table(catalog, namespace):
    a, b = _table(catalog, namespace, "a", 1), _table(catalog, namespace, "b", 10)
    b_main = b.current_snapshot().snapshot_id
    guard = TableChange(b, (AssertRefSnapshotId(ref="main", snapshot_id=b_main),), ())
    commit_tables(catalog, [_append(a, 2), guard])
    assert _rows(catalog, a) == [1, 2]
    assert catalog.load_table(b.name()).metadata_location == b.metadata_location


def test_two_changes_to_one_table_are_refused(catalog, namespace):
    a = _table(catalog, namespace, "a", 1)
    with pytest.raises(ValueError, match="two changes to the same table"):
        commit_tables(catalog, [_append(a, 2), _append(a, 3)])
    assert _rows(catalog, a) == [1]


def test_a_missing_table_is_an_error(catalog, namespace):
    a, b = _table(catalog, namespace, "a", 1), _table(catalog, namespace, "b")
    change_b = _append(b, 1)
    catalog.drop_table(b.name())
    with pytest.raises(NoSuchTableError, match="does not exist"):
        commit_tables(catalog, [_append(a, 2), change_b])
    assert _rows(catalog, a) == [1]


class _RecordingCatalog:
    """Not a SqlCatalog: commit_tables falls back to one commit_table per change."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.committed: list[str] = []
        self.fail_on = fail_on

    def commit_table(self, table, _requirements, _updates):
        name = ".".join(table.name())
        if name == self.fail_on:
            raise CommitFailedException("moved")
        self.committed.append(name)
        return table  # stands in for the response

    @staticmethod
    def _delete_old_metadata(io, base, metadata) -> None:
        pass


def test_other_catalogs_commit_one_by_one(tmp_path):
    catalog = folder_catalog(tmp_path)
    catalog.create_namespace("ns")
    a, b = _table(catalog, "ns", "a"), _table(catalog, "ns", "b")
    changes = [TableChange(a, (), ()), TableChange(b, (), ())]

    recording = _RecordingCatalog()
    assert len(commit_tables(recording, changes)) == 2
    assert recording.committed == ["ns.a", "ns.b"]

    failing = _RecordingCatalog(fail_on="ns.b")
    with pytest.raises(CommitFailedException, match="NOT atomic.*ns.a stayed committed"):
        commit_tables(failing, changes)
