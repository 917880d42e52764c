"""The built-in ops assets and the one sensor that keeps the run records current.

- `ops/gold/pipeline_runs`: the run records table. The sensor `datahub_run_records` appends
  every run finished since its last tick (`sync.sync_once`, one batch bounded in time, so a
  tick stays short even while it backfills a long history) and reports the table's new
  snapshot as a materialisation of this asset. Materialising the asset by hand does the
  same until nothing is left (`sync.sync_all`): a catch-up or a full backfill at once.
- `ops/service/dashboard`: the daily dashboard, rendered from the table at 06:00 UTC (or on
  demand) to `$DATAHUB_HOME/ops/dashboard.html`, with the same numbers as Markdown in its
  materialisation metadata.

The definitions are constant: two assets and one sensor whatever the number of pipelines.
Both assets are in the group `ops`; their ops carry `datahub/pipeline=ops.<name>`, so their
own runs are recorded like any pipeline's.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
from pyiceberg.exceptions import CommitFailedException

from datahub_assets.orchestration.automation import on_cron
from datahub_assets.runs.page import render
from datahub_assets.runs.store import RUNS_REF, read_rows
from datahub_assets.runs.summary import markdown, rate_text, summarise
from datahub_assets.runs.sync import MAX_RUNS, SyncResult, sync_all, sync_once
from datahub_assets.spec.durations import parse_duration
from datahub_assets.spec.models import Project
from datahub_resources.iceberg import IcebergResource
from datahub_resources.settings import Settings

RUNS_KEY = dg.AssetKey(RUNS_REF.asset_path)
DASHBOARD_KEY = dg.AssetKey(["ops", "service", "dashboard"])
SENSOR_NAME = "datahub_run_records"
SENSOR_INTERVAL_S = 30
TICK_BUDGET_S = 1.0
DASHBOARD_CRON = "0 6 * * *"
DASHBOARD_DAYS = 14
GROUP = "ops"


def _table_metadata(result: SyncResult, table_rows: int | None) -> dict[str, dg.MetadataValue]:
    metadata: dict[str, dg.MetadataValue] = {
        "datahub/iceberg_table": dg.MetadataValue.text(RUNS_REF.identifier),
        "datahub/runs_recorded": dg.MetadataValue.int(result.runs),
        "datahub/rows_added": dg.MetadataValue.int(result.rows),
        "datahub/cursor": dg.MetadataValue.int(result.cursor),
    }
    if table_rows is not None:
        metadata["dagster/row_count"] = dg.MetadataValue.int(table_rows)
    if result.snapshot_id is not None:
        metadata["datahub/snapshot_id"] = dg.MetadataValue.text(str(result.snapshot_id))
    return metadata


def _total_rows(catalog) -> int | None:
    snapshot = catalog.load_table((RUNS_REF.namespace, RUNS_REF.table)).current_snapshot()
    total = snapshot.summary.get("total-records") if snapshot and snapshot.summary else None
    return int(total) if total is not None else None


@dg.multi_asset(
    name="ops__pipeline_runs",
    specs=[
        dg.AssetSpec(
            RUNS_KEY,
            group_name=GROUP,
            kinds={"iceberg"},
            description="Run records (contract 8): one row per pipeline per finished run. Kept "
            f"current by the sensor {SENSOR_NAME}; materialise to catch up at once.",
            metadata={"dagster/table_name": f"datahub.{RUNS_REF.identifier}"},
        )
    ],
    op_tags={"datahub/pipeline": "ops.pipeline_runs"},
)
def pipeline_runs(context: dg.AssetExecutionContext, iceberg: IcebergResource):
    catalog = iceberg.catalog()
    results = sync_all(context.instance, catalog)
    for r in results:
        context.log.info(r.summary())
    total = SyncResult(
        results[0].cursor_before,
        results[-1].cursor,
        sum(r.runs for r in results),
        sum(r.rows for r in results),
        next((r.snapshot_id for r in reversed(results) if r.snapshot_id), None),
        False,
        sum(r.seconds for r in results),
    )
    yield dg.MaterializeResult(
        asset_key=RUNS_KEY, metadata=_table_metadata(total, _total_rows(catalog))
    )


def slas_of(project: Project) -> dict[str, tuple[str, timedelta]]:
    """{pipeline: (its `<sla>` as written, as a timedelta)} of the pipelines that have one."""
    return {
        spec.key: (spec.pipeline.metadata.sla, parse_duration(spec.pipeline.metadata.sla))
        for spec in project.pipelines
        if spec.pipeline.metadata.sla
    }


def build_summary(catalog, slas, now: datetime, days: int):
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = read_rows(catalog, since)
    older = (
        read_rows(catalog, None, ("pipeline", "status", "started_at", "ended_at")) if slas else []
    )
    return summarise(
        [*rows, *(r for r in older if r["started_at"] < since)], since=since, now=now, slas=slas
    )


def build_dashboard(slas: dict[str, tuple[str, timedelta]]) -> dg.AssetsDefinition:
    """The dashboard asset; `slas` (from `slas_of`) decide the freshness breaches."""
    settings = Settings.from_env()  # read at load, never in a run

    @dg.multi_asset(
        name="ops__dashboard",
        specs=[
            dg.AssetSpec(
                DASHBOARD_KEY,
                group_name=GROUP,
                kinds={"html"},
                deps=[RUNS_KEY],
                description="Daily dashboard of the run records: runs per day, successes, "
                "failures, success rate, top failure reasons, slowest pipelines, SLA "
                "breaches ($DATAHUB_HOME/ops/dashboard.html; `datahub runs` in a "
                "terminal).",
                automation_condition=on_cron(DASHBOARD_CRON),
            )
        ],
        op_tags={"datahub/pipeline": "ops.dashboard"},
    )
    def dashboard(context: dg.AssetExecutionContext, iceberg: IcebergResource):
        summary = build_summary(iceberg.catalog(), slas, datetime.now(UTC), DASHBOARD_DAYS)
        path = settings.home / "ops" / "dashboard.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".html.tmp")
        tmp.write_text(render(summary), encoding="utf-8")
        tmp.replace(path)  # readers never see a half-written page
        context.log.info(f"dashboard: {summary.runs} pipeline runs, {path}")
        yield dg.MaterializeResult(
            asset_key=DASHBOARD_KEY,
            metadata={
                "dashboard": dg.MetadataValue.path(str(path)),
                "dashboard_url": dg.MetadataValue.url(path.as_uri()),
                "summary": dg.MetadataValue.md(markdown(summary)),
                "runs": dg.MetadataValue.int(summary.runs),
                "succeeded": dg.MetadataValue.int(summary.succeeded),
                "failed": dg.MetadataValue.int(summary.failed),
                "success_rate": dg.MetadataValue.text(rate_text(summary.success_rate)),
                "sla_breaches": dg.MetadataValue.int(len(summary.breaches)),
            },
        )

    return dashboard


def _evaluate(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    catalog = context.resources.iceberg.catalog()
    try:
        result = sync_once(context.instance, catalog, max_runs=MAX_RUNS, budget_s=TICK_BUDGET_S)
    except CommitFailedException as exc:  # a manual materialisation committed first
        return dg.SensorResult(skip_reason=f"another writer moved the table; next tick: {exc}")
    context.log.info(result.summary())
    if not result.runs:
        return dg.SensorResult(skip_reason=result.summary(), cursor=str(result.cursor))
    event = dg.AssetMaterialization(
        asset_key=RUNS_KEY, metadata=_table_metadata(result, _total_rows(catalog))
    )
    return dg.SensorResult(asset_events=[event], cursor=str(result.cursor))


run_records_sensor = dg.SensorDefinition(
    name=SENSOR_NAME,
    evaluation_fn=_evaluate,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    description="Records every finished run's pipelines in ops_gold.pipeline_runs (cursor on "
    "the event log's run status events, committed with the rows).",
    default_status=dg.DefaultSensorStatus.RUNNING,
    required_resource_keys={"iceberg"},
    asset_selection=[RUNS_KEY],
)


def ops_definitions(project: Project) -> tuple[list[dg.AssetsDefinition], dg.SensorDefinition]:
    """The ops assets and the run records sensor (built in: every deployment has them)."""
    return [pipeline_runs, build_dashboard(slas_of(project))], run_records_sensor
