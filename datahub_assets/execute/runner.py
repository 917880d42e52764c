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

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.incremental import WatermarkState, load_state, read_incremental
from datahub_assets.execute.outcomes import PipelineRunError, TargetOutcome
from datahub_assets.execute.publish import publish_tables
from datahub_assets.execute.quality import Prepared, prepare_table, validate_source
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.table_reader import read_table
from datahub_assets.execute.transforms import apply_steps
from datahub_assets.execute.writers.csv_export import write_csv
from datahub_assets.execute.writers.table import abort, rollback, stage_write, write_table
from datahub_assets.spec.check_targets import checks_by_target, table_targets
from datahub_assets.spec.models import CsvTarget, PipelineSpec, TableRef, TableTarget


def _where(spec: PipelineSpec, node: Any) -> str:
    line = node.loc.line if getattr(node, "loc", None) else spec.line
    return f"{spec.file}:{line}"


def build_datasets(spec: PipelineSpec, ctx: ExecContext,
                   watermarks: WatermarkState | None = None,
                   gate: Prepared | None = None) -> dict[str, DataFrame]:
    """Sources read lazily, then every transformation applied in written order.

    Incremental sources read the rows above their watermark in `watermarks.previous` (all
    rows without `watermarks`) and store the watermark to record in `watermarks.current`."""
    datasets: dict[str, DataFrame] = {}
    for source in spec.pipeline.sources:
        ref = spec.source_refs.get(source.id)
        try:
            if getattr(source, "on_invalid", None):
                into = next((t.ref for t in table_targets(spec)), None)
                datasets[source.id] = validate_source(
                    ctx, source, lambda s, r=ref: read_source(s, ctx, r), into,
                    _where(spec, source), gate if gate is not None else Prepared(df=None))
                continue
            if source.incremental is None:
                datasets[source.id] = read_source(source, ctx, ref)
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


def _watermarks(spec: PipelineSpec, catalog: Catalog, tables: list) -> WatermarkState | None:
    """Committed watermarks of the incremental sources (None: the pipeline has none)."""
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
                "with only the new rows; use mode=\"append\" or \"merge\", or add partitionBy "
                "to replace only the partitions that changed"
            )
    ref = tables[0].ref
    try:
        return load_state(catalog, ref, [s.id for s in incremental])
    except Exception as exc:
        raise PipelineRunError(
            f"{_where(spec, tables[0].target)}: reading the watermarks of {ref} failed: {exc}"
        ) from exc


def run_pipeline(spec: PipelineSpec, ctx: ExecContext, catalog: Catalog) -> list[TargetOutcome]:
    """Run a pipeline end to end; returns one outcome per target, in target order."""
    if ctx.read_table is None:
        ctx.read_table = lambda ref: read_table(ctx.spark, catalog, ref)
    tables = [t for t in spec.targets if isinstance(t.target, TableTarget)]
    others = [t for t in spec.targets if not isinstance(t.target, TableTarget)]
    watermarks = _watermarks(spec, catalog, tables)
    # source-level quarantine counts are reported on (and stored next to) the first table
    prepared = {t.ref: Prepared(df=None) for t in tables}
    gate = prepared[tables[0].ref] if tables else Prepared(df=None)
    datasets = build_datasets(spec, ctx, watermarks, gate)
    properties = watermarks.properties() if watermarks else {}
    by_target = checks_by_target(spec)
    for t in tables:
        prepare_table(ctx, catalog, t, datasets[t.dataset], by_target[t.ref],
                      _where(spec, t.target), prepared[t.ref])

    staged = []
    try:
        for t in tables:
            ctx.log.info("writing %s (%s)", t.ref.identifier, t.target.mode)
            staged.append(stage_write(ctx.spark, catalog, t.ref, prepared[t.ref].df, t.target,
                                      ctx.run_id, properties))
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
    extra = {f"watermark.{sid}": wm.value for sid, wm in sorted(watermarks.current.items())} \
        if watermarks else {}

    published = publish_tables(
        spec, ctx, catalog, tables, staged,
        extra={ref: {**extra, **p.extra} for ref, p in prepared.items()},
        pre_checks={ref: p.checks for ref, p in prepared.items()},
    )
    outcomes: dict[TableRef, TargetOutcome] = {o.ref: o for o in published}
    try:
        for p in prepared.values():
            for qref, rows in p.quarantine:
                write_table(ctx.spark, catalog, qref, rows,
                            TableTarget(table=qref.table, mode="append"), ctx.run_id)
        snapshot_of = {t.dataset: outcomes[t.ref] for t in tables}
        for t in others:
            outcomes[t.ref] = _export(spec, ctx, catalog, t, datasets, snapshot_of)
    except Exception as exc:
        for done in published:
            rollback(catalog, done.ref, done.previous_snapshot_id)
        if isinstance(exc, PipelineRunError):
            raise
        raise PipelineRunError(f"{spec.file}: run failed, tables rolled back: {exc}") from exc
    return [outcomes[t.ref] for t in spec.targets]


def _export(spec, ctx, catalog, t, datasets, snapshot_of) -> TargetOutcome:
    if not isinstance(t.target, CsvTarget):
        raise PipelineRunError(
            f"{_where(spec, t.target)}: {t.target.kind} targets are not supported yet"
        )
    written = snapshot_of.get(t.dataset)
    df = (read_table(ctx.spark, catalog, written.ref, written.snapshot_id)
          if written else datasets[t.dataset])
    try:
        result = write_csv(ctx.spark, df, t.target, ctx.data_path(t.target.path), ctx.run_date)
    except Exception as exc:
        raise PipelineRunError(f"{_where(spec, t.target)}: csv export failed: {exc}") from exc
    return TargetOutcome(ref=t.ref, kind="csv", rows=result.rows, location=result.path,
                         extra={"files": len(result.files)})
