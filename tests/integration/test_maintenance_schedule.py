"""The daily maintenance inside Dagster (issue 13 item 4): one job for every app, one schedule
per distinct app.yaml `maintenance.schedule` cron, and the job, executed in process against a
real catalog, maintains exactly the apps of its schedule with each app's own settings."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from datahub_assets.iceberg.read import data_files
from datahub_assets.iceberg.table import write_table
from datahub_assets.maintenance.defs import (
    APPS_TAG,
    JOB_NAME,
    OP_NAME,
    maintenance_definitions,
    schedule_name,
)
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import TableRef, TableTarget

RAW = """<pipeline id="events_raw" version="1.0.0" layer="raw">
  <sources><csv id="e" path="landing/events/*.csv"/></sources>
  <targets><table table="events" mode="append"/></targets>
</pipeline>
"""
# shop: short windows, 1 MB files, 04:30; other: the defaults (P7D, P3D, 128 MB, 03:00);
# third: the default cron too (shares other's schedule)
APPS = {
    "shop": "maintenance: {snapshotRetention: PT1S, orphanAfter: PT1S, targetFileSizeMb: 1,"
    ' schedule: "30 4 * * *"}\n',
    "other": "owner: x\n",
    "third": "maintenance: {targetFileSizeMb: 64}\n",
}


def _project(root):
    for app, yaml in APPS.items():
        (root / app / "raw").mkdir(parents=True)
        (root / app / "app.yaml").write_text(yaml)
        (root / app / "raw" / "events.xml").write_text(RAW)
    return load_project(root)


def test_one_job_and_one_schedule_per_distinct_cron(tmp_path):
    jobs, schedules = maintenance_definitions(_project(tmp_path / "pipelines"))
    assert [j.name for j in jobs] == [JOB_NAME]
    by_cron = {s.cron_schedule: s for s in schedules}
    assert sorted(by_cron) == ["0 3 * * *", "30 4 * * *"]
    early, late = by_cron["0 3 * * *"], by_cron["30 4 * * *"]
    assert early.name == "datahub_maintenance__0_3_x_x_x"
    assert late.name == "datahub_maintenance__30_4_x_x_x"
    assert early.default_status == dg.DefaultScheduleStatus.RUNNING
    assert early.execution_timezone == "UTC"
    # the built-in ops tables (run records) go with the default cron
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 2, 3, tzinfo=UTC)
    )
    (request,) = early.evaluate_tick(context).run_requests or []
    assert request.run_config == {"ops": {OP_NAME: {"config": {"apps": ["ops", "other", "third"]}}}}
    assert request.tags[APPS_TAG] == "ops,other,third"
    (request,) = late.evaluate_tick(context).run_requests or []
    assert request.run_config["ops"][OP_NAME]["config"]["apps"] == ["shop"]
    assert request.tags[APPS_TAG] == "shop"
    # every schedule targets the same job: the definitions do not grow with the apps
    assert {s.job_name for s in schedules} == {JOB_NAME}


def test_schedule_names_tell_crons_apart():
    names = {schedule_name(c) for c in ("0 3 * * *", "0 3 * * 1-5", "0 3 * * 1,5", "*/15 * * * *")}
    assert len(names) == 4
    assert all(n.replace("_", "").isalnum() for n in names)


def _append(spark, catalog, ref: TableRef, start: int, n: int = 10) -> None:
    df = spark.createDataFrame([(i, f"v{i}") for i in range(start, start + n)], "id long, v string")
    target = TableTarget(table=ref.table, mode="append")
    write_table(spark, catalog, ref, df.coalesce(1), target, f"r{ref.app}{start}")


@pytest.mark.spark
def test_the_scheduled_run_maintains_its_apps_with_their_settings(spark, settings):
    from datahub_resources.iceberg import IcebergResource, load_catalog
    from datahub_resources.spark import SparkConnectResource

    project = _project(settings.pipelines_dir)
    catalog = load_catalog(settings)
    shop = TableRef(app="shop", layer="raw", table="events")
    other = TableRef(app="other", layer="raw", table="events")
    for k in range(6):
        _append(spark, catalog, shop, k * 10)
    for k in range(3):
        _append(spark, catalog, other, k * 10)
    shop_table = catalog.load_table(shop.identifier)
    small = [Path(f.file_path.removeprefix("file://")) for f in data_files(shop_table)]
    assert len(small) == 6
    stray = Path(shop_table.location().removeprefix("file://")) / "data" / "stray.parquet"
    stray.write_bytes(b"PAR1")  # a failed write's leftover
    other_before = catalog.load_table(other.identifier)
    other_snapshots = [s.snapshot_id for s in other_before.metadata.snapshots]
    time.sleep(1.5)  # shop's snapshots and files are now older than its PT1S windows

    jobs, schedules = maintenance_definitions(project)
    late = next(s for s in schedules if s.cron_schedule == "30 4 * * *")
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 1, 2, 4, 30, tzinfo=UTC)
    )
    (request,) = late.evaluate_tick(context).run_requests or []
    result = jobs[0].execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        resources={"spark": SparkConnectResource(), "iceberg": IcebergResource()},
    )
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    metadata = output.step_output_data.metadata
    assert metadata["datahub/tables"].value == 1
    assert metadata["datahub/files_compacted"].value == 6

    # shop: compacted into one file, every older snapshot expired, the replaced small files
    # and the stray file deleted, every row still there
    table = catalog.load_table(shop.identifier)
    assert len(data_files(table)) == 1
    assert [s.snapshot_id for s in table.metadata.snapshots] == [
        table.current_snapshot().snapshot_id
    ]
    assert table.current_snapshot().summary["datahub.maintenance"] == "compaction"
    assert [p for p in small if p.exists()] == []
    assert not stray.exists()
    assert sorted(table.scan().to_arrow()["id"].to_pylist()) == list(range(60))
    # other (a different cron) was not touched
    after = catalog.load_table(other.identifier)
    assert [s.snapshot_id for s in after.metadata.snapshots] == other_snapshots
    assert len(data_files(after)) == 3


def test_an_unknown_app_in_the_tag_fails_the_step_naming_the_known_ones(settings):
    """Launched by hand with the tag only (no run config)."""
    from datahub_resources.iceberg import IcebergResource
    from datahub_resources.spark import SparkConnectResource

    jobs, _ = maintenance_definitions(_project(settings.pipelines_dir))
    result = jobs[0].execute_in_process(
        tags={APPS_TAG: "shop,nope"},
        resources={"spark": SparkConnectResource(), "iceberg": IcebergResource()},
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.step_failure_data.user_failure_data.description
    assert "unknown app(s) nope" in message
    assert "ops, other, shop, third" in message


def test_the_project_definitions_hold_the_job_and_its_schedules(tmp_path):
    """orchestration/project.py adds them: they load beside the project's own definitions."""
    from datahub_assets.orchestration.project import build_definitions

    root = tmp_path / "pipelines"
    _, schedules = maintenance_definitions(_project(root))
    defs = build_definitions(root)
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert [n.name for n in repo.get_job(JOB_NAME).nodes] == [OP_NAME]
    by_name = {s.name: s for s in repo.schedule_defs}
    for schedule in schedules:
        assert by_name[schedule.name].cron_schedule == schedule.cron_schedule
        assert by_name[schedule.name].job_name == JOB_NAME
