"""`sort`: order a dataset by one or more columns."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import dataset, order_columns, register
from datahub_assets.spec.models import Sort


@register("sort")
def sort(step: Sort, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """`orderBy="a, b desc"`: items without their own direction use `direction`;
    `nulls=first|last` applies to every item (unset: Spark's default)."""
    df = dataset(datasets, step.source, step.kind)
    return df.orderBy(*order_columns(step.order_by, step.direction, step.nulls))
