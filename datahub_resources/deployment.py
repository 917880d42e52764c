"""The one place that picks resources for a deployment (local laptop, CI, production).

Everything comes from the environment (contract section 3, read once by
`settings.Settings.from_env()`), so the same code runs against a local Spark Connect server +
SQLite catalog, or a cluster `sc://` URL + PostgreSQL catalog.

A variable that is set reaches its resource as `dg.EnvVar(name)`: Dagster resolves it when a
run starts and the UI's resource page names the variable (never showing its value). A
variable that is not set cannot be an EnvVar (resolving it would fail the run), so its field
gets the platform default, shown as a value.
"""

from __future__ import annotations

import dagster as dg
from dagster_aws.s3 import S3Resource

from datahub_resources.iceberg import IcebergResource
from datahub_resources.settings import Settings
from datahub_resources.spark import SparkConnectResource


def from_env(settings: Settings, name: str, default: str | None) -> str | None:
    """`dg.EnvVar(name)` when the variable was set at load, else `default`."""
    return dg.EnvVar(name) if name in settings.explicit else default


def resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources of every run, configured from `settings` (read now when not given).

    `s3` serves file drops on `s3://` paths (sensors list, runs read and move). Unset
    fields come from boto3's environment: AWS_ENDPOINT_URL (MinIO or any S3 API),
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION."""
    settings = settings or Settings.from_env()
    return {
        "spark": SparkConnectResource(
            remote=from_env(settings, "DATAHUB_SPARK_REMOTE", settings.spark_remote),
            state_dir=from_env(settings, "DATAHUB_SPARK_STATE", str(settings.spark_state_dir)),
        ),
        "iceberg": IcebergResource(
            catalog_uri=from_env(settings, "DATAHUB_CATALOG_URI", settings.catalog_uri),
            warehouse=from_env(settings, "DATAHUB_WAREHOUSE", settings.warehouse),
        ),
        "s3": S3Resource(),
    }


def executor(choice: str | None = None, settings: Settings | None = None) -> dg.ExecutorDefinition:
    """How the steps of one run execute: `choice` (the component's `executor`, see
    datahub_assets/components/), else DATAHUB_EXECUTOR, else `in_process`.

    A step is a thin Spark Connect client: the work runs, in parallel, on the Spark server.
    `in_process` runs a run's steps one after another in one process that keeps one Spark
    session: 0.31 s per asset on a 20-asset chain, against 1.56 s for `multiprocess`
    (a process per step, forked from a server that preloaded the definitions) and 4.57 s
    for Dagster's default spawned processes (bench/RESULTS.md). `multiprocess` isolates
    steps and runs independent ones side by side, for clusters where that matters more.
    """
    choice = choice or (settings or Settings.from_env()).executor or "in_process"
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor.configured(
            {
                "start_method": {"forkserver": {"preload_modules": ["datahub_assets.definitions"]}},
            }
        )
    raise ValueError(f"DATAHUB_EXECUTOR={choice!r} is not allowed; use in_process or multiprocess")
