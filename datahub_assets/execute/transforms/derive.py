"""`derive`: add or replace one column from a Spark SQL expression."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.columns import expr
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import dataset, register
from datahub_assets.spec.models import Derive


@register("derive")
def derive(step: Derive, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """`column = expr`; an existing column of that name is replaced in place."""
    df = dataset(datasets, step.source, step.kind)
    return df.withColumn(step.column, expr(step.expr, df))
