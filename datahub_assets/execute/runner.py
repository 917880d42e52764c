"""One pipeline run: read sources → apply transformations → write every target.

Tables are written in phases so a run is all-or-nothing: Spark first writes the Parquet
files of every table target (the expensive part that can fail), then each table's snapshot
is committed to an audit branch, checked, and published only if no blocking check failed
(`execute.publish`). If an export fails after publishing, the run's tables are rolled back to
their previous snapshot, so a failed run leaves every table as it was. Exports run after the
tables are published and read the published files back instead of recomputing the plan.

Incremental sources (`<incremental column=.../>`, see `execute.incremental`) read only the
rows above their committed watermark; the new watermarks are recorded in the snapshot
summary of every table target, in the same commit as the rows.
"""

from __future__ import annotations

from typing import Any

from pyiceberg.catalog import Catalog
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from datahub_assets.execute.bad_records import KINDS as BAD_RECORD_KINDS
from datahub_assets.execute.bad_records import checked_reader
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.drops import (
    INGEST,
    DropBatch,
    cleanup,
    empty_drops,
    finish,
    ledger_entries,
    plan_batch,
    read_drops,
    reject_batch,
)
from datahub_assets.execute.incremental import WatermarkState, load_state, read_incremental
from datahub_assets.execute.mongo.source import read_mongo_source
from datahub_assets.execute.outcomes import ChecksFailed, PipelineRunError, TargetOutcome
from datahub_assets.execute.publish import publish_tables
from datahub_assets.execute.quality import Prepared, prepare_table, validate_source
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.table_reader import read_table
from datahub_assets.execute.transforms import apply_steps
from datahub_assets.execute.writers.audit import rollback_change
from datahub_assets.execute.writers.csv_export import write_csv
from datahub_assets.execute.writers.multi_commit import TableChange, commit_tables
from datahub_assets.execute.writers.quarantine_write import QuarantineWrites, stage_quarantine
from datahub_assets.execute.writers.table import abort, rollback, stage_write
from datahub_assets.ingest.ledger import ensure_ledger, ingested, ledger_change
from datahub_assets.ingest.validate import Rejection
from datahub_assets.spec.check_targets import checks_by_target, table_targets
from datahub_assets.spec.models import (
    CsvTarget,
    PipelineSpec,
    TableRef,
    TableTarget,
)


def _where(spec: PipelineSpec, node: Any) -> str:
    line = node.loc.line if getattr(node, "loc", None) else spec.line
    return f"{spec.file}:{line}"


def _reader(source, ctx: ExecContext, ref: TableRef | None, drops: DropBatch | None):
    """How to read `source`: a watched file source reads the run's batch of dropped files."""
    if drops is not None and getattr(source, "watch", None) is not None:
        if not drops.with_status(INGEST, source.id):
            return lambda s: empty_drops(s, ctx)
        return lambda s: read_drops(s, ctx, drops)
    return lambda s: read_source(s, ctx, ref, corrupt=source.kind in BAD_RECORD_KINDS)


def build_datasets(
    spec: PipelineSpec,
    ctx: ExecContext,
    watermarks: WatermarkState | None = None,
    gate: Prepared | None = None,
    drops: DropBatch | None = None,
) -> dict[str, DataFrame]:
    """Sources read lazily, then every transformation applied in written order.

    Incremental sources read the rows above their watermark in `watermarks.previous` (all
    rows without `watermarks`) and store the watermark to record in `watermarks.current`.
    Watched file sources read the files of `drops` (all matching files without it)."""
    datasets: dict[str, DataFrame] = {}
    for source in spec.pipeline.sources:
        ref = spec.source_refs.get(source.id)
        read = _reader(source, ctx, ref, drops)
        if source.kind in BAD_RECORD_KINDS and source.incremental is None:
            # malformed records are split off and follow onInvalid (execute/bad_records.py)
            read = checked_reader(
                read,
                spec,
                ctx,
                source,
                drops,
                gate if gate is not None else Prepared(df=None),
                next((t.ref for t in table_targets(spec)), None),
                _where(spec, source),
            )
        try:
            if source.kind == "mongo":  # misfits, quarantine and watermark push-down: mongo/
                into = next((t.ref for t in table_targets(spec)), None)
                datasets[source.id] = read_mongo_source(
                    ctx,
                    source,
                    into,
                    _where(spec, source),
                    gate if gate is not None else Prepared(df=None),
                    watermarks,
                )
                continue
            if getattr(source, "on_invalid", None) and getattr(source, "schema_ref", None):
                into = next((t.ref for t in table_targets(spec)), None)
                datasets[source.id] = validate_source(
                    ctx,
                    source,
                    read,
                    into,
                    _where(spec, source),
                    gate if gate is not None else Prepared(df=None),
                )
                continue
            if drops is not None and getattr(source, "watch", None) is not None:
                datasets[source.id] = read(source)
                continue
            if source.incremental is None:
                datasets[source.id] = read(source)
                continue
            previous = watermarks.previous.get(source.id) if watermarks else None
            datasets[source.id], newest = read_incremental(source, ctx, ref, previous)
            if watermarks is not None and newest is not None:
                watermarks.current[source.id] = newest
        except Exception as exc:
            raise PipelineRunError(
                f"{_where(spec, source)}: source '{source.id}' ({source.kind}) failed: {exc}"
            ) from exc
    try:
        return apply_steps(spec.pipeline.transformations, datasets, ctx)
    except Exception as exc:
        raise PipelineRunError(f"{spec.file}: transformation failed: {exc}") from exc


def _watermarks(
    spec: PipelineSpec, catalog: Catalog, tables: list, full_refresh: bool, log
) -> WatermarkState | None:
    """Committed watermarks of the incremental sources (None: the pipeline has none); with
    `full_refresh` none are taken, so every row is read again and the new watermark is the
    maximum of all rows."""
    incremental = [s for s in spec.pipeline.sources if s.incremental is not None]
    if not incremental:
        return None
    if not tables:
        first = incremental[0]
        raise PipelineRunError(
            f"{_where(spec, first.incremental)}: source '{first.id}' is incremental but "
            f"pipeline '{spec.pipeline.id}' has no table target to record its watermark in; "
            "add a <table> target or remove <incremental>"
        )
    for t in tables:
        if t.target.mode == "overwrite" and not t.target.partition_by:
            raise PipelineRunError(
                f"{_where(spec, t.target)}: table '{t.ref}' is written with mode=\"overwrite\" "
                f"from incremental source '{incremental[0].id}', which would replace the table "
                'with only the new rows; use mode="append" or "merge", or add partitionBy '
                "to replace only the partitions that changed"
            )
    ref = tables[0].ref
    try:
        state = load_state(catalog, ref, [s.id for s in incremental])
    except Exception as exc:
        raise PipelineRunError(
            f"{_where(spec, tables[0].target)}: reading the watermarks of {ref} failed: {exc}"
        ) from exc
    if full_refresh and state.previous:
        log.info(
            "full refresh: ignoring the committed watermarks %s",
            ", ".join(f"{k}={v.value}" for k, v in sorted(state.previous.items())),
        )
        state.previous.clear()
    return state


def run_pipeline(
    spec: PipelineSpec,
    ctx: ExecContext,
    catalog: Catalog,
    files: dict[str, list[str]] | None = None,
) -> list[TargetOutcome]:
    """Run a pipeline end to end; returns one outcome per target, in target order.

    A pipeline with watched file sources ingests a batch of dropped files (`execute.drops`):
    `files` maps a source id to the files the sensor asked for (None: every matching file).
    The batch is left in `ctx.drops`; when it has no new valid file the run writes no table
    and returns no outcome."""
    if ctx.read_table is None:
        ctx.read_table = lambda ref: read_table(ctx.spark, catalog, ref)
    if ctx.spec is None:
        ctx.spec = spec
    if not spec.watched_sources:
        return _run(spec, ctx, catalog, None)
    drops = ctx.drops = plan_batch(spec, ctx, catalog, files, ctx.s3_client)
    try:
        if not drops.has_rows:
            _commit_ledger_only(spec, ctx, catalog, drops)
            finish(drops, ctx)
            return []
        try:
            outcomes = _run(spec, ctx, catalog, drops)
        except ChecksFailed as failed:
            # the batch broke a blocking check: its files are refused with the check's verdict
            reject_batch(drops, ctx, spec, Rejection("checks", str(failed)))
            _commit_ledger_only(spec, ctx, catalog, drops)
            raise
        finish(drops, ctx)
        return outcomes
    finally:
        cleanup(drops)


def _commit_ledger_only(
    spec: PipelineSpec, ctx: ExecContext, catalog: Catalog, drops: DropBatch
) -> None:
    entries = ledger_entries(drops, ctx, None, {})
    if entries:
        try:
            commit_tables(catalog, [ledger_change(ensure_ledger(catalog, drops.ledger), entries)])
        except Exception as exc:
            raise PipelineRunError(
                f"{spec.file}: recording the rejected files in "
                f"{drops.ledger.identifier} failed: {exc}"
            ) from exc


def _ledger_changes(ctx: ExecContext, catalog: Catalog, drops: DropBatch):
    """The ledger append to publish with the tables, with rows per file from the first table
    target's audited snapshot when it keeps `_source_file` (a watched pipeline has a table
    target: validation)."""

    def build(outcomes: list[TargetOutcome]) -> list[TableChange]:
        first = outcomes[0]
        entries = ledger_entries(drops, ctx, first.snapshot_id, _rows_by_file(ctx, catalog, first))
        ledger = ensure_ledger(catalog, drops.ledger)
        current = ledger.current_snapshot()
        drops.ledger_before = current.snapshot_id if current else None
        # exactly once: a run that planned its batch before another run's commit of the same
        # files must not publish them again. Checked against the ledger snapshot the change
        # asserts (the commit fails if the ledger moves after this check).
        fresh = [f.fingerprint for f in drops.with_status(INGEST)]
        if current is not None and fresh:
            taken = ingested(catalog, drops.ledger, fresh, current.snapshot_id)
            if taken:
                raise PipelineRunError(
                    f"another run ingested {len(taken)} of this run's files (e.g. "
                    f"{next(iter(taken.values())).path}) after this run planned its batch; "
                    "nothing was published, run again"
                )
        return [ledger_change(ledger, entries)]

    return build


def _rows_by_file(ctx: ExecContext, catalog: Catalog, outcome: TargetOutcome) -> dict[str, int]:
    if "_source_file" not in {name for name, _, _ in outcome.columns}:
        return {}
    df = read_table(ctx.spark, catalog, outcome.ref, outcome.snapshot_id)
    counts = df.where(F.col("_run_id") == ctx.run_id).groupBy("_source_file").count().collect()
    return {r["_source_file"]: r["count"] for r in counts}


def _run(
    spec: PipelineSpec, ctx: ExecContext, catalog: Catalog, drops: DropBatch | None
) -> list[TargetOutcome]:
    tables = [t for t in spec.targets if isinstance(t.target, TableTarget)]
    others = [t for t in spec.targets if not isinstance(t.target, TableTarget)]
    watermarks = _watermarks(spec, catalog, tables, ctx.full_refresh, ctx.log)
    # source-level quarantine counts are reported on (and stored next to) the first table
    prepared = {t.ref: Prepared(df=None) for t in tables}
    gate = prepared[tables[0].ref] if tables else Prepared(df=None)
    datasets = build_datasets(spec, ctx, watermarks, gate, drops)
    properties = watermarks.properties() if watermarks else {}
    by_target = checks_by_target(spec)
    for t in tables:
        prepare_table(
            ctx,
            catalog,
            t,
            datasets[t.dataset],
            by_target[t.ref],
            _where(spec, t.target),
            prepared[t.ref],
        )

    staged = []
    try:
        for t in tables:
            ctx.log.info("writing %s (%s)", t.ref.identifier, t.target.mode)
            staged.append(
                stage_write(
                    ctx.spark, catalog, t.ref, prepared[t.ref].df, t.target, ctx.run_id, properties
                )
            )
    except Exception as exc:
        for s in staged:
            abort(s)
        raise PipelineRunError(f"{_where(spec, t.target)}: writing {t.ref} failed: {exc}") from exc
    if watermarks and staged[0].previous_snapshot_id != watermarks.snapshot_id:
        # another run committed between reading the watermark and staging: its rows overlap
        for s in staged:
            abort(s)
        raise PipelineRunError(
            f"{_where(spec, tables[0].target)}: {tables[0].ref} changed while this run was "
            "reading (another run of this pipeline committed?); nothing was written, run again"
        )
    extra = (
        {f"watermark.{sid}": wm.value for sid, wm in sorted(watermarks.current.items())}
        if watermarks
        else {}
    )

    # quarantine rows are staged now and committed WITH the tables (writers/quarantine_write)
    try:
        quarantine = stage_quarantine(
            ctx.spark, catalog, ctx.run_id, [q for p in prepared.values() for q in p.quarantine]
        )
    except Exception as exc:
        for s in staged:
            abort(s)
        raise PipelineRunError(f"{spec.file}: staging the quarantine rows failed: {exc}") from exc
    if drops:
        for f in drops.with_status(INGEST):
            f.invalid_rows += quarantine.invalid_by_file.get(f.info.path, 0)
    drop_meta = drops.metadata() if drops else {}
    ledger = _ledger_changes(ctx, catalog, drops) if drops else None
    try:
        published = publish_tables(
            spec,
            ctx,
            catalog,
            tables,
            staged,
            extra={ref: {**extra, **p.extra, **drop_meta} for ref, p in prepared.items()},
            pre_checks={ref: p.checks for ref, p in prepared.items()},
            with_changes=lambda outs: (ledger(outs) if ledger else []) + quarantine.changes,
        )
    except BaseException:
        quarantine.abort(catalog)
        raise
    outcomes: dict[TableRef, TargetOutcome] = {o.ref: o for o in published}
    try:
        snapshot_of = {t.dataset: outcomes[t.ref] for t in tables}
        for t in others:
            outcomes[t.ref] = _export(spec, ctx, catalog, t, datasets, snapshot_of)
    except Exception as exc:
        _roll_back(catalog, published, drops, quarantine)
        if isinstance(exc, PipelineRunError):
            raise
        raise PipelineRunError(f"{spec.file}: run failed, tables rolled back: {exc}") from exc
    return [outcomes[t.ref] for t in spec.targets]


def _roll_back(
    catalog: Catalog,
    published: list[TargetOutcome],
    drops: DropBatch | None,
    quarantine: QuarantineWrites | None = None,
) -> None:
    """Every published table (and the file ledger, the quarantine tables) back to where the
    run found it, in one catalog commit; tables the run created are dropped afterwards."""
    changes = [rollback_change(catalog, o.ref, o.previous_snapshot_id) for o in published]
    if drops is not None and published:
        changes.append(rollback_change(catalog, drops.ledger, drops.ledger_before))
    if quarantine is not None:
        changes += [rollback_change(catalog, ref, before) for ref, before in quarantine.previous()]
    commit_tables(catalog, changes)
    for o in published:
        if o.previous_snapshot_id is None:
            rollback(catalog, o.ref, None)


def _export(spec, ctx, catalog, t, datasets, snapshot_of) -> TargetOutcome:
    # imported here: this function is the only user of the database writer
    from datahub_assets.execute.jdbc import endpoint_for
    from datahub_assets.execute.writers.database import write_database
    from datahub_assets.spec.models import DatabaseTarget

    if not isinstance(t.target, CsvTarget | DatabaseTarget):
        raise PipelineRunError(
            f"{_where(spec, t.target)}: {t.target.kind} targets are not supported yet"
        )
    written = snapshot_of.get(t.dataset)
    df = (
        read_table(ctx.spark, catalog, written.ref, written.snapshot_id)
        if written
        else datasets[t.dataset]
    )
    if isinstance(t.target, DatabaseTarget):
        try:  # the writer's errors carry no credential and chain no driver error
            return write_database(df, t.target, endpoint_for(spec, t.target), t.ref, ctx.log)
        except Exception as exc:
            raise PipelineRunError(
                f"{_where(spec, t.target)}: database export to {t.target.table_name} failed: {exc}"
            ) from exc
    try:
        result = write_csv(ctx.spark, df, t.target, ctx.data_path(t.target.path), ctx.run_date)
    except Exception as exc:
        raise PipelineRunError(f"{_where(spec, t.target)}: csv export failed: {exc}") from exc
    return TargetOutcome(
        ref=t.ref,
        kind="csv",
        rows=result.rows,
        location=result.path,
        extra={"files": len(result.files)},
    )
