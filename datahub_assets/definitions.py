"""Entry point: read specs → validate → build assets → attach resources."""

from __future__ import annotations

import gc

import dagster as dg

from datahub_assets.build.automation import automation_sensors
from datahub_assets.build.project import build_assets
from datahub_assets.build.sensors import watch_sensors
from datahub_assets.runs.defs import ops_definitions
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import executor, resources
from datahub_resources.settings import Settings

settings = Settings.from_env()
# Loading builds millions of long-lived objects; Python's cyclic GC would rescan them again
# and again (measured: 1/3 of load time at 5,000 pipelines, and the part that grew faster
# than linearly). Pause it while building, then freeze the result out of later collections.
gc.disable()
try:
    project = load_project(settings.pipelines_dir)
    assets = build_assets(project)
    # automation (cron; after upstream changes) and one file-drop sensor per <watch>ed source,
    # all running by default so schedules and file drops work without a click in the UI
    automation = automation_sensors(project)
    sensors = watch_sensors(project)
    # built in, constant: run records table, daily dashboard, the sensor that records runs
    ops_assets, run_records = ops_definitions(project)
finally:
    gc.enable()
gc.freeze()

defs = dg.Definitions(
    assets=[*assets, *ops_assets],
    sensors=[*automation, *sensors, run_records],
    resources=resources(),
    executor=executor(),
)
