"""The one write path into Iceberg tables: stage -> audit -> checks -> one catalog commit.

    write_tables(spark, catalog, [TableWrite, ...], run_id=..., log=...)
      1 stage      the engine writes each frame's Parquet files (`iceberg.table.stage_write`),
                   schema evolution staged with it (`iceberg.schema_evolution`); the
                   quarantine frames likewise (`iceberg.quarantine_write`)
      2 audit      each table's snapshot is committed on the run's audit branch, main
                   unmoved (`iceberg.audit`)
      3 checks     the checks run on the audited snapshots; an `error` failure discards
                   every branch and raises ChecksFailed
      4 publish    ONE catalog commit (`iceberg.multi_commit`): main of every table moves to
                   its audited snapshot, the quarantine rows and `also_commit`'s changes (the
                   file-drop ledger) land in the same transaction - all or nothing
    roll_back(catalog, outcomes)  after a later failure (an export): every table of the
                   commit back to its previous snapshot, again in one commit

Without checks (none to run on the new snapshots, no failed blocking drift check) and with
every table existing already, steps 2-3 have nothing to do: each snapshot is staged on main
in its table's transaction and step 4's one catalog commit publishes them (`_publish_direct`:
one catalog commit a run instead of three a table, the same all-or-nothing commit; a table
the run creates still goes through the audit, which keeps its main empty until the publish).

Each table is loaded from the catalog once per run (by the caller, passed in
`TableWrite.table`, or here) and the pyiceberg Table each step returns is handed to the
next; the commit re-reads the catalog row it compare-and-swaps. Nothing here needs a
PipelineSpec: XML pipelines (`execute.runner`) and Python assets call it alike. Errors are
`PipelineRunError`s starting with the write's `where` (per table) or `label` (the run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn, cast

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH
from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines.api import T
from datahub_assets.execute.checks import CheckOutcome, evaluate_checks
from datahub_assets.execute.outcomes import ChecksFailed, PipelineRunError, TargetOutcome
from datahub_assets.iceberg import pyiceberg_compat as compat
from datahub_assets.iceberg.audit import (
    audit_branch,
    audit_commit,
    discard,
    publish_change,
    rollback_change,
)
from datahub_assets.iceberg.multi_commit import TableChange, change_of, commit_tables
from datahub_assets.iceberg.quarantine_write import QuarantineWrites, stage_quarantine
from datahub_assets.iceberg.read import data_files, read_files, read_table
from datahub_assets.iceberg.table import (
    CommitResult,
    StagedWrite,
    abort,
    commit_result,
    produce_snapshot,
    stage_write,
)
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import iceberg_to_spark_schema

__all__ = [
    "ChecksFailed",
    "PipelineRunError",
    "TableWrite",
    "read_written",
    "roll_back",
    "write_tables",
]


@dataclass(frozen=True)
class TableWrite:
    """One table to write in a `write_tables` call."""

    ref: TableRef
    df: DataFrame
    """The final rows to write (a Spark Connect frame, or a sqlframe DuckDB frame: the
    DuckDB engine writes the Parquet files, the same pyiceberg commit follows)."""
    target: TableTarget
    """mode append|overwrite|merge, keys, partition_by, on_schema_change."""
    where: str
    """"file:line" prefixed to every error about this table."""
    checks: tuple = ()
    """Check models (`spec.models`) run on the audited snapshot; `error` blocks publishing."""
    pre_checks: tuple = ()
    """CheckOutcomes computed before staging (schema drift), reported with the checks."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """Extra outcome metadata (`TargetOutcome.extra`)."""
    quarantine: tuple = ()
    """(quarantine table ref, frame) pairs committed in the same transaction."""
    referenced: Mapping[str, TableRef] = field(default_factory=dict)
    """Referential check name -> the table it looks values up in."""
    table: Table | None = None
    """The table as the caller loaded it (None: loaded here)."""
    create: bool = False
    """The caller found no table: create it (fails as a concurrent commit if another run
    created it meanwhile)."""
    app_dir: Path | None = None
    """Folder relative `schemaRef`s of `schema` checks resolve against."""


@dataclass(frozen=True)
class _CheckScope:
    """What `evaluate_checks` needs of a run context: schemaRef paths and other tables."""

    app_dir: Path | None
    read_table: Callable[[TableRef], DataFrame]

    def app_path(self, path: str) -> str:
        if "://" in path or path.startswith("/") or self.app_dir is None:
            return path
        return str(self.app_dir / path)


def read_snapshot(spark: SparkSession, table: Table, snapshot_id: int | None) -> DataFrame:
    """The rows of `table` (as held, no catalog round trip) at `snapshot_id`."""
    schema = table.scan(snapshot_id=snapshot_id).projection()
    files = data_files(table, snapshot_id)
    return read_files(spark, [f.file_path for f in files], iceberg_to_spark_schema(schema, T))


def read_written(spark: SparkSession, outcome: TargetOutcome, schema: T.StructType) -> DataFrame:
    """Only the files this run added to `outcome`'s table, read with `schema` (a subset of
    the table's columns)."""
    return read_files(spark, list(outcome.files), schema)


def _stage(spark, catalog, writes, run_id, properties, log) -> list[StagedWrite]:
    staged: list[StagedWrite] = []
    w = writes[0] if writes else None
    try:
        for w in writes:
            log.info("writing %s (%s)", w.ref.identifier, w.target.mode)
            staged.append(
                stage_write(
                    spark,
                    catalog,
                    w.ref,
                    w.df,
                    w.target,
                    run_id,
                    properties,
                    table=w.table,
                    create=w.create,
                )
            )
    except Exception as exc:
        for s in staged:
            abort(s)
        assert w is not None
        raise PipelineRunError(f"{w.where}: writing {w.ref} failed: {exc}") from exc
    return staged


def _checks(spark, catalog, w: TableWrite, result: CommitResult) -> list[CheckOutcome]:
    if not w.checks:
        return []
    assert result.table is not None
    audited = read_snapshot(spark, result.table, result.snapshot_id)
    scope = _CheckScope(w.app_dir, lambda ref: read_table(spark, catalog, ref))
    # evaluate_checks asks of its context only app_path and read_table (`_CheckScope`)
    return evaluate_checks(
        spark, audited, list(w.checks), cast(Any, scope), referenced=dict(w.referenced)
    )


def _outcome(
    w: TableWrite,
    s: StagedWrite,
    result: CommitResult,
    checks: list,
    quarantine: QuarantineWrites,
    counts_invalid: bool,
) -> TargetOutcome:
    """The outcome of one audited write; `counts_invalid`: this write reports the run's
    quarantined rows per file (the first write with quarantine frames)."""
    mine = {ref for ref, _ in w.quarantine}
    return TargetOutcome(
        ref=w.ref,
        kind="table",
        rows=result.rows,
        snapshot_id=result.snapshot_id,
        previous_snapshot_id=result.previous_snapshot_id,
        location=result.location,
        columns=tuple(result.schema),
        extra={
            "files_added": result.files_added,
            "files_removed": result.files_removed,
            **w.metadata,
        },
        checks=tuple(w.pre_checks) + tuple(checks),
        table_rows=result.table_rows,
        files=tuple(f.file_path for f in s.added),
        invalid_by_file=dict(quarantine.invalid_by_file) if counts_invalid else {},
        committed_with=tuple(
            (q.ref.identifier, q.previous_snapshot_id) for q in quarantine.staged if q.ref in mine
        ),
    )


def _failure_message(label: str, outcomes: list[TargetOutcome]) -> str:
    lines = [
        f"{label}: blocking checks failed; nothing was published, every table stays at "
        "its previous snapshot:"
    ]
    for outcome in outcomes:
        for check in outcome.checks:
            if not check.passed and check.severity == "error":
                lines.append(
                    f"  {outcome.ref} {check.name}: {check.description} "
                    f"(staged snapshot {outcome.snapshot_id})"
                )
    return "\n".join(lines)


def _discard(
    catalog: Catalog,
    staged: list[StagedWrite],
    audited: list[CommitResult],
    branch: str,
    quarantine: QuarantineWrites | None,
) -> None:
    """Drop the audit branches of the audited writes, delete files never referenced, and
    forget the staged quarantine rows."""
    for i, s in enumerate(staged):
        if i < len(audited):
            discard(catalog, s.ref, branch, s.created)
            if s.created:
                abort(s)
        else:
            abort(s)
    if quarantine is not None:
        quarantine.abort(catalog)


def _audit(spark, catalog, writes, staged, branch, label, quarantine):
    """(audited results, outcomes with check results); discards everything on failure."""
    audited: list[CommitResult] = []
    first_q = next((i for i, w in enumerate(writes) if w.quarantine), None)
    try:
        for s in staged:
            audited.append(audit_commit(s, branch))
        return audited, [
            _outcome(w, s, r, _checks(spark, catalog, w, r), quarantine, i == first_q)
            for i, (w, s, r) in enumerate(zip(writes, staged, audited, strict=True))
        ]
    except Exception as exc:
        _discard(catalog, staged, audited, branch, quarantine)
        if isinstance(exc, PipelineRunError):
            raise
        raise PipelineRunError(
            f"{label}: auditing the new snapshots failed; nothing was published: {exc}"
        ) from exc


def _blocked(checks) -> bool:
    return any(not c.passed and c.severity == "error" for c in checks)


def _direct(writes: list[TableWrite], staged: list[StagedWrite]) -> bool:
    """True when no check reads the new snapshots and every table exists (module doc)."""
    return not any(w.checks or _blocked(w.pre_checks) for w in writes) and not any(
        s.created for s in staged
    )


def _raise_publish_error(exc: BaseException, label: str) -> NoReturn:
    """Raise the error of a failed publish: `exc` itself when it needs no wrapping."""
    if isinstance(exc, PipelineRunError) or not isinstance(exc, Exception):
        raise exc
    if isinstance(exc, CommitFailedException):
        raise PipelineRunError(
            f"{label}: another run published to these tables first ({exc}); nothing "
            "was published, run again"
        ) from exc
    raise PipelineRunError(f"{label}: publishing failed, nothing was published: {exc}") from exc


def _published_with(outcomes: list[TargetOutcome], extra: list[TableChange]) -> None:
    if extra and outcomes:
        before = tuple((c.name, _main(c.table)) for c in extra)
        outcomes[0] = replace(outcomes[0], committed_with=outcomes[0].committed_with + before)


def _publish_direct(
    catalog: Catalog,
    writes: list[TableWrite],
    staged: list[StagedWrite],
    quarantine: QuarantineWrites,
    also_commit: Callable[[list[TargetOutcome]], list[TableChange]] | None,
    label: str,
) -> list[TargetOutcome]:
    """Each staged snapshot on main in its transaction, all published by ONE catalog commit
    with the quarantine rows and `also_commit`'s changes; nothing is committed on failure."""
    started = time.monotonic()
    first_q = next((i for i, w in enumerate(writes) if w.quarantine), None)
    extra: list[TableChange] = []
    try:
        outcomes = []
        for i, (w, s) in enumerate(zip(writes, staged, strict=True)):
            snapshot_id = produce_snapshot(s, MAIN_BRANCH)
            table = compat.transaction_table(s.txn)
            as_staged = Table(
                identifier=table.name(),
                metadata=s.txn.table_metadata,
                metadata_location=table.metadata_location,
                io=table.io,
                catalog=catalog,
            )
            result = commit_result(s, as_staged, snapshot_id, started)
            outcomes.append(_outcome(w, s, result, [], quarantine, i == first_q))
        extra = also_commit(outcomes) if also_commit is not None else []
        changes = [change_of(s.txn) for s in staged]
        commit_tables(catalog, changes + extra + quarantine.changes)
    except BaseException as exc:
        for s in staged:
            abort(s)
        quarantine.abort(catalog)
        _raise_publish_error(exc, label)
    _published_with(outcomes, extra)
    return outcomes


def write_tables(
    spark: SparkSession,
    catalog: Catalog,
    writes: Sequence[TableWrite],
    *,
    run_id: str,
    log,
    properties: Mapping[str, str] | None = None,
    also_commit: Callable[[list[TargetOutcome]], list[TableChange]] | None = None,
    label: str = "",
) -> list[TargetOutcome]:
    """Write every table of `writes`, all or nothing (module doc); one outcome per write.

    `properties` go into every new snapshot's summary (e.g. watermarks); `also_commit`
    builds, from the audited outcomes, more changes for the same catalog commit (the
    file-drop ledger). Raises ChecksFailed when a blocking check failed (outcomes carry the
    results and the staged snapshot ids), PipelineRunError otherwise."""
    writes = list(writes)
    label = label or (writes[0].where if writes else "write_tables")
    staged = _stage(spark, catalog, writes, run_id, properties, log)
    try:
        quarantine = stage_quarantine(
            spark, catalog, run_id, [q for w in writes for q in w.quarantine]
        )
    except Exception as exc:
        for s in staged:
            abort(s)
        raise PipelineRunError(f"{label}: staging the quarantine rows failed: {exc}") from exc

    if _direct(writes, staged):
        return _publish_direct(catalog, writes, staged, quarantine, also_commit, label)
    branch = audit_branch(run_id)
    audited, outcomes = _audit(spark, catalog, writes, staged, branch, label, quarantine)
    if any(_blocked(o.checks) for o in outcomes):
        _discard(catalog, staged, audited, branch, quarantine)
        raise ChecksFailed(_failure_message(label, outcomes), outcomes)

    extra: list[TableChange] = []
    try:
        changes = [
            publish_change(catalog, w.ref, r, branch, reload=False)
            for w, r in zip(writes, audited, strict=True)
        ]
        extra = also_commit(outcomes) if also_commit is not None else []
        # every table, its quarantine rows and e.g. the file ledger, or none of them
        commit_tables(catalog, changes + extra + quarantine.changes)
    except BaseException as exc:
        _discard(catalog, staged, audited, branch, quarantine)
        _raise_publish_error(exc, label)
    _published_with(outcomes, extra)
    return outcomes


def _main(table: Table) -> int | None:
    snapshot = table.current_snapshot()
    return snapshot.snapshot_id if snapshot else None


def roll_back(
    catalog: Catalog,
    outcomes: Sequence[TargetOutcome],
    extra_before: Mapping[TableRef | str, int | None] | None = None,
) -> None:
    """Every table `write_tables` published in `outcomes` (with the tables committed with
    them: quarantine, ledger), and the tables of `extra_before` (ref or identifier -> main
    snapshot to restore), back to where the run found them, in one catalog commit; tables
    the run created are dropped afterwards."""
    targets: dict[str, tuple[TableRef | str, int | None]] = {}
    for o in outcomes:
        if o.kind != "table":
            continue
        targets[o.ref.identifier] = (o.ref, o.previous_snapshot_id)
        for identifier, before in o.committed_with:
            targets.setdefault(identifier, (identifier, before))
    for ref, before in (extra_before or {}).items():
        key = ref.identifier if isinstance(ref, TableRef) else ref
        targets.setdefault(key, (ref, before))
    commit_tables(catalog, [rollback_change(catalog, ref, b) for ref, b in targets.values()])
    for o in outcomes:
        if o.kind == "table" and o.previous_snapshot_id is None:
            catalog.drop_table((o.ref.namespace, o.ref.table))
