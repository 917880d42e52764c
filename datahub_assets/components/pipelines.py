"""`DataHubPipelines`: the Dagster component that turns a folder of pipeline definitions into
the project's definitions (assets, checks, sensors, jobs, schedules, resources, executor).

A `defs.yaml` instantiates it (the project's own: `datahub_assets/defs/pipelines/defs.yaml`):

    type: datahub_assets.components.DataHubPipelines
    attributes:
      pipelines_dir: pipelines_xml
      executor: in_process

It builds nothing itself: `build_defs` resolves the two settings (environment first, then
the YAML, then the defaults) and calls
`datahub_assets.orchestration.project.build_definitions`, the one builder, so what
`-m datahub_assets.definitions` and the `dg` CLI load is the same. Importing this module
stays cheap (the `dg` registry imports it to list and document component types): the
builder is imported only when definitions are built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import dagster as dg

from datahub_resources.settings import Settings

PIPELINES_DIR_ENV = "DATAHUB_PIPELINES_DIR"
EXECUTOR_ENV = "DATAHUB_EXECUTOR"


class DataHubPipelines(dg.Component, dg.Model, dg.Resolvable):
    """Data Hub pipelines: every XML/YAML pipeline definition under `pipelines_dir` becomes
    Dagster assets (one per target table, key `[app, layer, table]`, group = layer) with
    their asset checks, `<schedule>` automation, one file-drop sensor per `<watch/>`ed source,
    and one job per job pipeline; plus the built-in run-records assets and sensor, the Spark
    Connect / Iceberg / S3 resources and the run executor.

    The definitions are validated as a whole before anything is built (unique ids and tables,
    references, cycles, layers); an invalid file fails the load with file:line:col. The
    pipeline file format is documented in docs/pipelines.md; the JSON Schema of its YAML form
    is `datahub_assets/spec/pipeline.schema.json`. Start a new pipeline with
    `datahub new pipeline <app> <layer> <id> --source csv --target table`.
    """

    pipelines_dir: Annotated[
        str,
        dg.Resolver.default(
            description=(
                "Folder of pipeline definitions (`<app>/<layer>/<id>.xml|.yaml`, `<app>/jobs/`, "
                "`<app>/app.yaml`), relative to the project root or absolute. The environment "
                f"variable {PIPELINES_DIR_ENV}, when set, wins: deployments point it at their "
                "own folder."
            ),
        ),
    ] = "pipelines_xml"
    executor: Annotated[
        Literal["in_process", "multiprocess"],
        dg.Resolver.default(
            description=(
                "How the steps of one run execute. `in_process`: one after another in one "
                "process that keeps one Spark Connect session (fastest for thin Spark clients). "
                "`multiprocess`: a process per step, forked from a server that preloaded the "
                f"definitions, independent steps side by side. The environment variable "
                f"{EXECUTOR_ENV}, when set, wins."
            ),
        ),
    ] = "in_process"

    def resolved_pipelines_dir(self, project_root: Path) -> Path:
        """DATAHUB_PIPELINES_DIR if set (against the working directory), else
        `pipelines_dir` against the project root."""
        settings = Settings.from_env()
        if PIPELINES_DIR_ENV in settings.explicit:
            return settings.pipelines_dir
        path = Path(self.pipelines_dir).expanduser()
        return (path if path.is_absolute() else project_root / path).resolve()

    def resolved_executor(self) -> str:
        return Settings.from_env().executor or self.executor

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from datahub_assets.orchestration.project import build_definitions

        return build_definitions(
            self.resolved_pipelines_dir(context.project_root),
            executor_name=self.resolved_executor(),
        )
