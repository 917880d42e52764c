"""Shared pieces of the transformations: the registry, the error type and small parsers."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from pyspark.sql import Column, DataFrame

from datahub_assets.engines.api import F
from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.mini import split_top_level

TransformFn = Callable[[Any, dict[str, DataFrame], ExecContext], DataFrame]
TRANSFORMS: dict[str, TransformFn] = {}
__all__ = ["split_top_level"]  # shared with spec/mini.py, which parses the attributes
_SENSITIVE: set[str] = set()  # key material seen by mask steps: scrubbed from error text
_MAX_DETAIL = 600


class TransformError(ValueError):
    """A transformation step cannot run: names the step kind, the dataset and the bad value."""


def register(kind: str) -> Callable[[TransformFn], TransformFn]:
    """Register a transformation function under its element name (`kind`)."""

    def deco(fn: TransformFn) -> TransformFn:
        if kind in TRANSFORMS:
            raise RuntimeError(f"transformation {kind!r} registered twice")
        TRANSFORMS[kind] = fn
        return fn

    return deco


def mark_sensitive(*values: str) -> None:
    """Never show these strings in an error message built by `spark_message`."""
    _SENSITIVE.update(v for v in values if len(v) >= 4)


def spark_message(exc: BaseException) -> str:
    """The first line of a Spark error (no plan, no JVM stack), key material scrubbed."""
    text = str(exc).strip().split("\n", 1)[0]
    for value in _SENSITIVE:
        text = text.replace(value, "***")
    return text[:_MAX_DETAIL]


def dataset(datasets: dict[str, DataFrame], name: str, kind: str) -> DataFrame:
    """The dataset `name`, or a TransformError listing the datasets that exist."""
    if name not in datasets:
        known = ", ".join(sorted(datasets)) or "(none)"
        raise TransformError(f"{kind}: dataset {name!r} does not exist; known datasets: {known}")
    return datasets[name]


def require_columns(df: DataFrame, columns: Iterable[str], kind: str, name: str) -> None:
    """Raise a TransformError naming the first column of `columns` missing from `df`."""
    available = df.columns
    for col in columns:
        if col not in available:
            raise TransformError(
                f"{kind}: column {col!r} not found in dataset {name!r}; "
                f"available: {', '.join(available)}"
            )


_DIRECTION = re.compile(r"^(?P<expr>.+?)\s+(?P<dir>asc|desc)$", re.IGNORECASE)


_FLIP = {"asc": "desc", "desc": "asc", "first": "last", "last": "first"}


def order_columns(
    order_by: str, direction: str = "asc", nulls: str | None = None, reverse: bool = False
) -> list[Column]:
    """`"a, b desc"` -> sort columns; items without a direction use `direction`.

    `nulls` = first|last applies to every item; unset keeps Spark's default
    (nulls first ascending, last descending). `reverse` gives the exact opposite order.
    """
    cols = []
    for item in split_top_level(order_by):
        m = _DIRECTION.match(item)
        expr, dirn = (m["expr"], m["dir"].lower()) if m else (item, direction)
        item_nulls = nulls
        if reverse:
            dirn, item_nulls = _FLIP[dirn], _FLIP.get(nulls or "", nulls)
        col = F.expr(expr)
        suffix = f"_nulls_{item_nulls}" if item_nulls else ""
        cols.append(getattr(col, f"{dirn}{suffix}")())
    return cols
