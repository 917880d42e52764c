"""Row-level "this row fails" predicates of the column checks (never null: a null value
counts as passing except where the check is about nulls or an expression is null)."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import Column

from datahub_assets.engines.api import F
from datahub_assets.engines.columns import expr
from datahub_assets.spec.models import (
    AcceptedValuesCheck,
    ExpressionCheck,
    NotNullCheck,
    RangeCheck,
    ReferentialCheck,
    RegexCheck,
)


def qcol(name: str) -> Column:
    """A top-level column by its exact name (dots and spaces are part of the name)."""
    return F.col("`" + name.replace("`", "``") + "`")


def any_null(columns: list[str] | tuple[str, ...]) -> Column:
    """True when any of `columns` is null (False for no columns)."""
    return reduce(lambda a, b: a | b, [qcol(c).isNull() for c in columns], F.lit(False))


def check_columns(check) -> tuple[str, ...]:
    """The target columns a check reads (empty for rowCount, expression, schema)."""
    if getattr(check, "columns", None):
        return tuple(check.columns)
    column = getattr(check, "column", None)
    return (column,) if column else ()


def failing(check) -> Column:
    """The failing-row predicate of a row-level check (or a referential check's candidate
    rows); table-level kinds (rowCount, unique, freshness, schema) have none."""
    if isinstance(check, NotNullCheck):
        return any_null(check.columns)
    if isinstance(check, RangeCheck):
        c = qcol(check.column)
        outside = F.lit(False)
        if check.min is not None:
            outside = outside | (c < F.lit(check.min))
        if check.max is not None:
            outside = outside | (c > F.lit(check.max))
        return c.isNotNull() & outside
    if isinstance(check, AcceptedValuesCheck):
        c = qcol(check.column)
        return c.isNotNull() & ~c.cast("string").isin(list(check.values))
    if isinstance(check, RegexCheck):
        c = qcol(check.column)
        return c.isNotNull() & ~c.cast("string").rlike(check.pattern)
    if isinstance(check, ExpressionCheck):
        # a row passes only when the expression is TRUE: false and null both fail
        return ~F.coalesce(expr(check.expr).cast("boolean"), F.lit(False))
    if isinstance(check, ReferentialCheck):
        return qcol(check.column).isNotNull()  # candidates; the anti join decides
    raise TypeError(f"a {check.kind} check is table-level: it has no failing-row predicate")
