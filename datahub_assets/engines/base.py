"""The `Engine` a pipeline runs on: its session, its F / T / Window namespaces, and the
operations whose code differs per engine (`read_ops.ReadOps`, `write_ops.WriteOps`; each
engine's package implements them: `engines/spark/`, `engines/duckdb/`). Code outside
`engines/` asks the engine; it never tests which one it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datahub_assets.engines.read_ops import ReadOps
from datahub_assets.engines.write_ops import WriteOps

ENGINES = ("spark", "duckdb")
CHOICES = (*ENGINES, "auto")


@dataclass(frozen=True)
class Engine(ReadOps, WriteOps):
    name: str
    """"spark" or "duckdb"."""
    functions: Any
    """`pyspark.sql.functions` or `sqlframe.duckdb.functions`."""
    types: Any
    """`pyspark.sql.types` or `sqlframe.base.types` (same class names)."""
    window: Any
    """The `Window` class of the engine."""
    session: Any = None
    """The session frames are created from (SparkSession / the DuckDB session); None: not
    opened (the Spark engine used only for its namespaces)."""
    errors: tuple[type[BaseException], ...] = field(default=())
    """Exception types meaning "the engine rejected the query" (reported without plans)."""

    @property
    def is_duckdb(self) -> bool:
        return self.name == "duckdb"

    @property
    def spark_session(self) -> Any:
        """The Spark session when this is the Spark engine (the watchdog, retries and
        interrupts act on it), else None."""
        return None

    @property
    def connection(self) -> Any:
        """The DuckDB connection under a DuckDB session (DuckDB-only operations)."""
        if not self.is_duckdb:
            raise TypeError("the Spark engine has no DuckDB connection")
        return self.session._conn
