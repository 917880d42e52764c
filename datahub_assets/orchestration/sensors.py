"""`<watch/>` → one Dagster sensor per watched raw file source.

The sensor lists the source's path (local disk or `s3://`, through the `s3` resource), plans
batches with `ingest.planner` and requests one run of the pipeline's assets per batch, with
the batch's files in the run config (`ops.<op>.config.files.<source id>`), so the launchpad
and the run page show exactly which files a run took. Runs target the assets directly (the
implicit asset job): no job per pipeline, so load time stays linear in the number of
pipelines. Runs of one pipeline are tagged `datahub/ingest=<app>.<pipeline>`; dagster.yaml
limits that tag to one run at a time, so batches of a pipeline commit one after another
instead of failing on each other's commits.

`enabled="false"` declares the sensor stopped; an operator turns it on in the UI.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import dagster as dg

from datahub_assets.ingest.planner import WatchCursor, plan_tick, settle
from datahub_assets.ingest.store import store_for
from datahub_assets.runtime.keys import asset_key, op_name
from datahub_assets.spec.models import PipelineSpec, Project
from datahub_resources.settings import Settings

WATCH_TAG = "datahub/watch"
BATCH_TAG = "datahub/batch"
INGEST_TAG = "datahub/ingest"

_IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
_FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def sensor_name(spec: PipelineSpec, source_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"watch__{spec.app}__{spec.pipeline.id}__{source_id}")


def _run_ids_by_batch(
    instance: dg.DagsterInstance, name: str, statuses, updated_after: float | None = None
) -> set[str]:
    """Batch ids of this sensor's runs in `statuses` (updated after an epoch time)."""
    filters = dg.RunsFilter(
        tags={WATCH_TAG: name},
        statuses=statuses,
        updated_after=datetime.fromtimestamp(updated_after, UTC) if updated_after else None,
    )
    return {r.dagster_run.tags.get(BATCH_TAG, "") for r in instance.get_run_records(filters)}


def build_watch_sensor(
    spec: PipelineSpec, source, settings: Settings | None = None
) -> dg.SensorDefinition:
    """The sensor of one watched source; `settings` (read at load when not given) place
    its path (DATAHUB_DATA_DIR) and cap its runs per tick (DATAHUB_WATCH_MAX_RUNS_PER_TICK)."""
    settings = settings or Settings.from_env()
    name = sensor_name(spec, source.id)
    watch = source.watch
    keys = [asset_key(t.ref) for t in spec.targets]
    op = op_name(spec)
    grace = max(120.0, 4.0 * watch.poll_seconds)
    pattern = settings.data_path(spec.app, source.path)

    def evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        started = time.monotonic()
        now = time.time()
        # a sensor's `s3` resource is the boto3 client S3Resource makes
        store = store_for(pattern, lambda: context.resources.s3, settings)
        cursor = WatchCursor.parse(context.cursor)
        if cursor.batches:
            oldest = min(b["at"] for b in cursor.batches.values())
            settle(
                cursor,
                now,
                active=_run_ids_by_batch(context.instance, name, _IN_PROGRESS),
                failed=_run_ids_by_batch(context.instance, name, _FAILED, oldest - 1),
                succeeded=_run_ids_by_batch(
                    context.instance, name, [dg.DagsterRunStatus.SUCCESS], oldest - 1
                ),
                grace_seconds=grace,
                poll_seconds=watch.poll_seconds,
            )
        plan = plan_tick(
            store.list(pattern),
            cursor,
            now,
            min_age_seconds=watch.min_age_seconds,
            max_files_per_run=watch.max_files_per_run,
            max_runs=settings.watch_max_runs_per_tick,
        )
        requests = [
            dg.RunRequest(
                run_key=batch.batch_id,
                asset_selection=keys,
                run_config={
                    "ops": {op: {"config": {"files": {source.id: [f.path for f in batch.files]}}}}
                },
                tags={
                    WATCH_TAG: name,
                    BATCH_TAG: batch.batch_id,
                    INGEST_TAG: spec.key,
                    "datahub/files": str(len(batch.files)),
                },
            )
            for batch in plan.batches
        ]
        message = f"{pattern}: {plan.summary()} ({time.monotonic() - started:.2f} s)"
        context.log.info(message)
        return dg.SensorResult(
            run_requests=requests,
            cursor=plan.cursor.dumps(),
            skip_reason=None if requests else message,
        )

    return dg.SensorDefinition(
        name=name,
        evaluation_fn=evaluate,
        minimum_interval_seconds=watch.poll_seconds,
        description=(
            f"File drops of {spec.key} source '{source.id}': lists {source.path} every "
            f"{watch.poll_seconds} s and ingests new or changed files "
            f"(up to {watch.max_files_per_run} per run)"
        ),
        asset_selection=keys,
        default_status=(
            dg.DefaultSensorStatus.RUNNING if watch.enabled else dg.DefaultSensorStatus.STOPPED
        ),
        required_resource_keys={"s3"},
        tags={INGEST_TAG: spec.key},
    )


def watch_sensors(project: Project, settings: Settings | None = None) -> list[dg.SensorDefinition]:
    settings = settings or Settings.from_env()
    return [
        build_watch_sensor(spec, source, settings)
        for spec in project.pipelines
        for source in spec.watched_sources
    ]
