"""The daily table maintenance inside Dagster: ONE job for every app, one schedule per cron.

`maintenance_definitions(project)` returns the job `datahub_maintenance` (one op that runs
`datahub maintain`'s logic, `tables.maintain_table`, over every table of the apps it is
given: compact, expire snapshots, remove orphans, with each app's `maintenance:` settings of
app.yaml) and one schedule per distinct `maintenance.schedule` cron (UTC), running by
default: `datahub_maintenance__<cron>`, whose runs carry the apps of that cron in the run
config (`ops.maintain_tables.config.apps`) and in the tag `datahub/maintenance_apps`.
The count of definitions does not grow with the apps (one job, one schedule per cron; the
default cron for all apps gives one schedule), so load time stays linear in the pipelines.

The built-in `ops` tables (`ops_gold.pipeline_runs`, one append per recorded batch of runs)
are maintained with the default settings on the default cron unless an app named `ops` sets
its own. Launched by hand without config (`dg launch --job datahub_maintenance`) the job
maintains every app; with the tag `datahub/maintenance_apps=a,b` only those.

A table whose maintenance fails does not stop the others; the step fails at the end naming
each failed table and its error. The op runs in the `spark` pool like pipeline steps, and
asks for a Spark session only when a table has small files to compact.
"""

import re
from datetime import timedelta
from typing import Any

import dagster as dg

from datahub_assets.runtime.keys import SPARK_POOL
from datahub_assets.spec.models import AppConfig, Maintenance, Project

JOB_NAME = "datahub_maintenance"
OP_NAME = "maintain_tables"
APPS_TAG = "datahub/maintenance_apps"
MAINTENANCE_TAG = "datahub/maintenance"
OPS_APP = "ops"


def app_settings(project: Project) -> dict[str, Maintenance]:
    """{app: its maintenance settings}, the built-in `ops` app included."""
    apps = {name: config.maintenance for name, config in project.apps.items()}
    apps.setdefault(OPS_APP, AppConfig().maintenance)
    return dict(sorted(apps.items()))


def apps_by_cron(project: Project) -> dict[str, list[str]]:
    """{cron: apps maintained on it}, in cron order."""
    out: dict[str, list[str]] = {}
    for app, settings in app_settings(project).items():
        out.setdefault(settings.schedule, []).append(app)
    return dict(sorted(out.items()))


_CRON_CHARS = {"*": "x", ",": "c", "-": "t", "/": "s", "?": "q", "@": "at", "#": "h", " ": "_"}


def schedule_name(cron: str) -> str:
    """`datahub_maintenance__<cron>` with the cron spelled in name characters
    (`0 3 * * *` -> `datahub_maintenance__0_3_x_x_x`)."""
    spelled = "".join(_CRON_CHARS.get(c, c) for c in " ".join(cron.split()))
    return f"{JOB_NAME}__" + re.sub(r"[^A-Za-z0-9_]", "_", spelled)


def maintenance_definitions(
    project: Project,
) -> tuple[list[dg.JobDefinition], list[dg.ScheduleDefinition]]:
    """([the maintenance job], [one schedule per distinct cron]) (module doc)."""
    settings = app_settings(project)
    job = _job(settings)
    schedules = []
    names: set[str] = set()
    for cron, apps in apps_by_cron(project).items():
        name = schedule_name(cron)
        while name in names:  # two crons spelled alike (never with standard crons)
            name += "_"
        names.add(name)
        schedules.append(_schedule(name, cron, apps, job))
    return [job], schedules


def _schedule(
    name: str, cron: str, apps: list[str], job: dg.JobDefinition
) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=name,
        cron_schedule=cron,
        job=job,
        run_config={"ops": {OP_NAME: {"config": {"apps": apps}}}},
        tags={APPS_TAG: ",".join(apps)},
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Table maintenance of {', '.join(apps)} (app.yaml maintenance.schedule)",
    )


def _apps_of(context: dg.OpExecutionContext, settings: dict[str, Maintenance]) -> list[str]:
    """The config's apps, else the run tag's, else every app."""
    chosen = list(context.op_config.get("apps") or [])
    if not chosen and (tag := context.run.tags.get(APPS_TAG)):
        chosen = [a.strip() for a in tag.split(",") if a.strip()]
    unknown = sorted(set(chosen) - set(settings))
    if unknown:
        raise dg.Failure(
            f"{JOB_NAME}: unknown app(s) {', '.join(unknown)}; the apps are "
            f"{', '.join(settings)} (folders under the pipelines dir, plus {OPS_APP})"
        )
    return chosen or list(settings)


def _job(settings: dict[str, Maintenance]) -> dg.JobDefinition:
    @dg.op(
        name=OP_NAME,
        required_resource_keys={"spark", "iceberg"},
        pool=SPARK_POOL,
        config_schema={
            "apps": dg.Field(
                [str],
                default_value=[],
                is_required=False,
                description="Apps whose tables to maintain (empty: the run tag "
                f"{APPS_TAG}, else every app).",
            ),
            "compact": dg.Field(
                bool,
                default_value=True,
                is_required=False,
                description="Compact small files (needs Spark); expiry and orphan removal "
                "always run.",
            ),
        },
        tags={MAINTENANCE_TAG: "true"},
        description="Compact small files, expire old snapshots, remove orphan files of the "
        "apps' tables (app.yaml maintenance:).",
    )
    def _op(context: dg.OpExecutionContext) -> dg.Output[None]:
        apps = _apps_of(context, settings)
        return run_maintenance(context, apps, settings, bool(context.op_config["compact"]))

    @dg.job(
        name=JOB_NAME,
        tags={MAINTENANCE_TAG: "true"},
        description="Daily table maintenance (datahub maintain) of the apps in its config.",
    )
    def _maintenance():
        _op()

    return _maintenance


def run_maintenance(
    context: dg.OpExecutionContext,
    apps: list[str],
    settings: dict[str, Maintenance],
    compact: bool,
) -> dg.Output[None]:
    """Maintain every table of `apps`; the summary as output metadata, a Failure naming the
    tables that failed."""
    from datahub_assets.cli.maintain import tables_of
    from datahub_assets.iceberg.read import data_files
    from datahub_assets.maintenance.tables import _groups, maintain_table
    from datahub_assets.spec.durations import parse_duration

    catalog = context.resources.iceberg.catalog()
    spark = None
    lines: list[str] = []
    failed: list[str] = []
    totals = {"tables": 0, "expired_snapshots": 0, "orphans_removed": 0, "files_compacted": 0}
    for app in apps:
        cfg = settings[app]
        target = cfg.target_file_size_mb * 1024 * 1024
        retention: timedelta = parse_duration(cfg.snapshot_retention)
        orphan_after: timedelta = parse_duration(cfg.orphan_after)
        for ident in tables_of(catalog, [app]):
            name = ".".join(ident)
            try:
                if compact and spark is None:
                    table = catalog.load_table(ident)
                    if _groups(data_files(table), target):
                        spark = context.resources.spark.get_session()
                report = maintain_table(
                    spark, catalog, ident, retention, orphan_after, target, compact
                )
            except Exception as exc:  # one table's failure does not stop the others
                context.log.error(f"{name}: maintenance failed: {type(exc).__name__}: {exc}")
                failed.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            context.log.info(report.line())
            lines.append(report.line())
            totals["tables"] += 1
            totals["expired_snapshots"] += report.expired_snapshots
            totals["orphans_removed"] += report.orphans_removed
            totals["files_compacted"] += report.files_compacted
    if failed:
        raise dg.Failure(
            f"maintenance failed for {len(failed)} table(s):\n" + "\n".join(failed),
            metadata={"datahub/maintained": "\n".join(lines)},
        )
    metadata: dict[str, Any] = {f"datahub/{k}": v for k, v in totals.items()}
    metadata["datahub/apps"] = ", ".join(apps)
    metadata["datahub/report"] = dg.MetadataValue.md(
        "\n".join(f"- {line}" for line in lines) or "(no tables)"
    )
    return dg.Output(None, metadata=metadata)
