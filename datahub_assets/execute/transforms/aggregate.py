"""`aggregate`: group and compute metrics, optionally per daily/weekly/monthly window."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame

from datahub_assets.engines import columns
from datahub_assets.engines.api import F
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    register,
    require_columns,
)
from datahub_assets.spec.models import Aggregate

FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max", "first", "last", "stddev")
"""Metric names: the functions of the same name of the running engine's `F`."""
WINDOW_UNITS = {"daily": "day", "weekly": "week", "monthly": "month"}
WINDOW_COLUMN = "window_start"


def parse_metric(metric: str, dataset_name: str) -> tuple[str, str | None, str]:
    """`count:n` -> ("count", None, "n"); `sum:amount` -> ("sum", "amount", "sum_amount");
    `sum:amount:total` -> ("sum", "amount", "total"). A column of `*` means count(*)."""
    parts = [p.strip() for p in metric.split(":")]
    fn = parts[0].lower()
    if fn not in FUNCTIONS or len(parts) not in (2, 3) or not all(parts):
        raise TransformError(
            f"aggregate: metric {metric!r} on dataset {dataset_name!r} is not "
            f"'fn:column[:alias]' or 'count:alias' with fn in {', '.join(FUNCTIONS)}"
        )
    if len(parts) == 2 and fn == "count":
        return fn, None, parts[1]
    column = None if parts[1] == "*" else parts[1]
    alias = parts[2] if len(parts) == 3 else f"{fn}_{parts[1]}"
    return fn, column, alias


def _metric_column(df: DataFrame, fn: str, column: str | None, alias: str) -> Column:
    if column is None:
        if fn != "count":
            raise TransformError(f"aggregate: {fn}(*) is not a metric; only count:*")
        return F.count(F.lit(1)).alias(alias)
    dtype = next(f.dataType for f in df.schema.fields if f.name == column)
    return columns.aggregate(fn, F.col(f"`{column}`"), dtype).alias(alias)


@register("aggregate")
def aggregate(step: Aggregate, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """Columns out: groupBy columns, then `window_start` (a date, when `window` is set),
    then the metrics in the order written."""
    df = dataset(datasets, step.source, step.kind)
    metrics = [parse_metric(m, step.source) for m in step.metrics]
    if not metrics:
        raise TransformError(f"aggregate: no metrics given for dataset {step.source!r}")
    require_columns(df, [*step.group_by, *(c for _, c, _ in metrics if c)], step.kind, step.source)
    keys = [F.col(f"`{c}`") for c in step.group_by]
    if step.window:
        if not step.time_column:
            raise TransformError(
                f"aggregate: window={step.window!r} on dataset {step.source!r} needs timeColumn"
            )
        require_columns(df, [step.time_column], step.kind, step.source)
        unit = WINDOW_UNITS[step.window]
        start = F.date_trunc(unit, F.col(f"`{step.time_column}`")).cast("date")
        keys.append(start.alias(WINDOW_COLUMN))
    return df.groupBy(*keys).agg(*[_metric_column(df, *m) for m in metrics])
