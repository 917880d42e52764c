"""`join`: join two datasets on a condition that names them by id."""

from __future__ import annotations

from collections import Counter

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F
from datahub_assets.engines.columns import broadcast
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    register,
    split_top_level,
)
from datahub_assets.spec.models import Join

JOIN_TYPES = {
    "inner": "inner",
    "left": "left",
    "right": "right",
    "full": "full",
    "semi": "left_semi",
    "anti": "left_anti",
}


def _broadcast_side(value: object) -> str | None:
    if value in (True, "true", "right"):
        return "right"
    return "left" if value == "left" else None


@register("join")
def join(step: Join, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """Join `left` and `right`, each aliased by its dataset id, on `condition`
    (a Spark SQL expression such as `orders.customer_id = customers.id`).

    Column names present on both sides are an error (naming them) for inner/left/right/full
    joins unless one of these resolves them:
    - `select`: a select list evaluated after the join, which may qualify columns by
      dataset id (`orders.*, customers.name as customer_name`);
    - `rightPrefix`: every right-side column is renamed `<prefix><column>`.
    This includes equality keys with the same name on both sides (`a.id = b.id`): keep it
    explicit, there is no implicit coalescing of keys. semi/anti joins return the left
    columns only, so they never clash. `broadcast` = right|true|left hints that side.
    """
    if step.left == step.right:
        raise TransformError(f"join: left and right are the same dataset {step.left!r}")
    left = dataset(datasets, step.left, step.kind).alias(step.left)
    right = dataset(datasets, step.right, step.kind).alias(step.right)
    side = _broadcast_side(step.broadcast)
    if side == "right":
        right = broadcast(right)
    elif side == "left":
        left = broadcast(left)
    how = JOIN_TYPES[step.type]
    joined = left.join(right, on=F.expr(step.condition), how=how)
    if how in ("left_semi", "left_anti"):
        return joined.selectExpr(*split_top_level(step.select)) if step.select else joined
    if step.select:
        result = joined.selectExpr(*split_top_level(step.select))
    elif step.right_prefix:
        result = joined.select(
            F.col(f"`{step.left}`.*"),
            *[
                F.col(f"`{step.right}`.`{c}`").alias(f"{step.right_prefix}{c}")
                for c in right.columns
            ],
        )
    else:
        common = [c for c in left.columns if c in set(right.columns)]
        if common:
            raise TransformError(
                f"join: datasets {step.left!r} and {step.right!r} both have column(s) "
                f'{", ".join(common)}; add select="..." or rightPrefix="..."'
            )
        return joined
    dupes = [c for c, n in Counter(result.columns).items() if n > 1]
    if dupes:
        raise TransformError(
            f"join {step.left!r} with {step.right!r}: the result has duplicate column(s) "
            f"{', '.join(dupes)}; alias them in select or change rightPrefix"
        )
    return result
