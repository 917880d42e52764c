"""One pipeline run: read sources → apply transformations → write every target.

The runner orchestrates; the tables are written by ONE call of the write path
(`iceberg.tables.write_tables`: stage every table, audit, checks, one catalog commit with the
quarantine rows and the file-drop ledger), all or nothing. Each table target is loaded once
(`_load_tables`) and that Table serves the watermarks, the drift check and the write. If an
export fails after publishing, `iceberg.tables.roll_back` moves every table of the commit
back, so a failed run leaves every table as it was. Exports run after the tables are
published and read the published files back instead of recomputing the plan.

Incremental sources (`<incremental column=.../>`, see `execute.incremental`) read only the
rows above their committed watermark; the new watermarks are recorded in the snapshot
summary of every table target, in the same commit as the rows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyspark.sql import DataFrame

from datahub_assets.engines.api import F, T, use
from datahub_assets.execute.bad_records import KINDS as BAD_RECORD_KINDS
from datahub_assets.execute.bad_records import checked_reader
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.drops import (
    INGEST,
    DropBatch,
    cleanup,
    empty_drops,
    finish,
    ledger_change,
    ledger_entries,
    plan_batch,
    read_drops,
    reject_batch,
)
from datahub_assets.execute.incremental import WatermarkState, load_state, read_incremental
from datahub_assets.execute.mongo.source import read_mongo_source
from datahub_assets.execute.outcomes import ChecksFailed, PipelineRunError, TargetOutcome
from datahub_assets.execute.quality import Prepared, prepare_table, validate_source
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.transforms import apply_steps
from datahub_assets.execute.writers.csv_export import write_csv
from datahub_assets.iceberg.audit import ConcurrentCommitError
from datahub_assets.iceberg.multi_commit import TableChange, commit_tables
from datahub_assets.iceberg.read import TableNotFoundError, load_table, read_table
from datahub_assets.iceberg.tables import TableWrite, read_written, roll_back, write_tables
from datahub_assets.ingest.ledger import ensure_ledger, ingested
from datahub_assets.ingest.validate import Rejection
from datahub_assets.spec.check_targets import checks_by_target, referenced, table_targets
from datahub_assets.spec.models import (
    CsvTarget,
    PipelineSpec,
    ReferentialCheck,
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
    spec: PipelineSpec,
    catalog: Catalog,
    tables: list,
    full_refresh: bool,
    log,
    loaded: dict[TableRef, Table | None] | None = None,
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
        state = load_state(catalog, ref, [s.id for s in incremental], loaded)
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
    with use(ctx.active_engine):  # F / T / Window of this run's engine (engines/api.py)
        return _run_pipeline(spec, ctx, catalog, files)


def _run_pipeline(
    spec: PipelineSpec, ctx: ExecContext, catalog: Catalog, files: dict[str, list[str]] | None
) -> list[TargetOutcome]:
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
    """The ledger append to publish with the tables, with rows per file from the files the
    first table target's write added when it keeps `_source_file` (a watched pipeline has a
    table target: validation)."""

    def build(outcomes: list[TargetOutcome]) -> list[TableChange]:
        first = outcomes[0]
        quarantined = {}
        for o in outcomes:
            for path, n in o.invalid_by_file.items():
                quarantined[path] = quarantined.get(path, 0) + n
        for f in drops.with_status(INGEST):
            f.invalid_rows += quarantined.get(f.info.path, 0)
        entries = ledger_entries(drops, ctx, first.snapshot_id, _rows_by_file(ctx, first))
        ledger = ensure_ledger(catalog, drops.ledger)  # the one load of the ledger
        current = ledger.current_snapshot()
        # exactly once: a run that planned its batch before another run's commit of the same
        # files must not publish them again. Checked against the ledger snapshot the change
        # asserts (the commit fails if the ledger moves after this check).
        fresh = [f.fingerprint for f in drops.with_status(INGEST)]
        if current is not None and fresh:
            taken = ingested(catalog, drops.ledger, fresh, current.snapshot_id, table=ledger)
            if taken:
                raise PipelineRunError(
                    f"another run ingested {len(taken)} of this run's files (e.g. "
                    f"{next(iter(taken.values())).path}) after this run planned its batch; "
                    "nothing was published, run again"
                )
        return [ledger_change(ledger, entries)]

    return build


LINEAGE_READ = T.StructType(
    [T.StructField("_source_file", T.StringType()), T.StructField("_run_id", T.StringType())]
)


def _rows_by_file(ctx: ExecContext, outcome: TargetOutcome) -> dict[str, int]:
    if "_source_file" not in {name for name, _, _ in outcome.columns}:
        return {}
    df = read_written(ctx.spark, outcome, LINEAGE_READ)  # only this run's files
    counts = df.where(F.col("_run_id") == ctx.run_id).groupBy("_source_file").count().collect()
    return {r["_source_file"]: r["count"] for r in counts}


def _load_tables(catalog: Catalog, tables: list) -> dict[TableRef, Table | None]:
    """Every table target, loaded ONCE for the run (None: not created yet); the same Table
    serves the watermarks, the drift check and the write."""
    loaded: dict[TableRef, Table | None] = {}
    for t in tables:
        try:
            loaded[t.ref] = load_table(catalog, t.ref)
        except TableNotFoundError:
            loaded[t.ref] = None
    return loaded


def _writes(spec, ctx, tables, prepared, loaded, extra) -> list[TableWrite]:
    by_target = checks_by_target(spec)
    writes = []
    for t in tables:
        df = prepared[t.ref].df
        assert df is not None, "prepare_table sets the frame of every table target"
        writes.append(_write(spec, ctx, t, df, prepared[t.ref], by_target[t.ref], loaded, extra))
    return writes


def _write(spec, ctx, t, df, prepared, checks, loaded, extra) -> TableWrite:
    return TableWrite(
        ref=t.ref,
        df=df,
        target=t.target,
        where=_where(spec, t.target),
        checks=tuple(checks),
        pre_checks=tuple(prepared.checks),
        metadata={**extra, **prepared.extra},
        quarantine=tuple(prepared.quarantine),
        referenced={
            c.check_name: referenced(spec, c)[0] for c in checks if isinstance(c, ReferentialCheck)
        },
        table=loaded[t.ref],
        create=loaded[t.ref] is None,
        app_dir=ctx.app_dir,
    )


def _concurrent(exc: BaseException) -> bool:
    """True when `exc` comes from another run committing to the table first."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ConcurrentCommitError | CommitFailedException):
            return True
        seen = seen.__cause__
    return False


def _run(
    spec: PipelineSpec, ctx: ExecContext, catalog: Catalog, drops: DropBatch | None
) -> list[TargetOutcome]:
    tables = [t for t in spec.targets if isinstance(t.target, TableTarget)]
    others = [t for t in spec.targets if not isinstance(t.target, TableTarget)]
    loaded = _load_tables(catalog, tables)
    watermarks = _watermarks(spec, catalog, tables, ctx.full_refresh, ctx.log, loaded)
    # source-level quarantine counts are reported on (and stored next to) the first table
    prepared = {t.ref: Prepared(df=None) for t in tables}
    gate = prepared[tables[0].ref] if tables else Prepared(df=None)
    datasets = build_datasets(spec, ctx, watermarks, gate, drops)
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
            loaded,
        )
    extra = (
        {f"watermark.{sid}": wm.value for sid, wm in sorted(watermarks.current.items())}
        if watermarks
        else {}
    )
    try:
        published = write_tables(
            ctx.spark,
            catalog,
            _writes(spec, ctx, tables, prepared, loaded, extra),
            run_id=ctx.run_id,
            log=ctx.log,
            properties=watermarks.properties() if watermarks else {},
            also_commit=_ledger_changes(ctx, catalog, drops) if drops else None,
            label=str(spec.file),
        )
    except PipelineRunError as exc:
        if watermarks and not isinstance(exc, ChecksFailed) and _concurrent(exc):
            # another run committed after this one read its watermark: its rows overlap
            raise PipelineRunError(
                f"{_where(spec, tables[0].target)}: {tables[0].ref} changed while this run was "
                "reading (another run of this pipeline committed?); nothing was written, run "
                "again"
            ) from exc
        raise
    if drops:
        meta = drops.metadata()  # after the write: counts the quarantined rows per file
        published = [replace(o, extra={**o.extra, **meta}) for o in published]
    outcomes: dict[TableRef, TargetOutcome] = {o.ref: o for o in published}
    try:
        snapshot_of = {t.dataset: outcomes[t.ref] for t in tables}
        for t in others:
            outcomes[t.ref] = _export(spec, ctx, catalog, t, datasets, snapshot_of)
    except Exception as exc:
        roll_back(catalog, published)
        if isinstance(exc, PipelineRunError):
            raise
        raise PipelineRunError(f"{spec.file}: run failed, tables rolled back: {exc}") from exc
    return [outcomes[t.ref] for t in spec.targets]


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
        path = ctx.settings.export_path(ctx.app, t.target.path)  # confined, checked again here
        result = write_csv(ctx.spark, df, t.target, path, ctx.run_date, owner=str(t.ref))
    except Exception as exc:
        raise PipelineRunError(f"{_where(spec, t.target)}: csv export failed: {exc}") from exc
    return TargetOutcome(
        ref=t.ref,
        kind="csv",
        rows=result.rows,
        location=result.path,
        extra={"files": len(result.files)},
    )
