"""`deduplicate`: keep one row per key (first / last in incoming order, or latest by orderBy)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F, Window
from datahub_assets.engines.columns import row_order_id
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    order_columns,
    register,
    require_columns,
)
from datahub_assets.spec.models import Deduplicate

_SEQ, _RANK = "__dh_dedup_seq", "__dh_dedup_rank"


@register("deduplicate")
def deduplicate(step: Deduplicate, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """One row per `keys`.

    - keep=first / last without orderBy: first / last row in the incoming order (a
      monotonically increasing id is captured before the window, so the order is the
      dataset's partition order, e.g. file order for a fresh read or a preceding sort).
    - keep=first / last with orderBy: first / last row when sorted by orderBy
      (items may carry `desc`); ties fall back to the incoming order.
    - keep=latest: the row with the greatest orderBy (required; nulls never win).
    """
    df = dataset(datasets, step.source, step.kind)
    require_columns(df, step.keys, step.kind, step.source)
    if step.keep == "latest" and not step.order_by:
        raise TransformError(
            f"deduplicate: keep='latest' on dataset {step.source!r} needs orderBy "
            "(the column(s) whose greatest value wins)"
        )
    seq = F.col(_SEQ)
    if step.keep == "latest" and step.order_by:  # required by the loader and above
        order = [*order_columns(step.order_by, "desc", "last"), seq.asc()]
    elif step.order_by:
        last = step.keep == "last"
        order = [*order_columns(step.order_by, reverse=last), seq.desc() if last else seq.asc()]
    else:
        order = [seq.desc() if step.keep == "last" else seq.asc()]
    window = Window.partitionBy(*[F.col(k) for k in step.keys]).orderBy(*order)
    return (
        df.withColumn(_SEQ, row_order_id())
        .withColumn(_RANK, F.row_number().over(window))
        .where(F.col(_RANK) == 1)
        .drop(_SEQ, _RANK)
    )
