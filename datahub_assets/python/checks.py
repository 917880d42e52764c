"""Checks of a Python table asset, declared in Python: the same check models (and the same
engine, `execute.checks`) as an XML pipeline's `<checks>`.

    from datahub_assets.python import checks as c

    @table_asset(layer="gold", checks=[c.not_null("customer_id"), c.unique("customer_id"),
                                       c.range_("score", min=0, max=1, severity="warn")])

`severity="error"` (the default) is blocking: the IO manager commits the frame as a snapshot
on an audit branch, evaluates the checks there, and publishes it to main only when no error
check failed (write-audit-publish); otherwise the table stays at its previous snapshot.
"""

from __future__ import annotations

from typing import Literal

from datahub_assets.spec.models import (
    AcceptedValuesCheck,
    Check,
    ExpressionCheck,
    FreshnessCheck,
    NotNullCheck,
    RangeCheck,
    ReferentialCheck,
    RegexCheck,
    RowCountCheck,
    SchemaCheck,
    UniqueCheck,
)

Severity = Literal["error", "warn"]


def not_null(*columns: str, name: str | None = None, severity: Severity = "error") -> Check:
    """Rows with a null in any of `columns` fail."""
    return NotNullCheck(columns=columns, name=name, severity=severity)


def unique(*columns: str, name: str | None = None, severity: Severity = "error") -> Check:
    """Rows whose key (all `columns`) occurs more than once fail."""
    return UniqueCheck(columns=columns, name=name, severity=severity)


def row_count(
    min: int | None = None,  # noqa: A002 - the XML attribute's name
    max: int | None = None,  # noqa: A002 - the XML attribute's name
    name: str | None = None,
    severity: Severity = "error",
) -> Check:
    """The table's row count within [min, max]."""
    return RowCountCheck(min=min, max=max, name=name, severity=severity)


def range_(
    column: str,
    min: float | None = None,  # noqa: A002 - the XML attribute's name
    max: float | None = None,  # noqa: A002 - the XML attribute's name
    name: str | None = None,
    severity: Severity = "error",
) -> Check:
    """Non-null values of `column` outside [min, max] fail."""
    return RangeCheck(column=column, min=min, max=max, name=name, severity=severity)


def accepted_values(
    column: str, *values: str, name: str | None = None, severity: Severity = "error"
) -> Check:
    """Non-null values of `column` not in `values` (compared as strings) fail."""
    return AcceptedValuesCheck(column=column, values=values, name=name, severity=severity)


def regex(column: str, pattern: str, name: str | None = None, severity: Severity = "error"):
    """Non-null values of `column` not matching the Java regex `pattern` fail."""
    return RegexCheck(column=column, pattern=pattern, name=name, severity=severity)


def freshness(column: str, max_age: str, name: str | None = None, severity: Severity = "error"):
    """Fails when max(`column`) is older than the ISO-8601 duration `max_age`."""
    return FreshnessCheck(column=column, max_age=max_age, name=name, severity=severity)


def expression(expr: str, name: str | None = None, severity: Severity = "error") -> Check:
    """Rows where the Spark SQL boolean `expr` is false or null fail."""
    return ExpressionCheck(expr=expr, name=name, severity=severity)


def referential(column: str, ref: str, name: str | None = None, severity: Severity = "error"):
    """Non-null values of `column` absent from `ref` = `[app.]layer.table.column` fail."""
    return ReferentialCheck(column=column, ref=ref, name=name, severity=severity)


def schema(schema_ref: str, name: str | None = None, severity: Severity = "error") -> Check:
    """The frame against an .avsc / JSON Schema file (relative to the app folder)."""
    return SchemaCheck(schema_ref=schema_ref, name=name, severity=severity)
