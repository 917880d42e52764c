"""`filter`: keep the rows where a Spark SQL boolean expression is true."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.columns import expr
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import dataset, register
from datahub_assets.spec.models import Filter


@register("filter")
def filter_rows(step: Filter, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """Rows where `condition` is true (null counts as false, as in SQL WHERE)."""
    df = dataset(datasets, step.source, step.kind)
    return df.where(expr(step.condition, df))
