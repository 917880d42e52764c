"""One pipeline run: read sources → apply transformations → write every target.

Tables are written in two phases so a run is all-or-nothing: Spark first writes the Parquet
files of every table target (the expensive part that can fail), then each table's metadata
is committed (fast). If a later commit or an export fails, the tables this run already
committed are rolled back to their previous snapshot, so a failed run leaves every table as
it was. Exports run after the table commits and read the committed files back instead of
recomputing the plan.

Incremental sources (`<incremental column=.../>`, see `execute.incremental`) read only the
rows above their committed watermark; the new watermarks are recorded in the snapshot
summary of every table target, in the same commit as the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyiceberg.catalog import Catalog
from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.incremental import WatermarkState, load_state, read_incremental
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.table_reader import read_table
from datahub_assets.execute.transforms import apply_steps
from datahub_assets.execute.writers.csv_export import write_csv
from datahub_assets.execute.writers.table import abort, commit, rollback, stage_write
from datahub_assets.spec.models import CsvTarget, PipelineSpec, TableRef, TableTarget


class PipelineRunError(RuntimeError):
    """A run failed; the message names the definition file and line of the failing element."""


@dataclass(frozen=True)
class TargetOutcome:
    ref: TableRef
    kind: str
    rows: int
    snapshot_id: int | None = None
    previous_snapshot_id: int | None = None
    location: str | None = None
    columns: tuple[tuple[str, str, bool], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _where(spec: PipelineSpec, node: Any) -> str:
    line = node.loc.line if getattr(node, "loc", None) else spec.line
    return f"{spec.file}:{line}"


def build_datasets(spec: PipelineSpec, ctx: ExecContext,
                   watermarks: WatermarkState | None = None) -> dict[str, DataFrame]:
    """Sources read lazily, then every transformation applied in written order.

    Incremental sources read the rows above their watermark in `watermarks.previous` (all
    rows without `watermarks`) and store the watermark to record in `watermarks.current`."""
    datasets: dict[str, DataFrame] = {}
    for source in spec.pipeline.sources:
        ref = spec.source_refs.get(source.id)
        try:
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
    datasets = build_datasets(spec, ctx, watermarks)
    properties = watermarks.properties() if watermarks else {}

    staged = []
    try:
        for t in tables:
            ctx.log.info("writing %s (%s)", t.ref.identifier, t.target.mode)
            staged.append(stage_write(ctx.spark, catalog, t.ref, datasets[t.dataset], t.target,
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

    outcomes: dict[TableRef, TargetOutcome] = {}
    committed: list[TargetOutcome] = []
    try:
        for t, s in zip(tables, staged, strict=True):
            result = commit(s)
            outcome = TargetOutcome(
                ref=t.ref, kind="table", rows=result.rows, snapshot_id=result.snapshot_id,
                previous_snapshot_id=result.previous_snapshot_id, location=result.location,
                columns=tuple(result.schema),
                extra={"files_added": result.files_added, "files_removed": result.files_removed,
                       **extra},
            )
            committed.append(outcome)
            outcomes[t.ref] = outcome
        snapshot_of = {t.dataset: outcomes[t.ref] for t in tables}
        for t in others:
            outcomes[t.ref] = _export(spec, ctx, catalog, t, datasets, snapshot_of)
    except Exception as exc:
        for done in committed:
            rollback(catalog, done.ref, done.previous_snapshot_id)
        for s in staged[len(committed):]:
            abort(s)
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
