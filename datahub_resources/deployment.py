"""The one place that picks resources for a deployment (local laptop, CI, production).

Everything comes from the environment (contract section 3), so the same code runs against a
local Spark Connect server + SQLite catalog, or a cluster `sc://` URL + PostgreSQL catalog.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_aws.s3 import S3Resource

from datahub_resources.iceberg import IcebergResource
from datahub_resources.spark import SparkConnectResource


def resources() -> dict[str, object]:
    """`s3` serves file drops on `s3://` paths (sensors list, runs read and move). Unset
    fields come from boto3's environment: AWS_ENDPOINT_URL (MinIO or any S3 API),
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION."""
    return {"spark": SparkConnectResource(), "iceberg": IcebergResource(), "s3": S3Resource()}


def executor(choice: str | None = None) -> dg.ExecutorDefinition:
    """How the steps of one run execute: `choice` (the component's `executor`, see
    datahub_assets/components/), else DATAHUB_EXECUTOR, else `in_process`.

    A step is a thin Spark Connect client: the work runs, in parallel, on the Spark server.
    `in_process` runs a run's steps one after another in one process that keeps one Spark
    session: 0.31 s per asset on a 20-asset chain, against 1.56 s for `multiprocess`
    (a process per step, forked from a server that preloaded the definitions) and 4.57 s
    for Dagster's default spawned processes (bench/RESULTS.md). `multiprocess` isolates
    steps and runs independent ones side by side, for clusters where that matters more.
    """
    choice = choice or os.environ.get("DATAHUB_EXECUTOR", "in_process")
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor.configured(
            {
                "start_method": {"forkserver": {"preload_modules": ["datahub_assets.definitions"]}},
            }
        )
    raise ValueError(f"DATAHUB_EXECUTOR={choice!r} is not allowed; use in_process or multiprocess")
