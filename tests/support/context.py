"""The `ExecContext` of a test, built one way for both engines (`exec_context`), and one side
of the engine pair (`EngineUnderTest`, given by the `engine_pair` fixture of `fixtures.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datahub_assets.engines.base import Engine
from datahub_assets.execute.context import ExecContext
from datahub_resources.settings import Settings


def exec_context(on: Any, settings: Settings, *, app: str = "shop", **kw: Any) -> ExecContext:
    """A step's context over `on`: a Spark session (the Spark engine, `engine` left unset as a
    Spark run leaves it) or an `Engine` such as `duckdb_engine(settings)` (frames from its
    session). `kw`: any other ExecContext field (run_id, run_date, spec, ...)."""
    if isinstance(on, Engine):
        return ExecContext(spark=on.session, settings=settings, app=app, engine=on, **kw)
    return ExecContext(spark=on, settings=settings, app=app, **kw)


@dataclass(frozen=True)
class EngineUnderTest:
    """One side of the engine pair: its name, the session frames are made from, and the
    contexts of its steps."""

    name: str
    """"spark" or "duckdb" (also the test id's suffix)."""
    session: Any
    """The Spark session, or the DuckDB engine's sqlframe session (same DataFrame API)."""
    engine: Engine | None
    """The DuckDB engine; None on Spark (as a Spark step's context has it)."""
    settings: Settings

    def context(self, *, app: str = "shop", **kw: Any) -> ExecContext:
        """`exec_context` on this engine."""
        return exec_context(self.engine or self.session, self.settings, app=app, **kw)
