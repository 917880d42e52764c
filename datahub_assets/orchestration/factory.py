"""Typed pipeline spec → one Dagster multi_asset (one AssetSpec per target).

Building opens no Spark session and reads no data: the asset body calls
`execute.runner.run_pipeline` with the spec when a run materialises it.
"""

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from datahub_assets.engines.choice import requested_engine
from datahub_assets.execute.drops import REJECTED
from datahub_assets.execute.outcomes import ChecksFailed, TargetOutcome
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.orchestration.automation import condition_for
from datahub_assets.orchestration.checks import check_specs
from datahub_assets.orchestration.keys import asset_key, op_name, owners, split_tags
from datahub_assets.runtime.engine import OpenEngine, open_engine
from datahub_assets.runtime.metadata import ROWS_WRITTEN, check_results, table_metadata
from datahub_assets.runtime.params import run_parameters
from datahub_assets.runtime.retries import transient_retry
from datahub_assets.spec.columns import column_descriptions
from datahub_assets.spec.durations import parse_duration
from datahub_assets.spec.models import PipelineSpec, ResolvedTarget, TableRef
from datahub_resources import spark_watchdog
from datahub_resources.iceberg import IcebergResource
from datahub_resources.settings import Settings
from datahub_resources.spark import SparkConnectResource

SPARK_POOL = "spark"


def _kinds(target: ResolvedTarget, engine: str) -> set[str]:
    """The UI's kind tags: the engine(s) the pipeline may run on (auto: both) and the store."""
    engines = {"spark", "duckdb"} if engine == "auto" else {engine}
    return engines | {"iceberg" if target.target.kind == "table" else target.target.kind}


def _code_version(spec: PipelineSpec) -> str:
    digest = hashlib.sha256(spec.pipeline.model_dump_json().encode()).hexdigest()[:12]
    return f"{spec.pipeline.version}-{digest}"


def _code_references(path: Path, pipeline_line: int, target_line: int):
    """Links from the UI to the definition's lines (a beta Dagster API: its warning muted)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.CodeReferencesMetadataValue(
            code_references=[
                dg.LocalFileCodeReference(
                    file_path=str(path), line_number=pipeline_line, label="pipeline definition"
                ),
                dg.LocalFileCodeReference(
                    file_path=str(path), line_number=target_line, label="target"
                ),
            ]
        )


def _asset_spec(
    spec: PipelineSpec,
    target: ResolvedTarget,
    pipelines_dir: Path,
    downstream_of_watch: set[TableRef],
    engine: str = "spark",
) -> dg.AssetSpec:
    meta = spec.pipeline.metadata
    tags, other_tags = split_tags(spec)
    line = target.target.loc.line if target.target.loc else spec.line
    path = "/".join(target.ref.asset_path)
    metadata: dict[str, Any] = {
        "datahub/asset": path,
        "datahub/pipeline": spec.key,
        "datahub/definition": f"{spec.file}:{line}",
        "datahub/engine_requested": engine,
        "dagster/code_references": _code_references(pipelines_dir / spec.file, spec.line, line),
    }
    if target.target.kind == "table":
        metadata["dagster/table_name"] = f"datahub.{target.ref.identifier}"
        metadata["datahub/write_mode"] = target.target.mode
    else:
        metadata["datahub/export_path"] = getattr(target.target, "path", "")
    declared = _declared_schema(spec, target)
    if declared is not None:
        metadata["dagster/column_schema"] = declared
    if meta.schedule:
        metadata["datahub/schedule"] = meta.schedule
    if meta.sla:
        metadata["datahub/sla"] = meta.sla
    metadata.update({f"datahub/tag/{k}": v for k, v in other_tags.items()})
    return dg.AssetSpec(
        key=asset_key(target.ref),
        deps=[asset_key(ref) for ref in spec.upstream],
        # lineage nodes show the key's last part (`customers` in several apps and layers)
        # and the description's first line under it: the full path goes first
        description=f"{path}: {meta.description or f'{spec.layer} pipeline {spec.key}'}",
        group_name=spec.layer,
        owners=owners(spec),
        tags=tags,
        kinds=_kinds(target, engine),
        metadata=metadata,
        code_version=_code_version(spec),
        automation_condition=condition_for(spec, downstream_of_watch, target.ref),
        freshness_policy=_freshness(meta.sla),
    )


def _type_str(column_type) -> str:
    if column_type.name == "decimal":
        return f"decimal({column_type.precision},{column_type.scale})"
    return column_type.name


def _declared_schema(spec: PipelineSpec, target: ResolvedTarget) -> dg.TableSchema | None:
    """The column schema a target declares with its own schemaRef (parsed at load), with
    the column descriptions, so the UI shows columns before the first materialisation."""
    ref = getattr(target.target, "schema_ref", None)
    parsed = spec.schemas.get(ref) if ref else None
    if parsed is None:
        return None
    descriptions = column_descriptions(spec, target)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                _type_str(c.type),
                description=descriptions.get(c.name),
                constraints=dg.TableColumnConstraints(nullable=c.nullable),
            )
            for c in parsed.columns
        ]
    )


def _freshness(sla: str | None) -> dg.FreshnessPolicy | None:
    """`<sla>`: the asset is overdue (failed freshness in the UI) when its last
    materialisation is older than the SLA; a warning at 80 % of it."""
    if not sla:
        return None
    window = parse_duration(sla)
    return dg.FreshnessPolicy.time_window(fail_window=window, warn_window=window * 0.8)


def _result(
    outcome: TargetOutcome,
    descriptions: dict[str, str] | None = None,
    engine: dict[str, str] | None = None,
) -> dg.MaterializeResult:
    """The materialisation of one target; `descriptions` (column -> text, from schemaRef
    files and `<columns>`, `spec.columns.column_descriptions`) describe the column schema;
    `engine`: which engine ran the pipeline and why (`datahub/engine`, `.../engine_reason`)."""
    metadata = table_metadata(outcome, descriptions)
    metadata.update({f"datahub/{k}": v for k, v in (engine or {}).items()})
    return dg.MaterializeResult(asset_key=asset_key(outcome.ref), metadata=metadata)


FULL_REFRESH_TAG = "datahub/full_refresh"
FULL_REFRESH_CONFIG = dg.Field(
    bool,
    default_value=False,
    description="Ignore the committed watermarks of the incremental sources and read every "
    "row again (also set by the run tag datahub/full_refresh=true).",
)

FILES_CONFIG = dg.Field(
    dg.Map(str, [str]),
    is_required=False,
    description="File drops to ingest, by source id (set by the watch sensor). Leave it out "
    "to ingest the oldest maxFilesPerRun settled files the watched path matches now.",
)


def _drop_events(spec: PipelineSpec, drops, materialized: bool):
    """What the UI shows of a file-drop batch: one observation per rejected file, and, when
    nothing was materialised, one observation of the batch on each target."""
    for f in drops.with_status(REJECTED):
        for t in spec.targets:
            yield dg.AssetObservation(
                asset_key=asset_key(t.ref),
                metadata={
                    "datahub/file": f.info.path,
                    "datahub/rejected_rule": f.rejection.rule,
                    "datahub/rejected_reason": f.rejection.message,
                    "datahub/moved_to": f.moved_to or "(still in landing)",
                },
            )
    if not materialized:
        meta = {f"datahub/{k}": v for k, v in drops.metadata().items()}
        for t in spec.targets:
            yield dg.AssetObservation(asset_key=asset_key(t.ref), metadata=meta)


def _nothing_new(spec: PipelineSpec, context, iceberg: IcebergResource):
    """A run started by hand (UI, CLI, a job) found no new file: the raw step is a no-op that
    still materialises its current tables, so the downstream assets selected in the run are
    recomputed from them. Sensor runs (their files in the run config) never get here: a
    batch with nothing new must not re-run downstream."""
    sources = ", ".join(s.id for s in spec.watched_sources)
    catalog = iceberg.catalog()
    for t in spec.targets:
        ident = (t.ref.namespace, t.ref.table)
        if t.target.kind != "table" or not catalog.table_exists(ident):
            context.log.info(
                "%s: file-drop source(s) %s had nothing new and %s holds no data "
                "yet; nothing to recompute from",
                spec.key,
                sources,
                t.ref,
            )
            continue
        snapshot = catalog.load_table(ident).current_snapshot()
        context.log.info(
            "%s: file-drop source(s) %s had nothing new; %s is unchanged (snapshot "
            "%s) and downstream assets in this run recompute from it",
            spec.key,
            sources,
            t.ref,
            snapshot.snapshot_id if snapshot else "-",
        )
        total = (snapshot.summary or {}).get("total-records") if snapshot else None
        yield dg.MaterializeResult(
            asset_key=asset_key(t.ref),
            metadata={
                **({"dagster/row_count": int(total)} if total is not None else {}),
                ROWS_WRITTEN: 0,
                "datahub/nothing_new": True,
                "datahub/sources_without_new_files": sources,
                "datahub/snapshot_id": dg.MetadataValue.text(
                    str(snapshot.snapshot_id) if snapshot else ""
                ),
            },
        )


def _config_schema(spec: PipelineSpec, is_drop: bool) -> dict | None:
    """Run config of a pipeline's step: the files of a drop batch; full refresh when it has
    incremental sources."""
    schema = {"files": FILES_CONFIG} if is_drop else {}
    if any(s.incremental is not None for s in spec.pipeline.sources):
        schema["full_refresh"] = FULL_REFRESH_CONFIG
    return schema or None


@dataclass(frozen=True)
class _Step:
    """What a pipeline's asset body knows from load time."""

    spec: PipelineSpec
    settings: Settings
    is_drop: bool
    descriptions: dict
    iceberg: IcebergResource
    s3_client: Any


def _run_step(step: _Step, context, engine: OpenEngine, catalog, files, config):
    """Run the pipeline on `engine` and yield what the UI shows of it."""
    spec, settings, is_drop = step.spec, step.settings, step.is_drop
    # run date and :name parameters from the run's tags (runtime/params.py)
    run_date, params = run_parameters(context.run.tags)
    ctx = engine.exec_context(
        settings=settings,
        app=spec.app,
        run_id=context.run.run_id,
        run_date=run_date,
        log=context.log,
        s3_client=step.s3_client,
        spec=spec,
        params=params,
        full_refresh=bool(config.get("full_refresh"))
        or context.run.tags.get(FULL_REFRESH_TAG, "").lower() == "true",
    )
    try:
        outcomes = run_pipeline(spec, ctx, catalog, files=files)
    except ChecksFailed as failed:
        # write-audit-publish: the audited snapshots were not published; report why
        for outcome in failed.outcomes:
            yield from check_results(outcome, published=False)
        if ctx.drops is not None:
            yield from _drop_events(spec, ctx.drops, materialized=False)
        raise dg.Failure(description=str(failed), allow_retries=False) from None
    except Exception as exc:
        # a dead server: SparkServerDied
        exc = spark_watchdog.explain(exc, engine.spark_session)
        # raises RetryRequested when transient
        transient_retry(context.op_execution_context, exc, engine.spark_session)
        raise exc
    except BaseException:  # terminated (DagsterExecutionInterruptedError): stop Spark's work
        spark_watchdog.interrupt(engine.spark_session, context.log)
        raise
    if ctx.drops is not None:
        yield from _drop_events(spec, ctx.drops, materialized=bool(outcomes))
    if is_drop and not outcomes and files is None:
        yield from _nothing_new(spec, context, step.iceberg)
    for outcome in outcomes:
        yield _result(outcome, step.descriptions.get(outcome.ref, {}), engine.metadata())
        yield from check_results(outcome, published=True)


def build_pipeline_asset(
    spec: PipelineSpec,
    pipelines_dir: Path,
    downstream_of_watch: set[TableRef],
    settings: Settings | None = None,
) -> dg.AssetsDefinition:
    """The multi_asset of one pipeline: all its targets materialise together in one step.

    A pipeline with watched file sources takes its batch of files from the run config and
    may materialise nothing (every file rejected or already ingested): its specs are then
    skippable, and its checks optional (can_subset), so downstream assets do not run. A run
    started by hand (no files in the config) with nothing new materialises the current tables
    instead (`_nothing_new`), so an explicit materialisation of downstream assets recomputes."""
    settings = settings or Settings.from_env()  # read at load, never in a run
    descriptions = {t.ref: column_descriptions(spec, t) for t in spec.targets}
    is_drop = bool(spec.watched_sources)
    engine, _ = requested_engine(spec, settings)  # spark, duckdb or auto (decided per run)
    specs = [_asset_spec(spec, t, pipelines_dir, downstream_of_watch, engine) for t in spec.targets]
    if is_drop:
        specs = [s.replace_attributes(skippable=True) for s in specs]

    def body(
        context: dg.AssetExecutionContext,
        spark: SparkConnectResource,
        iceberg: IcebergResource,
        s3_client=None,
    ):
        if is_drop and len(context.selected_asset_keys) != len(specs):
            raise dg.Failure(
                f"{spec.file}: a file-drop pipeline writes all its targets in one "
                "commit; select all of them"
            )
        config = context.op_config or {}
        files = config.get("files") if is_drop else None
        catalog = iceberg.catalog()
        with open_engine(
            spec, settings, spark, catalog, context.run.tags, files, context.log
        ) as engine:
            yield from _run_step(
                _Step(spec, settings, is_drop, descriptions, iceberg, s3_client),
                context,
                engine,
                catalog,
                files,
                config,
            )

    decorate = dg.multi_asset(
        name=op_name(spec),
        specs=specs,
        check_specs=check_specs(spec),
        can_subset=is_drop,
        pool=SPARK_POOL,
        op_tags={"datahub/pipeline": spec.key},
        config_schema=_config_schema(spec, is_drop),
    )
    if not is_drop:

        @decorate
        def _pipeline(
            context: dg.AssetExecutionContext, spark: SparkConnectResource, iceberg: IcebergResource
        ):
            yield from body(context, spark, iceberg)
    else:

        @decorate
        def _pipeline(
            context: dg.AssetExecutionContext,
            spark: SparkConnectResource,
            iceberg: IcebergResource,
            s3: S3Resource,
        ):
            yield from body(context, spark, iceberg, s3.get_client)

    return _pipeline
