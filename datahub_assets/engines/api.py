"""`F`, `T` and `Window` of the running pipeline's engine, and `use(engine)` to set it.

Modules that build columns write `from datahub_assets.engines.api import F, T, Window` and
use them exactly like `pyspark.sql.functions`, `pyspark.sql.types` and
`pyspark.sql.Window`. Type checkers see the PySpark modules; at run time each attribute is
looked up on the current engine (a context variable: Spark unless `use` says otherwise), so
the same code builds Spark Connect columns or sqlframe DuckDB columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from datahub_assets.engines.base import Engine
from datahub_assets.engines.spark.session import spark_engine

_CURRENT: ContextVar[Engine | None] = ContextVar("datahub_engine", default=None)


def current() -> Engine:
    """The engine of the running pipeline (Spark when none was set)."""
    return _CURRENT.get() or spark_engine()


@contextmanager
def use(engine: Engine) -> Iterator[Engine]:
    """Run the block with `engine`'s F, T and Window."""
    token = _CURRENT.set(engine)
    try:
        yield engine
    finally:
        _CURRENT.reset(token)


class _Dispatch:
    """Attribute access forwarded to one namespace of the current engine."""

    __slots__ = ("_part",)

    def __init__(self, part: str) -> None:
        self._part = part

    def __getattr__(self, name: str) -> Any:
        return getattr(getattr(current(), self._part), name)

    def __repr__(self) -> str:
        return f"<engine {self._part} of {current().name}>"


if TYPE_CHECKING:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
else:
    F = _Dispatch("functions")
    T = _Dispatch("types")
    Window = _Dispatch("window")

__all__ = ["F", "T", "Window", "current", "use"]
