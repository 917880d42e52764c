"""Spark Connect sessions: a remote `sc://` endpoint, or the shared local server."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field
from pyspark.logger import PySparkLogger
from pyspark.sql import SparkSession

from datahub_resources import spark_server, spark_watchdog
from datahub_resources.settings import Settings


def _silence_plan_loggers() -> None:
    """PySpark logs every analysis error with its whole plan, bypassing logging config; a
    plan can hold a masking key as a literal, so those two loggers are turned off (the error
    itself still reaches the caller, shortened and scrubbed by the transforms)."""
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True


def connect(
    settings: Settings | None = None, remote: str | None = None, state_dir: str | None = None
) -> SparkSession:
    """A Spark Connect session to `remote`, DATAHUB_SPARK_REMOTE, or the local shared server
    (its state in `state_dir`, else DATAHUB_SPARK_STATE).

    Its client retries are bounded and a local server is watched (`spark_watchdog`); a cached
    session whose server died (or that talks to another URL) is replaced by a new one."""
    _silence_plan_loggers()
    settings = settings or Settings.from_env()
    url = remote or settings.spark_remote
    server = None
    if not url:
        state = Path(state_dir).expanduser().resolve() if state_dir else settings.spark_state_dir
        server = spark_server.ensure_running(state, settings)
        url = server.remote
    session = SparkSession.builder.remote(url).getOrCreate()
    if not spark_watchdog.usable(session, url):
        spark_watchdog.discard(session)
        session = SparkSession.builder.remote(url).getOrCreate()
    spark_watchdog.watch(
        session, url, server, settings.spark_retry_seconds, settings.spark_watchdog_seconds
    )
    return session


class SparkConnectResource(dg.ConfigurableResource):
    """Spark session for asset bodies. Opens lazily: loading definitions never touches Spark.

    `deployment.resources()` fills the fields from the environment read at load
    (`dg.EnvVar` for the variables that are set, so the UI names them)."""

    remote: str | None = Field(
        default=None,
        description="DATAHUB_SPARK_REMOTE: sc://host:port of a Spark Connect endpoint; unset "
        "starts a local server once, shared by all steps.",
    )
    state_dir: str | None = Field(
        default=None,
        description="DATAHUB_SPARK_STATE: state and server.log of the local Spark Connect "
        "server (default $DATAHUB_HOME/spark); unused with `remote`.",
    )

    def get_session(self) -> SparkSession:
        return connect(remote=self.remote, state_dir=self.state_dir)
