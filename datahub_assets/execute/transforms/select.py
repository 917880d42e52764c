"""`select`: project columns / expressions (`a, b as c, upper(d) as d`)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import current
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    register,
    split_top_level,
)
from datahub_assets.spec.models import Select


@register("select")
def select(step: Select, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """Split `columns` on top-level commas (not inside (), quotes or backticks) and selectExpr."""
    df = dataset(datasets, step.source, step.kind)
    exprs = split_top_level(step.columns)
    if not exprs:
        raise TransformError(f"select: no columns given for dataset {step.source!r}")
    return current().select_exprs(df, exprs)
