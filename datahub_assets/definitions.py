"""Entry point: read specs → validate → build assets → attach resources."""

from __future__ import annotations

import dagster as dg

from datahub_assets.build.project import build_assets
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import executor, resources
from datahub_resources.settings import Settings

settings = Settings.from_env()
project = load_project(settings.pipelines_dir)

defs = dg.Definitions(
    assets=build_assets(project),
    # One sensor evaluates every asset's automation condition (cron and after-upstream);
    # running by default so schedules and file-drop flows work without a click in the UI.
    sensors=[dg.AutomationConditionSensorDefinition(
        "datahub_automation", target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
    )],
    resources=resources(),
    executor=executor(),
)
