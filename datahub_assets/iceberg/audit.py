"""Write-audit-publish for Iceberg tables (blocking checks).

`audit_commit` commits a staged write (its schema change included) as a STAGED snapshot:
the snapshot is added to the table metadata, relative to main (an append keeps main's files,
an overwrite or merge replaces them as `commit` would), but main does not move, so every
reader of the table still sees the previous snapshot. A branch ref (`audit_<run id>`) then
points at it, which names it and protects it from snapshot expiry. Checks read it with
`read_table(..., snapshot_id=result.snapshot_id)`.

`publish` fast-forwards main to the audited snapshot in one catalog commit that asserts main
is still the audited snapshot's parent (a concurrent commit makes it fail) and removes the
branch; `publish_change` builds that commit without making it, so the runner can publish all
of a run's tables (and the file-drop ledger) in one atomic catalog transaction. `discard`
removes the branch (the snapshot stays in the metadata, unreferenced, for inspection until it
is expired) or, for a table this run created, drops the table.

A table created by the write: Iceberg refuses a branch on a table without snapshots, so the
snapshot is committed staged (no ref at all: main stays empty) and the branch is added to it
in a second commit. Schema changes (new optional columns, widenings) are table metadata, not
per snapshot: they are visible from the audit on, also when the write is discarded.
"""

from __future__ import annotations

import time

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError
from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update import (
    AssertRefSnapshotId,
    RemoveSnapshotRefUpdate,
    SetSnapshotRefUpdate,
)

from datahub_assets.iceberg import pyiceberg_compat as compat
from datahub_assets.iceberg.multi_commit import TableChange, commit_tables
from datahub_assets.iceberg.read import TableNotFoundError, load_table
from datahub_assets.iceberg.table import (
    CommitResult,
    StagedWrite,
    commit_result,
    produce_snapshot,
)
from datahub_assets.spec.models import TableRef


class ConcurrentCommitError(RuntimeError):
    """Main moved between staging/auditing a write and publishing it."""


# pyiceberg's update models are built from their wire names (pydantic aliases), which is
# also what a type checker sees
def _assert_ref(ref: str, snapshot_id: int | None) -> AssertRefSnapshotId:
    return AssertRefSnapshotId.model_validate({"ref": ref, "snapshot-id": snapshot_id})


def _set_ref(ref: str, snapshot_id: int) -> SetSnapshotRefUpdate:
    return SetSnapshotRefUpdate.model_validate(
        {"ref-name": ref, "type": SnapshotRefType.BRANCH, "snapshot-id": snapshot_id}
    )


def _remove_ref(ref: str) -> RemoveSnapshotRefUpdate:
    return RemoveSnapshotRefUpdate.model_validate({"ref-name": ref})


def audit_branch(run_id: str) -> str:
    """The branch name of a run's audited writes: `audit_<first 8 characters of the run id>`."""
    return f"audit_{run_id.replace('-', '')[:8]}"


def _main_id(table: Table) -> int | None:
    snapshot = table.current_snapshot()
    return snapshot.snapshot_id if snapshot else None


def _set_branch(catalog: Catalog, table: Table, branch: str, snapshot_id: int) -> Table:
    response = catalog.commit_table(
        table,
        requirements=(_assert_ref(branch, None),),
        updates=(_set_ref(branch, snapshot_id),),
    )
    return compat.committed_table(table, response)


def _check_main(
    staged: StagedWrite, table: Table, snapshot: Snapshot | None, cause: Exception | None = None
) -> None:
    """ConcurrentCommitError unless main (and `snapshot`'s parent) is still the staged-on
    snapshot."""
    main = _main_id(table)
    parent = snapshot.parent_snapshot_id if snapshot else main
    if not parent == staged.previous_snapshot_id == main:
        raise ConcurrentCommitError(
            f"table {staged.ref.identifier}: main moved from snapshot "
            f"{staged.previous_snapshot_id} to {main} while the write was staged (another run "
            f"committed); nothing was published, run again"
        ) from cause


def audit_commit(staged: StagedWrite, branch: str) -> CommitResult:
    """Commit `staged` as a snapshot on `branch` without moving main (see the module doc).

    The result's snapshot_id is the audited snapshot, previous_snapshot_id main's snapshot
    (None for an empty or new table). Raises ConcurrentCommitError when main moved since
    the write was staged (nothing is referenced then: main and the branch are unchanged)."""
    if branch == MAIN_BRANCH:
        raise ValueError("audit_commit needs a branch other than main; use commit() for main")
    started = time.monotonic()
    txn = staged.txn
    ident = staged.ref.identifier
    if not staged.created and branch in txn.table_metadata.refs:
        raise ValueError(f"table {ident} already has a ref {branch}: discard or publish it first")
    catalog = compat.transaction_table(txn).catalog
    snapshot_id = produce_snapshot(staged, None)  # staged: no ref moves
    try:
        # the table as committed: its metadata is the catalog's answer, no reload needed
        table = compat.plain_table(txn.commit_transaction())
    except Exception as exc:
        # a concurrent commit makes the catalog refuse the snapshot (its sequence number)
        if not staged.created:
            _check_main(staged, load_table(catalog, staged.ref), None, exc)
        if isinstance(exc, CommitFailedException | TableAlreadyExistsError) or (
            isinstance(exc, ValueError) and "sequence number" in str(exc)
        ):
            raise ConcurrentCommitError(
                f"table {ident}: another run wrote to the table at the same time ({exc}); "
                "nothing was published, run again"
            ) from exc
        raise
    # main must still be the snapshot the write was staged on (and the new one's parent):
    # otherwise another run committed since this run loaded the table
    _check_main(staged, table, table.snapshot_by_id(snapshot_id))
    try:
        table = _set_branch(catalog, table, branch, snapshot_id)
    except CommitFailedException as exc:
        raise ValueError(
            f"table {ident}: cannot create branch {branch} at staged snapshot {snapshot_id}: {exc}"
        ) from exc
    return commit_result(staged, table, snapshot_id, started)


def _moved(
    ref: TableRef, result: CommitResult, main: int | None, branch: str
) -> ConcurrentCommitError:
    return ConcurrentCommitError(
        f"table {ref.identifier}: cannot publish snapshot {result.snapshot_id}: main moved from "
        f"{result.previous_snapshot_id} to {main} since the audit (a concurrent commit); the "
        f"audited snapshot stays on branch {branch}"
    )


def publish_change(
    catalog: Catalog, ref: TableRef, result: CommitResult, branch: str, reload: bool = True
) -> TableChange:
    """The (uncommitted) change that fast-forwards main to the audited snapshot of `result`
    and removes `branch`; it asserts main is still the snapshot the write was audited against.
    `commit_tables` commits it, alone or atomically with other tables' changes. With
    `reload=False` the table as the audit left it (`result.table`) is used: the commit's
    requirements then catch a concurrent commit instead of this function."""
    table = result.table if not reload and result.table is not None else load_table(catalog, ref)
    head = table.metadata.refs.get(branch)
    if head is None or head.snapshot_id != result.snapshot_id:
        found = head.snapshot_id if head else "nothing"
        raise ValueError(
            f"table {ref.identifier}: branch {branch} points at {found}, not at "
            f"the audited snapshot {result.snapshot_id}"
        )
    main = _main_id(table)
    if main != result.previous_snapshot_id:
        raise _moved(ref, result, main, branch)
    assert result.snapshot_id is not None
    return TableChange(
        table=table,
        requirements=(
            _assert_ref(MAIN_BRANCH, main),
            _assert_ref(branch, result.snapshot_id),
        ),
        updates=(
            _set_ref(MAIN_BRANCH, result.snapshot_id),
            _remove_ref(branch),
        ),
    )


def publish(catalog: Catalog, ref: TableRef, result: CommitResult, branch: str) -> int:
    """Fast-forward main to the audited snapshot of `result` and remove `branch`.

    Raises ConcurrentCommitError when main is no longer the snapshot the write was audited
    against; returns main's new snapshot id."""
    change = publish_change(catalog, ref, result, branch)
    try:
        commit_tables(catalog, [change])
    except CommitFailedException as exc:
        raise _moved(ref, result, _main_id(load_table(catalog, ref)), branch) from exc
    assert result.snapshot_id is not None
    return result.snapshot_id


def rollback_change(catalog: Catalog, ref: TableRef | str, snapshot_id: int | None) -> TableChange:
    """The change that moves main back to `snapshot_id` (None: no snapshot, an empty table),
    asserting main is where this run left it. `ref`: a TableRef or an identifier."""
    table = load_table(catalog, ref) if isinstance(ref, TableRef) else catalog.load_table(ref)
    main = _main_id(table)
    update = _remove_ref(MAIN_BRANCH) if snapshot_id is None else _set_ref(MAIN_BRANCH, snapshot_id)
    return TableChange(
        table=table,
        requirements=(_assert_ref(MAIN_BRANCH, main),),
        updates=(update,),
    )


def discard(catalog: Catalog, ref: TableRef, branch: str, created: bool) -> None:
    """Forget an audited write: remove `branch`; a table created by the run (main still
    empty) is dropped. Main is never touched."""
    try:
        table = load_table(catalog, ref)
    except TableNotFoundError:
        return
    if created and table.current_snapshot() is None:
        catalog.drop_table((ref.namespace, ref.table))
        return
    head = table.metadata.refs.get(branch)
    if head is None:
        return
    catalog.commit_table(
        table,
        requirements=(_assert_ref(branch, head.snapshot_id),),
        updates=(_remove_ref(branch),),
    )
