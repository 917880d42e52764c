"""The `Engine` a pipeline runs on: its session and its F / T / Window namespaces."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

ENGINES = ("spark", "duckdb")
CHOICES = (*ENGINES, "auto")


@dataclass(frozen=True)
class Engine:
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
    def connection(self) -> Any:
        """The DuckDB connection under a DuckDB session (DuckDB-only operations)."""
        if not self.is_duckdb:
            raise TypeError("the Spark engine has no DuckDB connection")
        return self.session._conn


def _spark_errors() -> tuple[type[BaseException], ...]:
    from pyspark.errors import PySparkException

    return (PySparkException,)


@cache
def _spark_namespaces() -> tuple[Any, Any, Any]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    return F, T, Window


def spark_engine(session: Any = None) -> Engine:
    """The Spark engine over `session` (a Spark Connect session)."""
    if session is None:
        return _spark_without_session()
    F, T, Window = _spark_namespaces()
    return Engine("spark", F, T, Window, session, _spark_errors())


@cache
def _spark_without_session() -> Engine:
    """The Spark namespaces without a session (built once, on first use)."""
    F, T, Window = _spark_namespaces()
    return Engine("spark", F, T, Window, None, _spark_errors())
