"""The Spark engine over a Spark Connect session (`spark_engine`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from datahub_assets.engines.base import Engine
from datahub_assets.engines.spark.read import SparkReadOps
from datahub_assets.engines.spark.write import SparkWriteOps


@dataclass(frozen=True)
class SparkEngine(SparkReadOps, SparkWriteOps, Engine):
    """Spark Connect: the operations of `spark/read.py` and `spark/write.py`."""

    @property
    def spark_session(self) -> Any:
        return self.session


def _spark_errors() -> tuple[type[BaseException], ...]:
    from pyspark.errors import PySparkException

    return (PySparkException,)


@cache
def _spark_namespaces() -> tuple[Any, Any, Any]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    return F, T, Window


def spark_engine(session: Any = None) -> SparkEngine:
    """The Spark engine over `session` (a Spark Connect session)."""
    if session is None:
        return _spark_without_session()
    F, T, Window = _spark_namespaces()
    return SparkEngine("spark", F, T, Window, session, _spark_errors())


@cache
def _spark_without_session() -> SparkEngine:
    """The Spark namespaces without a session (built once, on first use)."""
    F, T, Window = _spark_namespaces()
    return SparkEngine("spark", F, T, Window, None, _spark_errors())
