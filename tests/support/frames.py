"""Frames of either engine, read the same way by the tests: `dtypes` (Spark's
`DataFrame.dtypes`; a sqlframe frame has none: there `df.dtypes` is a column named "dtypes")
and `row_tuples` (the rows through Arrow, as the platform writes them: sqlframe's `collect()`
turns decimals into floats)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def dtypes(df: Any) -> list[tuple[str, str]]:
    """(column, Spark's simple type name) of a frame of either engine, e.g. `decimal(12,2)`."""
    return [(f.name, f.dataType.simpleString().replace(" ", "")) for f in df.schema.fields]


def _plain(value: Any) -> Any:
    """A timestamp with a zone as naive UTC: what Spark's collect() gives for a `timestamp`
    in the platform's UTC session."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def row_tuples(df: Any) -> list[tuple]:
    """The rows of a (small) frame of either engine as tuples, in the frame's order."""
    return [tuple(_plain(v) for v in r.values()) for r in df.toArrow().to_pylist()]
