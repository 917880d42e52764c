"""What a step of a pipeline run can see: Spark, paths, secrets, other tables."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines.base import Engine
from datahub_assets.engines.spark.session import spark_engine
from datahub_assets.spec.models import PipelineSpec, TableRef
from datahub_resources import secrets
from datahub_resources.settings import Settings

_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,150}")


def work_name(spec: PipelineSpec) -> str:
    """The pipeline's folder in a run's work folders: `<app>.<pipeline id>` (unique in the
    project), as one safe path component (anything else: its safe characters and a hash)."""
    name = spec.key
    if _SAFE_NAME.fullmatch(name) and ".." not in name:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9_-]', '_', name)[:100]}-{digest}"


@dataclass
class ExecContext:
    spark: SparkSession
    """The session frames are made from: Spark Connect, or the DuckDB engine's sqlframe
    session (same DataFrame API) when `engine` is DuckDB."""
    settings: Settings
    app: str
    run_id: str = "local"
    run_date: date = field(default_factory=date.today)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("datahub"))
    read_table: Callable[[TableRef], DataFrame] | None = None
    """Reads an Iceberg table (pyiceberg plans files, Spark reads them)."""
    s3_client: Callable[[], Any] | None = None
    """Makes a boto3 S3 client (the `s3` resource); None: boto3 from the environment."""
    drops: Any = None
    """The batch of dropped files the run took (`execute.drops.DropBatch`), if any."""
    spec: Any = None
    """The running pipeline (`spec.models.PipelineSpec`): resolves `connection=` endpoints."""
    params: dict[str, Any] = field(default_factory=dict)
    """Named parameters of the run (`:name` in a database source's <sql>); `runDate` is added
    from `run_date` when absent."""
    full_refresh: bool = False
    """Ignore committed watermarks: incremental sources read every row again."""
    engine: Engine | None = None
    """The engine the run uses (`engines.base.Engine`); None: Spark over `spark`."""
    engine_reason: str = ""
    """Why that engine was chosen (recorded in the materialisation metadata)."""

    @property
    def active_engine(self) -> Engine:
        """The run's engine (what differs per engine is an operation of it)."""
        return self.engine or spark_engine(self.spark)

    @property
    def app_dir(self) -> Path:
        """The app's definitions folder (schemaRef and lookups resolve here)."""
        return self.settings.pipelines_dir / self.app

    @property
    def work_folder(self) -> Path:
        """This pipeline's folder of the run's ingest work: `$DATAHUB_HOME/ingest/<run>/
        <app>.<pipeline>/`, never shared by two pipelines of one run (they may run in
        parallel and have sources of the same id)."""
        name = work_name(self.spec) if self.spec else f"{self.app}._"
        return self.settings.home / "ingest" / self.run_id / name

    def data_path(self, path: str) -> str:
        """A data path: s3:// and absolute paths as written, else under DATAHUB_DATA_DIR/<app>/."""
        return self.settings.data_path(self.app, path)

    def app_path(self, path: str) -> str:
        """A schemaRef/lookup path: s3:// and absolute as written, else under the app folder."""
        if "://" in path or path.startswith("/"):
            return path
        return str(self.app_dir / path)

    def secret(self, name: str) -> str:
        return secrets.resolve(name, self.app)

    def mask_key(self, secret_ref: str | None) -> str:
        if secret_ref:
            return secrets.resolve(secret_ref, self.app)
        return secrets.default_mask_key(self.settings.home)
