"""The engine of one pipeline run: chosen when the step starts, opened, closed after.

`engines.choice.choose` decides (the run tag `datahub/engine` forces one, then the pipeline's
`engine=`, app.yaml, DATAHUB_ENGINE; `auto` by input size) and says why; the choice is recorded
on every materialisation (`datahub/engine`, `datahub/engine_reason`). A DuckDB run opens its
own in-process connection and never touches Spark: with no Spark pipeline in a run, no Spark
server is started (the Spark resource opens its session lazily, on the first Spark step).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datahub_assets.engines.base import Engine
from datahub_assets.engines.spark.session import spark_engine
from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.models import PipelineSpec
from datahub_resources.settings import Settings

if TYPE_CHECKING:
    from datahub_assets.engines.choice import Choice


@dataclass(frozen=True)
class OpenEngine:
    engine: Engine
    choice: Choice

    @property
    def session(self) -> Any:
        return self.engine.session

    @property
    def spark_session(self) -> Any:
        """The Spark session when the run is on Spark (watchdog, retries), else None."""
        return self.engine.spark_session

    def exec_context(self, **fields: Any) -> ExecContext:
        """The run's ExecContext on this engine: its session, the engine and why it ran."""
        return ExecContext(
            spark=self.session, engine=self.engine, engine_reason=self.choice.reason, **fields
        )

    def metadata(self) -> dict[str, str]:
        return {"engine": self.choice.engine, "engine_reason": self.choice.reason}


@contextmanager
def open_engine(
    spec: PipelineSpec,
    settings: Settings,
    spark_resource: Any,
    catalog: Any,
    tags: Mapping[str, str],
    files: dict[str, list[str]] | None,
    log: Any,
) -> Iterator[OpenEngine]:
    """Choose the engine for this run of `spec`, open it, close a DuckDB connection after."""
    from datahub_assets.engines.choice import RUN_TAG, choose

    choice = choose(spec, settings, catalog, override=tags.get(RUN_TAG), files=files)
    log.info(f"{spec.file}: engine {choice.engine} ({choice.reason})")
    if choice.engine != "duckdb":
        yield OpenEngine(spark_engine(spark_resource.get_session()), choice)
        return
    from datahub_assets.engines.duckdb.session import duckdb_engine  # DuckDB runs only

    engine = duckdb_engine(settings)
    try:
        yield OpenEngine(engine, choice)
    finally:
        engine.connection.close()
