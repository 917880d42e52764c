"""Notifications: run-status sensors for every job pipeline, and SLA misses.

`datahub_notify_failure` (`run_failure_sensor`) and `datahub_notify_success`
(`run_status_sensor` SUCCESS) watch every run of this code location and hand a finished run
of a job pipeline to `runtime.notify.notify_run`, which summarises it and sends it to the
job's targets whose `on` takes the outcome. Two sensors in all, not one per job: load time
does not grow with the number of jobs.

`datahub_sla` checks, every minute, each asset with a `<sla>` against its last
materialisation (the same rule as the asset's freshness policy: overdue after the SLA) and
sends one notification per miss (per last materialisation) to the app's default targets
(`runtime.notify.check_sla`).

What a notification says and how it is delivered is decided when it is sent:
`runtime/notify.py` and `runtime/notify_delivery.py`.
"""

from __future__ import annotations

import json

import dagster as dg

from datahub_assets.runtime.keys import asset_key
from datahub_assets.runtime.notify import DEFAULT_UI_URL, check_sla, notify_run
from datahub_assets.runtime.notify_delivery import wants
from datahub_assets.spec.durations import parse_duration
from datahub_assets.spec.job_models import AppNotifications
from datahub_assets.spec.models import Project
from datahub_resources.settings import Settings


def notification_sensors(
    project: Project, settings: Settings | None = None
) -> list[dg.SensorDefinition]:
    """The run status sensors of job pipelines with notifications, and the SLA sensor; run
    links point at DATAHUB_UI_URL as read at load (`settings`)."""
    settings = settings or Settings.from_env()
    url = settings.ui_url
    jobs = {j.name: j for j in project.jobs if j.notifications}
    out: list[dg.SensorDefinition] = []
    if jobs:

        @dg.run_failure_sensor(
            name="datahub_notify_failure",
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Notifies job pipelines' on=failure|completion targets",
        )
        def _failed(context: dg.RunFailureSensorContext):
            notify_run(
                context.instance,
                context.dagster_run,
                jobs,
                project,
                context.log.info,
                ui_url=url,
                settings=settings,
            )

        @dg.run_status_sensor(
            run_status=dg.DagsterRunStatus.SUCCESS,
            name="datahub_notify_success",
            default_status=dg.DefaultSensorStatus.RUNNING,
            description="Notifies job pipelines' on=success|completion targets",
        )
        def _succeeded(context: dg.RunStatusSensorContext):
            notify_run(
                context.instance,
                context.dagster_run,
                jobs,
                project,
                context.log.info,
                ui_url=url,
                settings=settings,
            )

        out += [_failed, _succeeded]
    sla = sla_sensor(project, url, settings)
    return out + ([sla] if sla else [])


def sla_assets(project: Project) -> dict[dg.AssetKey, tuple[str, float]]:
    """asset key -> (app, SLA seconds), for apps with default notification targets."""
    out = {}
    for spec in project.pipelines:
        notes: AppNotifications | None = getattr(project.apps.get(spec.app), "notifications", None)
        sla = spec.pipeline.metadata.sla
        if sla and notes and any(wants(t, "sla") for t in notes.targets):
            seconds = parse_duration(sla).total_seconds()
            out.update({asset_key(t.ref): (spec.app, seconds) for t in spec.targets})
    return out


def sla_sensor(
    project: Project, ui_url: str = DEFAULT_UI_URL, settings: Settings | None = None
) -> dg.SensorDefinition | None:
    watched = sla_assets(project)
    if not watched:
        return None

    @dg.sensor(
        name="datahub_sla",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Notifies the app's default targets when an asset's <sla> is missed",
    )
    def _sla(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        cursor = check_sla(
            context.instance,
            project,
            watched,
            cursor,
            context.log.info,
            ui_url=ui_url,
            settings=settings,
        )
        context.update_cursor(json.dumps(cursor))
        return dg.SkipReason(f"{len(watched)} assets with an SLA checked")

    return _sla
