"""A pipelines folder → one Dagster Definitions: the one builder of the project.

`build_definitions` loads and validates every definition, then builds assets per pipeline
(and adds the Python assets of `<app>/python/`),
their sensors, the job pipelines with their schedules and notification sensors, the built-in
ops definitions, resources and the executor. The
`DataHubPipelines` component (datahub_assets/components/) calls it, and
`datahub_assets.definitions` loads that component, so every entry point (`dg`, workspace.yaml,
`-m datahub_assets.definitions`) gets what is added here.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from datahub_assets.maintenance.defs import maintenance_definitions
from datahub_assets.orchestration.automation import automation_sensors, watched_closure
from datahub_assets.orchestration.factory import build_pipeline_asset
from datahub_assets.orchestration.jobs import build_jobs
from datahub_assets.orchestration.notify import notification_sensors
from datahub_assets.orchestration.sensors import watch_sensors
from datahub_assets.python.discovery import cycles, discover
from datahub_assets.runs.defs import ops_definitions
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import Project
from datahub_resources.deployment import executor, resources
from datahub_resources.iceberg import IcebergResource
from datahub_resources.iceberg_io import IO_MANAGER_KEY, IcebergIOManager
from datahub_resources.spark import SparkConnectResource


def build_assets(project: Project) -> list[dg.AssetsDefinition]:
    """The XML/YAML pipelines' assets, then the Python assets of `<app>/python/*.py`
    (imported, and validated, while the project loaded: `datahub_assets.python.discovery`);
    a dependency cycle through a Python asset is a located SpecError here."""
    downstream_of_watch = watched_closure(project)
    root = Path(project.root)
    built = [build_pipeline_asset(spec, root, downstream_of_watch) for spec in project.pipelines]
    python = discover(root)
    errors = cycles(project.pipelines, python)
    if errors:
        raise SpecErrors(errors)
    return [*built, *python.assets]


def all_resources() -> dict[str, object]:
    """The deployment's resources plus the Iceberg IO manager of the Python assets, which
    uses the same Spark and Iceberg resources."""
    res = resources()
    spark, iceberg = res["spark"], res["iceberg"]
    if not isinstance(spark, SparkConnectResource) or not isinstance(iceberg, IcebergResource):
        raise TypeError("resources(): 'spark' and 'iceberg' must be Data Hub's resources")
    res[IO_MANAGER_KEY] = IcebergIOManager(spark=spark, iceberg=iceberg)
    return res


@contextmanager
def paused_gc() -> Iterator[None]:
    """Loading builds millions of long-lived objects; Python's cyclic GC would rescan them
    again and again (measured: 1/3 of load time at 5,000 pipelines, and the part that grew
    faster than linearly). Pause it while building, then freeze the result out of later
    collections. Nested use pauses once: only the outermost block re-enables and freezes."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
    gc.freeze()


def build_definitions(pipelines_dir: Path, executor_name: str | None = None) -> dg.Definitions:
    """Every definition of the project, built from the pipelines under `pipelines_dir`;
    `executor_name` (in_process | multiprocess) defaults to DATAHUB_EXECUTOR."""
    with paused_gc():
        project = load_project(pipelines_dir)
        assets = build_assets(project)
        # automation (cron; after upstream changes) and one file-drop sensor per <watch>ed
        # source, all running by default so schedules and file drops work without a click
        automation = automation_sensors(project)
        sensors = watch_sensors(project)
        # job pipelines (contract 6): one op job per file, its schedule running by default,
        # and the notification sensors (one per run status for all jobs, one for SLAs)
        jobs, schedules = build_jobs(project)
        notify = notification_sensors(project)
        # built in, constant: run records table, daily dashboard, the sensor that records runs
        ops_assets, run_records = ops_definitions(project)
        # table maintenance: one job for every app, one schedule per app.yaml cron
        maintain_jobs, maintain_schedules = maintenance_definitions(project)
        return dg.Definitions(
            assets=[*assets, *ops_assets],
            sensors=[*automation, *sensors, *notify, run_records],
            jobs=[*jobs, *maintain_jobs],
            schedules=[*schedules, *maintain_schedules],
            resources=all_resources(),
            executor=executor(executor_name),
        )
