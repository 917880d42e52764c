"""Typed pipeline spec → one Dagster multi_asset (one AssetSpec per target).

Building opens no engine, catalog or connection and reads no data: the asset body is
`runtime.step.asset_step`, which runs the pipeline when a run materialises it.
"""

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource

from datahub_assets.engines.choice import requested_engine
from datahub_assets.orchestration.automation import condition_for
from datahub_assets.orchestration.checks import check_specs
from datahub_assets.runtime.keys import SPARK_POOL, asset_key, op_name
from datahub_assets.runtime.step import FULL_REFRESH_TAG, PipelineStep, asset_step
from datahub_assets.spec.columns import column_descriptions
from datahub_assets.spec.durations import parse_duration
from datahub_assets.spec.models import PipelineSpec, ResolvedTarget, TableRef
from datahub_resources.iceberg import IcebergResource
from datahub_resources.settings import Settings
from datahub_resources.spark import SparkConnectResource

_TAG_VALUE = re.compile(r"^[A-Za-z0-9_.-]{0,63}$")
_TAG_KEY = re.compile(r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")


def owners(spec: PipelineSpec) -> list[str]:
    """Dagster owners are emails or `team:<name>`; a plain owner is read as a team."""
    if not spec.owner:
        return []
    owner = spec.owner.strip()
    if "@" in owner or owner.startswith("team:"):
        return [owner]
    return [f"team:{re.sub(r'[^A-Za-z0-9_.-]', '-', owner)}"]


def split_tags(spec: PipelineSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(tags Dagster accepts, the rest) — the rest is kept as metadata, nothing is dropped."""
    valid: dict[str, str] = {
        "datahub/app": spec.app,
        "datahub/layer": spec.layer,
        "datahub/pipeline": spec.pipeline.id,
    }
    other: dict[str, str] = {}
    for key, value in spec.tags.items():
        if _TAG_KEY.match(key) and _TAG_VALUE.match(value):
            valid[key] = value
        else:
            other[key] = value
    return {k: v for k, v in valid.items() if _TAG_VALUE.match(v)}, other


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


FULL_REFRESH_CONFIG = dg.Field(
    bool,
    default_value=False,
    description="Ignore the committed watermarks of the incremental sources and read every "
    f"row again (also set by the run tag {FULL_REFRESH_TAG}=true).",
)

FILES_CONFIG = dg.Field(
    dg.Map(str, [str]),
    is_required=False,
    description="File drops to ingest, by source id (set by the watch sensor). Leave it out "
    "to ingest the oldest maxFilesPerRun settled files the watched path matches now.",
)


def _config_schema(spec: PipelineSpec, is_drop: bool) -> dict | None:
    """Run config of a pipeline's step: the files of a drop batch; full refresh when it has
    incremental sources."""
    schema = {"files": FILES_CONFIG} if is_drop else {}
    if any(s.incremental is not None for s in spec.pipeline.sources):
        schema["full_refresh"] = FULL_REFRESH_CONFIG
    return schema or None


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
    instead (`runtime.step.asset_step`), so an explicit materialisation of downstream assets
    recomputes."""
    settings = settings or Settings.from_env()  # read at load, never in a run
    step = PipelineStep.of(spec, settings)
    is_drop = step.is_drop
    engine, _ = requested_engine(spec, settings)  # spark, duckdb or auto (decided per run)
    specs = [_asset_spec(spec, t, pipelines_dir, downstream_of_watch, engine) for t in spec.targets]
    if is_drop:
        specs = [s.replace_attributes(skippable=True) for s in specs]

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
            yield from asset_step(step, context, spark, iceberg)
    else:

        @decorate
        def _pipeline(
            context: dg.AssetExecutionContext,
            spark: SparkConnectResource,
            iceberg: IcebergResource,
            s3: S3Resource,
        ):
            yield from asset_step(step, context, spark, iceberg, s3.get_client)

    return _pipeline
