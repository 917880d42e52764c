"""`cast`: change column types (`amount:decimal(12,2),ts:timestamp`)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines import columns
from datahub_assets.engines.api import F
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    register,
    require_columns,
)
from datahub_assets.spec.models import Cast


@register("cast")
def cast(step: Cast, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """Types are Spark SQL type names (checked at load); `step.types` holds the
    (column, type) pairs.

    Spark's cast rules apply: under ANSI mode (Spark 4 default) a value that cannot be
    converted fails the run rather than silently becoming null.
    """
    df = dataset(datasets, step.source, step.kind)
    types = dict(step.types)  # parsed and type-checked at load (spec/mini.py)
    if not types:  # defensive: the loader refuses an empty types=
        raise TransformError(f"cast: no `col:type` items given for dataset {step.source!r}")
    require_columns(df, types, step.kind, step.source)
    source = {f.name: f.dataType for f in df.schema.fields}
    return df.withColumns(
        {col: columns.cast(F.col(f"`{col}`"), t, source[col]) for col, t in types.items()}
    )
