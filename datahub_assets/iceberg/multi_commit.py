"""Atomic commits of changes to several Iceberg tables (pyiceberg SQL catalog).

pyiceberg has no multi-table transaction. Its `SqlCatalog.commit_table` is, per table:
load the current metadata, `_update_and_stage_table` (validate the requirements against it
and apply the updates), `_write_metadata` (a new, uniquely named metadata file that nothing
references yet), then in one SQL transaction a compare-and-swap of the catalog row:

    UPDATE iceberg_tables SET metadata_location = <new>, previous_metadata_location = <old>
    WHERE catalog_name = .. AND table_namespace = .. AND table_name = .. AND
          metadata_location = <old>                         -- exactly one row, or it moved

`commit_tables` does the first three steps for every change and then ALL the swaps in ONE
SQLAlchemy session: either every table moves to its new metadata or, when any row no longer
holds the metadata the change was staged on (another process committed in between), the
session is rolled back, the unreferenced metadata files are deleted and CommitFailedException
names the table(s) that moved. No reader ever sees part of the commit. The swaps run in
(namespace, table) order so two concurrent multi-table commits take PostgreSQL's row locks in
the same order and cannot deadlock. Dialects without a reliable rowcount use
`SELECT ... FOR UPDATE` as pyiceberg does. A change that turns out to change nothing still
swaps its row onto itself, so its requirements hold at the commit, not only when staged.

A change is built without committing: `change_of(txn)` takes the updates and requirements a
pyiceberg Transaction accumulated (e.g. `txn.append(arrow)` writes data and manifest files and
stages an AddSnapshot + SetSnapshotRef main with AssertRefSnapshotId(main, <head it read>)).
The transaction itself must then not be committed. The data files of a change that fails to
commit stay on storage, unreferenced (orphan-file maintenance removes them).

Other catalog types fall back to one `commit_table` per change: NOT atomic there (an earlier
table stays committed when a later one fails; the error says which). One change is always a
plain `catalog.commit_table`. Only existing tables can be changed (no creation). After a
commit the honoured `write.metadata.delete-after-commit.enabled` property prunes old metadata
files, as pyiceberg's own Transaction commit does. The responses carry the new metadata;
callers keep using the tables as the responses left them (`pyiceberg_compat.committed_table`).
The pyiceberg internals this relies on are wrapped in `pyiceberg_compat`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import IcebergTables, SqlCatalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.table import CommitTableResponse, CreateTableTransaction, Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import AssertTableUUID, TableRequirement, TableUpdate
from pyiceberg.typedef import Identifier
from sqlalchemy import CursorResult, update
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from datahub_assets.iceberg import pyiceberg_compat as compat


@dataclass(frozen=True)
class TableChange:
    """Uncommitted changes to one existing table: what `catalog.commit_table` takes."""

    table: Table
    requirements: tuple[TableRequirement, ...]
    updates: tuple[TableUpdate, ...]

    @property
    def name(self) -> str:
        return ".".join(self.table.name())


def change_of(txn: Transaction) -> TableChange:
    """The updates and requirements `txn` accumulated, as a TableChange, without committing.

    Adds AssertTableUUID (as `commit_transaction` does) so a dropped and re-created table of
    the same name fails the commit. Do not also commit `txn`."""
    table = compat.transaction_table(txn)
    if isinstance(txn, CreateTableTransaction):
        raise ValueError(
            f"table {'.'.join(table.name())}: commit_tables changes existing "
            "tables only; create the table first"
        )
    if compat.transaction_failed(txn):
        raise ValueError(
            f"table {'.'.join(table.name())}: the transaction failed to "
            "commit before and cannot be reused"
        )
    requirements, updates = compat.transaction_changes(txn)
    if not any(isinstance(r, AssertTableUUID) for r in requirements):
        requirements += (AssertTableUUID(uuid=table.metadata.table_uuid),)
    return TableChange(table=table, requirements=requirements, updates=updates)


def commit_tables(catalog: Catalog, changes: Sequence[TableChange]) -> list[CommitTableResponse]:
    """Commit every change, all or nothing on a SqlCatalog (see the module doc).

    Returns one response per change, in order. Raises CommitFailedException (nothing
    committed) when a requirement fails or a table moved since its metadata was loaded,
    NoSuchTableError for a table that does not exist, ValueError for two changes to one
    table."""
    changes = list(changes)
    _reject_duplicates(changes)
    if len(changes) == 1 or not isinstance(catalog, SqlCatalog):
        return _commit_sequentially(catalog, changes)
    return _commit_atomically(catalog, changes)


def _reject_duplicates(changes: list[TableChange]) -> None:
    seen: set[Identifier] = set()
    for change in changes:
        ident = change.table.name()
        if ident in seen:
            raise ValueError(
                f"table {change.name}: two changes to the same table in one commit; "
                "stage them in one transaction instead"
            )
        seen.add(ident)


def _delete_old_metadata(
    catalog: Catalog, table: Table, base: TableMetadata, response: CommitTableResponse
) -> None:
    """Honour write.metadata.delete-after-commit.enabled, as Table._do_commit does."""
    try:
        compat.delete_old_metadata(catalog, table.io, base, response.metadata)
    except Exception as exc:  # a leftover file is harmless: the commit stands
        warnings.warn(
            f"table {'.'.join(table.name())}: failed to delete old metadata after commit: {exc}",
            stacklevel=3,
        )


def _commit_sequentially(catalog: Catalog, changes: list[TableChange]) -> list[CommitTableResponse]:
    """One commit_table per change: atomic for a single change only."""
    responses: list[CommitTableResponse] = []
    for change in changes:
        try:
            response = catalog.commit_table(change.table, change.requirements, change.updates)
        except CommitFailedException as exc:
            done = ", ".join(c.name for c in changes[: len(responses)])
            note = (
                f" (NOT atomic on {type(catalog).__name__}: {done} stayed committed)"
                if done
                else ""
            )
            raise CommitFailedException(f"table {change.name}: {exc}{note}") from exc
        _delete_old_metadata(catalog, change.table, change.table.metadata, response)
        responses.append(response)
    return responses


@dataclass(frozen=True)
class _Staged:
    change: TableChange
    namespace: str
    table_name: str
    current: Table
    metadata: TableMetadata
    metadata_location: str

    @property
    def noop(self) -> bool:
        return self.metadata_location == self.current.metadata_location


def _stage(catalog: SqlCatalog, change: TableChange) -> _Staged:
    """Validate `change` against the table's current metadata and apply it (in memory)."""
    ident = change.table.name()
    try:
        current = catalog.load_table(ident)
    except NoSuchTableError as exc:
        raise NoSuchTableError(
            f"table {change.name} does not exist: commit_tables changes existing tables only"
        ) from exc
    try:
        staged = compat.update_and_stage(
            catalog, current, ident, change.requirements, change.updates
        )
    except CommitFailedException as exc:
        raise CommitFailedException(f"table {change.name}: {exc}") from exc
    namespace = Catalog.namespace_to_string(Catalog.namespace_from(ident))
    table_name = Catalog.table_name_from(ident)
    if staged.metadata == current.metadata:  # nothing to change: guard the row only
        return _Staged(
            change, namespace, table_name, current, current.metadata, current.metadata_location
        )
    return _Staged(
        change, namespace, table_name, current, staged.metadata, staged.metadata_location
    )


def _swap(catalog: SqlCatalog, session: Session, staged: _Staged) -> bool:
    """Compare-and-swap the catalog row of `staged` in `session`; False when it moved."""
    old = staged.current.metadata_location
    where = (
        IcebergTables.catalog_name == catalog.name,
        IcebergTables.table_namespace == staged.namespace,
        IcebergTables.table_name == staged.table_name,
        IcebergTables.metadata_location == old,
    )
    if catalog.engine.dialect.supports_sane_rowcount:
        values = {"metadata_location": staged.metadata_location}
        if not staged.noop:
            values["previous_metadata_location"] = old
        result = cast(
            CursorResult, session.execute(update(IcebergTables).where(*where).values(**values))
        )
        return result.rowcount >= 1
    try:
        row = session.query(IcebergTables).with_for_update(of=IcebergTables).filter(*where).one()
    except NoResultFound:
        return False
    if not staged.noop:
        row.metadata_location = staged.metadata_location
        row.previous_metadata_location = old
    return True


def _forget(staged: list[_Staged]) -> None:
    """Delete the metadata files written for a commit that did not happen."""
    for s in staged:
        if not s.noop:
            with contextlib.suppress(Exception):  # an unreferenced file is harmless
                s.current.io.delete(s.metadata_location)


def _commit_atomically(
    catalog: SqlCatalog, changes: list[TableChange]
) -> list[CommitTableResponse]:
    staged = [_stage(catalog, change) for change in changes]
    written: list[_Staged] = []
    committing = False
    try:
        for s in staged:
            if not s.noop:
                compat.write_metadata(catalog, s.metadata, s.current.io, s.metadata_location)
                written.append(s)
        with Session(catalog.engine) as session:
            try:
                moved = [
                    f"{s.namespace}.{s.table_name}"
                    for s in sorted(staged, key=lambda s: (s.namespace, s.table_name))
                    if not _swap(catalog, session, s)
                ]
            except BaseException:
                session.rollback()
                raise
            if moved:
                session.rollback()
                raise CommitFailedException(
                    f"table(s) {', '.join(moved)} changed since the commit was staged (another "
                    f"process committed); nothing was committed to any of "
                    f"{', '.join(c.name for c in changes)}"
                )
            committing = True
            session.commit()
    except BaseException:
        if not committing:  # the transaction certainly did not commit
            _forget(written)
        raise
    responses = []
    for s in staged:
        response = CommitTableResponse.model_validate(
            {"metadata": s.metadata, "metadata-location": s.metadata_location}
        )
        if not s.noop:
            _delete_old_metadata(catalog, s.current, s.current.metadata, response)
        responses.append(response)
    return responses
